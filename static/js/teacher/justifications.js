/* The "Absence justifications" panel: the students' justifications, their documents shown inline,
 * approve or reject. */
import { api } from "../api.js";
import { byId, clear, el, reportError, setStatus } from "../dom.js";
import { capitalized, formatDateTime } from "../format.js";
import { config } from "../config.js";
import { sessionById, sessionTz } from "./store.js";

export async function loadJustifications(store) {
  try {
    store.justifications = (await api("GET", "/api/justifications/")).justifications || [];
  } catch (err) {
    reportError(byId("page-status"), err, "Could not load the justifications:");
    return;
  }
  store.changed("justifications");
}

async function review(store, justification, decision) {
  try {
    const data = await api("POST", "/api/review-justification/", { justification_id: justification.id, decision });
    Object.assign(justification, data.justification);
    store.changed("justifications");
    setStatus(byId("page-status"), `Justification of ${justification.student.name}${decision === "approve"
      ? " approved: the absence is excused." : " rejected."}`, "ok");
  } catch (err) {
    reportError(byId("page-status"), err, "Could not review the justification:");
  }
}

/** The document's type as the browser will render it: one of the accepted kinds, never HTML. */
function pinnedType(blob, justification) {
  const type = (blob.type || justification.document.type || "").split(";")[0].trim().toLowerCase();
  return config.document_types.includes(type) ? type : "application/octet-stream";
}

function documentNode(kind, url, label) {
  if (kind.startsWith("image/")) return el("img", { src: url, alt: label });
  // Chromium shows no PDF in a sandboxed frame; pinned to PDF, only its viewer opens this blob.
  if (kind === "application/pdf") return el("iframe", { src: url, title: label });
  return el("iframe", { sandbox: "", src: url, title: label });
}

async function viewDocument(store, justification, opener) {
  const viewer = byId("document-viewer");
  const frame = clear(byId("document-frame"));
  const shown = store.document;
  try {
    const response = await api("GET", justification.document.url, undefined, { raw: true });
    const blob = await response.blob();
    if (shown.url) URL.revokeObjectURL(shown.url);
    const kind = pinnedType(blob, justification);
    shown.url = URL.createObjectURL(new Blob([blob], { type: kind }));
    const label = `Document from ${justification.student.name}: ${justification.document.name}`;
    byId("document-title").textContent = label;
    frame.appendChild(documentNode(kind, shown.url, label));
    frame.appendChild(el("p", {}, el("a", { href: shown.url, download: justification.document.name }, `Download ${justification.document.name}`)));
    viewer.hidden = false;
    shown.opener = opener;
    viewer.focus();
  } catch (err) {
    reportError(byId("page-status"), err, "Could not open the document:");
  }
}

function closeDocument(store) {
  const shown = store.document;
  byId("document-viewer").hidden = true;
  clear(byId("document-frame"));
  if (shown.url) URL.revokeObjectURL(shown.url);
  shown.url = null;
  if (shown.opener) shown.opener.focus();
}

function card(store, j) {
  const session = sessionById(store, j.class_session_id);
  const when = session ? `${session.title}, ${formatDateTime(session.starts_at, sessionTz(store, session))}` : `Session ${j.class_session_id}`;
  const headingId = `justification-${j.id}-heading`;
  const name = j.student.name;
  const documentButton = j.document ? el("button", {
    type: "button", class: "secondary small", dataset: { action: "view-document" },
    onclick: (event) => viewDocument(store, j, event.currentTarget),
  }, "View document", el("span", { class: "visually-hidden" }, ` from ${name}`), ` (${j.document.name})`)
    : el("span", { class: "muted small" }, "No document");
  const decisions = j.status === "pending" ? [
    el("button", { type: "button", class: "small", dataset: { decision: "approve" }, onclick: () => review(store, j, "approve") },
      "Approve", el("span", { class: "visually-hidden" }, ` (excuse ${name})`)),
    el("button", { type: "button", class: "small danger", dataset: { decision: "reject" }, onclick: () => review(store, j, "reject") },
      "Reject", el("span", { class: "visually-hidden" }, ` ${name}'s justification`)),
  ] : null;
  return el("li", { class: "card", dataset: { justificationId: j.id, status: j.status }, "aria-labelledby": headingId },
    el("h3", { id: headingId }, name, el("span", { class: "muted" }, ` · ${when}`)),
    el("p", { class: "reason" }, j.reason),
    el("p", {}, el("span", { class: `badge justification-${j.status}` }, capitalized(j.status)),
      " ", el("span", { class: "muted small" }, `sent ${formatDateTime(j.created_at, store.tz)}`)),
    el("div", { class: "toolbar" }, documentButton, decisions));
}

export function renderJustifications(store) {
  const list = clear(byId("justifications"));
  const pendingOnly = byId("justifications-pending").checked;
  const shown = store.justifications.filter((j) => !pendingOnly || j.status === "pending");
  byId("no-justifications").hidden = shown.length > 0;
  shown.forEach((j) => list.appendChild(card(store, j)));
}

/** Wire the "pending only" filter and the document viewer's close button and Escape key. */
export function mountJustifications(store) {
  byId("justifications-pending").addEventListener("change", () => renderJustifications(store));
  byId("close-document").addEventListener("click", () => closeDocument(store));
  byId("document-viewer").addEventListener("keydown", (event) => { if (event.key === "Escape") closeDocument(store); });
}
