/* The "Class sessions" panel: current and upcoming sessions, and the past ones folded away. */
import { api, serverNow } from "../api.js";
import { byId, clear, el, reportError } from "../dom.js";
import { formatRange } from "../format.js";
import { sessionById, sessionState, sessionTz } from "./store.js";

const PAST_AFTER_MS = 2 * 3600 * 1000; // ended this long ago: listed with the past sessions

/** Read the course's sessions (the selected one is refreshed with them). */
export async function loadSessions(store) {
  try {
    store.sessions = (await api("GET", "/api/class-sessions/")).class_sessions || [];
  } catch (err) {
    reportError(byId("page-status"), err, "Could not load the sessions:");
    return;
  }
  if (store.selected) store.selected = sessionById(store, store.selected.id) || store.selected;
  store.changed("sessions");
}

function sessionRow(store, session, { onManage, onStart }) {
  const [state, label] = sessionState(session);
  const isSelected = store.selected && store.selected.id === session.id;
  return el("tr", { dataset: { sessionId: session.id, state }, class: isSelected ? "selected" : null },
    el("th", { scope: "row" }, session.title, session.series_id ? el("span", { class: "muted small" }, " (weekly)") : null),
    el("td", {}, formatRange(session.starts_at, session.ends_at, sessionTz(store, session))),
    el("td", {}, el("span", { class: `badge state-${state}` }, label)),
    el("td", { class: "num" }, String(session.submission_count || 0)),
    el("td", { class: "actions" },
      el("button", {
        type: "button", class: "secondary small", dataset: { action: "open" },
        "aria-label": `Manage ${session.title}`, "aria-controls": "session-panel",
        onclick: () => onManage(session.id),
      }, "Manage"),
      session.closed ? null : el("button", {
        type: "button", class: "small", dataset: { action: "start" },
        "aria-label": `Start check-in for ${session.title}`,
        onclick: () => onStart(session.id),
      }, "Start check-in")));
}

/** The button with the keyboard focus, as [session id, action], to focus again once the rows are rebuilt. */
function focusedButton() {
  const focused = document.activeElement;
  const row = focused && focused.closest && focused.closest("tr[data-session-id]");
  return row && focused.dataset.action ? [row.dataset.sessionId, focused.dataset.action] : null;
}

/** Render the sessions tables; handlers: {onManage(id), onStart(id)}. */
export function renderSessions(store, handlers) {
  const now = serverNow();
  const current = [];
  const past = [];
  store.sessions.forEach((s) => {
    const over = Date.parse(s.ends_at) < now - PAST_AFTER_MS;
    (over && !s.checkin_open ? past : current).push(s);
  });
  past.sort((a, b) => Date.parse(b.starts_at) - Date.parse(a.starts_at));
  const refocus = focusedButton();
  const body = clear(byId("sessions").tBodies[0]);
  if (!current.length) {
    body.appendChild(el("tr", { class: "placeholder" }, el("td", { colspan: 5 },
      store.sessions.length ? "No current or upcoming sessions." : "No sessions yet. Create one below, or start check-in from a session.")));
  }
  current.forEach((s) => body.appendChild(sessionRow(store, s, handlers)));
  const pastBody = clear(byId("past-sessions-table").tBodies[0]);
  past.forEach((s) => pastBody.appendChild(sessionRow(store, s, handlers)));
  byId("past-count").textContent = String(past.length);
  byId("past-sessions").hidden = past.length === 0;
  if (refocus) {
    const again = document.querySelector(`tr[data-session-id="${refocus[0]}"] [data-action="${refocus[1]}"]`);
    if (again) again.focus();
  }
}
