/* The selected session's live socket: new check-ins, status changes, risk results, codes, stops and
 * closes made in other windows, and the connection state line. */
import { launchToken } from "../api.js";
import { announce, byId, setStatus } from "../dom.js";
import { statusLabel } from "../format.js";
import { liveSocket } from "../socket.js";
import { codeArrived, hideCode } from "./checkin-box.js";
import { loadSessions } from "./sessions.js";
import { applyRisk, loadSubmissions, upsertRow } from "./submissions.js";

const ANNOUNCE_AFTER_MS = 1500; // check-ins arriving together are announced together
const STATE_TEXT = {
  live: "Live: updates appear by themselves",
  connecting: "Connecting to live updates…",
  ended: "Live updates stopped: open Attendance again from your course.",
  offline: "Live updates interrupted, reconnecting…",
};

/** Watch this session live (closing the socket of the one shown before). */
export function connectLive(store, sessionId) {
  if (store.socket) store.socket.close();
  store.socket = liveSocket(sessionId, {
    token: launchToken(),
    onMessage: (message) => onMessage(store, message),
    onState: (state, reconnected) => onState(store, state, reconnected),
  });
}

function onState(store, state, reconnected) {
  const node = byId("live-state");
  node.dataset.state = state;
  node.textContent = STATE_TEXT[state] || STATE_TEXT.offline;
  if (state === "live") loadSubmissions(store); // catch up on anything sent while the socket was down
  if (reconnected) announce(byId("announcer"), "Live updates are back.");
}

function queueAnnouncement(store, record) {
  const pending = store.announcements;
  pending.queue.push(record);
  if (pending.timer) return;
  pending.timer = window.setTimeout(() => {
    const queue = pending.queue;
    pending.queue = [];
    pending.timer = null;
    announce(byId("announcer"), queue.length === 1
      ? `${queue[0].student.name} checked in, ${statusLabel(queue[0].status).toLowerCase()}.`
      : `${queue.length} new check-ins.`);
  }, ANNOUNCE_AFTER_MS);
}

function recordArrived(store, s, message) {
  const record = message.attendance;
  if (record.class_session_id !== undefined && record.class_session_id !== s.id) return;
  const isNew = !store.rows.has(record.id);
  upsertRow(store, record);
  if (message.type === "student_submission" && isNew) {
    s.submission_count = (s.submission_count || 0) + 1;
    store.changed("sessions");
    queueAnnouncement(store, record);
  }
}

/* Check-in of the shown session was stopped, here or in another window (another tab, a co-teacher):
 * the code goes away at once, so this page's rotation does not open check-in again. */
function checkinStopped(store, s) {
  if (s.closed) return;
  const wasShown = s.checkin_open || store.code !== null;
  s.checkin_open = false;
  hideCode(store);
  store.changed("sessions");
  if (store.stopping) return; // this page's own stop reports itself
  if (wasShown) {
    setStatus(byId("session-status"), "Check-in was stopped from another window. Students can no longer check in to this session.", "warn");
  }
  loadSessions(store);
}

/* The shown session was closed in another window: the same end state as closing it here. */
function sessionClosed(store, s, absentCount) {
  if (s.closed || store.closing) return; // this page's own close reports itself
  s.closed = true;
  s.checkin_open = false;
  hideCode(store);
  store.changed("sessions");
  const status = byId("session-status");
  const counted = absentCount !== undefined && absentCount !== null;
  if (counted) status.dataset.absentCount = String(absentCount);
  setStatus(status, `This session was closed from another window${counted
    ? `: ${absentCount} student(s) without a record were recorded absent.` : "."}`, "warn");
  loadSessions(store);
  loadSubmissions(store);
}

function onMessage(store, message) {
  const s = store.selected;
  if (!s) return;
  const other = message.class_session_id !== undefined && message.class_session_id !== s.id;
  switch (message.type) {
    case "student_submission":
    case "attendance_validated":
      if (message.attendance) recordArrived(store, s, message);
      break;
    case "ai_validation_result":
      if (message.result) applyRisk(store, message.result);
      break;
    case "code_generated":
      if (!other) codeArrived(store, message.code, message.expires_at);
      break;
    case "checkin_stopped":
      if (!other) checkinStopped(store, s);
      break;
    case "session_closed":
      if (!other) sessionClosed(store, s, message.absent_count);
      break;
    default:
      break;
  }
}
