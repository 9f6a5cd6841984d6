// Chronicle admin: auto-refresh and confirmations. Every page works
// without this script.
(function () {
  "use strict";
  var key = "chronicle.autorefresh";
  var box = document.getElementById("autorefresh");
  var timer = null;
  function busy() {
    var a = document.activeElement;
    return a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT") && a.value !== "";
  }
  function schedule() {
    clearTimeout(timer);
    if (box && box.checked) {
      timer = setTimeout(function () {
        if (busy()) { schedule(); return; }
        // Reload without re-running the action a flash code reports.
        var u = new URL(window.location.href);
        u.searchParams.delete("done");
        u.searchParams.delete("n");
        window.location.replace(u.toString());
      }, 10000);
    }
  }
  if (box) {
    box.checked = window.localStorage.getItem(key) === "on";
    box.addEventListener("change", function () {
      window.localStorage.setItem(key, box.checked ? "on" : "off");
      schedule();
    });
    schedule();
  }
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    var msg = f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
    }
  });
})();
