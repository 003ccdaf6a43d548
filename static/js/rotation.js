/* The countdown of a rotating check-in code: ticks until the code rotates out (by the server's
 * clock), then asks for the next one a moment after. Shared by the dashboard and the projector. */
import { serverNow } from "./api.js";

const AFTER_EXPIRY_MS = 250; // ask just after the turn, so the server already issues the next code
const SOONEST_MS = 500;

/**
 * A rotation: show(expiresAtIso) starts ticking onTick({msLeft, secondsLeft}) every `every` ms and
 * calls onExpire() once the code has rotated out; later(fn, ms) replaces that next step (a retry);
 * cancel() drops the next step only; stop() also stops the ticking.
 */
export function createRotation({ every, onTick, onExpire }) {
  let expiresAt = 0;
  let ticker = null;
  let next = null;

  function tick() {
    const msLeft = Math.max(0, expiresAt - serverNow());
    onTick({ msLeft, secondsLeft: Math.ceil(msLeft / 1000) });
  }

  function later(fn, ms) {
    window.clearTimeout(next);
    next = window.setTimeout(fn, ms);
  }

  return {
    show(expiresAtIso) {
      expiresAt = Date.parse(expiresAtIso);
      tick();
      window.clearInterval(ticker);
      ticker = window.setInterval(tick, every);
      later(onExpire, Math.max(SOONEST_MS, expiresAt - serverNow() + AFTER_EXPIRY_MS));
    },
    later,
    cancel() {
      window.clearTimeout(next);
    },
    stop() {
      window.clearTimeout(next);
      window.clearInterval(ticker);
    },
  };
}
