// Small helps where JavaScript runs; every page works without it.
// - a form with data-confirm asks before it is sent (Stop);
// - logs open at their end, where a step's last words are.
document.addEventListener('submit', function (e) {
  var ask = e.target.getAttribute('data-confirm');
  if (ask && !window.confirm(ask)) { e.preventDefault(); }
});
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('pre.log').forEach(function (pre) { pre.scrollTop = pre.scrollHeight; });
});
