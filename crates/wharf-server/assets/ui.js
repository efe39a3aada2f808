// Small helps where JavaScript runs; every page works without it.
// - a form with data-confirm asks before it is sent (Stop);
// - logs open at their end, where a step's last words are.
document.addEventListener('submit', function (e) {
  var ask = e.target.getAttribute('data-confirm');
  if (ask && !window.confirm(ask)) { e.preventDefault(); }
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
