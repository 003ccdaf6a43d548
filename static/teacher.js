/* The teacher dashboard: sessions, check-in with the rotating code, the live submissions table,
 * validation, closing, justifications and course settings. */
(function () {
  "use strict";
  var A = window.Attendance;
  var el = A.el;
  var root = document.getElementById("teacher-dashboard");
  if (!root) return;

  var $ = function (id) { return document.getElementById(id); };
  var state = {
    tz: root.dataset.timezone || "UTC",
    sessions: [],
    selected: null, // the class session shown in the panel
    rows: new Map(), // attendance id -> record, for the selected session
    students: [],
    socket: null,
    code: null, // {value, expiresAt, sessionId}
    codeTimer: null,
    countdownTimer: null,
    firstLoad: true,
    justifications: [],
    documentUrl: null,
    documentOpener: null,
    announceQueue: [],
    announceTimer: null,
    stopping: false, // this page's own stop-checkin request is under way (it reports the outcome itself)
    closing: false // likewise for close-session
  };

  // -- helpers ---------------------------------------------------------------------------------
  function sessionById(id) {
    return state.sessions.find(function (s) { return s.id === Number(id); }) || null;
  }

  function projectorUrl(sessionId) {
    return "/projector/" + encodeURIComponent(sessionId) + "#token=" + encodeURIComponent(A.auth.token);
  }

  function sessionStateLabel(session) {
    var now = A.serverNow();
    if (session.closed) return ["closed", "Closed"];
    if (session.checkin_open) return ["open", "Check-in open"];
    if (now < Date.parse(session.starts_at)) return ["upcoming", "Upcoming"];
    if (now <= Date.parse(session.ends_at)) return ["running", "In progress"];
    return ["ended", "Ended"];
  }

  function reportError(node, err, prefix) {
    A.setStatus(node, (prefix ? prefix + " " : "") + (err && err.message ? err.message : String(err)), "error");
  }

  // -- sessions list ---------------------------------------------------------------------------
  async function loadSessions() {
    try {
      var data = await A.api("GET", "/api/class-sessions/");
      state.sessions = data.class_sessions || [];
    } catch (err) {
      reportError($("page-status"), err, "Could not load the sessions:");
      return;
    }
    renderSessions();
    if (state.selected) {
      var fresh = sessionById(state.selected.id);
      if (fresh) {
        state.selected = fresh;
        renderPanelHeader();
      }
    } else if (state.firstLoad) {
      var open = state.sessions.find(function (s) { return s.checkin_open; });
      if (open) selectSession(open.id, false);
    }
    state.firstLoad = false;
  }

  function sessionRow(session) {
    var label = sessionStateLabel(session);
    var isSelected = state.selected && state.selected.id === session.id;
    return el("tr", { dataset: { sessionId: session.id, state: label[0] }, class: isSelected ? "selected" : null },
      el("th", { scope: "row" }, session.title, session.series_id ? el("span", { class: "muted small" }, " (weekly)") : null),
      el("td", {}, A.formatRange(session.starts_at, session.ends_at, session.timezone || state.tz)),
      el("td", {}, el("span", { class: "badge state-" + label[0] }, label[1])),
      el("td", { class: "num" }, String(session.submission_count || 0)),
      el("td", { class: "actions" },
        el("button", {
          type: "button", class: "secondary small", dataset: { action: "open" },
          "aria-label": "Manage " + session.title, "aria-controls": "session-panel",
          onclick: function () { selectSession(session.id, true); }
        }, "Manage"),
        session.closed ? null : el("button", {
          type: "button", class: "small", dataset: { action: "start" },
          "aria-label": "Start check-in for " + session.title,
          onclick: function () { selectSession(session.id, false); startCheckin(); }
        }, "Start check-in")));
  }

  function renderSessions() {
    var now = A.serverNow();
    var current = [], past = [];
    state.sessions.forEach(function (s) {
      var over = Date.parse(s.ends_at) < now - 2 * 3600 * 1000;
      (over && !s.checkin_open ? past : current).push(s);
    });
    past.sort(function (a, b) { return Date.parse(b.starts_at) - Date.parse(a.starts_at); });
    // The tables are rebuilt: keep the keyboard focus on the same button.
    var focused = document.activeElement;
    var focusRow = focused && focused.closest && focused.closest("tr[data-session-id]");
    var refocus = focusRow && focused.dataset.action ? [focusRow.dataset.sessionId, focused.dataset.action] : null;
    var body = A.clear($("sessions").tBodies[0]);
    if (!current.length) {
      body.appendChild(el("tr", { class: "placeholder" }, el("td", { colspan: 5 },
        state.sessions.length ? "No current or upcoming sessions." : "No sessions yet. Create one below, or start check-in from a session.")));
    }
    current.forEach(function (s) { body.appendChild(sessionRow(s)); });
    var pastBody = A.clear($("past-sessions-table").tBodies[0]);
    past.forEach(function (s) { pastBody.appendChild(sessionRow(s)); });
    $("past-count").textContent = String(past.length);
    $("past-sessions").hidden = past.length === 0;
    if (refocus) {
      var again = document.querySelector('tr[data-session-id="' + refocus[0] + '"] [data-action="' + refocus[1] + '"]');
      if (again) again.focus();
    }
  }

  // -- the session panel -----------------------------------------------------------------------
  function renderPanelHeader() {
    var s = state.selected;
    if (!s) return;
    var panel = $("session-panel");
    panel.dataset.sessionId = String(s.id);
    $("session-title").textContent = s.title;
    var label = sessionStateLabel(s);
    $("session-when").textContent = A.formatRange(s.starts_at, s.ends_at, s.timezone || state.tz) + " · " + label[1] +
      (s.latitude !== null && s.latitude !== undefined ? " · classroom location set (" + A.metres(s.radius_m) + " radius)" : " · no classroom location");
    $("projector-link").href = projectorUrl(s.id);
    $("start-checkin").hidden = s.closed || s.checkin_open;
    $("open-projector").closest("label").hidden = s.closed || s.checkin_open;
    $("start-checkin").textContent = s.checkin_opened_at && !s.checkin_open ? "Restart check-in" : "Start check-in";
    $("stop-checkin").hidden = !s.checkin_open;
    $("close-session").disabled = s.closed;
    $("close-session").textContent = s.closed ? "Session closed" : "Close session…";
    $("checkin-window").textContent = s.late_until
      ? "Present until " + A.formatTime(s.present_until, s.timezone || state.tz) + ", late until " + A.formatTime(s.late_until, s.timezone || state.tz) + "."
      : "";
    if (!s.checkin_open) hideCode();
  }

  function selectSession(id, focus) {
    var session = sessionById(id);
    if (!session) return;
    var changed = !state.selected || state.selected.id !== session.id;
    state.selected = session;
    var panel = $("session-panel");
    panel.hidden = false;
    renderSessions();
    renderPanelHeader();
    if (changed) {
      state.rows = new Map();
      A.clear($("submissions").tBodies[0]);
      A.setStatus($("session-status"), "");
      updateCounts();
      hideCode();
      if (state.socket) state.socket.close();
      state.socket = A.liveSocket(session.id, A.auth.token, onLiveMessage, onLiveState);
      loadSubmissions();
      loadStudents();
      if (session.checkin_open) refreshCode();
    }
    if (focus) $("session-title").focus();
  }

  function onLiveState(liveState, reconnected) {
    var node = $("live-state");
    node.dataset.state = liveState;
    node.textContent = liveState === "live" ? "Live: updates appear by themselves"
      : liveState === "connecting" ? "Connecting to live updates…"
        : liveState === "ended" ? "Live updates stopped: open Attendance again from your course."
          : "Live updates interrupted, reconnecting…";
    if (liveState === "live") loadSubmissions(); // catch up on anything sent while the socket was down
    if (reconnected) A.announce($("announcer"), "Live updates are back.");
  }

  function onLiveMessage(message) {
    var s = state.selected;
    if (!s) return;
    if ((message.type === "student_submission" || message.type === "attendance_validated") && message.attendance) {
      if (message.attendance.class_session_id !== undefined && message.attendance.class_session_id !== s.id) return;
      var isNew = !state.rows.has(message.attendance.id);
      upsertRow(message.attendance);
      if (message.type === "student_submission" && isNew) {
        s.submission_count = (s.submission_count || 0) + 1;
        renderSessions();
        queueAnnouncement(message.attendance);
      }
    } else if (message.type === "ai_validation_result" && message.result) {
      applyRisk(message.result);
    } else if (message.type === "code_generated") {
      if (message.class_session_id !== undefined && message.class_session_id !== s.id) return;
      if (!s.checkin_open) {
        s.checkin_open = true;
        renderPanelHeader();
        renderSessions();
      }
      showCode(message.code, message.expires_at);
    } else if (message.type === "checkin_stopped") {
      if (message.class_session_id !== undefined && message.class_session_id !== s.id) return;
      checkinStoppedElsewhere(s);
    } else if (message.type === "session_closed") {
      if (message.class_session_id !== undefined && message.class_session_id !== s.id) return;
      sessionClosedElsewhere(s, message.absent_count);
    }
  }

  /* Check-in of the shown session was stopped, here or in another window (another tab, a co-teacher):
   * the code goes away at once, so this page's rotation does not open check-in again. */
  function checkinStoppedElsewhere(s) {
    if (s.closed) return;
    var wasShown = s.checkin_open || state.code !== null;
    s.checkin_open = false;
    hideCode();
    renderPanelHeader();
    renderSessions();
    if (wasShown && !state.stopping) {
      A.setStatus($("session-status"), "Check-in was stopped from another window. Students can no longer check in to this session.", "warn");
    }
    if (!state.stopping) loadSessions();
  }

  /* The shown session was closed in another window: the same end state as closing it here. */
  function sessionClosedElsewhere(s, absentCount) {
    if (s.closed || state.closing) return; // this page's own close reports itself
    s.closed = true;
    s.checkin_open = false;
    hideCode();
    renderPanelHeader();
    renderSessions();
    var status = $("session-status");
    if (absentCount !== undefined && absentCount !== null) status.dataset.absentCount = String(absentCount);
    A.setStatus(status, "This session was closed from another window" +
      (absentCount !== undefined && absentCount !== null ? ": " + absentCount + " student(s) without a record were recorded absent." : "."), "warn");
    loadSessions();
    loadSubmissions();
  }

  function queueAnnouncement(record) {
    state.announceQueue.push(record);
    if (state.announceTimer) return;
    state.announceTimer = window.setTimeout(function () {
      var queue = state.announceQueue;
      state.announceQueue = [];
      state.announceTimer = null;
      A.announce($("announcer"), queue.length === 1
        ? queue[0].student.name + " checked in, " + A.statusLabel(queue[0].status).toLowerCase() + "."
        : queue.length + " new check-ins.");
    }, 1500);
  }

  // -- code and check-in -----------------------------------------------------------------------
  function showCode(code, expiresAt) {
    var s = state.selected;
    if (!s || !code) return;
    state.code = { value: code, expiresAt: Date.parse(expiresAt), sessionId: s.id };
    $("code-display").hidden = false;
    $("current-code").textContent = code;
    $("current-code").dataset.code = code;
    $("stop-checkin").hidden = false;
    $("start-checkin").hidden = true;
    $("open-projector").closest("label").hidden = true;
    tickCountdown();
    window.clearInterval(state.countdownTimer);
    state.countdownTimer = window.setInterval(tickCountdown, 1000);
    window.clearTimeout(state.codeTimer);
    var wait = Math.max(500, state.code.expiresAt - A.serverNow() + 250);
    state.codeTimer = window.setTimeout(refreshCode, wait);
  }

  function tickCountdown() {
    if (!state.code) return;
    var left = Math.max(0, Math.ceil((state.code.expiresAt - A.serverNow()) / 1000));
    $("code-countdown").textContent = "Changes in " + left + " s";
  }

  function hideCode() {
    state.code = null;
    window.clearTimeout(state.codeTimer);
    window.clearInterval(state.countdownTimer);
    $("code-display").hidden = true;
    $("stop-checkin").hidden = true;
    if (state.selected && !state.selected.closed) {
      $("start-checkin").hidden = false;
      $("open-projector").closest("label").hidden = false;
    }
    $("current-code").textContent = "";
    $("current-code").dataset.code = "";
  }

  async function refreshCode() {
    var s = state.selected;
    if (!s || s.closed) return;
    try {
      // A refresh only reads the code: it must never reopen a check-in someone just stopped.
      var data = await A.api("POST", "/api/generate-code/", { class_session_id: s.id, reopen: false });
      if (!state.selected || state.selected.id !== data.class_session_id) return;
      if (!s.checkin_open) {
        s.checkin_open = true;
        renderPanelHeader();
        renderSessions();
      }
      showCode(data.code, data.expires_at);
    } catch (err) {
      if (err.status === 409 || err.status === 404 || err.status === 401 || err.status === 403) {
        hideCode();
        reportError($("session-status"), err);
      } else {
        window.clearTimeout(state.codeTimer);
        state.codeTimer = window.setTimeout(refreshCode, 3000);
      }
    }
  }

  async function startCheckin() {
    var s = state.selected;
    if (!s) return;
    if ($("open-projector").checked) {
      // Opened in the click itself: a window opened after an await may be blocked as a pop-up.
      window.open(projectorUrl(s.id), "attendance-projector-" + s.id, "noopener");
    }
    $("start-checkin").disabled = true;
    try {
      var data = await A.api("POST", "/api/generate-code/", { class_session_id: s.id });
      s.checkin_open = true;
      showCode(data.code, data.expires_at);
      A.setStatus($("session-status"), "Check-in is open. Show the code or the projector view to the class.", "ok");
      await loadSessions();
    } catch (err) {
      reportError($("session-status"), err, "Could not start check-in:");
    } finally {
      $("start-checkin").disabled = false;
    }
  }

  async function stopCheckin() {
    var s = state.selected;
    if (!s) return;
    state.stopping = true;
    try {
      var data = await A.api("POST", "/api/stop-checkin/", { class_session_id: s.id });
      Object.assign(s, data.class_session);
      hideCode();
      renderPanelHeader();
      A.setStatus($("session-status"), "Check-in stopped. Students can no longer check in to this session.", "ok");
      await loadSessions();
      $("start-checkin").focus();
    } catch (err) {
      reportError($("session-status"), err, "Could not stop check-in:");
    } finally {
      state.stopping = false;
    }
  }

  // -- submissions table -----------------------------------------------------------------------
  async function loadSubmissions() {
    var s = state.selected;
    if (!s) return;
    try {
      var data = await A.api("GET", "/api/get-session-submissions/", { class_session_id: s.id });
      if (!state.selected || state.selected.id !== s.id) return;
      (data.submissions || []).forEach(upsertRow);
    } catch (err) {
      reportError($("session-status"), err, "Could not load the submissions:");
    }
  }

  function timeText(record, tz) {
    if (record.submitted_at) return A.formatTime(record.submitted_at, tz, true);
    return { teacher: "Marked by a teacher", close: "Recorded when closed", justification: "Justified" }[record.source] || "—";
  }

  function locationText(record) {
    switch (record.location_flag) {
      case "inside": return ["ok", "In the classroom" + (record.distance_m !== null && record.distance_m !== undefined ? " (" + A.metres(record.distance_m) + ")" : "")];
      case "outside": return ["warn", "Outside: " + A.metres(record.distance_m) + " away"];
      case "missing": return ["warn", "No location shared"];
      case "inaccurate": return ["warn", "Imprecise location (±" + A.metres(record.accuracy_m) + ")"];
      case "no_geofence": return ["none", "Shared (no classroom set)"];
      default: return ["none", "—"];
    }
  }

  function riskNode(risk) {
    if (!risk) return el("span", { class: "muted" }, "—");
    var level = risk.level || "low";
    var label = level.charAt(0).toUpperCase() + level.slice(1) + " · " + risk.score;
    if (!risk.reasons || !risk.reasons.length) return el("span", { class: "badge risk-" + level, dataset: { level: level } }, label);
    return el("details", { class: "risk", dataset: { level: level } },
      el("summary", {}, el("span", { class: "badge risk-" + level }, label), el("span", { class: "visually-hidden" }, ", show the reasons")),
      el("ul", { class: "reasons" }, risk.reasons.map(function (r) { return el("li", {}, r); })));
  }

  function createRow(record) {
    var name = record.student.name;
    var checkboxId = "select-" + record.id;
    var tr = el("tr", { dataset: { attendanceId: record.id, studentId: record.student.id } },
      el("td", { class: "select" },
        el("label", { class: "visually-hidden", for: checkboxId }, "Select " + name),
        el("input", { type: "checkbox", id: checkboxId, class: "row-select", onchange: updateSelection })),
      el("th", { scope: "row", class: "student" }, name),
      el("td", { class: "time" }),
      el("td", { class: "status" }),
      el("td", { class: "location" }),
      el("td", { class: "risk-cell" }),
      el("td", { class: "remark" },
        el("span", { class: "remark-text" }),
        el("button", { type: "button", class: "link edit-remark", "aria-label": "Edit the remark for " + name, onclick: function () { editRemark(tr); } }, "Edit")),
      el("td", { class: "actions" },
        el("div", { class: "status-buttons", role: "group", "aria-label": "Set the status of " + name },
          ["present", "late", "excused", "absent"].map(function (status) {
            return el("button", {
              type: "button", class: "status-button status-" + status, dataset: { status: status }, "aria-pressed": "false",
              onclick: function () { setStatus(tr, status); }
            }, A.statusLabel(status));
          }))));
    return tr;
  }

  function updateRow(tr, record) {
    var tz = (state.selected && state.selected.timezone) || state.tz;
    tr.dataset.status = record.status;
    tr.querySelector(".time").textContent = timeText(record, tz);
    A.clear(tr.querySelector(".status")).appendChild(A.statusBadge(record.status));
    var where = locationText(record);
    A.clear(tr.querySelector(".location")).appendChild(el("span", { class: "flag flag-" + where[0], dataset: { flag: record.location_flag || "" } }, where[1]));
    A.clear(tr.querySelector(".risk-cell")).appendChild(riskNode(record.risk));
    if (!tr.classList.contains("editing")) tr.querySelector(".remark-text").textContent = record.remark || "";
    tr.querySelectorAll("button[data-status]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.dataset.status === record.status ? "true" : "false");
    });
  }

  function upsertRow(record) {
    var previous = state.rows.get(record.id) || {};
    var merged = Object.assign({}, previous, record);
    if (record.risk === undefined && previous.risk) merged.risk = previous.risk;
    state.rows.set(record.id, merged);
    var body = $("submissions").tBodies[0];
    var tr = body.querySelector('tr[data-attendance-id="' + record.id + '"]');
    if (!tr) {
      tr = createRow(merged);
      body.appendChild(tr);
    }
    updateRow(tr, merged);
    updateCounts();
    renderMissing();
    var known = state.students.some(function (st) { return st.id === merged.student.id; });
    if (!known && !state.studentsTimer) {
      // A student the roster list has not seen yet (first launch today): read the list again, once.
      state.studentsTimer = window.setTimeout(function () { state.studentsTimer = null; loadStudents(); }, 1000);
    }
  }

  function applyRisk(result) {
    var record = state.rows.get(result.attendance_id);
    if (!record) return;
    record.risk = { score: result.score, level: result.level, reasons: result.reasons || [] };
    var tr = $("submissions").querySelector('tr[data-attendance-id="' + result.attendance_id + '"]');
    if (tr) updateRow(tr, record);
  }

  function updateCounts() {
    var checkins = 0;
    state.rows.forEach(function (r) { if (r.source === "checkin" || r.submitted_at) checkins += 1; });
    $("submission-count").textContent = String(checkins);
    $("no-submissions").hidden = state.rows.size > 0;
  }

  async function setStatus(tr, status) {
    var id = Number(tr.dataset.attendanceId);
    var buttons = tr.querySelectorAll("button[data-status]");
    buttons.forEach(function (b) { b.disabled = true; });
    try {
      var data = await A.api("POST", "/api/validate-attendance/", { attendance_id: id, status: status });
      upsertRow(data.attendance);
      A.announce($("announcer"), data.attendance.student.name + " is now " + A.statusLabel(status).toLowerCase() + ".");
    } catch (err) {
      reportError($("session-status"), err, "Could not change the status:");
    } finally {
      buttons.forEach(function (b) { b.disabled = false; });
    }
  }

  function editRemark(tr) {
    if (tr.classList.contains("editing")) return;
    var id = Number(tr.dataset.attendanceId);
    var record = state.rows.get(id);
    var cell = tr.querySelector(".remark");
    var inputId = "remark-" + id;
    tr.classList.add("editing");
    var editButton = cell.querySelector(".edit-remark");
    var text = cell.querySelector(".remark-text");
    text.hidden = true;
    editButton.hidden = true;
    var input = el("input", { id: inputId, type: "text", maxlength: 2000, value: record.remark || "", class: "remark-input" });
    var form = el("form", { class: "remark-form" },
      el("label", { class: "visually-hidden", for: inputId }, "Remark for " + record.student.name),
      input,
      el("button", { type: "submit", class: "small" }, "Save"),
      el("button", { type: "button", class: "small secondary", onclick: done }, "Cancel"));
    function done() {
      form.remove();
      tr.classList.remove("editing");
      text.hidden = false;
      editButton.hidden = false;
      text.textContent = (state.rows.get(id) || {}).remark || "";
      editButton.focus();
    }
    form.addEventListener("keydown", function (event) { if (event.key === "Escape") done(); });
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      try {
        var current = state.rows.get(id);
        // if_status: the server refuses (stale_status) if another teacher changed the status this row shows.
        var data = await A.api("POST", "/api/validate-attendance/", { attendance_id: id, status: current.status, if_status: current.status, remark: input.value });
        state.rows.set(id, Object.assign({}, current, data.attendance));
        done();
        updateRow(tr, state.rows.get(id));
        A.announce($("announcer"), "Remark saved.");
      } catch (err) {
        reportError($("session-status"), err, "Could not save the remark:");
      }
    });
    cell.appendChild(form);
    input.focus();
  }

  function selectedIds() {
    return Array.prototype.map.call($("submissions").querySelectorAll(".row-select:checked"), function (box) {
      return Number(box.closest("tr").dataset.attendanceId);
    });
  }

  function updateSelection() {
    var count = selectedIds().length;
    $("selected-count").textContent = String(count);
    $("bulk-apply").disabled = count === 0;
    var all = $("submissions").querySelectorAll(".row-select");
    $("select-all").checked = all.length > 0 && count === all.length;
    $("select-all").indeterminate = count > 0 && count < all.length;
  }

  async function bulkApply() {
    var ids = selectedIds();
    var status = $("bulk-status").value;
    if (!ids.length) return;
    $("bulk-apply").disabled = true;
    try {
      var data = await A.api("POST", "/api/validate-attendance/", { attendance_ids: ids, status: status });
      (data.attendances || [data.attendance]).forEach(upsertRow);
      $("submissions").querySelectorAll(".row-select:checked").forEach(function (box) { box.checked = false; });
      A.setStatus($("session-status"), ids.length + " record(s) set to " + A.statusLabel(status).toLowerCase() + ".", "ok");
    } catch (err) {
      reportError($("session-status"), err, "Could not change the statuses:");
    }
    updateSelection();
  }

  // -- enrolled students without a record --------------------------------------------------------
  async function loadStudents() {
    try {
      var data = await A.api("GET", "/api/students/");
      state.students = data.students || [];
    } catch (err) {
      state.students = [];
    }
    renderMissing();
  }

  function renderMissing() {
    var list = A.clear($("missing-students"));
    var recorded = new Set();
    state.rows.forEach(function (r) { recorded.add(r.student.id); });
    var missing = state.students.filter(function (st) { return st.active !== false && !recorded.has(st.id); });
    if (!missing.length) {
      list.appendChild(el("li", { class: "muted" }, state.students.length ? "Every enrolled student has a record." : "No enrolled students known yet (students appear once they open the tool or the roster is read)."));
      return;
    }
    missing.forEach(function (student) {
      list.appendChild(el("li", { dataset: { studentId: student.id } },
        el("span", {}, student.name),
        el("button", {
          type: "button", class: "small secondary", "aria-label": "Mark " + student.name + " present",
          onclick: function (event) { markPresent(student, event.currentTarget); }
        }, "Mark present")));
    });
  }

  async function markPresent(student, button) {
    var s = state.selected;
    if (!s) return;
    button.disabled = true;
    try {
      var data = await A.api("POST", "/api/mark-attendance/", { class_session_id: s.id, student_id: student.id, status: "present" });
      upsertRow(data.attendance);
      A.announce($("announcer"), student.name + " marked present.");
      var next = $("missing-students").querySelector("button");
      (next || $("submissions")).focus();
    } catch (err) {
      button.disabled = false;
      reportError($("session-status"), err, "Could not mark " + student.name + ":");
    }
  }

  // -- risk check and closing ------------------------------------------------------------------
  async function runRisk() {
    var s = state.selected;
    if (!s) return;
    $("run-risk").disabled = true;
    A.setStatus($("session-status"), "Checking the check-ins…");
    try {
      var data = await A.api("POST", "/api/run-ai-validation/", { class_session_id: s.id });
      var tally = { high: 0, medium: 0, low: 0 };
      (data.results || []).forEach(function (r) { applyRisk(r); tally[r.level] = (tally[r.level] || 0) + 1; });
      A.setStatus($("session-status"), "Risk check done: " + tally.high + " high, " + tally.medium + " medium, " + tally.low + " low. Open a risk level to read its reasons.", "ok");
    } catch (err) {
      reportError($("session-status"), err, "The risk check failed:");
    } finally {
      $("run-risk").disabled = false;
    }
  }

  function askClose() {
    var dialog = $("close-dialog");
    if (typeof dialog.showModal !== "function") {
      if (window.confirm("Close this session? Every enrolled student without a record is recorded absent.")) closeSession();
      return;
    }
    dialog.returnValue = "";
    dialog.showModal();
    $("close-cancel").focus();
  }

  async function closeSession() {
    var s = state.selected;
    if (!s) return;
    state.closing = true;
    try {
      var data = await A.api("POST", "/api/close-session/", { class_session_id: s.id });
      Object.assign(s, data.class_session);
      hideCode();
      var status = $("session-status");
      status.dataset.absentCount = String(data.absent_count);
      A.setStatus(status, "Session closed. " + data.absent_count + " student(s) without a record were recorded absent.", "ok");
      await loadSessions();
      await loadSubmissions();
    } catch (err) {
      reportError($("session-status"), err, "Could not close the session:");
    } finally {
      state.closing = false;
    }
    $("close-session").focus();
  }

  // -- justifications --------------------------------------------------------------------------
  async function loadJustifications() {
    try {
      var data = await A.api("GET", "/api/justifications/");
      state.justifications = data.justifications || [];
    } catch (err) {
      reportError($("page-status"), err, "Could not load the justifications:");
      return;
    }
    renderJustifications();
  }

  function renderJustifications() {
    var list = A.clear($("justifications"));
    var pendingOnly = $("justifications-pending").checked;
    var shown = state.justifications.filter(function (j) { return !pendingOnly || j.status === "pending"; });
    $("no-justifications").hidden = shown.length > 0;
    shown.forEach(function (j) {
      var session = sessionById(j.class_session_id);
      var when = session ? session.title + ", " + A.formatDateTime(session.starts_at, session.timezone || state.tz) : "Session " + j.class_session_id;
      var headingId = "justification-" + j.id + "-heading";
      var item = el("li", { class: "card", dataset: { justificationId: j.id, status: j.status }, "aria-labelledby": headingId },
        el("h3", { id: headingId }, j.student.name, el("span", { class: "muted" }, " · " + when)),
        el("p", { class: "reason" }, j.reason),
        el("p", {}, el("span", { class: "badge justification-" + j.status }, j.status.charAt(0).toUpperCase() + j.status.slice(1)),
          " ", el("span", { class: "muted small" }, "sent " + A.formatDateTime(j.created_at, state.tz))),
        el("div", { class: "toolbar" },
          j.document ? el("button", {
            type: "button", class: "secondary small", dataset: { action: "view-document" },
            onclick: function (event) { viewDocument(j, event.currentTarget); }
          }, "View document", el("span", { class: "visually-hidden" }, " from " + j.student.name), " (" + j.document.name + ")") : el("span", { class: "muted small" }, "No document"),
          j.status === "pending" ? [
            el("button", { type: "button", class: "small", dataset: { decision: "approve" }, onclick: function () { review(j, "approve"); } }, "Approve", el("span", { class: "visually-hidden" }, " (excuse " + j.student.name + ")")),
            el("button", { type: "button", class: "small danger", dataset: { decision: "reject" }, onclick: function () { review(j, "reject"); } }, "Reject", el("span", { class: "visually-hidden" }, " " + j.student.name + "'s justification"))
          ] : null));
      list.appendChild(item);
    });
  }

  async function review(justification, decision) {
    try {
      var data = await A.api("POST", "/api/review-justification/", { justification_id: justification.id, decision: decision });
      Object.assign(justification, data.justification);
      renderJustifications();
      A.setStatus($("page-status"), "Justification of " + justification.student.name + (decision === "approve" ? " approved: the absence is excused." : " rejected."), "ok");
    } catch (err) {
      reportError($("page-status"), err, "Could not review the justification:");
    }
  }

  async function viewDocument(justification, opener) {
    var viewer = $("document-viewer");
    var frame = A.clear($("document-frame"));
    try {
      var response = await A.api("GET", justification.document.url, undefined, { raw: true });
      var blob = await response.blob();
      if (state.documentUrl) URL.revokeObjectURL(state.documentUrl);
      // The blob's type decides how the browser renders it: pin it to an accepted kind, never HTML.
      var type = (blob.type || justification.document.type || "").split(";")[0].trim().toLowerCase();
      var kind = ["application/pdf", "image/png", "image/jpeg"].indexOf(type) >= 0 ? type : "application/octet-stream";
      state.documentUrl = URL.createObjectURL(new Blob([blob], { type: kind }));
      var label = "Document from " + justification.student.name + ": " + justification.document.name;
      $("document-title").textContent = label;
      if (kind.indexOf("image/") === 0) {
        frame.appendChild(el("img", { src: state.documentUrl, alt: label }));
      } else if (kind === "application/pdf") {
        // Chromium shows no PDF in a sandboxed frame; pinned to PDF, only its viewer opens this blob.
        frame.appendChild(el("iframe", { src: state.documentUrl, title: label }));
      } else {
        frame.appendChild(el("iframe", { sandbox: "", src: state.documentUrl, title: label }));
      }
      frame.appendChild(el("p", {}, el("a", { href: state.documentUrl, download: justification.document.name }, "Download " + justification.document.name)));
      viewer.hidden = false;
      state.documentOpener = opener;
      viewer.focus();
    } catch (err) {
      reportError($("page-status"), err, "Could not open the document:");
    }
  }

  function closeDocument() {
    $("document-viewer").hidden = true;
    A.clear($("document-frame"));
    if (state.documentUrl) URL.revokeObjectURL(state.documentUrl);
    state.documentUrl = null;
    if (state.documentOpener) state.documentOpener.focus();
  }

  // -- forms -----------------------------------------------------------------------------------
  function prefillTimes() {
    var now = new Date(A.serverNow());
    $("session-starts").value = A.localInputValue(now, state.tz);
    $("session-ends").value = A.localInputValue(new Date(now.getTime() + 3600 * 1000), state.tz);
  }

  function useMyLocation() {
    var status = $("location-status");
    if (!navigator.geolocation) {
      A.setStatus(status, "This browser cannot share a location; type the coordinates instead.", "error");
      return;
    }
    A.setStatus(status, "Finding your location…");
    navigator.geolocation.getCurrentPosition(function (position) {
      var c = position.coords;
      $("session-latitude").value = c.latitude.toFixed(6);
      $("session-longitude").value = c.longitude.toFixed(6);
      var radius = $("session-radius");
      if (c.accuracy > Number(radius.value || 0)) radius.value = String(Math.min(5000, Math.ceil(c.accuracy / 10) * 10));
      A.setStatus(status, "Location set (accurate to ±" + A.metres(c.accuracy) + ").", "ok");
    }, function (error) {
      var text = error.code === 1
        ? "Location is blocked for this page (by the browser or the course page). Type the coordinates instead."
        : error.code === 3 ? "Finding your location took too long. Try again, or type the coordinates."
          : "Your location is not available right now. Type the coordinates instead.";
      A.setStatus(status, text, "error");
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 0 });
  }

  async function createSession(event) {
    event.preventDefault();
    var form = $("create-session-form");
    var payload = {
      title: $("session-title-input").value.trim(),
      starts_at: $("session-starts").value,
      ends_at: $("session-ends").value
    };
    var missing = {};
    if (!payload.title) missing.title = ["Give the session a title."];
    if (!payload.starts_at) missing.starts_at = ["Choose when it starts."];
    if (!payload.ends_at) missing.ends_at = ["Choose when it ends."];
    if (Object.keys(missing).length) {
      A.showFieldErrors(form, missing);
      A.setStatus($("create-status"), "Some fields need attention.", "error");
      return;
    }
    var lat = $("session-latitude").value, lon = $("session-longitude").value;
    if (lat !== "" || lon !== "") {
      payload.latitude = lat === "" ? null : Number(lat);
      payload.longitude = lon === "" ? null : Number(lon);
      if ($("session-radius").value !== "") payload.radius_m = Number($("session-radius").value);
    }
    if ($("session-repeat").checked && $("session-repeat-until").value) {
      payload.repeat_weekly_until = $("session-repeat-until").value + "T23:59:59";
    }
    var button = $("create-session");
    button.disabled = true;
    try {
      var data = await A.api("POST", "/api/class-sessions/", payload);
      A.showFieldErrors(form, {});
      var created = data.class_sessions || [data.class_session];
      A.setStatus($("create-status"), created.length === 1 ? "Session “" + created[0].title + "” created." : created.length + " weekly sessions created.", "ok");
      $("session-title-input").value = "";
      await loadSessions();
      selectSession(created[0].id, true);
    } catch (err) {
      A.showFieldErrors(form, err.fields || {});
      reportError($("create-status"), err, "The session was not created:");
    } finally {
      button.disabled = false;
    }
  }

  async function loadSettings() {
    try {
      var data = await A.api("GET", "/api/course-settings/");
      fillSettings(data.settings);
    } catch (err) {
      reportError($("settings-status"), err, "Could not load the settings:");
    }
  }

  function fillSettings(settings) {
    state.tz = settings.timezone || "UTC";
    root.dataset.timezone = state.tz;
    $("settings-timezone").value = state.tz;
    $("settings-present").value = settings.present_minutes;
    $("settings-late").value = settings.late_minutes;
    $("settings-rotation").value = settings.code_rotation_seconds;
    document.querySelectorAll(".course-tz").forEach(function (node) { node.textContent = state.tz; });
  }

  async function saveSettings(event) {
    event.preventDefault();
    var form = $("settings-form");
    var payload = { timezone: $("settings-timezone").value.trim() };
    [["present_minutes", "settings-present"], ["late_minutes", "settings-late"], ["code_rotation_seconds", "settings-rotation"]].forEach(function (pair) {
      var value = $(pair[1]).value;
      if (value !== "") payload[pair[0]] = Number(value);
    });
    try {
      var data = await A.api("POST", "/api/course-settings/", payload);
      A.showFieldErrors(form, {});
      fillSettings(data.settings);
      A.setStatus($("settings-status"), "Settings saved.", "ok");
      await loadSessions();
      prefillTimes();
    } catch (err) {
      A.showFieldErrors(form, err.fields || {});
      reportError($("settings-status"), err, "The settings were not saved:");
    }
  }

  function fillTimezones() {
    if (!Intl.supportedValuesOf) return;
    var list = $("timezones");
    try {
      Intl.supportedValuesOf("timeZone").forEach(function (zone) { list.appendChild(el("option", { value: zone })); });
    } catch (err) { /* older browsers: free text only */ }
  }

  // -- wiring ----------------------------------------------------------------------------------
  $("start-checkin").addEventListener("click", startCheckin);
  $("stop-checkin").addEventListener("click", stopCheckin);
  $("run-risk").addEventListener("click", runRisk);
  $("close-session").addEventListener("click", askClose);
  $("close-dialog").addEventListener("close", function () {
    if ($("close-dialog").returnValue === "confirm") closeSession();
    else $("close-session").focus();
  });
  $("bulk-apply").addEventListener("click", bulkApply);
  $("select-all").addEventListener("change", function (event) {
    $("submissions").querySelectorAll(".row-select").forEach(function (box) { box.checked = event.target.checked; });
    updateSelection();
  });
  $("create-session-form").addEventListener("submit", createSession);
  $("use-location").addEventListener("click", useMyLocation);
  $("session-repeat").addEventListener("change", function (event) {
    $("session-repeat-until").disabled = !event.target.checked;
    if (event.target.checked) $("session-repeat-until").focus();
  });
  $("settings-form").addEventListener("submit", saveSettings);
  $("justifications-pending").addEventListener("change", renderJustifications);
  $("close-document").addEventListener("click", closeDocument);
  $("document-viewer").addEventListener("keydown", function (event) { if (event.key === "Escape") closeDocument(); });
  $("projector-link").addEventListener("click", function (event) {
    if (!state.selected) event.preventDefault();
  });

  fillTimezones();
  prefillTimes();
  (async function start() {
    await loadSettings();
    prefillTimes();
    await loadSessions();
    await loadJustifications();
    root.dataset.ready = "true";
  })();
  window.setInterval(function () { if (!document.hidden) loadSessions(); }, 60000);
})();
