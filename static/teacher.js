/* The teacher dashboard: one module per panel under js/teacher/, sharing one store. This entry
 * module creates the store, says which panels render when a part of it changes, wires the
 * panels and loads the page. */
import { byId } from "./js/dom.js";
import { dropCodeIfNotOpen, renderCheckinBox, startCheckin, stopCheckin } from "./js/teacher/checkin-box.js";
import { loadJustifications, mountJustifications, renderJustifications } from "./js/teacher/justifications.js";
import { mountNewSession, prefillTimes } from "./js/teacher/new-session.js";
import { renderRoster, rereadIfUnknown } from "./js/teacher/roster.js";
import { mountSessionActions } from "./js/teacher/session-actions.js";
import { renderSessionPanel, selectSession } from "./js/teacher/session-panel.js";
import { loadSessions, renderSessions } from "./js/teacher/sessions.js";
import { loadSettings, mountSettings, renderSettings } from "./js/teacher/settings.js";
import { createStore } from "./js/teacher/store.js";
import { mountSubmissions, renderSubmissionCount } from "./js/teacher/submissions.js";

const REFRESH_MS = 60000;

function openCheckinOnFirstLoad(store) {
  if (!store.firstLoad) return;
  store.firstLoad = false;
  const open = store.sessions.find((s) => s.checkin_open);
  if (open && !store.selected) selectSession(store, open.id, false);
}

function start(root) {
  const store = createStore(root.dataset.timezone);
  const sessionHandlers = {
    onManage: (id) => selectSession(store, id, true),
    onStart: (id) => {
      selectSession(store, id, false);
      startCheckin(store);
    },
  };

  store.on("sessions", () => {
    dropCodeIfNotOpen(store);
    renderSessions(store, sessionHandlers);
    renderSessionPanel(store);
    renderCheckinBox(store);
  });
  store.on("code", () => renderCheckinBox(store));
  store.on("rows", () => {
    renderSubmissionCount(store);
    renderRoster(store);
    rereadIfUnknown(store);
  });
  store.on("students", () => renderRoster(store));
  store.on("justifications", () => renderJustifications(store));
  store.on("settings", () => renderSettings(store, root));

  byId("start-checkin").addEventListener("click", () => startCheckin(store));
  byId("stop-checkin").addEventListener("click", () => stopCheckin(store));
  byId("projector-link").addEventListener("click", (event) => {
    if (!store.selected) event.preventDefault();
  });
  mountSessionActions(store);
  mountSubmissions(store);
  mountNewSession(store);
  mountJustifications(store);
  mountSettings(store, async () => {
    await loadSessions(store);
    prefillTimes(store);
  });

  prefillTimes(store);
  (async () => {
    await loadSettings(store);
    prefillTimes(store);
    await loadSessions(store);
    openCheckinOnFirstLoad(store);
    await loadJustifications(store);
    root.dataset.ready = "true";
  })();
  window.setInterval(() => { if (!document.hidden) loadSessions(store); }, REFRESH_MS);
}

const root = byId("teacher-dashboard");
if (root) start(root);
