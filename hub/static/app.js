// The dashboard's own behaviour (hub/ui); no inline scripts, so the Content-Security-Policy can forbid them.
(function () {
  "use strict";

  // Countdowns: every [data-deadline] (an ISO time) shows the time left, and "overdue by" once past.
  function formatSpan(ms) {
    var total = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(total / 86400), h = Math.floor((total % 86400) / 3600);
    var m = Math.floor((total % 3600) / 60), s = total % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + pad(m) + "m";
    return m + ":" + pad(s);
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("data-deadline"));
      if (isNaN(at)) return;
      var left = at - now;
      el.textContent = left >= 0 ? formatSpan(left) + " left" : "overdue " + formatSpan(left);
      el.classList.toggle("overdue", left < 0);
    });
  }
  tick();
  setInterval(tick, 1000);
  document.addEventListener("htmx:afterSwap", tick);

  // Toasts: a close button removes its toast; each toast leaves by itself after a minute.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss]");
    if (button) {
      var toast = button.closest(".toast");
      if (toast) toast.remove();
    }
  });
  document.addEventListener("htmx:sseMessage", function () {
    document.querySelectorAll(".toast:not([data-timed])").forEach(function (toast) {
      toast.setAttribute("data-timed", "1");
      setTimeout(function () { toast.remove(); }, 60000);
    });
  });

  // A form (or a dialog) that asked for a typed confirmation keeps its submit disabled until it matches.
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("[data-confirm-text]")) return;
    var form = input.closest("form");
    var submit = form && form.querySelector("[type=submit]");
    if (submit) submit.disabled = input.value.trim() !== input.getAttribute("data-confirm-text");
  });
  // A refused htmx action (4xx) shows the hub's message next to the form that sent it, not nowhere.
  function showToast(text) {
    var region = document.getElementById("toasts");
    if (!region) return;
    var toast = document.createElement("div");
    toast.className = "toast error";
    toast.textContent = text;
    region.prepend(toast);
    setTimeout(function () { toast.remove(); }, 15000);
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt.closest && event.detail.elt.closest("form");
    var slot = form && form.querySelector(".form-error");
    if (slot) slot.textContent = "";
  });
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var message = "The hub answered " + xhr.status;
    try {
      var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var found = page.querySelector("main p, body p");
      if (found && found.textContent.trim()) message = found.textContent.trim();
    } catch (ignored) { /* keep the status line */ }
    var form = event.detail.elt.closest && event.detail.elt.closest("form");
    var slot = form && form.querySelector(".form-error");
    if (slot) slot.textContent = message; else showToast(message);
  });
  // The queue reloads its rows when the live stream says it changed (a new lead, a task), but not while the
  // rep is at work in one of them (a field focused, or something typed in an open "Schedule callback"): the
  // reload would replace the row and drop it. The reload waits and happens once they are done. An open but
  // empty form does not hold it, so a form left open never keeps the queue stale.
  var queueReloadHeld = false;
  function busyInQueue(rows) {
    var focused = document.activeElement;
    if (rows.contains(focused) && focused.matches("input, select, textarea")) return true;
    var typed = rows.querySelectorAll("details[open] input:not([type=hidden]), details[open] textarea");
    return Array.prototype.some.call(typed, function (field) { return field.value !== ""; });
  }
  document.addEventListener("htmx:confirm", function (event) {
    var rows = event.detail.elt;
    if (rows.id !== "queue-rows" || event.detail.verb !== "get" || !busyInQueue(rows)) return;
    event.preventDefault();
    queueReloadHeld = true;
  });
  function releaseQueueReload() {
    var rows = document.getElementById("queue-rows");
    if (!queueReloadHeld || !rows || busyInQueue(rows)) return;
    queueReloadHeld = false;
    htmx.trigger(rows, "sse:queue");
  }
  document.addEventListener("focusout", function () { setTimeout(releaseQueueReload, 0); });
  document.addEventListener("toggle", releaseQueueReload, true);  // a <details> closed (toggle does not bubble)
  document.addEventListener("htmx:afterSwap", releaseQueueReload);  // an action's answer replaced the row

  // A part of the page that refreshes itself (a poll, a reload on a live event) carries data-hub-background; its
  // requests say so (X-Hub-Background), and the hub then does not count them as the person being there: an open
  // tab alone must not keep an idle session alive (docs/ACCOUNTS.md). Set here for the element itself, not with
  // hx-headers, which the forms inside it would inherit: what the person does in those is activity.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-hub-background")) {
      event.detail.headers["X-Hub-Background"] = "1";
    }
  });

  document.addEventListener("htmx:sendError", function () { showToast("The hub cannot be reached; check the connection."); });
})();
