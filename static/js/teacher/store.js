/* The teacher dashboard's state, handed to every panel, and a small change notifier: an action
 * changes the state and names what changed ("sessions", "code", "rows", "students",
 * "justifications", "settings"); the page's entry module decides which panels render again. */
import { serverNow } from "../api.js";

export function createStore(timezone) {
  const watchers = new Map();
  return {
    tz: timezone || "UTC",
    sessions: [],
    selected: null, // the class session shown in the session panel
    rows: new Map(), // attendance id -> record, for the selected session
    students: [], // the course's enrolled students
    code: null, // {value, sessionId} while a code is shown
    rotation: null, // the shown code's countdown (checkin-box.js)
    socket: null, // the selected session's live socket
    justifications: [],
    document: { url: null, opener: null }, // the justification document on view
    announcements: { queue: [], timer: null },
    rosterTimer: null,
    firstLoad: true,
    stopping: false, // this page's own stop-checkin request is under way (it reports the outcome itself)
    closing: false, // likewise for close-session

    /** Call render whenever one of these topics changes. */
    on(topics, render) {
      [].concat(topics).forEach((topic) => {
        if (!watchers.has(topic)) watchers.set(topic, []);
        watchers.get(topic).push(render);
      });
    },

    /** Tell the watchers of these topics (each render runs once however many of its topics changed). */
    changed(...topics) {
      new Set(topics.flatMap((topic) => watchers.get(topic) || [])).forEach((render) => render());
    },
  };
}

export function sessionById(store, id) {
  return store.sessions.find((s) => s.id === Number(id)) || null;
}

/** The timezone a session's times are shown in: its own, else the course's. */
export function sessionTz(store, session) {
  return (session && session.timezone) || store.tz;
}

/** Where a session stands now: [key, label]. */
export function sessionState(session) {
  const now = serverNow();
  if (session.closed) return ["closed", "Closed"];
  if (session.checkin_open) return ["open", "Check-in open"];
  if (now < Date.parse(session.starts_at)) return ["upcoming", "Upcoming"];
  if (now <= Date.parse(session.ends_at)) return ["running", "In progress"];
  return ["ended", "Ended"];
}
