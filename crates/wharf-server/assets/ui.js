// Small helps where JavaScript runs; every page works without it.
// - a form with data-confirm asks before it is sent (Stop);
// - a form marked data-answer-page is sent as it is: its answer is the page to show (a
//   new API key, shown once);
// - logs open at their end, where a step's last words are.
// - an action that fails says why on the page it came from, under its form (without
//   JavaScript the answer is a page of its own with the way back);
document.addEventListener('submit', function (e) {
  var form = e.target, ask = form.getAttribute('data-confirm');
  if (ask && !window.confirm(ask)) { e.preventDefault(); return; }
  if (form.method !== 'post' || form.querySelector('textarea') || form.hasAttribute('data-answer-page')) { return; }
  e.preventDefault();
  var by = e.submitter, url = by && by.hasAttribute('formaction') ? by.formAction : form.action;
  var said = form.nextElementSibling;
  if (!said || !said.hasAttribute('data-said')) {
    said = document.createElement('p');
    said.className = 'err';
    said.setAttribute('role', 'alert');
    said.setAttribute('data-said', '');
    form.parentNode.insertBefore(said, form.nextSibling);
  }
  said.textContent = '';
  fetch(url, { method: 'POST', body: new URLSearchParams(new FormData(form, by)) })
    .then(function (r) {
      if (r.ok) { location.href = r.url; return; }
      return r.text().then(function (html) {
        var page = new DOMParser().parseFromString(html, 'text/html');
        var why = page.querySelector('main .err') || page.querySelector('main');
        said.textContent = why ? why.textContent : 'the server answered ' + r.status;
      });
    })
    .catch(function (err) { said.textContent = 'the server could not be reached: ' + err; });
});
// - times (written in UTC) read in the viewer's zone, with how long ago.
function ago(ms) {
  var s = Math.round(ms / 1000);
  if (s < 60) { return s + ' s ago'; }
  if (s < 3600) { return Math.round(s / 60) + ' min ago'; }
  if (s < 86400) { return Math.round(s / 3600) + ' h ago'; }
  return Math.round(s / 86400) + ' d ago';
}
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('pre.log').forEach(function (pre) { pre.scrollTop = pre.scrollHeight; });
  document.querySelectorAll('time[datetime]').forEach(function (t) {
    var d = new Date(t.getAttribute('datetime'));
    if (isNaN(d)) { return; }
    t.title = t.getAttribute('datetime');
    t.textContent = d.toLocaleString() + ' (' + ago(Date.now() - d) + ')';
  });
});
// - a list or DAG page with a run going follows it: every 2 s its parts marked
//   data-refresh are taken from the page as it is now (no reload: a form being filled in
//   stays as it is), until no run goes.
document.addEventListener('DOMContentLoaded', function () {
  if (!document.querySelector('[data-live-page]')) { return; }
  var timer = setInterval(function () {
    fetch(location.href, { headers: { 'Accept': 'text/html' } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var now = new DOMParser().parseFromString(html, 'text/html');
        document.querySelectorAll('[data-refresh]').forEach(function (el) {
          var fresh = now.getElementById(el.id);
          if (fresh) { el.innerHTML = fresh.innerHTML; }
        });
        if (!now.querySelector('[data-live-page]')) { clearInterval(timer); }
      })
      .catch(function () {});
  }, 2000);
});
// - a DAG's YAML is checked as it is typed (the server's validation, a third of a second
//   after the last key), its errors listed under it.
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('textarea[data-validate]').forEach(function (area) {
    var out = area.parentNode.querySelector('.check'), timer = null;
    area.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        fetch(area.dataset.validate, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ spec: area.value })
        }).then(function (r) { return r.json(); }).then(function (v) {
          var errors = v.errors || [];
          area.classList.toggle('invalid', errors.length > 0);
          out.textContent = '';
          errors.forEach(function (e) {
            var li = document.createElement('div');
            li.className = 'err';
            li.textContent = e;
            out.appendChild(li);
          });
          if (!errors.length) { out.textContent = 'valid'; }
        }).catch(function () {});
      }, 300);
    });
  });
});
