/* "Students without a record": the course's enrolled students the selected session has no record of,
 * each with a button to mark them present. */
import { api } from "../api.js";
import { announce, byId, clear, el, reportError } from "../dom.js";
import { upsertRow } from "./submissions.js";

const REREAD_AFTER_MS = 1000;

export async function loadStudents(store) {
  try {
    store.students = (await api("GET", "/api/students/")).students || [];
  } catch {
    store.students = [];
  }
  store.changed("students");
}

/** A record of a student the list has not seen yet (first launch today): read the list again, once. */
export function rereadIfUnknown(store) {
  if (store.rosterTimer) return;
  const known = new Set(store.students.map((st) => st.id));
  if ([...store.rows.values()].every((r) => known.has(r.student.id))) return;
  store.rosterTimer = window.setTimeout(() => {
    store.rosterTimer = null;
    loadStudents(store);
  }, REREAD_AFTER_MS);
}

async function markPresent(store, student, button) {
  const s = store.selected;
  if (!s) return;
  button.disabled = true;
  try {
    const data = await api("POST", "/api/mark-attendance/", { class_session_id: s.id, student_id: student.id, status: "present" });
    upsertRow(store, data.attendance);
    announce(byId("announcer"), `${student.name} marked present.`);
    (byId("missing-students").querySelector("button") || byId("submissions")).focus();
  } catch (err) {
    button.disabled = false;
    reportError(byId("session-status"), err, `Could not mark ${student.name}:`);
  }
}

export function renderRoster(store) {
  const list = clear(byId("missing-students"));
  const recorded = new Set([...store.rows.values()].map((r) => r.student.id));
  const missing = store.students.filter((st) => st.active !== false && !recorded.has(st.id));
  if (!missing.length) {
    list.appendChild(el("li", { class: "muted" }, store.students.length
      ? "Every enrolled student has a record."
      : "No enrolled students known yet (students appear once they open the tool or the roster is read)."));
    return;
  }
  missing.forEach((student) => {
    list.appendChild(el("li", { dataset: { studentId: student.id } },
      el("span", {}, student.name),
      el("button", {
        type: "button", class: "small secondary", "aria-label": `Mark ${student.name} present`,
        onclick: (event) => markPresent(store, student, event.currentTarget),
      }, "Mark present")));
  });
}
