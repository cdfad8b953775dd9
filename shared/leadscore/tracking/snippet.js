/*! leadscore tracking snippet (wire format v1: leadscore/tracking/wire.py). MIT.
 *
 * Tag:  <script async src="https://<your stack>/v1/track.js" data-site="www-acme" data-key="tk_..."></script>
 *   data-site, data-key   the site id and its public key (the `track` entry of the webhook secret)
 *   data-endpoint         where beacons go; default: this script's origin + /v1/track
 *   data-consent="required"  send and store nothing until leadscore('consent', true)
 *   data-keep-params      query parameters to keep besides utm_* (comma or space separated)
 * Commands (before the script loads too, with the stub
 *   window.leadscore=window.leadscore||function(){(leadscore.q=leadscore.q||[]).push(arguments)}):
 *   leadscore('consent', true|false)  false: stop, erase the visitor id, token and visit state,
 *                                     and remember the refusal (leadscore:consent = "0")
 *   leadscore('identify', email)      a single-page form was submitted with this email
 *   leadscore('page')                 a single-page app's route change: a new page view
 *   leadscore('forget')               a new visitor id (the old one is no longer used)
 *
 * Privacy (GDPR / ePrivacy):
 * - Do-Not-Track (navigator.doNotTrack / window.doNotTrack "1") or Global Privacy Control
 *   (navigator.globalPrivacyControl): nothing is sent and nothing is stored (earlier state is erased).
 * - No cookies. First-party localStorage only, keys prefixed "leadscore:": visitor (a random id,
 *   16 bytes, no personal data in it), token (what the collector answered once the visitor filled
 *   a form), last (time of the last activity, for visits), consent ("1"/"0"). A visitor id unused
 *   for 13 months is replaced. If storage is unavailable the script works in memory for the page.
 * - Sent: page URL without fragment and without query parameters except utm_* and data-keep-params,
 *   title, referrer as origin + path, visible time on page, and the email of a form the visitor
 *   submits (our html forms, or forms tagged data-leadscore). Nothing is read from other fields.
 * - Erase: leadscore('consent', false), or clearing the site's data in the browser.
 * A failing collector never breaks the page: every entry point catches its own errors.
 */
