/* The session panel: the selected session's heading, its check-in window and links. Selecting a
 * session resets the panel and opens its live socket. */
import { byId, clear, setStatus } from "../dom.js";
import { formatRange, formatTime, metres } from "../format.js";
import { hideCode, projectorUrl, refreshCode } from "./checkin-box.js";
import { connectLive } from "./live.js";
import { loadStudents } from "./roster.js";
import { loadSubmissions } from "./submissions.js";
import { sessionById, sessionState, sessionTz } from "./store.js";

/** Show a session in the panel (focus its heading when asked); a new one starts from an empty table. */
export function selectSession(store, id, focus) {
  const session = sessionById(store, id);
  if (!session) return;
  const changed = !store.selected || store.selected.id !== session.id;
  store.selected = session;
  byId("session-panel").hidden = false;
  if (changed) {
    store.rows = new Map();
    clear(byId("submissions").tBodies[0]);
    setStatus(byId("session-status"), "");
    hideCode(store);
    connectLive(store, session.id);
    loadSubmissions(store);
    loadStudents(store);
    if (session.checkin_open) refreshCode(store);
  }
  store.changed("sessions", "rows");
  if (focus) byId("session-title").focus();
}

function whereText(s) {
  return s.latitude !== null && s.latitude !== undefined
    ? ` · classroom location set (${metres(s.radius_m)} radius)` : " · no classroom location";
}

/** Render the panel's heading: title, when, state, classroom, the check-in window, the projector link. */
export function renderSessionPanel(store) {
  const s = store.selected;
  if (!s) return;
  const tz = sessionTz(store, s);
  byId("session-panel").dataset.sessionId = String(s.id);
  byId("session-title").textContent = s.title;
  byId("session-when").textContent = `${formatRange(s.starts_at, s.ends_at, tz)} · ${sessionState(s)[1]}${whereText(s)}`;
  byId("projector-link").href = projectorUrl(s.id);
  byId("close-session").disabled = s.closed;
  byId("close-session").textContent = s.closed ? "Session closed" : "Close session…";
  byId("checkin-window").textContent = s.late_until
    ? `Present until ${formatTime(s.present_until, tz)}, late until ${formatTime(s.late_until, tz)}.` : "";
}
