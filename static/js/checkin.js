/* Checking in, as the student page and the QR landing page both do: the code as typed, the
 * location (only where the class has a room), the request body, and what the outcome tells the student. */
import { api } from "./api.js";
import { config } from "./config.js";
import { append, clear, el, setStatus } from "./dom.js";
import { metres, statusBadge } from "./format.js";
import { isPoorAccuracy, locate } from "./geo.js";

const DEVICE_KEY = "attendance-device-id";
const SENT_WITHOUT = "so your check-in was sent without it. Your teacher will see that.";
const LOCATION_FAILURES = {
  unsupported: "This browser cannot share a location, so your check-in was sent without one. Your teacher will see that.",
  no_answer: `Your location did not arrive in time, ${SENT_WITHOUT}`,
  denied: "Location is turned off for this page (by you, your browser or the course page), so your check-in was sent without it. Your teacher will see that and may ask you about it.",
  timeout: `Finding your location took too long, ${SENT_WITHOUT}`,
  unavailable: `Your location is not available right now (no GPS or network position), ${SENT_WITHOUT}`,
};

/** The code as the server reads it: case, spaces and dashes forgiven. */
export function normalizeCode(typed) {
  return (typed || "").replace(/[\s-]+/g, "").toUpperCase();
}

/** Whether text is shaped like a check-in code (length and alphabet of attendance/codes.py). */
export function looksLikeCode(text) {
  const code = normalizeCode(text);
  return code.length === config.code_length && [...code].every((ch) => config.code_alphabet.includes(ch));
}

/** A random id kept on this device, to spot one phone checking in for several students (null if storage is blocked). */
export function deviceId() {
  try {
    let id = window.localStorage.getItem(DEVICE_KEY);
    if (!id) {
      id = crypto.randomUUID ? crypto.randomUUID()
        : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
      window.localStorage.setItem(DEVICE_KEY, id);
    }
    return id;
  } catch {
    return null; // storage blocked in this frame: check in without it
  }
}

/** The code typed in input, or null after asking for one (in the result box). */
function typedCode(input, result) {
  const code = normalizeCode(input.value);
  if (code) {
    input.removeAttribute("aria-invalid");
    return code;
  }
  setStatus(result, "Type the code shown by your teacher first.", "error");
  input.setAttribute("aria-invalid", "true");
  input.focus();
  return null;
}

/** Where the student is, for a check-in: {latitude, longitude, accuracy, poor} or {error, message}. */
async function locateForCheckin() {
  const where = await locate();
  return where.error ? { ...where, message: LOCATION_FAILURES[where.error] } : where;
}

function checkinBody(code, where, extra) {
  const body = { attendance_code: code, ...extra };
  if (where && !where.error) {
    body.latitude = where.latitude;
    body.longitude = where.longitude;
    body.accuracy_m = Math.round(where.accuracy * 10) / 10;
  }
  return body;
}

/** What the location part of a check-in tells the student: [text, kind]. */
function locationFeedback(flag, where) {
  if (where && where.error) return [where.message, "warn"];
  if (flag === "outside") {
    return ["Your location looks outside the classroom. You are checked in, and your teacher will review it. (Indoor GPS often drifts; tell your teacher if you are in the room.)", "warn"];
  }
  if (flag === "inaccurate" || (where && isPoorAccuracy(where.accuracy))) {
    return [`Your location was imprecise (±${metres(where ? where.accuracy : null)}), which is common indoors. It was sent anyway; your teacher may review it.`, "warn"];
  }
  if (flag === "inside") return ["Your location confirmed you are in the classroom.", "ok"];
  return ["", ""];
}

/** Show "You are checked in: <status>" (and a detail line) in the result box. */
function showCheckedIn(result, record, detail) {
  clear(result);
  result.dataset.kind = "ok";
  result.dataset.status = record.status;
  result.dataset.classSessionId = String(record.class_session_id);
  append(result, el("p", { class: "result-title" }, "You are checked in: ", statusBadge(record.status)),
    detail ? el("p", { class: "muted" }, detail) : null);
}

function showFailure(input, result, err) {
  result.dataset.status = "";
  setStatus(result, err.message, "error");
  if (err.code === "invalid_attendance_code") {
    input.setAttribute("aria-invalid", "true");
    input.select();
  }
  input.focus();
}

/**
 * Check in from a form: the typed code, the location when wantsLocation() says so, the request,
 * then the outcome in `result` and what the location showed in `locationLine`.
 * fields: {input, button, result, locationLine}; options: {wantsLocation, extra (more body fields),
 * detail(record) (a line under the outcome)}. Answers the attendance record, or null.
 */
export async function checkIn({ input, button, result, locationLine }, { wantsLocation, extra = {}, detail = () => null }) {
  const code = typedCode(input, result);
  if (!code) return null;
  button.disabled = true;
  setStatus(locationLine, "");
  try {
    let where = null;
    if (await wantsLocation()) {
      setStatus(result, "Getting your location…");
      where = await locateForCheckin();
    }
    setStatus(result, "Checking you in…");
    const record = (await api("POST", "/api/submit-attendance/", checkinBody(code, where, extra))).attendance;
    showCheckedIn(result, record, detail(record));
    setStatus(locationLine, ...locationFeedback(record.location_flag, where));
    return record;
  } catch (err) {
    showFailure(input, result, err);
    return null;
  } finally {
    button.disabled = false;
  }
}

/** Follow a status change of the check-in shown in the result box (the teacher validated it). */
export function updateCheckedIn(result, record) {
  if (result.dataset.classSessionId !== String(record.class_session_id)) return;
  result.dataset.status = record.status;
  const badge = result.querySelector(".badge");
  if (badge) badge.replaceWith(statusBadge(record.status));
}
