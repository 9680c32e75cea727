// microfab panel: small behaviour htmx does not cover.
(function () {
  "use strict";

  // Times arrive in UTC (<time datetime="...">); show them in the browser's time zone.
  function localTimes(root) {
    var today = new Date().toDateString();
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      var parts = { hour: "2-digit", minute: "2-digit" };
      if (el.hasAttribute("data-seconds")) parts.second = "2-digit";
      var clock = at.toLocaleTimeString([], parts);
      el.textContent = at.toDateString() === today ? clock : at.toLocaleDateString() + " " + clock;
      el.title = at.toLocaleString();
    });
  }

  // The console shows its newest lines.
  function scrollConsoles(root) {
    root.querySelectorAll("pre.console").forEach(function (pre) { pre.scrollTop = pre.scrollHeight; });
  }

  // How long a task has held its machine: the server's figure (data-held-ms, whole minutes)
  // counted on from when this element arrived, in the page's language ("12 min", "2 hr 5 min";
  // the catalog's words for the same).
  function heldTimes(root) {
    var lang = document.documentElement.lang || "en";
    var unit = function (u) {
      return new Intl.NumberFormat(lang, { style: "unit", unit: u, unitDisplay: "short" });
    };
    var minutes = unit("minute"), hours = unit("hour"), now = Date.now();
    root.querySelectorAll("[data-held-ms]").forEach(function (el) {
      if (!el.dataset.seen) el.dataset.seen = String(now);
      var held = Number(el.dataset.heldMs) + (now - Number(el.dataset.seen));
      var m = Math.floor(held / 60000);
      el.textContent = m < 60 ? minutes.format(m) : hours.format(Math.floor(m / 60)) + " " + minutes.format(m % 60);
    });
  }

  // A stepper's buttons (data-step="-1" / "1") change the number field beside them, within
  // its min and max.
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-step]");
    if (!button) return;
    var input = button.parentElement.querySelector("input[type=number]");
    if (!input) return;
    var next = (Number(input.value) || 0) + Number(button.dataset.step);
    if (input.min !== "") next = Math.max(next, Number(input.min));
    if (input.max !== "") next = Math.min(next, Number(input.max));
    input.value = String(next);
  });

  function liveLost(lost) {
    var banner = document.getElementById("live-lost");
    if (banner) banner.hidden = !lost;
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    heldTimes(document);
    setInterval(function () { heldTimes(document); }, 20000);
  });
  document.addEventListener("htmx:afterSettle", function (e) {
    localTimes(e.target);
    heldTimes(e.target);
    scrollConsoles(e.target);
  });
  document.addEventListener("htmx:sseMessage", function (e) {
    localTimes(e.target);
    heldTimes(e.target);
  });
  document.addEventListener("htmx:sseError", function () { liveLost(true); });
  document.addEventListener("htmx:sseOpen", function () { liveLost(false); });
  // After logging out, the login page.
  document.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail.requestConfig && e.detail.requestConfig.path === "/logout" && e.detail.successful) {
      window.location.assign("/login");
    }
  });
})();
