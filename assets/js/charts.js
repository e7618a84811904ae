// Draws every [data-chart] (an ECharts option as JSON) with the vendored ECharts, on load and after
// each htmx swap. [data-chart-links] (a JSON list of URLs by data index) makes the chart clickable.
(function () {
  "use strict";

  function draw(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var old = window.echarts.getInstanceByDom(el);
      if (old) old.dispose();
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(JSON.parse(el.getAttribute("data-chart")));
      var links = el.getAttribute("data-chart-links");
      if (links) {
        links = JSON.parse(links);
        chart.on("click", function (p) { if (links[p.dataIndex]) window.location.href = links[p.dataIndex]; });
      }
    });
  }

  // The dashboard's own requests (refresh button, auto-refresh, "keys-changed") carry the chart choices
  // of the address bar, which a chart's choice updates (hx-push-url): a refresh keeps them.
  var KEPT = ["period", "outliers", "buckets", "top", "window", "refresh"];
  // A chart's choice ([data-choice]) applies to the address's current choices, which other panels may
  // have changed since this one loaded.
  document.addEventListener("htmx:configRequest", function (ev) {
    var d = ev.detail, parts = d.path.split("?");
    if (d.verb !== "get" || window.location.pathname !== "/admin") return;
    var choice = d.elt && d.elt.getAttribute && d.elt.getAttribute("data-choice");
    if (parts[0] !== "/admin" && choice === null) return;
    var here = new URLSearchParams(window.location.search), asked = new URLSearchParams(parts[1] || "");
    var own = new URLSearchParams(choice || "");
    KEPT.forEach(function (k) {
      if ((d.formData && d.formData.has(k)) || own.has(k)) asked.delete(k);
      else if (here.has(k)) asked.set(k, here.get(k));
    });
    own.forEach(function (v, k) { asked.set(k, v); });
    var q = asked.toString();
    d.path = parts[0] + (q ? "?" + q : "");
  });

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (ev) { draw(ev.detail.elt.parentNode || document); });
  window.addEventListener("resize", function () {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var c = window.echarts && window.echarts.getInstanceByDom(el);
      if (c) c.resize();
    });
  });
})();
