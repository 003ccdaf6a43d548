/* The "Course settings" panel: the course's timezone, check-in windows and code rotation. */
import { api } from "../api.js";
import { byId, el, reportError, setStatus, showFieldErrors } from "../dom.js";

const NUMBER_FIELDS = [
  ["present_minutes", "settings-present"],
  ["late_minutes", "settings-late"],
  ["code_rotation_seconds", "settings-rotation"],
];

/** Read the course's settings (store.settings) and its timezone (store.tz). */
export async function loadSettings(store) {
  try {
    applySettings(store, (await api("GET", "/api/course-settings/")).settings);
  } catch (err) {
    reportError(byId("settings-status"), err, "Could not load the settings:");
  }
}

function applySettings(store, settings) {
  store.settings = settings;
  store.tz = settings.timezone || "UTC";
  store.changed("settings");
}

export function renderSettings(store, root) {
  const settings = store.settings;
  if (!settings) return;
  root.dataset.timezone = store.tz;
  byId("settings-timezone").value = store.tz;
  NUMBER_FIELDS.forEach(([name, id]) => { byId(id).value = settings[name]; });
  document.querySelectorAll(".course-tz").forEach((node) => { node.textContent = store.tz; });
}

/** Save the form; answers whether it was saved. */
async function saveSettings(store, event) {
  event.preventDefault();
  const form = byId("settings-form");
  const payload = { timezone: byId("settings-timezone").value.trim() };
  NUMBER_FIELDS.forEach(([name, id]) => {
    const value = byId(id).value;
    if (value !== "") payload[name] = Number(value);
  });
  try {
    const data = await api("POST", "/api/course-settings/", payload);
    showFieldErrors(form, {});
    applySettings(store, data.settings);
    setStatus(byId("settings-status"), "Settings saved.", "ok");
    return true;
  } catch (err) {
    showFieldErrors(form, err.fields || {});
    reportError(byId("settings-status"), err, "The settings were not saved:");
    return false;
  }
}

function fillTimezones() {
  if (!Intl.supportedValuesOf) return;
  const list = byId("timezones");
  try {
    Intl.supportedValuesOf("timeZone").forEach((zone) => list.appendChild(el("option", { value: zone })));
  } catch { /* older browsers: free text only */ }
}

/** Wire the settings form; onSaved() runs after a successful save. */
export function mountSettings(store, onSaved) {
  fillTimezones();
  byId("settings-form").addEventListener("submit", async (event) => {
    if (await saveSettings(store, event)) onSaved();
  });
}
