/* The submissions table of the selected session: one row per record, kept in step with live
 * messages, with per-row status buttons, remarks, risk reasons and bulk changes. */
import { api } from "../api.js";
import { announce, byId, clear, el, reportError, setStatus } from "../dom.js";
import { STATUSES, capitalized, formatTime, metres, statusBadge, statusLabel } from "../format.js";
import { sessionTz } from "./store.js";

const SOURCE_TEXT = { teacher: "Marked by a teacher", close: "Recorded when closed", justification: "Justified" };

export async function loadSubmissions(store) {
  const s = store.selected;
  if (!s) return;
  try {
    const data = await api("GET", "/api/get-session-submissions/", { class_session_id: s.id });
    if (!store.selected || store.selected.id !== s.id) return;
    (data.submissions || []).forEach((record) => upsertRow(store, record));
  } catch (err) {
    reportError(byId("session-status"), err, "Could not load the submissions:");
  }
}

/** Add or update a record of the selected session (a risk already known is kept). */
export function upsertRow(store, record) {
  const previous = store.rows.get(record.id) || {};
  const merged = { ...previous, ...record };
  if (record.risk === undefined && previous.risk) merged.risk = previous.risk;
  store.rows.set(record.id, merged);
  renderSubmissions(store, [record.id]);
  store.changed("rows");
}

/** A risk check's result for one record. */
export function applyRisk(store, result) {
  const record = store.rows.get(result.attendance_id);
  if (!record) return;
  record.risk = { score: result.score, level: result.level, reasons: result.reasons || [] };
  renderSubmissions(store, [result.attendance_id]);
}

function timeText(record, tz) {
  if (record.submitted_at) return formatTime(record.submitted_at, tz, true);
  return SOURCE_TEXT[record.source] || "—";
}

function locationText(record) {
  const distance = record.distance_m !== null && record.distance_m !== undefined ? ` (${metres(record.distance_m)})` : "";
  switch (record.location_flag) {
    case "inside": return ["ok", `In the classroom${distance}`];
    case "outside": return ["warn", `Outside: ${metres(record.distance_m)} away`];
    case "missing": return ["warn", "No location shared"];
    case "inaccurate": return ["warn", `Imprecise location (±${metres(record.accuracy_m)})`];
    case "no_geofence": return ["none", "Shared (no classroom set)"];
    default: return ["none", "—"];
  }
}

function riskNode(risk) {
  if (!risk) return el("span", { class: "muted" }, "—");
  const level = risk.level || "low";
  const label = `${capitalized(level)} · ${risk.score}`;
  if (!risk.reasons || !risk.reasons.length) return el("span", { class: `badge risk-${level}`, dataset: { level } }, label);
  return el("details", { class: "risk", dataset: { level } },
    el("summary", {}, el("span", { class: `badge risk-${level}` }, label), el("span", { class: "visually-hidden" }, ", show the reasons")),
    el("ul", { class: "reasons" }, risk.reasons.map((reason) => el("li", {}, reason))));
}

function createRow(store, record) {
  const name = record.student.name;
  const checkboxId = `select-${record.id}`;
  const tr = el("tr", { dataset: { attendanceId: record.id, studentId: record.student.id } },
    el("td", { class: "select" },
      el("label", { class: "visually-hidden", for: checkboxId }, `Select ${name}`),
      el("input", { type: "checkbox", id: checkboxId, class: "row-select", onchange: updateSelection })),
    el("th", { scope: "row", class: "student" }, name),
    el("td", { class: "time" }),
    el("td", { class: "status" }),
    el("td", { class: "location" }),
    el("td", { class: "risk-cell" }),
    el("td", { class: "remark" },
      el("span", { class: "remark-text" }),
      el("button", { type: "button", class: "link edit-remark", "aria-label": `Edit the remark for ${name}`, onclick: () => editRemark(store, tr) }, "Edit")),
    el("td", { class: "actions" },
      el("div", { class: "status-buttons", role: "group", "aria-label": `Set the status of ${name}` },
        STATUSES.map((status) => el("button", {
          type: "button", class: `status-button status-${status}`, dataset: { status }, "aria-pressed": "false",
          onclick: () => setRecordStatus(store, tr, status),
        }, statusLabel(status))))));
  return tr;
}

function updateRow(store, tr, record) {
  tr.dataset.status = record.status;
  tr.querySelector(".time").textContent = timeText(record, sessionTz(store, store.selected));
  clear(tr.querySelector(".status")).appendChild(statusBadge(record.status));
  const [kind, text] = locationText(record);
  clear(tr.querySelector(".location")).appendChild(el("span", { class: `flag flag-${kind}`, dataset: { flag: record.location_flag || "" } }, text));
  clear(tr.querySelector(".risk-cell")).appendChild(riskNode(record.risk));
  if (!tr.classList.contains("editing")) tr.querySelector(".remark-text").textContent = record.remark || "";
  tr.querySelectorAll("button[data-status]").forEach((b) => {
    b.setAttribute("aria-pressed", b.dataset.status === record.status ? "true" : "false");
  });
}

