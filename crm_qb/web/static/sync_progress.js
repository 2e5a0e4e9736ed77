// Keeps a first-sync or history-import page current without reloading it: polls the run's status.json and
// updates the progress bars and text; when the run leaves the state the page waits in, it moves on (to the
// report, or reloads the preview). Without JavaScript the page refreshes itself instead (a noscript meta tag).
(function () {
  "use strict";
  var root = document.getElementById("sync-progress") || document.getElementById("sync-live");
  if (!root || !root.getAttribute("data-wait-while")) { return; }
  var url = root.getAttribute("data-status-url");
  var waiting = root.getAttribute("data-wait-while").split(",");
  var next = root.getAttribute("data-then");

  function text(id, value) {
    var node = document.getElementById(id);
    if (node) { node.textContent = value; }
  }

  function minutes(seconds) {
    return seconds ? "· about " + Math.max(1, Math.ceil(seconds / 60)) + " min left" : "";
  }

  function bars(status) {
    var overall = document.getElementById("progress-overall");
    if (overall) { overall.max = status.total || 1; overall.value = status.done; }
    text("progress-done", status.done);
    text("progress-total", status.total);
    text("progress-failed", status.failed + " failed");
    text("progress-eta", minutes(status.eta_seconds));
    var phases = root.querySelectorAll("[data-phase]");
    for (var i = 0; i < phases.length; i += 1) {
      var phase = phases[i].getAttribute("data-phase");
      var done = (status.phases || {})[phase] || 0;
      var total = (status.totals || {})[phase] || 0;
      var bar = phases[i].querySelector("progress");
      bar.max = total || 1;
      bar.value = Math.min(done, total || 1);
      text("phase-" + phase + "-count", total ? done + " of " + total : String(done));
    }
  }

  function update(status) {
    if (waiting.indexOf(status.state) === -1) {
      if (next) { window.location.assign(next); } else { window.location.reload(); }
      return;
    }
    bars(status);
    window.setTimeout(poll, 1500);
  }

  function poll() {
    window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(update)
      .catch(function () { window.setTimeout(poll, 5000); });
  }

  window.setTimeout(poll, 1000);
}());
