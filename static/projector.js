/* The projector view: the big rotating code, its QR code, the course and session, the live count.
 * The teacher's launch token arrives in the URL fragment (never sent to the server) and is moved
 * to this tab's session storage at once, so the address bar shown to the room does not carry it.
 *
 * The code goes away as soon as the session's WebSocket says check-in was stopped or the session
 * closed; each rotation also re-reads the session first (GET /api/class-sessions/), which catches
 * what a dropped socket missed and the end of the check-in window (no message is sent for that). */
(function () {
  "use strict";
  var A = window.Attendance;
  var $ = function (id) { return document.getElementById(id); };
  var sessionId = Number(document.body.dataset.classSessionId);
  var storageKey = "attendance-projector-token-" + sessionId;

  function takeToken() {
    var fromHash = new URLSearchParams(window.location.hash.replace(/^#/, "")).get("token");
    var token = fromHash || null;
    try {
      if (fromHash) window.sessionStorage.setItem(storageKey, fromHash);
      else token = window.sessionStorage.getItem(storageKey);
    } catch (err) { /* storage blocked: the token lives in memory only */ }
    if (fromHash && window.history && history.replaceState) {
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    return token;
  }

  var state = {
    session: null, code: null, expiresAt: 0, rotation: 15, timer: null, tick: null, qrUrl: null, ids: new Set(), socket: null,
    run: 0, // bumped by every stop: a rotation that was under way when check-in stopped must not show a code again
    busy: 0, // rotations under way
    closed: false // the session is closed: nothing can restart check-in
  };

  function message(text, kind) {
    A.setStatus($("projector-message"), text, kind);
  }

  function lateUntilPassed(s) {
    return s.late_until && A.serverNow() > Date.parse(s.late_until);
  }

  /* The session as the teacher's course lists it (with its course title); a 404 when it is not there. */
  async function loadSession() {
    var data = await A.api("GET", "/api/class-sessions/");
    var s = (data.class_sessions || []).find(function (row) { return row.id === sessionId; });
    if (!s) throw new A.ApiError(404, "not_found", "This class session is not in the course you opened Attendance from.");
    state.session = s;
    $("projector-course").textContent = s.course_title || "";
    $("projector-title").textContent = s.title;
    $("projector-when").textContent = A.formatRange(s.starts_at, s.ends_at, s.timezone);
    document.title = s.title + " · check-in code";
    return s;
  }

  function stopped(text) {
    state.run += 1;
    window.clearTimeout(state.timer);
    window.clearInterval(state.tick);
    state.code = null;
    var code = $("projector-code");
    code.textContent = "······";
    code.dataset.code = "";
    code.classList.add("stale");
    $("projector-qr").hidden = true;
    $("projector-bar").style.width = "0";
    $("projector-countdown").textContent = "\u00a0";
    message(text, "warn");
    $("projector-restart").hidden = state.closed;
  }

  function closedForGood() {
    state.closed = true;
    stopped("This class session is closed.");
    if (state.socket) state.socket.close(); // nothing more will happen in a closed session
    var live = $("projector-live");
    live.dataset.state = "closed";
    live.textContent = "\u00a0";
  }

  /* One rotation: check that check-in is still wanted, then fetch the code valid now and its QR. */
  async function cycle(initial) {
    window.clearTimeout(state.timer);
    if (state.closed) return;
    var run = state.run;
    state.busy += 1;
    try {
      var s = await loadSession();
      if (run !== state.run) return; // stopped live meanwhile
      if (s.closed) return closedForGood();
      if (!initial && !s.checkin_open) {
        return stopped(lateUntilPassed(s) ? "Check-in closed at " + A.formatTime(s.late_until, s.timezone) + "." : "Check-in was stopped from the dashboard.");
      }
      if (initial && s.checkin_opened_at && lateUntilPassed(s)) {
        return stopped("Check-in for this class closed at " + A.formatTime(s.late_until, s.timezone) + ".");
      }
      // A rotation only reads the code: it must never reopen a check-in someone just stopped.
      var data = await A.api("POST", "/api/generate-code/", { class_session_id: sessionId, reopen: !!initial });
      if (run !== state.run) return;
      $("projector-restart").hidden = true;
      message("Check-in closes at " + A.formatTime(s.late_until, s.timezone) + ". Late after " + A.formatTime(s.present_until, s.timezone) + ".");
      state.rotation = data.rotation_seconds || state.rotation;
      showCode(data.code, data.expires_at);
    } catch (err) {
      if (run !== state.run) return;
      if (err.code === "session_closed") return closedForGood();
      if (err.status === 401 || err.status === 403 || err.status === 404 || err.status === 409) {
        return stopped(err.status === 401 ? "This projector view has expired. Open it again from the Attendance dashboard." : err.message);
      }
      $("projector-code").classList.add("stale");
      message("Connection lost. Retrying…", "warn");
      state.timer = window.setTimeout(function () { cycle(initial); }, 3000);
    } finally {
      state.busy -= 1;
    }
  }

  function showCode(code, expiresAt) {
    var node = $("projector-code");
    node.classList.remove("stale");
    if (state.code !== code) {
      node.textContent = code;
      node.dataset.code = code;
      state.code = code;
      loadQr();
    }
    state.expiresAt = Date.parse(expiresAt);
    tick();
    window.clearInterval(state.tick);
    state.tick = window.setInterval(tick, 250);
    window.clearTimeout(state.timer);
    state.timer = window.setTimeout(function () { cycle(false); }, Math.max(500, state.expiresAt - A.serverNow() + 250));
  }

  function tick() {
    var leftMs = Math.max(0, state.expiresAt - A.serverNow());
    $("projector-bar").style.width = Math.min(100, (100 * leftMs) / (state.rotation * 1000)) + "%";
    $("projector-countdown").textContent = "New code in " + Math.ceil(leftMs / 1000) + " s";
  }

  async function loadQr() {
    try {
      var response = await A.api("GET", "/api/qr-code/", { class_session_id: sessionId }, { raw: true });
      var blob = await response.blob();
      var url = URL.createObjectURL(blob);
      var img = $("projector-qr");
      var previous = state.qrUrl;
      img.onload = function () { if (previous) URL.revokeObjectURL(previous); };
      img.src = url;
      img.hidden = false;
      state.qrUrl = url;
    } catch (err) {
      $("projector-qr").hidden = true;
    }
  }

  function showCount() {
    var n = state.ids.size;
    $("checkin-count").textContent = String(n);
    $("checkin-count-label").textContent = n === 1 ? "student checked in" : "students checked in";
  }

  async function loadCount() {
    try {
      var data = await A.api("GET", "/api/get-session-submissions/", { class_session_id: sessionId });
      (data.submissions || []).forEach(function (r) { if (r.source === "checkin" || r.submitted_at) state.ids.add(r.id); });
      showCount();
    } catch (err) { /* the count is a nicety */ }
  }

  function onLive(messageBody) {
    if (messageBody.class_session_id !== undefined && messageBody.class_session_id !== sessionId) return;
    if (messageBody.type === "student_submission" && messageBody.attendance) {
      state.ids.add(messageBody.attendance.id);
      showCount();
    } else if (messageBody.type === "checkin_stopped") {
      if (!state.closed) stopped("Check-in was stopped from the dashboard.");
    } else if (messageBody.type === "session_closed") {
      closedForGood();
    } else if (messageBody.type === "code_generated" && messageBody.code) {
      if (state.code) {
        if (messageBody.code !== state.code) showCode(messageBody.code, messageBody.expires_at);
      } else if (!state.closed && !state.busy && A.auth.token) {
        cycle(false); // check-in was started again from the dashboard: show its code here too
      }
    }
  }

  function onLiveState(liveState, reconnected) {
    if (state.closed) return;
    var node = $("projector-live");
    node.dataset.state = liveState;
    node.textContent = liveState === "live" ? "● live" : liveState === "connecting" ? "connecting…"
      : liveState === "ended" ? "not live: open the projector view again" : "reconnecting…";
    if (liveState === "live") loadCount();
    // A stop sent while the socket was down was missed: re-check now rather than at the next rotation.
    if (liveState === "live" && reconnected && state.code && !state.busy) cycle(false);
  }

  $("projector-fullscreen").addEventListener("click", function () {
    var page = document.documentElement;
    if (document.fullscreenElement) document.exitFullscreen();
    else if (page.requestFullscreen) page.requestFullscreen().catch(function () {});
  });
  $("projector-restart").addEventListener("click", function () { cycle(true); });

  var token = takeToken();
  if (!token) {
    stopped("Open the projector view from the Attendance dashboard in your course.");
    $("projector-restart").hidden = true;
    return;
  }
  A.auth.token = token;
  cycle(true);
  loadCount();
  state.socket = A.liveSocket(sessionId, token, onLive, onLiveState);
})();
