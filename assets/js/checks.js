// Client request mode: the admin's browser checks the keys straight against the upstream, with the
// job's concurrency, interval, retries and rate, and posts the raw answers to keypool, which
// classifies them like its own checks. If the browser is refused (CORS or network), the panel says so
// and offers the same check on the server.
(function () {
  "use strict";

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  function run(panel) {
    var cfg = JSON.parse(panel.getAttribute("data-client-check"));
    panel.removeAttribute("data-client-check");
    var queue = cfg.keys.slice();
    var total = queue.length, done = 0, stopped = false, refused = false, pending = [];
    var bar = panel.querySelector("progress");
    var counter = panel.querySelector("[data-client-progress]");
    var message = panel.querySelector(".client-message");
    var gap = cfg.rate > 0 ? 1000 / cfg.rate : 0, next = 0;
    panel.querySelector("[data-client-stop]").addEventListener("click", function () { stopped = true; });

    function pace() {
      if (!gap) return Promise.resolve();
      var now = Date.now(), slot = Math.max(next, now);
      next = slot + gap;
      return slot > now ? sleep(slot - now) : Promise.resolve();
    }

    function once(key) {
      return pace().then(function () {
        return fetch(cfg.upstream + "/v1/user/info", { headers: { Authorization: "Bearer " + key } });
      }).then(function (res) {
        return res.text().then(function (body) { return { status: res.status, body: body }; });
      }, function (err) {
        return { status: 0, body: String(err), failed: true };
      });
    }

    function transient(status) { return status === 0 || status === 429 || status >= 500; }

    function flush() {
      if (!pending.length) return Promise.resolve();
      var batch = pending.splice(0);
      return fetch("/admin/checks/client-results", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ results: batch })
      });
    }

    async function check(item) {
      for (var attempt = 0; ; attempt++) {
        var r = await once(item[1]);
        if (transient(r.status) && attempt < cfg.retries && !stopped) {
          await sleep(cfg.retry_interval_ms);
          continue;
        }
        return r;
      }
    }

    async function worker() {
      while (!stopped && !refused && queue.length) {
        var item = queue.shift();
        var r = await check(item);
        if (r.failed && done === 0) { refused = true; return; }
        pending.push({ id: item[0], status: r.status, body: r.body.slice(0, 65536) });
        done++;
        bar.value = done;
        counter.textContent = done + " / " + total;
        if (pending.length >= 50) await flush();
        if (queue.length) {
          var lo = cfg.interval[0], hi = cfg.interval[1];
          var pause = lo + Math.floor(Math.random() * (hi - lo + 1));
          if (pause) await sleep(pause);
        }
      }
    }

    var workers = [];
    for (var i = 0; i < Math.max(1, cfg.concurrency); i++) workers.push(worker());
    Promise.all(workers).then(flush).then(function () {
      if (refused) {
        message.textContent = panel.getAttribute("data-text-refused");
        var fallback = panel.querySelector(".client-fallback");
        if (fallback) fallback.hidden = false;
      } else {
        message.textContent = panel.getAttribute("data-text-done").replace("{done}", done).replace("{total}", total);
        if (window.htmx) window.htmx.trigger(document.body, "keys-changed");
      }
      var stop = panel.querySelector("[data-client-stop]");
      if (stop) stop.remove();
    });
  }

  function scan(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("[data-client-check]").forEach(run);
    if (root.matches && root.matches("[data-client-check]")) run(root);
  }

  document.addEventListener("htmx:afterSettle", function (ev) { scan(ev.detail.elt || document); });
})();
