/* The check-in box of the session panel: start and stop check-in, and the rotating code with its countdown. */
import { api, launchToken } from "../api.js";
import { byId, reportError, setStatus } from "../dom.js";
import { createRotation } from "../rotation.js";
import { loadSessions } from "./sessions.js";

const RETRY_MS = 3000;
const CODE_GONE_STATUSES = [401, 403, 404, 409]; // no code for this page: expired, not allowed, gone, not open

export function projectorUrl(sessionId) {
  return `/projector/${encodeURIComponent(sessionId)}#token=${encodeURIComponent(launchToken())}`;
}

function rotationOf(store) {
  store.rotation = store.rotation || createRotation({
    every: 1000,
    onTick: ({ secondsLeft }) => { byId("code-countdown").textContent = `Changes in ${secondsLeft} s`; },
    onExpire: () => refreshCode(store),
  });
  return store.rotation;
}

/** Show the selected session's code until expiresAt, then fetch the next one. */
function showCode(store, code, expiresAt) {
  const s = store.selected;
  if (!s || !code) return;
  store.code = { value: code, sessionId: s.id };
  store.changed("code");
  rotationOf(store).show(expiresAt);
}

export function hideCode(store) {
  store.code = null;
  if (store.rotation) store.rotation.stop();
  store.changed("code");
}

/** Mark the selected session's check-in open (a code arrived for it). */
function noteOpen(store, s) {
  if (s.checkin_open) return;
  s.checkin_open = true;
  store.changed("sessions");
}

/** Fetch the code valid now; a refresh only reads it, it never reopens a check-in someone just stopped. */
export async function refreshCode(store) {
  const s = store.selected;
  if (!s || s.closed) return;
  try {
    const data = await api("POST", "/api/generate-code/", { class_session_id: s.id, reopen: false });
    if (!store.selected || store.selected.id !== data.class_session_id) return;
    noteOpen(store, s);
    showCode(store, data.code, data.expires_at);
  } catch (err) {
    if (CODE_GONE_STATUSES.includes(err.status)) {
      s.checkin_open = false; // as far as this page can tell: it gets no code
      hideCode(store);
      store.changed("sessions");
      reportError(byId("session-status"), err);
    } else {
      rotationOf(store).later(() => refreshCode(store), RETRY_MS);
    }
  }
}

/** A code_generated message for the selected session (started here or in another window). */
export function codeArrived(store, code, expiresAt) {
  const s = store.selected;
  if (!s) return;
  noteOpen(store, s);
  showCode(store, code, expiresAt);
}

export async function startCheckin(store) {
  const s = store.selected;
  if (!s) return;
  if (byId("open-projector").checked) {
    // Opened in the click itself: a window opened after an await may be blocked as a pop-up.
    window.open(projectorUrl(s.id), `attendance-projector-${s.id}`, "noopener");
  }
  const button = byId("start-checkin");
  button.disabled = true;
  try {
    const data = await api("POST", "/api/generate-code/", { class_session_id: s.id });
    s.checkin_open = true;
    showCode(store, data.code, data.expires_at);
    setStatus(byId("session-status"), "Check-in is open. Show the code or the projector view to the class.", "ok");
    await loadSessions(store);
  } catch (err) {
    reportError(byId("session-status"), err, "Could not start check-in:");
  } finally {
    button.disabled = false;
  }
}

export async function stopCheckin(store) {
  const s = store.selected;
  if (!s) return;
  store.stopping = true;
  try {
    const data = await api("POST", "/api/stop-checkin/", { class_session_id: s.id });
    Object.assign(s, data.class_session);
    hideCode(store);
    store.changed("sessions");
    setStatus(byId("session-status"), "Check-in stopped. Students can no longer check in to this session.", "ok");
    await loadSessions(store);
    byId("start-checkin").focus();
  } catch (err) {
    reportError(byId("session-status"), err, "Could not stop check-in:");
  } finally {
    store.stopping = false;
  }
}

/** Drop the code of a selected session that is no longer open (stopped, closed, its window over). */
export function dropCodeIfNotOpen(store) {
  const s = store.selected;
  if (store.code && (!s || !s.checkin_open || s.closed)) hideCode(store);
}

/** Render the code box: the code while one is shown, and which of start and stop applies. */
export function renderCheckinBox(store) {
  const s = store.selected;
  if (!s) return;
  const shown = store.code !== null && store.code.sessionId === s.id;
  const canStart = !s.closed && !s.checkin_open && !shown;
  const code = byId("current-code");
  byId("code-display").hidden = !shown;
  code.textContent = shown ? store.code.value : "";
  code.dataset.code = shown ? store.code.value : "";
  byId("start-checkin").hidden = !canStart;
  byId("start-checkin").textContent = s.checkin_opened_at && !s.checkin_open ? "Restart check-in" : "Start check-in";
  byId("open-projector").closest("label").hidden = !canStart;
  byId("stop-checkin").hidden = !(s.checkin_open || shown);
}
