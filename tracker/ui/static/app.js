// pixelrelay dashboard: times in the viewer's zone, clickable rows, and
// live updates over Server-Sent Events. No library, no other origin.
"use strict";

(function () {
  var body = document.body;
  var main = document.getElementById("main");

  // The server draws charts in the viewer's zone once it knows it.
  var zone = "UTC";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* old browser */ }
  document.cookie = "pixelrelay_tz=" + encodeURIComponent(zone) + "; path=/ui/; max-age=31536000; SameSite=Strict";

  var exact = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

  function relative(d) {
    var s = (Date.now() - d.getTime()) / 1000;
    if (s < -60) { return "in " + span(-s); }
    if (s < 60) { return "just now"; }
    if (s < 48 * 3600) { return span(s) + " ago"; }
    if (s < 30 * 86400) { return Math.floor(s / 86400) + " days ago"; }
    return d.toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });
  }

  function span(s) {
    if (s < 3600) { return Math.floor(s / 60) + " min"; }
    if (s < 48 * 3600) { return Math.floor(s / 3600) + " h"; }
    return Math.floor(s / 86400) + " days";
  }

  var stamp = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit" });

  // Every <time datetime> gets its exact local time as a tooltip; a
  // data-rel one says how long ago, a data-abs one the local time and how
  // long ago.
  function times(root) {
    var els = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < els.length; i++) {
      var d = new Date(els[i].getAttribute("datetime"));
      if (isNaN(d.getTime())) { continue; }
      els[i].title = exact.format(d);
      if (els[i].hasAttribute("data-rel")) { els[i].textContent = relative(d); }
      if (els[i].hasAttribute("data-abs")) { els[i].textContent = stamp.format(d) + " · " + relative(d); }
    }
  }

  // A click anywhere on a row opens its timeline (the link in the row is
  // what the keyboard uses).
  main.addEventListener("click", function (ev) {
    var row = ev.target.closest("tr[data-href]");
    if (!row || ev.target.closest("a, button, input")) { return; }
    if (window.getSelection && String(window.getSelection()) !== "") { return; }
    window.location.href = row.getAttribute("data-href");
  });

  times(main);
  setInterval(function () { times(main); }, 30000);

  if (!body.hasAttribute("data-live")) { return; }

  var live = document.getElementById("live");
  var pending = {};
  var timer = null;
  var busy = false;

  // refresh reloads the page's <main> in place and flashes what changed.
  function refresh() {
    timer = null;
    var active = document.activeElement;
    if (active && main.contains(active) && active.tagName === "INPUT") {
      active.addEventListener("blur", schedule, { once: true });
      return;
    }
    if (busy) { schedule(); return; }
    busy = true;
    var ids = pending;
    pending = {};
    fetch(window.location.href, { headers: { "X-Partial": "1" }, credentials: "same-origin", cache: "no-store" })
      .then(function (resp) {
        if (resp.status === 401) { window.location.href = "/ui/login"; return null; }
        return resp.ok ? resp.text() : null;
      })
      .then(function (html) {
        busy = false;
        if (html === null) { return; }
        main.innerHTML = html;
        times(main);
        Object.keys(ids).forEach(function (id) {
          var els = main.querySelectorAll('[data-id="' + CSS.escape(id) + '"]');
          for (var i = 0; i < els.length; i++) { els[i].classList.add("flash"); }
        });
      })
      .catch(function () { busy = false; });
  }

  function schedule() {
    if (!timer) { timer = setTimeout(refresh, 150); }
  }

  // The timeline of one copy only cares about that copy.
  function concerns(change) {
    var page = main.querySelector(".copy[data-id]");
    return !page || page.getAttribute("data-id") === change.tracking_id;
  }

  if (body.getAttribute("data-tz") !== zone) { schedule(); }

  var es = new EventSource("/ui/events");
  es.onopen = function () { live.classList.add("on"); };
  es.onerror = function () { live.classList.remove("on"); };
  es.addEventListener("change", function (ev) {
    var msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    var any = !!msg.reload;
    (msg.changes || []).forEach(function (c) {
      if (!concerns(c)) { return; }
      any = true;
      // Opens, clicks and a delivery's end are news; another retry is not.
      if (c.kind !== "status" || c.status === "sent" || c.status === "failed") { pending[c.tracking_id] = true; }
    });
    if (any) { schedule(); }
  });
  window.addEventListener("pagehide", function () { es.close(); });
})();
