/* The session panel's toolbar: the risk check of every check-in, and closing the session. */
import { api } from "../api.js";
import { byId, reportError, setStatus } from "../dom.js";
import { hideCode } from "./checkin-box.js";
import { loadSessions } from "./sessions.js";
import { applyRisk, loadSubmissions } from "./submissions.js";

async function runRisk(store) {
  const s = store.selected;
  if (!s) return;
  const button = byId("run-risk");
  const status = byId("session-status");
  button.disabled = true;
  setStatus(status, "Checking the check-ins…");
  try {
    const data = await api("POST", "/api/run-ai-validation/", { class_session_id: s.id });
    const tally = { high: 0, medium: 0, low: 0 };
    (data.results || []).forEach((result) => {
      applyRisk(store, result);
      tally[result.level] = (tally[result.level] || 0) + 1;
    });
    setStatus(status, `Risk check done: ${tally.high} high, ${tally.medium} medium, ${tally.low} low. Open a risk level to read its reasons.`, "ok");
  } catch (err) {
    reportError(status, err, "The risk check failed:");
  } finally {
    button.disabled = false;
  }
}

function askClose(store) {
  const dialog = byId("close-dialog");
  if (typeof dialog.showModal !== "function") {
    if (window.confirm("Close this session? Every enrolled student without a record is recorded absent.")) closeSession(store);
    return;
  }
  dialog.returnValue = "";
  dialog.showModal();
  byId("close-cancel").focus();
}

async function closeSession(store) {
  const s = store.selected;
  if (!s) return;
  const status = byId("session-status");
  store.closing = true;
  try {
    const data = await api("POST", "/api/close-session/", { class_session_id: s.id });
    Object.assign(s, data.class_session);
    hideCode(store);
    store.changed("sessions");
    status.dataset.absentCount = String(data.absent_count);
    setStatus(status, `Session closed. ${data.absent_count} student(s) without a record were recorded absent.`, "ok");
    await loadSessions(store);
    await loadSubmissions(store);
  } catch (err) {
    reportError(status, err, "Could not close the session:");
  } finally {
    store.closing = false;
  }
  byId("close-session").focus();
}

/** Wire the risk check and the close button with its confirmation dialog. */
export function mountSessionActions(store) {
  byId("run-risk").addEventListener("click", () => runRisk(store));
  byId("close-session").addEventListener("click", () => askClose(store));
  byId("close-dialog").addEventListener("close", () => {
    if (byId("close-dialog").returnValue === "confirm") closeSession(store);
    else byId("close-session").focus();
  });
}
