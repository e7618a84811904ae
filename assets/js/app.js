// keypool's only script: local times, copy buttons and error toasts. No build step.
(function () {
  "use strict";

  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) {
        el.title = el.textContent;
        el.textContent = d.toLocaleString(document.documentElement.lang, { dateStyle: "medium", timeStyle: "short" });
      }
    });
  }

  function toast(text, ok) {
    var box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.classList.toggle("ok", !!ok);
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(function () { box.hidden = true; }, 4000);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    // Plain-http deployments have no Clipboard API: fall back to a selected textarea.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      ok ? resolve() : reject(new Error("copy refused"));
    });
  }

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    var source = document.querySelector(btn.getAttribute("data-copy"));
    if (!source) return;
    var label = btn.textContent;
    copyText(source.textContent.trim()).then(function () {
      btn.textContent = btn.getAttribute("data-copied") || label;
      setTimeout(function () { btn.textContent = label; }, 1500);
    });
  });

  function flashLabel(btn, text) {
    var label = btn.textContent;
    btn.textContent = text || label;
    setTimeout(function () { btn.textContent = label; }, 1500);
  }

  document.addEventListener("click", function (ev) {
    // A key's full text, from the button's data-copy-text.
    var copyBtn = ev.target.closest("[data-copy-text]");
    if (copyBtn) {
      copyText(copyBtn.getAttribute("data-copy-text")).then(function () {
        if (copyBtn.hasAttribute("data-copied-toast")) {
          toast(copyBtn.getAttribute("data-copied-toast"), true);
          copyBtn.classList.add("copied");
          setTimeout(function () { copyBtn.classList.remove("copied"); }, 1500);
        } else {
          flashLabel(copyBtn, copyBtn.getAttribute("data-copied"));
        }
      });
      return;
    }
    // Reveal or mask the key in the same cell.
    var reveal = ev.target.closest("[data-reveal]");
    if (reveal) {
      var code = reveal.parentNode.querySelector("code[data-key]");
      if (code) {
        var masked = code.textContent === code.getAttribute("data-masked");
        code.textContent = code.getAttribute(masked ? "data-key" : "data-masked");
      }
      return;
    }
    // Copy an export: fetch the same URL the download uses, then write it to the clipboard.
    var exportBtn = ev.target.closest("[data-copy-export], [data-copy-url]");
    if (exportBtn) {
      var url = exportBtn.getAttribute("data-copy-url");
      if (!url) {
        var form = document.querySelector(exportBtn.getAttribute("data-copy-export"));
        url = form.getAttribute("action") + "?" + new URLSearchParams(new FormData(form)).toString();
      }
      fetch(url, { credentials: "same-origin" })
        .then(function (res) { if (!res.ok) throw new Error(res.status); return res.text(); })
        .then(copyText)
        .then(function () { flashLabel(exportBtn, exportBtn.getAttribute("data-copied")); })
        .catch(function () { toast(exportBtn.getAttribute("data-failed")); });
    }
  });

  // A chosen .txt file fills the import textarea (the import then posts it as text).
  document.addEventListener("change", function (ev) {
    var input = ev.target.closest("input[type=file][data-load-into]");
    if (input && input.files && input.files[0]) {
      input.files[0].text().then(function (text) {
        var target = document.querySelector(input.getAttribute("data-load-into"));
        if (target) target.value = text;
      });
    }
    var sep = ev.target.closest("select[data-custom-separator]");
    if (sep) {
      var custom = sep.form.querySelector(".custom-sep");
      if (custom) custom.hidden = sep.value !== "custom";
    }
  });

  document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
  document.addEventListener("htmx:afterSwap", function (ev) { localTimes(ev.detail.target.parentNode || document); });
  document.addEventListener("htmx:responseError", function () {
    var tpl = document.getElementById("toast-text");
    toast(tpl ? tpl.textContent : "Request failed");
  });
  document.addEventListener("htmx:sendError", function () {
    var tpl = document.getElementById("toast-text");
    toast(tpl ? tpl.textContent : "Request failed");
  });
})();
