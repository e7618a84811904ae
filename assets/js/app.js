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
      copyExport(exportBtn, url);
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

  // Keys page: exports that say how many keys they hold and refuse an empty scope, row clicks that
  // select, and the import box emptied once an import went through.

  // The message of a refusal (a fragment or JSON from the server).
  function refusalText(body) {
    try { return JSON.parse(body).message || ""; } catch (e) { /* not JSON: a fragment */ }
    var doc = new DOMParser().parseFromString(body, "text/html");
    var message = doc.querySelector(".flash, .error-card p");
    return (message || doc.body).textContent.trim();
  }

  function failedText() {
    var tpl = document.getElementById("toast-text");
    return tpl ? (tpl.content ? tpl.content.textContent : tpl.textContent) : "Request failed";
  }

  // Copy an export: the server refuses an empty scope (422, with the message) and counts the keys.
  function copyExport(btn, url) {
    fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (res) {
        return res.text().then(function (body) {
          if (res.status === 422 || res.status === 400) throw { refusal: refusalText(body) };
          if (!res.ok) throw new Error(res.status);
          var count = res.headers.get("X-Export-Count") || String(body ? body.split(/\n/).length : 0);
          return copyText(body).then(function () { return count; });
        });
      })
      .then(function (count) { toast((btn.getAttribute("data-copied") || "").replace("{count}", count), true); })
      .catch(function (e) { toast((e && e.refusal) || btn.getAttribute("data-failed") || failedText()); });
  }

  // Before a download starts, ask how many keys it holds: none is refused with the server's message.
  function checkExport(countUrl, btn, go) {
    fetch(countUrl, { credentials: "same-origin", headers: { "Accept": "application/json", "HX-Request": "true" } })
      .then(function (res) {
        return res.text().then(function (body) {
          // 422: an empty scope; 400: a field the form got wrong (a minimum balance, a separator).
          if (res.status === 422 || res.status === 400) throw { refusal: refusalText(body) };
          if (!res.ok) throw new Error(res.status);
          return JSON.parse(body).count;
        });
      })
      .then(function (count) {
        toast((btn.getAttribute("data-exporting") || "").replace("{count}", count), true);
        go();
      })
      .catch(function (e) { toast((e && e.refusal) || failedText()); });
  }

  document.addEventListener("click", function (ev) {
    var link = ev.target.closest("a[data-export-check]");
    if (link) {
      if (link._checked) { link._checked = false; return; }
      ev.preventDefault();
      checkExport(link.getAttribute("data-export-check"), link, function () { link._checked = true; link.click(); });
      return;
    }
    // A click on a row, outside its links, buttons, boxes and details, toggles its selection.
    var row = ev.target.closest("tr[data-select-row]");
    if (!row || ev.target.closest("a, button, input, label, select, textarea, summary, details")) return;
    if (window.getSelection && String(window.getSelection()).length > 0) return;
    var box = row.querySelector("td.check input[type=checkbox]");
    if (box) box.click();
  });

  document.addEventListener("submit", function (ev) {
    var form = ev.target.closest("form[data-export-check]");
    if (!form) return;
    ev.preventDefault();
    var url = form.getAttribute("data-export-check") + "?" + new URLSearchParams(new FormData(form)).toString();
    checkExport(url, form, function () { form.submit(); });
  });

  document.addEventListener("htmx:afterSwap", function (ev) {
    var target = ev.detail.target;
    var marker = target && target.querySelector && target.querySelector("[data-clear]");
    if (!marker) return;
    var box = document.querySelector(marker.getAttribute("data-clear"));
    if (box) {
      box.value = "";
      var file = box.form && box.form.querySelector("input[type=file]");
      if (file) file.value = "";
    }
    marker.parentNode.removeChild(marker);
  });

  // Long work in view: a check panel answering a start (a button, an import's "check the new keys
  // now") comes with data-scroll; bring it into the viewport once, wherever it was swapped in.
  document.addEventListener("htmx:load", function (ev) {
    var root = ev.detail.elt;
    var panel = root && (root.matches && root.matches("#check-panel[data-scroll]") ? root : root.querySelector && root.querySelector("#check-panel[data-scroll]"));
    if (!panel) return;
    panel.removeAttribute("data-scroll");
    var box = panel.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) panel.scrollIntoView({ block: "center", behavior: "smooth" });
  });

  // A key's page: once a check job ends (the panel's "keys-changed"), its facts are read again.
  document.addEventListener("keys-changed", function () {
    var facts = document.querySelector("#key-actions ~ section.card dl.facts");
    if (!facts) return;
    fetch(location.href, { credentials: "same-origin" })
      .then(function (res) { return res.ok ? res.text() : Promise.reject(new Error(res.status)); })
      .then(function (body) {
        var fresh = new DOMParser().parseFromString(body, "text/html").querySelector("dl.facts");
        if (fresh && facts.parentNode) { facts.parentNode.replaceChild(fresh, facts); localTimes(fresh); }
      })
      .catch(function () { /* the page stays as it was */ });
  });

  // Check parameters survive a reload. Decision: kept in this browser's localStorage (per admin
  // browser, no server round trip, nothing to migrate); the server still validates what is posted.
  var PARAMS_KEY = "keypool.check-params";

  function restoreParams() {
    var form = document.getElementById("check-params");
    if (!form) return;
    var saved;
    try { saved = JSON.parse(window.localStorage.getItem(PARAMS_KEY) || "null"); } catch (e) { saved = null; }
    if (!saved) return;
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || !(el.name in saved)) return;
      if (el.type === "radio") el.checked = el.value === saved[el.name];
      else el.value = saved[el.name];
    });
  }

  function saveParams(ev) {
    var form = ev.target.closest && ev.target.closest("#check-params");
    if (!form) return;
    var data = {};
    new FormData(form).forEach(function (value, name) { data[name] = value; });
    try { window.localStorage.setItem(PARAMS_KEY, JSON.stringify(data)); } catch (e) { /* storage off */ }
  }
  // "Check all keys" on the dashboard runs with the parameters remembered from the keys page, and its
  // confirmation and hint say the time for them (the server's figure is for the defaults; same rule as
  // `check_all` in src/web/dashboard.rs: rounds of `concurrency` keys, each about 1 s plus the interval).
  function savedParams() {
    try { return JSON.parse(window.localStorage.getItem(PARAMS_KEY) || "null"); } catch (e) { return null; }
  }

  function estimateSeconds(keys, p) {
    var num = function (v, d) { var x = parseFloat(v); return isFinite(x) && x >= 0 ? x : d; };
    var concurrency = Math.max(1, Math.min(64, Math.floor(num(p.concurrency, 10))));
    var interval = p.interval_mode === "random"
      ? (num(p.min_interval_ms, 500) + num(p.max_interval_ms, 1500)) / 2
      : num(p.interval_secs, 1) * 1000;
    var seconds = Math.ceil(Math.ceil(keys / concurrency) * (1000 + interval) / 1000);
    var rate = num(p.rate, 0);
    return rate > 0 ? Math.max(seconds, Math.ceil(keys / rate)) : seconds;
  }

  function checkAllEstimate() {
    var btn = document.getElementById("check-all");
    var p = savedParams();
    if (!btn || !p || !btn.getAttribute("data-confirm-template")) return;
    var s = estimateSeconds(parseInt(btn.getAttribute("data-keys"), 10) || 0, p);
    var time = s < 60
      ? btn.getAttribute("data-seconds").replace("{n}", s)
      : btn.getAttribute("data-minutes").replace("{n}", Math.ceil(s / 60));
    btn.setAttribute("hx-confirm", btn.getAttribute("data-confirm-template").replace("{time}", time));
    var hint = document.getElementById("check-all-hint");
    if (hint) hint.textContent = btn.getAttribute("data-hint-template").replace("{time}", time);
  }

  document.addEventListener("htmx:configRequest", function (ev) {
    if (!ev.detail.elt || ev.detail.elt.id !== "check-all") return;
    var p = savedParams();
    if (!p) return;
    Object.keys(p).forEach(function (name) { if (name !== "scope") ev.detail.parameters[name] = p[name]; });
  });

  document.addEventListener("change", saveParams);
  document.addEventListener("input", saveParams);

  document.addEventListener("DOMContentLoaded", function () { localTimes(document); restoreParams(); checkAllEstimate(); });
  document.addEventListener("htmx:afterSwap", function (ev) { localTimes(ev.detail.target.parentNode || document); checkAllEstimate(); });
  document.addEventListener("htmx:responseError", function () {
    var tpl = document.getElementById("toast-text");
    toast(tpl ? tpl.textContent : "Request failed");
  });
  document.addEventListener("htmx:sendError", function () {
    var tpl = document.getElementById("toast-text");
    toast(tpl ? tpl.textContent : "Request failed");
  });
})();
