// Follows the logs of running steps (pre[data-live]) through Server-Sent Events; when one
// ends, the page is loaded again for the new state (and every second while the run has no
// step recorded yet). Reading a page needs none of this.
(function () {
  var live = document.querySelectorAll('pre[data-live]');
  if (!live.length) {
    setTimeout(function () { location.reload(); }, 1000);
  }
  live.forEach(function (pre) {
    var es = new EventSource(pre.dataset.live), first = true;
    es.onmessage = function (e) {
      if (first) { pre.textContent = ''; first = false; }
      pre.textContent += e.data + '\n';
      pre.scrollTop = pre.scrollHeight;
    };
    es.addEventListener('end', function () {
      es.close();
      setTimeout(function () { location.reload(); }, 300);
    });
  });
})();
