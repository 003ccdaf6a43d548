/* The projector view: the big rotating code, its QR code, the course and session, the live count.
 * The teacher's launch token arrives in the URL fragment (never sent to the server) and is moved
 * to this tab's session storage at once, so the address bar shown to the room does not carry it.
 *
 * The code goes away as soon as the session's WebSocket says check-in was stopped or the session
 * closed; each rotation also re-reads the session first (GET /api/class-sessions/), which catches
 * what a dropped socket missed and the end of the check-in window (no message is sent for that). */
import { ApiError, api, setLaunchToken, serverNow } from "./js/api.js";
import { config } from "./js/config.js";
import { byId, setStatus } from "./js/dom.js";
import { formatRange, formatTime } from "./js/format.js";
import { createRotation } from "./js/rotation.js";
import { liveSocket } from "./js/socket.js";

const RETRY_MS = 3000;
const GIVE_UP_STATUSES = [401, 403, 404, 409];
const LIVE_TEXT = { live: "● live", connecting: "connecting…", ended: "not live: open the projector view again" };

function takeToken(sessionId) {
  const storageKey = `attendance-projector-token-${sessionId}`;
  const fromHash = new URLSearchParams(window.location.hash.replace(/^#/, "")).get("token");
  let token = fromHash || null;
  try {
    if (fromHash) window.sessionStorage.setItem(storageKey, fromHash);
    else token = window.sessionStorage.getItem(storageKey);
  } catch { /* storage blocked: the token lives in memory only */ }
  if (fromHash) history.replaceState(null, "", window.location.pathname + window.location.search);
  return token;
}

function message(text, kind) {
  setStatus(byId("projector-message"), text, kind);
}

function lateUntilPassed(session) {
  return session.late_until && serverNow() > Date.parse(session.late_until);
}

function renderSession(session) {
  byId("projector-course").textContent = session.course_title || "";
  byId("projector-title").textContent = session.title;
  byId("projector-when").textContent = formatRange(session.starts_at, session.ends_at, session.timezone);
  document.title = `${session.title} · check-in code`;
}

/* The session as the teacher's course lists it (with its course title); a 404 when it is not there. */
async function loadSession(view) {
  const data = await api("GET", "/api/class-sessions/");
  const session = (data.class_sessions || []).find((row) => row.id === view.sessionId);
  if (!session) throw new ApiError(404, "not_found", "This class session is not in the course you opened Attendance from.");
  renderSession(session);
  return session;
}

function stopped(view, text) {
  view.run += 1;
  view.rotation.stop();
  view.code = null;
  const code = byId("projector-code");
  code.textContent = "······";
  code.dataset.code = "";
  code.classList.add("stale");
  byId("projector-qr").hidden = true;
  byId("projector-bar").style.width = "0";
  byId("projector-countdown").textContent = "\u00a0";
  message(text, "warn");
  byId("projector-restart").hidden = view.closed;
}

function closedForGood(view) {
  view.closed = true;
  stopped(view, "This class session is closed.");
  if (view.socket) view.socket.close(); // nothing more will happen in a closed session
  const live = byId("projector-live");
  live.dataset.state = "closed";
  live.textContent = "\u00a0";
}

/* Why a session shows no code: answer the text to show, or null when it may show one. */
function reasonForNoCode(session, initial) {
  const closesAt = formatTime(session.late_until, session.timezone);
  if (!initial && !session.checkin_open) {
    return lateUntilPassed(session) ? `Check-in closed at ${closesAt}.` : "Check-in was stopped from the dashboard.";
  }
  if (initial && session.checkin_opened_at && lateUntilPassed(session)) return `Check-in for this class closed at ${closesAt}.`;
  return null;
}

/* One rotation: check that check-in is still wanted, then fetch the code valid now and its QR. */
async function cycle(view, initial) {
  view.rotation.cancel();
  if (view.closed) return;
  const run = view.run;
  view.busy += 1;
  try {
    const session = await loadSession(view);
    if (run !== view.run) return; // stopped live meanwhile
    if (session.closed) return closedForGood(view);
    const reason = reasonForNoCode(session, initial);
    if (reason) return stopped(view, reason);
    // A rotation only reads the code: it must never reopen a check-in someone just stopped.
    const data = await api("POST", "/api/generate-code/", { class_session_id: view.sessionId, reopen: !!initial });
    if (run !== view.run) return;
    byId("projector-restart").hidden = true;
    message(`Check-in closes at ${formatTime(session.late_until, session.timezone)}. Late after ${formatTime(session.present_until, session.timezone)}.`);
    view.rotationSeconds = data.rotation_seconds || view.rotationSeconds;
    showCode(view, data.code, data.expires_at);
  } catch (err) {
    if (run !== view.run) return;
    if (err.code === "session_closed") return closedForGood(view);
    if (GIVE_UP_STATUSES.includes(err.status)) {
      return stopped(view, err.status === 401 ? "This projector view has expired. Open it again from the Attendance dashboard." : err.message);
    }
    byId("projector-code").classList.add("stale");
    message("Connection lost. Retrying…", "warn");
    view.rotation.later(() => cycle(view, initial), RETRY_MS);
  } finally {
    view.busy -= 1;
  }
}

function showCode(view, code, expiresAt) {
  const node = byId("projector-code");
  node.classList.remove("stale");
  if (view.code !== code) {
    node.textContent = code;
    node.dataset.code = code;
    view.code = code;
    loadQr(view);
  }
  view.rotation.show(expiresAt);
}

function renderCountdown(view, { msLeft, secondsLeft }) {
  byId("projector-bar").style.width = `${Math.min(100, (100 * msLeft) / (view.rotationSeconds * 1000))}%`;
  byId("projector-countdown").textContent = `New code in ${secondsLeft} s`;
}

async function loadQr(view) {
  const img = byId("projector-qr");
  try {
    const response = await api("GET", "/api/qr-code/", { class_session_id: view.sessionId }, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    const previous = view.qrUrl;
    img.onload = () => { if (previous) URL.revokeObjectURL(previous); };
    img.src = url;
    img.hidden = false;
    view.qrUrl = url;
  } catch {
    img.hidden = true;
  }
}

function renderCount(view) {
  const n = view.ids.size;
  byId("checkin-count").textContent = String(n);
  byId("checkin-count-label").textContent = n === 1 ? "student checked in" : "students checked in";
}

async function loadCount(view) {
  try {
    const data = await api("GET", "/api/get-session-submissions/", { class_session_id: view.sessionId });
    (data.submissions || []).forEach((r) => { if (r.source === "checkin" || r.submitted_at) view.ids.add(r.id); });
    renderCount(view);
  } catch { /* the count is a nicety */ }
}

function onLive(view, body) {
  if (body.class_session_id !== undefined && body.class_session_id !== view.sessionId) return;
  if (body.type === "student_submission" && body.attendance) {
    view.ids.add(body.attendance.id);
    renderCount(view);
  } else if (body.type === "checkin_stopped") {
    if (!view.closed) stopped(view, "Check-in was stopped from the dashboard.");
  } else if (body.type === "session_closed") {
    closedForGood(view);
  } else if (body.type === "code_generated" && body.code) {
    if (view.code) {
      if (body.code !== view.code) showCode(view, body.code, body.expires_at);
    } else if (!view.closed && !view.busy) {
      cycle(view, false); // check-in was started again from the dashboard: show its code here too
    }
  }
}

function onLiveState(view, state, reconnected) {
  if (view.closed) return;
  const node = byId("projector-live");
  node.dataset.state = state;
  node.textContent = LIVE_TEXT[state] || "reconnecting…";
  if (state === "live") loadCount(view);
  // A stop sent while the socket was down was missed: re-check now rather than at the next rotation.
  if (state === "live" && reconnected && view.code && !view.busy) cycle(view, false);
}

function start() {
  const view = {
    sessionId: Number(document.body.dataset.classSessionId),
    code: null, qrUrl: null, ids: new Set(), socket: null,
    rotationSeconds: config.code_rotation_seconds, // the site default until the server says the class's own
    run: 0, // bumped by every stop: a rotation that was under way when check-in stopped must not show a code again
    busy: 0, // rotations under way
    closed: false, // the session is closed: nothing can restart check-in
  };
  view.rotation = createRotation({
    every: 250, onTick: (left) => renderCountdown(view, left), onExpire: () => cycle(view, false),
  });
  byId("projector-fullscreen").addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (document.documentElement.requestFullscreen) document.documentElement.requestFullscreen().catch(() => {});
  });
  byId("projector-restart").addEventListener("click", () => cycle(view, true));

  const token = takeToken(view.sessionId);
  if (!token) {
    stopped(view, "Open the projector view from the Attendance dashboard in your course.");
    byId("projector-restart").hidden = true;
    return;
  }
  setLaunchToken(token);
  cycle(view, true);
  loadCount(view);
  view.socket = liveSocket(view.sessionId, {
    token, onMessage: (body) => onLive(view, body), onState: (state, again) => onLiveState(view, state, again),
  });
}

start();
