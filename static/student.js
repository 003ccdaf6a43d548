/* The student page: check in with the code (and the browser's location when the class has a room),
 * today's and this week's classes, history, and absence justifications. */
import { api, launchToken } from "./js/api.js";
import { checkIn, deviceId, looksLikeCode, normalizeCode, updateCheckedIn } from "./js/checkin.js";
import { config } from "./js/config.js";
import { byId, clear, el, setStatus, showFieldErrors } from "./js/dom.js";
import { formatDateTime, formatRange, formatTime, statusBadge, statusLabel } from "./js/format.js";
import { liveSocket } from "./js/socket.js";

const REFRESH_MS = 30000;

// -- classes ---------------------------------------------------------------------------------------
function classItem(store, c, withDate) {
  const tz = c.timezone || store.tz;
  const when = withDate ? formatRange(c.starts_at, c.ends_at, tz) : `${formatTime(c.starts_at, tz)} – ${formatTime(c.ends_at, tz)}`;
  const badge = c.my_status ? statusBadge(c.my_status)
    : c.closed ? el("span", { class: "badge state-closed" }, "Closed")
      : c.checkin_open ? el("span", { class: "badge state-open" }, "Check-in open") : null;
  return el("li", { dataset: { classSessionId: c.class_session_id, myStatus: c.my_status || "" } },
    el("span", { class: "class-title" }, c.title),
    el("span", { class: "muted" }, ` · ${c.course_title} · ${when} `),
    el("span", { class: "my-status" }, badge));
}

function renderClassList(store, node, classes, emptyText, withDate) {
  clear(node);
  if (!classes.length) node.appendChild(el("li", { class: "muted" }, emptyText));
  classes.forEach((c) => node.appendChild(classItem(store, c, withDate)));
}

async function loadCurrent(store) {
  try {
    store.current = (await api("GET", "/api/student/current-classes/")).classes || [];
  } catch (err) {
    setStatus(byId("checkin-result"), err.message, "error");
    return;
  }
  renderClassList(store, byId("current-classes"), store.current,
    "No class is open for check-in right now. When your teacher starts check-in, it appears here.", false);
  watchCurrent(store);
}

async function loadLists(store) {
  const [today, week] = await Promise.allSettled([
    api("GET", "/api/student/today-classes/"),
    api("GET", "/api/student/weekly-classes/"),
  ]);
  const classes = (result) => (result.status === "fulfilled" ? result.value.classes : []);
  renderClassList(store, byId("today-classes"), classes(today), "No classes today.", false);
  renderClassList(store, byId("week-classes"), classes(week), "No classes this week.", true);
}

// -- live status of my own records -------------------------------------------------------------------
/* One socket for the whole page: it carries changes to my records of every session, so it only needs
 * a session of this page's course to open on (the server checks that). Without open classes, none. */
function watchCurrent(store) {
  const open = store.current.filter((c) => !c.closed);
  if (!open.length) {
    if (store.socket) store.socket.close();
    store.socket = null;
    return;
  }
  if (store.socket) return;
  const here = open.find((c) => c.course_id === store.courseId);
  if (!here) return; // other courses' classes only: the 30 s refresh keeps them current
  const socket = liveSocket(here.class_session_id, {
    token: launchToken(),
    onMessage: (message) => onLiveMessage(store, message),
    onState: (state) => {
      if (state === "ended" && store.socket === socket) store.socket = null; // the next refresh may open another
    },
  });
  store.socket = socket;
}

function onLiveMessage(store, message) {
  const record = message.attendance;
  if ((message.type !== "attendance_validated" && message.type !== "student_submission") || !record) return;
  const item = store.current.find((c) => c.class_session_id === record.class_session_id);
  const changed = !item || item.my_status !== record.status;
  if (item) item.my_status = record.status;
  document.querySelectorAll(`li[data-class-session-id="${record.class_session_id}"]`).forEach((li) => {
    li.dataset.myStatus = record.status;
    clear(li.querySelector(".my-status")).appendChild(statusBadge(record.status));
  });
  updateCheckedIn(byId("checkin-result"), record);
  if (message.type === "attendance_validated" && changed) {
    const title = item ? item.title : "your class";
    setStatus(byId("live-message"), `Your teacher set your attendance for ${title} to ${statusLabel(record.status).toLowerCase()}.`, "ok");
    loadHistory(store);
  }
}

// -- check in ----------------------------------------------------------------------------------------
/* Ask for a location only when an open class has a room to compare it with (looking again first
 * when no class was open: check-in may have opened since the page loaded). */
async function wantsLocation(store) {
  if (!store.current.some((c) => c.checkin_open)) await loadCurrent(store);
  return store.current.some((c) => c.checkin_open && c.has_location);
}

async function submitCode(store, event) {
  event.preventDefault();
  const input = byId("attendance-code");
  const fields = { input, button: byId("checkin-submit"), result: byId("checkin-result"), locationLine: byId("location-message") };
  const record = await checkIn(fields, {
    wantsLocation: () => wantsLocation(store),
    extra: { device_id: deviceId() },
    detail: (checked) => {
      const item = store.current.find((c) => c.class_session_id === checked.class_session_id);
      return `${item ? `${item.title} · ` : ""}at ${formatTime(checked.submitted_at, item ? item.timezone : store.tz, true)}`;
    },
  });
  if (!record) return;
  input.value = "";
  await loadCurrent(store);
  loadLists(store);
  loadHistory(store);
}

