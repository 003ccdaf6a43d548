/* The browser's position, with the server's verdict on its accuracy (GEOFENCE_POOR_ACCURACY_M). */
import { config } from "./config.js";

const FAILURES = { 1: "denied", 2: "unavailable", 3: "timeout" };

/** Whether a position this imprecise (± metres) is one the server flags as inaccurate. */
export function isPoorAccuracy(accuracy) {
  return typeof accuracy === "number" && accuracy > config.poor_accuracy_m;
}

/**
 * Ask the browser where it is. Resolves with {latitude, longitude, accuracy, poor} or with
 * {error}: "unsupported" (no geolocation here), "denied", "unavailable", "timeout" (the browser
 * gave up) or "no_answer" (the permission prompt was left unanswered for `wait` ms); never rejects.
 */
export function locate({ timeout = 12000, wait = 20000 } = {}) {
  return new Promise((resolve) => {
    if (!navigator.geolocation) {
      resolve({ error: "unsupported" });
      return;
    }
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      window.clearTimeout(guard);
      resolve(value);
    };
    const guard = window.setTimeout(() => finish({ error: "no_answer" }), wait);
    navigator.geolocation.getCurrentPosition(
      ({ coords }) => finish({
        latitude: coords.latitude, longitude: coords.longitude, accuracy: coords.accuracy,
        poor: isPoorAccuracy(coords.accuracy),
      }),
      (error) => finish({ error: FAILURES[error.code] || "unavailable" }),
      { enableHighAccuracy: true, timeout, maximumAge: 0 });
  });
}
