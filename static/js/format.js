/* How the pages show moments (in the course's timezone), distances and attendance statuses. */
import { config } from "./config.js";
import { el } from "./dom.js";

function locale() {
  return document.documentElement.lang || undefined;
}

/** A moment shown in a timezone (the course's), e.g. "29 Nov 2026, 10:00". */
export function formatDateTime(iso, timeZone, options) {
  if (!iso) return "";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return "";
  const opts = { timeZone: timeZone || "UTC", ...(options || { dateStyle: "medium", timeStyle: "short" }) };
  try {
    return new Intl.DateTimeFormat(locale(), opts).format(moment);
  } catch {
    delete opts.timeZone; // a timezone this browser does not know
    return new Intl.DateTimeFormat(locale(), opts).format(moment);
  }
}

export function formatTime(iso, timeZone, withSeconds) {
  return formatDateTime(iso, timeZone, { timeStyle: withSeconds ? "medium" : "short" });
}

/** "10:00 – 11:30" on the same day, else both dates. */
export function formatRange(startIso, endIso, timeZone) {
  const day = (iso) => formatDateTime(iso, timeZone, { dateStyle: "medium" });
  const end = day(startIso) === day(endIso) ? formatTime(endIso, timeZone) : formatDateTime(endIso, timeZone);
  return `${formatDateTime(startIso, timeZone)} – ${end}`;
}

/** The wall-clock parts of a moment in a timezone, as a datetime-local value "YYYY-MM-DDTHH:MM". */
export function localInputValue(moment, timeZone) {
  const parts = {};
  try {
    new Intl.DateTimeFormat("en-GB", {
      timeZone: timeZone || "UTC", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).formatToParts(moment).forEach((p) => { parts[p.type] = p.value; });
  } catch {
    return moment.toISOString().slice(0, 16);
  }
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

/** A distance in metres, or kilometres from 1 km. */
export function metres(value) {
  if (value === null || value === undefined) return "";
  return value >= 1000 ? `${(value / 1000).toFixed(1)} km` : `${Math.round(value)} m`;
}

export function capitalized(word) {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

/** The attendance statuses, in the server's order (present, late, excused, absent). */
export const STATUSES = Object.freeze([...(config.statuses || [])]);

export function statusLabel(status) {
  if (STATUSES.includes(status)) return capitalized(status);
  return status ? String(status) : "Not recorded";
}

export function statusBadge(status) {
  return el("span", { class: `badge status-${status || "none"}`, dataset: { status: status || "" } }, statusLabel(status));
}
