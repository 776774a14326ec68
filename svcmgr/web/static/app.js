// svcmgr dashboard: live updates. One EventSource per tab; every value is set with textContent,
// never parsed as HTML (the page's Content-Security-Policy requires Trusted Types for that).
"use strict";
(function () {
  const body = document.body;
  const live = document.getElementById("live");
  const feed = document.getElementById("feed");
  const FEED_MAX = 40;
  let refreshing = false;
  let again = false;

  // Fetch this page again and put its new <main> in place of the old one (parsed as an inert
  // document by the browser, built by the server's autoescaping templates).
  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    const xhr = new XMLHttpRequest();
    xhr.open("GET", location.pathname + location.search);
    xhr.responseType = "document";
    xhr.setRequestHeader("X-Svcmgr-Refresh", "1");  // not a navigation: the server keeps the flash
    xhr.onload = function () {
      const doc = xhr.response;
      const fresh = doc && doc.getElementById("main");
      const main = document.getElementById("main");
      if (xhr.status === 200 && fresh && main) {
        main.replaceWith(document.importNode(fresh, true));
        body.dataset.refreshed = String(Date.now());
      }
      done();
    };
    xhr.onerror = done;
    xhr.send();
  }
  function done() {
    refreshing = false;
    if (again) { again = false; refresh(); }
  }

  function patchState(d) {
    // what the event says at once; the refresh that follows brings the rest of the row
    document.querySelectorAll("[data-fmri]").forEach(function (el) {
      if (el.dataset.fmri !== d.fmri) return;
      el.dataset.state = d.state;
      const cell = el.querySelector(".c-state .state");
      if (cell) {
        cell.textContent = d.state + (d.nstate ? "*" : "");
        cell.className = "state state-" + d.state;
      }
    });
  }

  function addFeed(id, text) {
    if (!feed) return;
    const li = document.createElement("li");
    li.dataset.id = id;
    li.textContent = text;
    feed.insertBefore(li, feed.firstChild);
    while (feed.children.length > FEED_MAX) feed.removeChild(feed.lastChild);
  }

  const last = body.dataset.lastId || "0";
  const es = new EventSource("/events?last=" + encodeURIComponent(last));
  es.onopen = function () { live.textContent = "live"; live.classList.add("on"); };
  es.onerror = function () { live.textContent = "reconnecting"; live.classList.remove("on"); };
  function on(name, fn) {
    es.addEventListener(name, function (e) {
      let d = {};
      try { d = JSON.parse(e.data); } catch (err) { return; }
      fn(d, e.lastEventId);
    });
  }
  on("state", function (d, id) { patchState(d); addFeed(id, d.text); refresh(); });
  on("topology", function (d, id) { addFeed(id, d.text); refresh(); });
  on("case", function (d, id) { addFeed(id, d.text); refresh(); });
  on("vrrp", function (d, id) { addFeed(id, d.text); refresh(); });
  on("lb", function (d, id) { addFeed(id, d.text); refresh(); });
  on("reset", function () { refresh(); });

  // a confirmation before the actions that take a service down
  document.addEventListener("submit", function (e) {
    const b = e.target.querySelector("button.danger");
    if (b && !window.confirm(b.title + "?")) e.preventDefault();
  });
})();
