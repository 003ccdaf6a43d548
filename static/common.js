/* Shared helpers of the attendance pages: API calls with the launch token, DOM building, dates, live socket.
 * Plain browser JavaScript, no build step, no outside host: the pages live in an LMS iframe. */
(function () {
  "use strict";

  function meta(name) {
    var tag = document.querySelector('meta[name="' + name + '"]');
    return tag ? tag.getAttribute("content") || "" : "";
  }

  // The page's credentials: the launch token (Bearer) works where third-party cookies are blocked;
  // the CSRF token goes with the session cookie when there is no launch token (the QR landing page).
  var auth = { token: meta("launch-token"), csrf: meta("csrf-token") };

  function ApiError(status, code, message, fields) {
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.message = message;
    this.fields = fields || null;
  }
  ApiError.prototype = Object.create(Error.prototype);

  var clockSkew = 0; // server time minus this browser's time, in ms (from the Date header)

  function noteServerDate(response) {
    var header = response.headers.get("Date");
    if (!header) return;
    var server = Date.parse(header);
    if (isNaN(server)) return;
    var skew = server - Date.now();
    clockSkew = Math.abs(skew) > 2000 ? skew : 0;
  }

  function serverNow() {
    return Date.now() + clockSkew;
  }

  function query(params) {
    var clean = {};
    Object.keys(params || {}).forEach(function (key) {
      if (params[key] !== undefined && params[key] !== null && params[key] !== "") clean[key] = params[key];
    });
    var text = new URLSearchParams(clean).toString();
    return text ? "?" + text : "";
  }

  /* Call the API. body: an object (JSON), a FormData (multipart), or for GET the query parameters.
   * Resolves with the JSON body, or with the Response when options.raw; rejects with an ApiError
   * carrying the contract's error code and message. */
  async function api(method, path, body, options) {
    options = options || {};
    var headers = { Accept: options.raw ? "*/*" : "application/json" };
    var token = options.token !== undefined ? options.token : auth.token;
    if (token) headers.Authorization = "Bearer " + token;
    else if (auth.csrf && method !== "GET") headers["X-CSRFToken"] = auth.csrf;
    var init = { method: method, headers: headers, credentials: token ? "omit" : "same-origin", cache: "no-store" };
    if (method === "GET") {
      path += query(body);
    } else if (typeof FormData !== "undefined" && body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network_error", "Cannot reach the attendance server. Check your connection and try again.");
    }
    noteServerDate(response);
    if (options.raw && response.ok) return response;
    var data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok || !data || data.success === false) {
      var error = (data && data.error) || {};
      var message = error.message || "The server answered with an error (HTTP " + response.status + ").";
      if (response.status === 401) {
        message = "Your session has expired. Open Attendance again from your course.";
      }
      throw new ApiError(response.status, error.code || "http_" + response.status, message, error.fields);
    }
    return data;
  }

  /* Build an element: el("button", {class: "x", onclick: fn, dataset: {id: 1}}, "text", child). */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === undefined || value === null || value === false) return;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.keys(value).forEach(function (k) { node.dataset[k] = value[k]; });
      else if (key.slice(0, 2) === "on" && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === undefined || child === null || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function locale() {
    return document.documentElement.lang || undefined;
  }

  /* A moment shown in a timezone (the course's), e.g. "29 Nov 2026, 10:00". */
  function formatDateTime(iso, timeZone, options) {
    if (!iso) return "";
    var moment = new Date(iso);
    if (isNaN(moment)) return "";
    var opts = Object.assign({ timeZone: timeZone || "UTC" }, options || { dateStyle: "medium", timeStyle: "short" });
    try {
      return new Intl.DateTimeFormat(locale(), opts).format(moment);
    } catch (err) {
      delete opts.timeZone;
      return new Intl.DateTimeFormat(locale(), opts).format(moment);
    }
  }

  function formatTime(iso, timeZone, withSeconds) {
    return formatDateTime(iso, timeZone, withSeconds ? { timeStyle: "medium" } : { timeStyle: "short" });
  }

  /* "10:00 – 11:30" on the same day, else both dates. */
  function formatRange(startIso, endIso, timeZone) {
    var sameDay = formatDateTime(startIso, timeZone, { dateStyle: "medium" }) === formatDateTime(endIso, timeZone, { dateStyle: "medium" });
    return formatDateTime(startIso, timeZone) + " – " + (sameDay ? formatTime(endIso, timeZone) : formatDateTime(endIso, timeZone));
  }

  /* The wall-clock parts of a moment in a timezone, as a datetime-local value "YYYY-MM-DDTHH:MM". */
  function localInputValue(moment, timeZone) {
    var parts = {};
    try {
      new Intl.DateTimeFormat("en-GB", {
        timeZone: timeZone || "UTC", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", hourCycle: "h23"
      }).formatToParts(moment).forEach(function (p) { parts[p.type] = p.value; });
    } catch (err) {
      return moment.toISOString().slice(0, 16);
    }
    return parts.year + "-" + parts.month + "-" + parts.day + "T" + parts.hour + ":" + parts.minute;
  }

  var STATUS_LABELS = { present: "Present", late: "Late", excused: "Excused", absent: "Absent" };

  function statusLabel(status) {
    return STATUS_LABELS[status] || (status ? String(status) : "Not recorded");
  }

  function statusBadge(status) {
    return el("span", { class: "badge status-" + (status || "none"), dataset: { status: status || "" } }, statusLabel(status));
  }

  function metres(value) {
    if (value === null || value === undefined) return "";
    return value >= 1000 ? (value / 1000).toFixed(1) + " km" : Math.round(value) + " m";
  }

  /* Say something to screen reader users through a polite live region. */
  function announce(region, text) {
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  function setStatus(node, text, kind) {
    if (!node) return;
    node.textContent = text || "";
    node.dataset.kind = kind || "";
  }

  /* Per-field errors of a validation_error next to the inputs (ids error-<field>). */
  function showFieldErrors(form, fields) {
    form.querySelectorAll(".field-error").forEach(function (p) { p.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (i) { i.removeAttribute("aria-invalid"); });
    var first = null;
    Object.keys(fields || {}).forEach(function (name) {
      var target = form.querySelector("#error-" + name);
      var input = form.querySelector('[name="' + name + '"]');
      var text = [].concat(fields[name]).join(" ");
      if (target) target.textContent = text;
      if (input) {
        input.setAttribute("aria-invalid", "true");
        if (!first) first = input;
      }
    });
    if (first) first.focus();
  }

  /* The tool's WebSocket for a class session, reconnecting with backoff. Each (re)connect first asks
   * the API for a single-use ticket, so the launch token never appears in a URL (nor in access logs).
   * onMessage(message) gets every message but connected/ping; onState(state, reconnected) gets
   * "connecting", "live", "offline" or "ended" (the launch expired or the session is gone: no retries). */
  var CLOSE_EXPIRED = 4401, CLOSE_REPLACED = 4429;

  function liveSocket(classSessionId, token, onMessage, onState) {
    var socket = null, attempt = 0, stopped = false, timer = null, everLive = false;
    onState = onState || function () {};

    function end() {
      stopped = true;
      onState("ended", false);
    }

    async function open() {
      timer = null;
      if (stopped || typeof WebSocket === "undefined") return;
      onState("connecting", false);
      var ticket;
      try {
        ticket = (await api("POST", "/api/ws-ticket/", { class_session_id: classSessionId }, { token: token })).ticket;
      } catch (err) {
        if (stopped) return;
        if (err.status === 401 || err.status === 403 || err.status === 404) { end(); return; }
        onState("offline", false);
        retry();
        return;
      }
      if (stopped) return;
      var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
        "/ws/attendance/" + encodeURIComponent(classSessionId) + "?ticket=" + encodeURIComponent(ticket);
      try {
        socket = new WebSocket(url);
      } catch (err) {
        retry();
        return;
      }
      socket.onmessage = function (event) {
        var message;
        try { message = JSON.parse(event.data); } catch (err) { return; }
        if (!message || typeof message !== "object") return;
        if (message.type === "connected") {
          attempt = 0;
          onState("live", everLive);
          everLive = true;
        } else if (message.type !== "ping") {
          onMessage(message);
        }
      };
      socket.onclose = function (event) {
        socket = null;
        if (stopped) return;
        if (event.code === CLOSE_EXPIRED) { end(); return; }
        // Replaced by a newer socket of the same user (another tab): come back slowly, not in a tug of war.
        if (event.code === CLOSE_REPLACED) attempt = Math.max(attempt, 6);
        onState("offline", false);
        retry();
      };
    }

    function retry() {
      if (stopped || timer) return;
      var delay = Math.min(60000, 1000 * Math.pow(2, attempt)) * (0.75 + Math.random() * 0.5);
      attempt += 1;
      timer = window.setTimeout(open, delay);
    }

    open();
    return {
      close: function () {
        stopped = true;
        window.clearTimeout(timer);
        if (socket) socket.close();
      }
    };
  }

  window.Attendance = {
    auth: auth, api: api, ApiError: ApiError, el: el, clear: clear, append: append,
    formatDateTime: formatDateTime, formatTime: formatTime, formatRange: formatRange,
    localInputValue: localInputValue, statusLabel: statusLabel, statusBadge: statusBadge, metres: metres,
    announce: announce, setStatus: setStatus, showFieldErrors: showFieldErrors, liveSocket: liveSocket,
    serverNow: serverNow, STATUS_LABELS: STATUS_LABELS
  };
})();
