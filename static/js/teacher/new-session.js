/* The "New class session" form: times prefilled in the course's timezone, the classroom placed
 * where the teacher stands, weekly repeats. */
import { api, serverNow } from "../api.js";
import { byId, reportError, setStatus, showFieldErrors } from "../dom.js";
import { localInputValue, metres } from "../format.js";
import { locate } from "../geo.js";
import { selectSession } from "./session-panel.js";
import { loadSessions } from "./sessions.js";

const HOUR_MS = 3600 * 1000;
const MAX_RADIUS_M = 5000;
const LOCATION_FAILURES = {
  unsupported: "This browser cannot share a location; type the coordinates instead.",
  denied: "Location is blocked for this page (by the browser or the course page). Type the coordinates instead.",
  timeout: "Finding your location took too long. Try again, or type the coordinates.",
  no_answer: "Finding your location took too long. Try again, or type the coordinates.",
  unavailable: "Your location is not available right now. Type the coordinates instead.",
};

/** Fill the start and end with the coming hour, in the course's timezone. */
export function prefillTimes(store) {
  const now = new Date(serverNow());
  byId("session-starts").value = localInputValue(now, store.tz);
  byId("session-ends").value = localInputValue(new Date(now.getTime() + HOUR_MS), store.tz);
}

async function useMyLocation() {
  const status = byId("location-status");
  setStatus(status, "Finding your location…");
  const where = await locate({ timeout: 15000 });
  if (where.error) {
    setStatus(status, LOCATION_FAILURES[where.error], "error");
    return;
  }
  byId("session-latitude").value = where.latitude.toFixed(6);
  byId("session-longitude").value = where.longitude.toFixed(6);
  const radius = byId("session-radius");
  // The radius should cover what the browser is unsure of.
  if (where.accuracy > Number(radius.value || 0)) radius.value = String(Math.min(MAX_RADIUS_M, Math.ceil(where.accuracy / 10) * 10));
  setStatus(status, `Location set (accurate to ±${metres(where.accuracy)}).`, "ok");
}

function formPayload() {
  const payload = {
    title: byId("session-title-input").value.trim(),
    starts_at: byId("session-starts").value,
    ends_at: byId("session-ends").value,
  };
  const lat = byId("session-latitude").value;
  const lon = byId("session-longitude").value;
  if (lat !== "" || lon !== "") {
    payload.latitude = lat === "" ? null : Number(lat);
    payload.longitude = lon === "" ? null : Number(lon);
    if (byId("session-radius").value !== "") payload.radius_m = Number(byId("session-radius").value);
  }
  if (byId("session-repeat").checked && byId("session-repeat-until").value) {
    payload.repeat_weekly_until = `${byId("session-repeat-until").value}T23:59:59`;
  }
  return payload;
}

function missingFields(payload) {
  const missing = {};
  if (!payload.title) missing.title = ["Give the session a title."];
  if (!payload.starts_at) missing.starts_at = ["Choose when it starts."];
  if (!payload.ends_at) missing.ends_at = ["Choose when it ends."];
  return missing;
}

async function createSession(store, event) {
  event.preventDefault();
  const form = byId("create-session-form");
  const status = byId("create-status");
  const payload = formPayload();
  const missing = missingFields(payload);
  if (Object.keys(missing).length) {
    showFieldErrors(form, missing);
    setStatus(status, "Some fields need attention.", "error");
    return;
  }
  const button = byId("create-session");
  button.disabled = true;
  try {
    const data = await api("POST", "/api/class-sessions/", payload);
    showFieldErrors(form, {});
    const created = data.class_sessions || [data.class_session];
    setStatus(status, created.length === 1 ? `Session “${created[0].title}” created.` : `${created.length} weekly sessions created.`, "ok");
    byId("session-title-input").value = "";
    await loadSessions(store);
    selectSession(store, created[0].id, true);
  } catch (err) {
    showFieldErrors(form, err.fields || {});
    reportError(status, err, "The session was not created:");
  } finally {
    button.disabled = false;
  }
}

/** Wire the form: submit, "Use my current location", the weekly repeat switch. */
export function mountNewSession(store) {
  byId("create-session-form").addEventListener("submit", (event) => createSession(store, event));
  byId("use-location").addEventListener("click", useMyLocation);
  byId("session-repeat").addEventListener("change", (event) => {
    byId("session-repeat-until").disabled = !event.target.checked;
    if (event.target.checked) byId("session-repeat-until").focus();
  });
}