(function () {
  "use strict";
  var w = window, d = document, n = navigator;
  if (w.leadscore && w.leadscore.loaded) return;

  var PREFIX = "leadscore:";
  var VISIT_GAP_MS = 30 * 60 * 1000;
  var VISITOR_LIFETIME_MS = 395 * 24 * 3600 * 1000;
  var MAX_EVENTS = 20, MAX_BYTES = 16 * 1024, MAX_URL = 2048, MAX_TITLE = 300, MAX_SEQ = 50;
  var ID = /^[A-Za-z0-9_-]{22,43}$/;

  function safe(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { /* never break the page */ }
    };
  }

  var queued = (w.leadscore && w.leadscore.q) || [];
  var script = d.currentScript || d.querySelector("script[data-site][src*='track.js']");
  var noop = function () {};
  noop.loaded = true;

  var privacySignal = n.doNotTrack === "1" || n.doNotTrack === "yes" || w.doNotTrack === "1" ||
    n.globalPrivacyControl === true;
  if (privacySignal || !script) {
    try {
      for (var k = localStorage.length - 1; k >= 0; k--) {
        var name = localStorage.key(k);
        if (name && name.indexOf(PREFIX) === 0) localStorage.removeItem(name);
      }
    } catch (e) { /* storage unavailable: nothing to erase */ }
    w.leadscore = noop;
    return;
  }

  // ---------------------------------------------------------------- configuration
  var site = script.getAttribute("data-site") || "";
  var key = script.getAttribute("data-key") || "";
  var endpoint, endpointOrigin;
  try {
    if (!site || !key) throw new Error("leadscore: data-site and data-key are required");
    endpoint = new URL(script.getAttribute("data-endpoint") || "/v1/track", script.src || location.href).href;
    endpointOrigin = new URL(endpoint).origin;
  } catch (e) {
    w.leadscore = noop;
    return;
  }
  var consentRequired = script.getAttribute("data-consent") === "required";
  var keepParams = (script.getAttribute("data-keep-params") || "").split(/[\s,]+/).filter(Boolean);

  // ---------------------------------------------------------------- storage
  var memory = {};
  var storage = null;
  try {
    localStorage.setItem(PREFIX + "probe", "1");
    localStorage.removeItem(PREFIX + "probe");
    storage = localStorage;
  } catch (e) { /* private mode or blocked: memory for this page */ }
  var store = {
    get: function (k) {
      try { if (storage) return storage.getItem(PREFIX + k); } catch (e) { storage = null; }
      return Object.prototype.hasOwnProperty.call(memory, k) ? memory[k] : null;
    },
    set: function (k, v) {
      try { if (storage) return storage.setItem(PREFIX + k, String(v)); } catch (e) { storage = null; }
      memory[k] = String(v);
    },
    del: function (k) {
      try { if (storage) storage.removeItem(PREFIX + k); } catch (e) { storage = null; }
      delete memory[k];
    }
  };

  var stored = store.get("consent");
  var consent = stored === "1" ? true : stored === "0" ? false : null;
  function allowed() { return consent === true || (consent === null && !consentRequired); }
  function refused() { return consent === false; }

  // ---------------------------------------------------------------- ids and page facts
  function randomId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode.apply(null, bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function visitorId(now) {
    var id = store.get("visitor");
    var last = Number(store.get("last")) || 0;
    if (!id || !ID.test(id) || (last && now - last > VISITOR_LIFETIME_MS)) {
      id = randomId();
      store.set("visitor", id);
      store.del("token");
      store.del("last");
    }
    return id;
  }

  function cleanUrl(href) {
    var u = new URL(href);
    var kept = new URLSearchParams();
    u.searchParams.forEach(function (value, name) {
      if (name.toLowerCase().indexOf("utm_") === 0 || keepParams.indexOf(name) >= 0) kept.append(name, value);
    });
    u.hash = "";
    u.search = kept.toString();
    if (u.href.length > MAX_URL) u.search = "";
    return u.href.slice(0, MAX_URL);
  }

  function originAndPath(href) {
    try {
      var u = new URL(href);
      return /^https?:$/.test(u.protocol) ? (u.origin + u.pathname).slice(0, MAX_URL) : undefined;
    } catch (e) { return undefined; }
  }

  function title() { return Array.from(d.title || "").slice(0, MAX_TITLE).join(""); }

  // ---------------------------------------------------------------- engaged time
  var focused = d.hasFocus ? d.hasFocus() : true;
  var engagedMs = 0, engagedSince = null;
  function tick() {
    var now = performance.now();
    if (engagedSince !== null) engagedMs += Math.max(0, now - engagedSince);
    engagedSince = d.visibilityState === "visible" && focused ? now : null;
  }
  function takeEngagedSeconds() {
    tick();
    var seconds = Math.min(86400, Math.round(engagedMs / 100) / 10);
    engagedMs = 0;
    return seconds;
  }

  // ---------------------------------------------------------------- events and sending
  var queue = [];
  var current = null; // {page, url, seq, viewQueued}
  var lastUrl = d.referrer;
  var timer = null;

  function enqueue(event) {
    if (refused()) return;
    queue.push(event);
    if (!timer) timer = setTimeout(safe(function () { timer = null; flush(false); }), 50);
  }

  function view() {
    var url = cleanUrl(location.href);
    current = { page: randomId(), url: url, seq: 0, viewQueued: true };
    enqueue({ kind: "view", page: current.page, at: Date.now(), url: url, title: title(),
      referrer: originAndPath(lastUrl) });
    lastUrl = location.href;
    engagedMs = 0;
    tick();
  }

  function leave() {
    if (!current || refused() || current.seq >= MAX_SEQ) return;
    var seconds = takeEngagedSeconds();
    if (current.seq > 0 && seconds === 0) return;
    current.seq += 1;
    enqueue({ kind: "leave", page: current.page, at: Date.now(), url: current.url, seq: current.seq,
      engaged_seconds: seconds });
  }

  // A view's visit: "new" on the browser's first, "return" after 30 minutes without activity.
  function stampVisits(events) {
    events.forEach(function (event) {
      var last = Number(store.get("last")) || 0;
      if (event.kind === "view" && (!last || event.at - last > VISIT_GAP_MS)) event.visit = last ? "return" : "new";
      if (event.at > last) store.set("last", event.at);
    });
  }

  function body(events, visitor) {
    var token = store.get("token");
    return JSON.stringify({ v: 1, site: site, key: key, visitor: visitor, token: token || undefined,
      sent_at: Date.now(), webdriver: n.webdriver ? true : undefined, events: events });
  }

  function post(text, beacon) {
    if (beacon && n.sendBeacon) {
      try {
        if (n.sendBeacon(endpoint, new Blob([text], { type: "text/plain;charset=UTF-8" }))) return;
      } catch (e) { /* fall back to fetch */ }
    }
    fetch(endpoint, { method: "POST", body: text, keepalive: true, credentials: "omit", mode: "cors",
      headers: { "Content-Type": "text/plain;charset=UTF-8" } })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(safe(function (answer) {
        if (answer && typeof answer.token === "string" && answer.token && allowed()) store.set("token", answer.token);
      }))
      .catch(noop);
  }

  // Sends the queue in beacons of at most MAX_EVENTS events and MAX_BYTES bytes.
  var flush = safe(function (beacon) {
    if (!allowed() || !queue.length) return;
    if (timer) { clearTimeout(timer); timer = null; }
    var events = queue.splice(0, queue.length);
    var visitor = visitorId(Date.now());
    stampVisits(events);
    var batch = [];
    events.forEach(function (event) {
      batch.push(event);
      if (batch.length > MAX_EVENTS || new Blob([body(batch, visitor)]).size > MAX_BYTES) {
        batch.pop();
        if (batch.length) post(body(batch, visitor), beacon);
        batch = [event];
      }
    });
    if (batch.length) post(body(batch, visitor), beacon);
  });

  // ---------------------------------------------------------------- forms
  function postsToUs(form) {
    try {
      var action = new URL(form.getAttribute("action") || "", d.baseURI);
      return action.origin + action.pathname === endpointOrigin + "/v1/forms/html" &&
        (form.getAttribute("method") || "get").toLowerCase() === "post";
    } catch (e) { return false; }
  }

  function stamp(form) {
    if (!postsToUs(form)) return;
    var field = form.querySelector("input[name='_visitor']");
    if (!allowed()) {
      if (field && field.hasAttribute("data-leadscore-visitor")) field.remove();
      return;
    }
    if (!field) {
      field = d.createElement("input");
      field.type = "hidden";
      field.name = "_visitor";
      field.setAttribute("data-leadscore-visitor", "");
      form.appendChild(field);
    }
    field.value = visitorId(Date.now());
  }

  var stampAll = safe(function () { Array.prototype.forEach.call(d.forms, stamp); });

  function emailOf(form) {
    var fields = Array.prototype.slice.call(form.elements);
    var typed = fields.filter(function (f) { return f.type === "email" && f.value; });
    var named = fields.filter(function (f) { return /email/i.test(f.name || "") && f.value; });
    var value = ((typed[0] || named[0] || {}).value || "").trim();
    return /^[^\s@]+@[^\s@]+$/.test(value) && value.length <= 320 ? value : null;
  }

  var onSubmit = safe(function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    stamp(form);
    // Whoever submits this form may not be who the stored token names (a shared browser): drop it,
    // and the collector says whom the browser belongs to now on the next view.
    if (postsToUs(form) || form.hasAttribute("data-leadscore")) store.del("token");
    if (form.hasAttribute("data-leadscore")) {
      var email = emailOf(form);
      if (!email) return;
      enqueue({ kind: "identify", at: Date.now(), email: email });
      leave();
      flush(true);
    }
  });

  // ---------------------------------------------------------------- commands
  var commands = {
    consent: function (value) {
      if (value === true) {
        consent = true;
        store.set("consent", "1");
        if (current && !current.viewQueued) view();
        stampAll();
        flush(false);
      } else if (value === false) {
        consent = false;
        queue.length = 0;
        ["visitor", "token", "last"].forEach(store.del);
        store.set("consent", "0");
        if (current) current.viewQueued = false;
        stampAll();
      }
    },
    identify: function (email) {
      if (typeof email === "string" && email.indexOf("@") > 0) {
        store.del("token");
        enqueue({ kind: "identify", at: Date.now(), email: email.trim().slice(0, 320) });
        flush(false);
      }
    },
    page: function () {
      leave();
      view();
    },
    forget: function () {
      ["visitor", "token", "last"].forEach(store.del);
      if (allowed()) stampAll();
    }
  };

  function leadscore(command, value) {
    try {
      if (Object.prototype.hasOwnProperty.call(commands, command)) commands[command](value);
    } catch (e) { /* never break the page */ }
  }
  leadscore.loaded = true;
  w.leadscore = leadscore;

  // ---------------------------------------------------------------- start
  var start = safe(function () {
    // A consent decision queued before the script loaded applies before the first view.
    Array.prototype.forEach.call(queued, function (args) { if (args[0] === "consent") leadscore(args[0], args[1]); });
    view();
    if (refused()) current.viewQueued = false;
    Array.prototype.forEach.call(queued, function (args) { if (args[0] !== "consent") leadscore(args[0], args[1]); });
    queued = [];

    d.addEventListener("visibilitychange", safe(function () {
      if (d.visibilityState === "hidden") { leave(); flush(true); } else tick();
    }));
    w.addEventListener("pagehide", safe(function () { leave(); flush(true); }));
    w.addEventListener("pageshow", safe(tick));
    w.addEventListener("focus", safe(function () { focused = true; tick(); }));
    w.addEventListener("blur", safe(function () { focused = false; tick(); }));
    d.addEventListener("submit", onSubmit, true);
    stampAll();
    if (w.MutationObserver) {
      new MutationObserver(safe(function (records) {
        var added = records.some(function (r) { return r.addedNodes.length; });
        if (added) stampAll();
      })).observe(d.documentElement, { childList: true, subtree: true });
    }
  });

  if (d.prerendering) d.addEventListener("prerenderingchange", start, { once: true });
  else start();
})();
