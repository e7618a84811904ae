// keypool's theme: loaded in <head> without defer, so the chosen theme (localStorage "theme") is on
// <html data-theme> before the first paint; without a choice the system's (prefers-color-scheme) applies.
(function () {
  "use strict";
  var root = document.documentElement;
  function stored() {
    try { return localStorage.getItem("theme"); } catch (e) { return null; }
  }
  var saved = stored();
  if (saved === "dark" || saved === "light") root.setAttribute("data-theme", saved);

  function current() {
    var set = root.getAttribute("data-theme");
    if (set === "dark" || set === "light") return set;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  function showState() {
    var dark = current() === "dark";
    document.querySelectorAll("[data-theme-toggle]").forEach(function (btn) {
      btn.setAttribute("aria-pressed", dark ? "true" : "false");
    });
  }

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("[data-theme-toggle]");
    if (!btn) return;
    var next = current() === "dark" ? "light" : "dark";
    root.setAttribute("data-theme", next);
    try { localStorage.setItem("theme", next); } catch (e) { /* private mode: this page only */ }
    showState();
  });

  // Icon buttons whose label flashes "✓" after a copy get their SVG back afterwards.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("button.icon[data-copy-text]");
    if (!btn || !btn.querySelector("svg")) return;
    var html = btn.innerHTML;
    setTimeout(function () { btn.innerHTML = html; }, 1700);
  }, true);

  document.addEventListener("DOMContentLoaded", showState);
})();
