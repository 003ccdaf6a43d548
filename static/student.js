/* The student page: check in with the code (and the browser's location when the class has a room),
 * today's and this week's classes, history, and absence justifications. */
(function () {
  "use strict";
  var A = window.Attendance;
  var el = A.el;
  var root = document.getElementById("student-home");
  if (!root) return;

  var $ = function (id) { return document.getElementById(id); };
  var POOR_ACCURACY_M = 150;
  var state = { tz: root.dataset.timezone || "UTC", current: [], socket: null, sessions: [] };

  // -- the device id: a random id kept on this device, to spot one phone checking in for several students
  function deviceId() {
    try {
      var id = window.localStorage.getItem("attendance-device-id");
      if (!id) {
        id = window.crypto && crypto.randomUUID ? crypto.randomUUID()
          : Array.prototype.map.call(crypto.getRandomValues(new Uint8Array(16)), function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
        window.localStorage.setItem("attendance-device-id", id);
      }
      return id;
    } catch (err) {
      return null; // storage blocked in this frame: check in without it
    }
  }

  // -- location --------------------------------------------------------------------------------
  /* Resolve with {latitude, longitude, accuracy} or {error, message}; never reject. */
  function locate() {
    return new Promise(function (resolve) {
      if (!navigator.geolocation) {
        resolve({ error: "unavailable", message: "This browser cannot share a location, so your check-in was sent without one. Your teacher will see that." });
        return;
      }
      var settled = false;
      function finish(value) { if (!settled) { settled = true; window.clearTimeout(guard); resolve(value); } }
      // The permission prompt may be left unanswered: do not wait for it for ever.
      var guard = window.setTimeout(function () {
        finish({ error: "timeout", message: "Your location did not arrive in time, so your check-in was sent without it. Your teacher will see that." });
      }, 20000);
      navigator.geolocation.getCurrentPosition(function (position) {
        finish({ latitude: position.coords.latitude, longitude: position.coords.longitude, accuracy: position.coords.accuracy });
      }, function (error) {
        var message = error.code === 1
          ? "Location is turned off for this page (by you, your browser or the course page), so your check-in was sent without it. Your teacher will see that and may ask you about it."
          : error.code === 3
            ? "Finding your location took too long, so your check-in was sent without it. Your teacher will see that."
            : "Your location is not available right now (no GPS or network position), so your check-in was sent without it. Your teacher will see that.";
        finish({ error: ["", "denied", "unavailable", "timeout"][error.code] || "unavailable", message: message });
      }, { enableHighAccuracy: true, timeout: 12000, maximumAge: 0 });
    });
  }

  function needsLocation() {
    // Ask for a location only when an open class has a room to compare it with.
    return state.current.some(function (c) { return c.checkin_open && c.has_location; });
  }

  // -- classes ---------------------------------------------------------------------------------
  function classItem(c, withDate) {
    var tz = c.timezone || state.tz;
    var when = withDate ? A.formatRange(c.starts_at, c.ends_at, tz) : A.formatTime(c.starts_at, tz) + " – " + A.formatTime(c.ends_at, tz);
    var badge = c.my_status ? A.statusBadge(c.my_status)
      : c.closed ? el("span", { class: "badge state-closed" }, "Closed")
        : c.checkin_open ? el("span", { class: "badge state-open" }, "Check-in open") : null;
    return el("li", { dataset: { classSessionId: c.class_session_id, myStatus: c.my_status || "" } },
      el("span", { class: "class-title" }, c.title),
      el("span", { class: "muted" }, " · " + c.course_title + " · " + when + " "),
      el("span", { class: "my-status" }, badge));
  }

  function renderClassList(node, classes, emptyText, withDate) {
    A.clear(node);
    if (!classes.length) {
      node.appendChild(el("li", { class: "muted" }, emptyText));
      return;
    }
    classes.forEach(function (c) { node.appendChild(classItem(c, withDate)); });
  }

  async function loadCurrent() {
    try {
      var data = await A.api("GET", "/api/student/current-classes/");
      state.current = data.classes || [];
    } catch (err) {
      A.setStatus($("checkin-result"), err.message, "error");
      return;
    }
    renderClassList($("current-classes"), state.current, "No class is open for check-in right now. When your teacher starts check-in, it appears here.", false);
    watchCurrent();
  }

  async function loadLists() {
    var results = await Promise.allSettled([
      A.api("GET", "/api/student/today-classes/"),
      A.api("GET", "/api/student/weekly-classes/")
    ]);
    renderClassList($("today-classes"), results[0].status === "fulfilled" ? results[0].value.classes : [], "No classes today.", false);
    renderClassList($("week-classes"), results[1].status === "fulfilled" ? results[1].value.classes : [], "No classes this week.", true);
  }

  // -- live status of my own records ---------------------------------------------------------------
  /* One socket for the whole page: it carries changes to my records of every session, so it only needs
   * a session of this page's course to open on (the server checks that). Without open classes, none. */
  function watchCurrent() {
    var courseId = Number(root.dataset.courseId);
    var open = state.current.filter(function (c) { return !c.closed; });
    if (!open.length) {
      if (state.socket) { state.socket.close(); state.socket = null; }
      return;
    }
    if (state.socket) return;
    var here = open.find(function (c) { return c.course_id === courseId; });
    if (!here) return; // other courses' classes only: the 30 s refresh keeps them current
    var socket = A.liveSocket(here.class_session_id, A.auth.token, onLiveMessage, function (liveState) {
      if (liveState === "ended" && state.socket === socket) state.socket = null; // the next refresh may open another
    });
    state.socket = socket;
  }

  function onLiveMessage(message) {
    if (message.type !== "attendance_validated" && message.type !== "student_submission") return;
    var record = message.attendance;
    if (!record) return;
    var item = state.current.find(function (c) { return c.class_session_id === record.class_session_id; });
    var changed = !item || item.my_status !== record.status;
    if (item) item.my_status = record.status;
    document.querySelectorAll('li[data-class-session-id="' + record.class_session_id + '"]').forEach(function (li) {
      li.dataset.myStatus = record.status;
      A.clear(li.querySelector(".my-status")).appendChild(A.statusBadge(record.status));
    });
    var result = $("checkin-result");
    if (result.dataset.classSessionId === String(record.class_session_id)) {
      result.dataset.status = record.status;
      var badge = result.querySelector(".badge");
      if (badge) badge.replaceWith(A.statusBadge(record.status));
    }
    if (message.type === "attendance_validated" && changed) {
      var title = item ? item.title : "your class";
      A.setStatus($("live-message"), "Your teacher set your attendance for " + title + " to " + A.statusLabel(record.status).toLowerCase() + ".", "ok");
      loadHistory();
    }
  }

  // -- check in --------------------------------------------------------------------------------
  function locationFeedback(flag, where) {
    if (where && where.error) return [where.message, "warn"];
    if (flag === "outside") return ["Your location looks outside the classroom. You are checked in, and your teacher will review it. (Indoor GPS often drifts; tell your teacher if you are in the room.)", "warn"];
    if (flag === "inaccurate" || (where && where.accuracy > POOR_ACCURACY_M)) {
      return ["Your location was imprecise (±" + A.metres(where ? where.accuracy : null) + "), which is common indoors. It was sent anyway; your teacher may review it.", "warn"];
    }
    if (flag === "inside") return ["Your location confirmed you are in the classroom.", "ok"];
    return ["", ""];
  }

  async function checkIn(event) {
    event.preventDefault();
    var input = $("attendance-code");
    var code = input.value.replace(/[\s-]+/g, "").toUpperCase();
    var result = $("checkin-result");
    if (!code) {
      A.setStatus(result, "Type the code shown by your teacher first.", "error");
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    var button = $("checkin-submit");
    button.disabled = true;
    A.setStatus($("location-message"), "");
    var where = null;
    if (!state.current.some(function (c) { return c.checkin_open; })) await loadCurrent(); // opened since the page loaded?
    if (needsLocation()) {
      A.setStatus(result, "Getting your location…");
      where = await locate();
    }
    var body = { attendance_code: code, device_id: deviceId() };
    if (where && !where.error) {
      body.latitude = where.latitude;
      body.longitude = where.longitude;
      body.accuracy_m = Math.round(where.accuracy * 10) / 10;
    }
    A.setStatus(result, "Checking you in…");
    try {
      var data = await A.api("POST", "/api/submit-attendance/", body);
      var record = data.attendance;
      var item = state.current.find(function (c) { return c.class_session_id === record.class_session_id; });
      A.clear(result);
      result.dataset.kind = "ok";
      result.dataset.status = record.status;
      result.dataset.classSessionId = String(record.class_session_id);
      A.append(result, el("p", { class: "result-title" }, "You are checked in: ", A.statusBadge(record.status)));
      A.append(result, el("p", { class: "muted" }, (item ? item.title + " · " : "") + "at " + A.formatTime(record.submitted_at, item ? item.timezone : state.tz, true)));
      var feedback = locationFeedback(record.location_flag, where);
      A.setStatus($("location-message"), feedback[0], feedback[1]);
      input.value = "";
      await loadCurrent();
      loadLists();
      loadHistory();
    } catch (err) {
      result.dataset.status = "";
      A.setStatus(result, err.message, "error");
      if (err.code === "invalid_attendance_code") {
        input.setAttribute("aria-invalid", "true");
        input.select();
      }
      if (where && where.error) A.setStatus($("location-message"), "");
      input.focus();
    } finally {
      button.disabled = false;
    }
  }

  // -- history ---------------------------------------------------------------------------------
  async function loadHistory() {
    var data;
    try {
      data = await A.api("GET", "/api/student/attendance-history/");
    } catch (err) {
      A.setStatus($("justification-status"), err.message, "error");
      return;
    }
    var summary = A.clear($("summary").tBodies[0]);
    (data.summary || []).forEach(function (row) {
      summary.appendChild(el("tr", { dataset: { courseId: row.course_id } },
        el("th", { scope: "row" }, row.course_title),
        el("td", { class: "num" }, String(row.attended)),
        el("td", { class: "num" }, String(row.late)),
        el("td", { class: "num" }, String(row.excused)),
        el("td", { class: "num" }, String(row.absent)),
        el("td", { class: "num" }, row.percentage === null || row.percentage === undefined ? "—" : row.percentage + " %")));
    });
    var history = A.clear($("history").tBodies[0]);
    (data.history || []).forEach(function (row) {
      history.appendChild(el("tr", { dataset: { attendanceId: row.attendance_id, classSessionId: row.class_session_id } },
        el("td", {}, A.formatDateTime(row.starts_at, sessionTz(row.class_session_id))),
        el("td", {}, row.course_title),
        el("th", { scope: "row" }, row.title),
        el("td", {}, A.statusBadge(row.status)),
        el("td", {}, row.remark || "")));
    });
    $("no-history").hidden = (data.history || []).length > 0;
    $("summary").closest(".table-wrap").hidden = !(data.summary || []).length;
    $("history").closest(".table-wrap").hidden = !(data.history || []).length;
    state.history = data.history || [];
    fillJustificationSessions();
  }

  function sessionTz(id) {
    var s = state.sessions.find(function (x) { return x.id === id; });
    return (s && s.timezone) || state.tz;
  }

  // -- justifications --------------------------------------------------------------------------
  async function loadSessions() {
    try {
      var data = await A.api("GET", "/api/class-sessions/");
      state.sessions = data.class_sessions || [];
    } catch (err) {
      state.sessions = [];
    }
    fillJustificationSessions();
  }

  function fillJustificationSessions() {
    var select = $("justification-session");
    var chosen = select.value;
    var statusOf = {};
    (state.history || []).forEach(function (h) { statusOf[h.class_session_id] = h.status; });
    while (select.options.length > 1) select.remove(1);
    var sessions = state.sessions.slice().sort(function (a, b) { return Date.parse(b.starts_at) - Date.parse(a.starts_at); });
    sessions.forEach(function (s) {
      var status = statusOf[s.id];
      if (status === "present" || status === "late" || status === "excused") return;
      var label = A.formatDateTime(s.starts_at, s.timezone || state.tz) + " — " + s.title + (status === "absent" ? " (absent)" : "");
      select.appendChild(el("option", { value: s.id }, label));
    });
    select.value = chosen;
  }

  async function sendJustification(event) {
    event.preventDefault();
    var form = $("justification-form");
    var status = $("justification-status");
    var sessionId = $("justification-session").value;
    var reason = $("justification-reason").value.trim();
    var missing = {};
    if (!sessionId) missing.class_session_id = ["Choose the class you missed."];
    if (!reason) missing.reason = ["Write the reason for your absence."];
    var file = $("justification-document").files[0];
    if (file && !/\.(pdf|jpe?g|png)$/i.test(file.name)) missing.document = ["Choose a PDF, JPEG or PNG file."];
    if (Object.keys(missing).length) {
      A.showFieldErrors(form, missing);
      A.setStatus(status, "Some fields need attention.", "error");
      return;
    }
    var body = new FormData();
    body.append("class_session_id", sessionId);
    body.append("reason", reason);
    if (file) body.append("document", file, file.name);
    var button = $("justification-submit");
    button.disabled = true;
    A.setStatus(status, "Sending…");
    try {
      await A.api("POST", "/api/submit-justification/", body);
      A.showFieldErrors(form, {});
      form.reset();
      A.setStatus(status, "Sent. Your teacher will review it; an approved justification turns the absence into an excused one.", "ok");
    } catch (err) {
      var fields = err.fields || {};
      if (err.code === "unsupported_media_type") fields = { document: [err.message] };
      if (err.code === "payload_too_large") fields = { document: [err.message] };
      A.showFieldErrors(form, fields);
      A.setStatus(status, err.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  // -- wiring ----------------------------------------------------------------------------------
  var prefill = new URLSearchParams(window.location.search).get("code");
  if (prefill && /^[A-Za-z0-9-]{4,16}$/.test(prefill) && !$("attendance-code").value) $("attendance-code").value = prefill.toUpperCase();
  $("checkin-form").addEventListener("submit", checkIn);
  $("justification-form").addEventListener("submit", sendJustification);

  (async function start() {
    await Promise.allSettled([loadCurrent(), loadLists(), loadSessions()]);
    await loadHistory();
    root.dataset.ready = "true";
  })();
  // Classes open and close over time: look again every half minute while the page is visible.
  window.setInterval(function () { if (!document.hidden) loadCurrent(); }, 30000);
})();
