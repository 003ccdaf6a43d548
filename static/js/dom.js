/* Building and updating the pages' DOM: elements from data (never from HTML strings), status lines,
 * screen reader announcements and per-field form errors. */

/** The element with this id. */
export function byId(id) {
  return document.getElementById(id);
}

/** Append children: nodes, text, arrays of them; null, undefined and false are skipped. */
export function append(node, ...children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, ...child);
    else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setAttribute(node, key, value) {
  if (value === undefined || value === null || value === false) return;
  if (key === "class") node.className = value;
  else if (key === "text") node.textContent = value;
  else if (key === "dataset") Object.entries(value).forEach(([name, v]) => { node.dataset[name] = v; });
  else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
  else node.setAttribute(key, value === true ? "" : String(value));
}

/** Build an element: el("button", {class: "x", onclick: fn, dataset: {id: 1}}, "text", child). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([key, value]) => setAttribute(node, key, value));
  return append(node, ...children);
}

/** Remove every child of node; answer node. */
export function clear(node) {
  node.replaceChildren();
  return node;
}

/** Show a status line's text and its kind ("ok", "warn", "error" or none: styled by data-kind). */
export function setStatus(node, text, kind) {
  if (!node) return;
  node.textContent = text || "";
  node.dataset.kind = kind || "";
}

/** Show an error on a status line, after an optional prefix. */
export function reportError(node, err, prefix) {
  setStatus(node, (prefix ? `${prefix} ` : "") + (err && err.message ? err.message : String(err)), "error");
}

/** Say something to screen reader users through a polite live region. */
export function announce(region, text) {
  if (!region) return;
  region.textContent = "";
  window.setTimeout(() => { region.textContent = text; }, 50);
}

/** Per-field errors of a validation_error next to the inputs (ids error-<field>); focus the first. */
export function showFieldErrors(form, fields) {
  form.querySelectorAll(".field-error").forEach((p) => { p.textContent = ""; });
  form.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
  let first = null;
  Object.entries(fields || {}).forEach(([name, messages]) => {
    const target = form.querySelector(`#error-${name}`);
    const input = form.querySelector(`[name="${name}"]`);
    if (target) target.textContent = [].concat(messages).join(" ");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    }
  });
  if (first) first.focus();
}