// -- history -----------------------------------------------------------------------------------------
function sessionTz(store, id) {
  const session = store.sessions.find((s) => s.id === id);
  return (session && session.timezone) || store.tz;
}

function renderHistory(store, data) {
  const number = (value) => el("td", { class: "num" }, String(value));
  const summary = clear(byId("summary").tBodies[0]);
  (data.summary || []).forEach((row) => {
    summary.appendChild(el("tr", { dataset: { courseId: row.course_id } },
      el("th", { scope: "row" }, row.course_title),
      number(row.attended), number(row.late), number(row.excused), number(row.absent),
      el("td", { class: "num" }, row.percentage === null || row.percentage === undefined ? "—" : `${row.percentage} %`)));
  });
  const history = clear(byId("history").tBodies[0]);
  (data.history || []).forEach((row) => {
    history.appendChild(el("tr", { dataset: { attendanceId: row.attendance_id, classSessionId: row.class_session_id } },
      el("td", {}, formatDateTime(row.starts_at, sessionTz(store, row.class_session_id))),
      el("td", {}, row.course_title),
      el("th", { scope: "row" }, row.title),
      el("td", {}, statusBadge(row.status)),
      el("td", {}, row.remark || "")));
  });
  byId("no-history").hidden = (data.history || []).length > 0;
  byId("summary").closest(".table-wrap").hidden = !(data.summary || []).length;
  byId("history").closest(".table-wrap").hidden = !(data.history || []).length;
}

async function loadHistory(store) {
  let data;
  try {
    data = await api("GET", "/api/student/attendance-history/");
  } catch (err) {
    setStatus(byId("justification-status"), err.message, "error");
    return;
  }
  renderHistory(store, data);
  store.history = data.history || [];
  renderJustificationSessions(store);
}

// -- justifications ----------------------------------------------------------------------------------
async function loadSessions(store) {
  try {
    store.sessions = (await api("GET", "/api/class-sessions/")).class_sessions || [];
  } catch {
    store.sessions = [];
  }
  renderJustificationSessions(store);
}

/** The classes a justification can be for: those without a record, or recorded absent. */
function renderJustificationSessions(store) {
  const select = byId("justification-session");
  const chosen = select.value;
  const statusOf = new Map(store.history.map((h) => [h.class_session_id, h.status]));
  while (select.options.length > 1) select.remove(1);
  const sessions = [...store.sessions].sort((a, b) => Date.parse(b.starts_at) - Date.parse(a.starts_at));
  sessions.forEach((s) => {
    const status = statusOf.get(s.id);
    if (status && status !== "absent") return;
    const label = `${formatDateTime(s.starts_at, s.timezone || store.tz)} — ${s.title}${status === "absent" ? " (absent)" : ""}`;
    select.appendChild(el("option", { value: s.id }, label));
  });
  select.value = chosen;
}

function justificationErrors(sessionId, reason, file) {
  const missing = {};
  if (!sessionId) missing.class_session_id = ["Choose the class you missed."];
  if (!reason) missing.reason = ["Write the reason for your absence."];
  if (file && !config.document_types.includes(file.type)) missing.document = ["Choose a PDF, JPEG or PNG file."];
  return missing;
}

async function sendJustification(event) {
  event.preventDefault();
  const form = byId("justification-form");
  const status = byId("justification-status");
  const sessionId = byId("justification-session").value;
  const reason = byId("justification-reason").value.trim();
  const file = byId("justification-document").files[0];
  const missing = justificationErrors(sessionId, reason, file);
  if (Object.keys(missing).length) {
    showFieldErrors(form, missing);
    setStatus(status, "Some fields need attention.", "error");
    return;
  }
  const body = new FormData();
  body.append("class_session_id", sessionId);
  body.append("reason", reason);
  if (file) body.append("document", file, file.name);
  const button = byId("justification-submit");
  button.disabled = true;
  setStatus(status, "Sending…");
  try {
    await api("POST", "/api/submit-justification/", body);
    showFieldErrors(form, {});
    form.reset();
    setStatus(status, "Sent. Your teacher will review it; an approved justification turns the absence into an excused one.", "ok");
  } catch (err) {
    const aboutTheFile = err.code === "unsupported_media_type" || err.code === "payload_too_large";
    showFieldErrors(form, aboutTheFile ? { document: [err.message] } : err.fields || {});
    setStatus(status, err.message, "error");
  } finally {
    button.disabled = false;
  }
}

// -- start -------------------------------------------------------------------------------------------
const root = byId("student-home");
if (root) {
  const store = {
    tz: root.dataset.timezone || "UTC",
    courseId: Number(root.dataset.courseId),
    current: [], sessions: [], history: [], socket: null,
  };
  const prefill = new URLSearchParams(window.location.search).get("code");
  const input = byId("attendance-code");
  if (prefill && looksLikeCode(prefill) && !input.value) input.value = normalizeCode(prefill);
  byId("checkin-form").addEventListener("submit", (event) => submitCode(store, event));
  byId("justification-form").addEventListener("submit", sendJustification);

  (async () => {
    await Promise.allSettled([loadCurrent(store), loadLists(store), loadSessions(store)]);
    await loadHistory(store);
    root.dataset.ready = "true";
  })();
  // Classes open and close over time: look again every half minute while the page is visible.
  window.setInterval(() => { if (!document.hidden) loadCurrent(store); }, REFRESH_MS);
}
