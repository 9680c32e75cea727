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

  function liveLost(lost) {
    var banner = document.getElementById("live-lost");
    if (banner) banner.hidden = !lost;
  }

  document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
  document.addEventListener("htmx:afterSettle", function (e) {
    localTimes(e.target);
    scrollConsoles(e.target);
  });
  document.addEventListener("htmx:sseMessage", function (e) { localTimes(e.target); });
  document.addEventListener("htmx:sseError", function () { liveLost(true); });
  document.addEventListener("htmx:sseOpen", function () { liveLost(false); });
  // After logging out, the login page.
  document.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail.requestConfig && e.detail.requestConfig.path === "/logout" && e.detail.successful) {
      window.location.assign("/login");
    }
  });
})();
