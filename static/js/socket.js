/* The tool's WebSocket for a class session, reconnecting with backoff. Each (re)connect first asks
 * the API for a single-use ticket, so the launch token never appears in a URL (nor in access logs). */
import { api } from "./api.js";

const CLOSE_EXPIRED = 4401; // the launch expired or the session is gone: no retries
const CLOSE_REPLACED = 4429; // a newer socket of the same user (another tab) took this one's place
const GIVE_UP_STATUSES = [401, 403, 404];

/**
 * Watch a class session live. onMessage(message) gets every message but connected/ping;
 * onState(state, reconnected) gets "connecting", "live", "offline" or "ended". Answers {close()}.
 * A refusal at the handshake (close code 4403) counts as a dropped socket: the next ticket request
 * answers 403 if the refusal stands, and that ends it.
 */
export function liveSocket(classSessionId, { token, onMessage, onState = () => {} }) {
  let socket = null;
  let attempt = 0;
  let stopped = false;
  let timer = null;
  let everLive = false;

  function end() {
    stopped = true;
    onState("ended", false);
  }

  function retry() {
    if (stopped || timer) return;
    const delay = Math.min(60000, 1000 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
    attempt += 1;
    timer = window.setTimeout(open, delay);
  }

  async function ticket() {
    try {
      return (await api("POST", "/api/ws-ticket/", { class_session_id: classSessionId }, { token })).ticket;
    } catch (err) {
      if (!stopped && GIVE_UP_STATUSES.includes(err.status)) end();
      else if (!stopped) { onState("offline", false); retry(); }
      return null;
    }
  }

  function receive(event) {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (!message || typeof message !== "object") return;
    if (message.type === "connected") {
      attempt = 0;
      onState("live", everLive);
      everLive = true;
    } else if (message.type !== "ping") {
      onMessage(message);
    }
  }

  function closed(event) {
    socket = null;
    if (stopped) return;
    if (event.code === CLOSE_EXPIRED) { end(); return; }
    // Replaced by another tab of the same user: come back slowly, not in a tug of war.
    if (event.code === CLOSE_REPLACED) attempt = Math.max(attempt, 6);
    onState("offline", false);
    retry();
  }

  async function open() {
    timer = null;
    if (stopped || typeof WebSocket === "undefined") return;
    onState("connecting", false);
    const single = await ticket();
    if (stopped || single === null) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const url = `${scheme}${location.host}/ws/attendance/${encodeURIComponent(classSessionId)}?ticket=${encodeURIComponent(single)}`;
    try {
      socket = new WebSocket(url);
    } catch {
      retry();
      return;
    }
    socket.onmessage = receive;
    socket.onclose = closed;
  }

  open();
  return {
    close() {
      stopped = true;
      window.clearTimeout(timer);
      if (socket) socket.close();
    },
  };
}