function rowOf(id) {
  return byId("submissions").querySelector(`tr[data-attendance-id="${id}"]`);
}

/** Render the rows of these records (all by default), adding the missing ones. */
function renderSubmissions(store, ids = [...store.rows.keys()]) {
  const body = byId("submissions").tBodies[0];
  ids.forEach((id) => {
    const record = store.rows.get(id);
    if (!record) return;
    let tr = rowOf(id);
    if (!tr) {
      tr = createRow(store, record);
      body.appendChild(tr);
    }
    updateRow(store, tr, record);
  });
}

/** Render the check-in count and the empty-table note. */
export function renderSubmissionCount(store) {
  const checkins = [...store.rows.values()].filter((r) => r.source === "checkin" || r.submitted_at).length;
  byId("submission-count").textContent = String(checkins);
  byId("no-submissions").hidden = store.rows.size > 0;
}

async function setRecordStatus(store, tr, status) {
  const buttons = tr.querySelectorAll("button[data-status]");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const data = await api("POST", "/api/validate-attendance/", { attendance_id: Number(tr.dataset.attendanceId), status });
    upsertRow(store, data.attendance);
    announce(byId("announcer"), `${data.attendance.student.name} is now ${statusLabel(status).toLowerCase()}.`);
  } catch (err) {
    reportError(byId("session-status"), err, "Could not change the status:");
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function editRemark(store, tr) {
  if (tr.classList.contains("editing")) return;
  const id = Number(tr.dataset.attendanceId);
  const record = store.rows.get(id);
  const cell = tr.querySelector(".remark");
  const inputId = `remark-${id}`;
  const editButton = cell.querySelector(".edit-remark");
  const text = cell.querySelector(".remark-text");
  tr.classList.add("editing");
  text.hidden = true;
  editButton.hidden = true;
  const input = el("input", { id: inputId, type: "text", maxlength: 2000, value: record.remark || "", class: "remark-input" });
  const done = () => {
    form.remove();
    tr.classList.remove("editing");
    text.hidden = false;
    editButton.hidden = false;
    text.textContent = (store.rows.get(id) || {}).remark || "";
    editButton.focus();
  };
  const form = el("form", { class: "remark-form" },
    el("label", { class: "visually-hidden", for: inputId }, `Remark for ${record.student.name}`),
    input,
    el("button", { type: "submit", class: "small" }, "Save"),
    el("button", { type: "button", class: "small secondary", onclick: done }, "Cancel"));
  form.addEventListener("keydown", (event) => { if (event.key === "Escape") done(); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const current = store.rows.get(id);
      // if_status: the server refuses (stale_status) if another teacher changed the status this row shows.
      const data = await api("POST", "/api/validate-attendance/",
        { attendance_id: id, status: current.status, if_status: current.status, remark: input.value });
      store.rows.set(id, { ...current, ...data.attendance });
      done();
      renderSubmissions(store, [id]);
      announce(byId("announcer"), "Remark saved.");
    } catch (err) {
      reportError(byId("session-status"), err, "Could not save the remark:");
    }
  });
  cell.appendChild(form);
  input.focus();
}

function selectedIds() {
  return Array.from(byId("submissions").querySelectorAll(".row-select:checked"), (box) => Number(box.closest("tr").dataset.attendanceId));
}

function updateSelection() {
  const count = selectedIds().length;
  const all = byId("submissions").querySelectorAll(".row-select");
  byId("selected-count").textContent = String(count);
  byId("bulk-apply").disabled = count === 0;
  byId("select-all").checked = all.length > 0 && count === all.length;
  byId("select-all").indeterminate = count > 0 && count < all.length;
}

async function bulkApply(store) {
  const ids = selectedIds();
  const status = byId("bulk-status").value;
  if (!ids.length) return;
  byId("bulk-apply").disabled = true;
  try {
    const data = await api("POST", "/api/validate-attendance/", { attendance_ids: ids, status });
    (data.attendances || [data.attendance]).forEach((record) => upsertRow(store, record));
    byId("submissions").querySelectorAll(".row-select:checked").forEach((box) => { box.checked = false; });
    setStatus(byId("session-status"), `${ids.length} record(s) set to ${statusLabel(status).toLowerCase()}.`, "ok");
  } catch (err) {
    reportError(byId("session-status"), err, "Could not change the statuses:");
  }
  updateSelection();
}

/** Wire the table's toolbar: select all, and apply a status to the selected rows. */
export function mountSubmissions(store) {
  byId("bulk-apply").addEventListener("click", () => bulkApply(store));
  byId("select-all").addEventListener("change", (event) => {
    byId("submissions").querySelectorAll(".row-select").forEach((box) => { box.checked = event.target.checked; });
    updateSelection();
  });
}
