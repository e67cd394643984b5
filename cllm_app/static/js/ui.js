// Small shared helpers: building elements, toasts, dialogs, and number/date formatting.

/** Escape text for the rare place that builds HTML from a string. */
export function escapeHtml(value) {
  return String(value ?? "").replace(/[&<>"']/g, (ch) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[ch]);
}

/**
 * Build an element: h("button", {class: "btn", onclick: fn, dataset: {x: 1}}, "Text", child…).
 * Strings become text nodes (never HTML), null/false children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    const isProperty = key in el && !key.includes("-") && key !== "list" && key !== "form";
    if (value === false && !isProperty) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (isProperty) el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Mark `el` as a part refill() may keep, under `key`. */
export function keepable(key, el) {
  el.dataset.keep = key;
  return el;
}

/**
 * fill(), except that a keepable() child the new content would draw exactly as it is drawn now
 * (the same outerHTML) is kept, not replaced. A click fires only when mouse-down and mouse-up
 * land on one element: a panel redrawn in between (a store event, a reply arriving) would
 * replace the button under the pointer and swallow the click. Mark only parts whose handlers
 * depend on nothing but what their HTML shows.
 */
export function refill(el, ...children) {
  const shown = new Map([...el.children].filter((c) => c.dataset.keep).map((c) => [c.dataset.keep, c]));
  const fresh = document.createDocumentFragment();
  append(fresh, children);
  const nodes = [...fresh.childNodes].map((node) => {
    const was = node instanceof Element && node.dataset.keep ? shown.get(node.dataset.keep) : null;
    return was && was.outerHTML === node.outerHTML ? was : node;
  });
  // A kept node must never leave the document, not even to be put back at once: Chromium forgets
  // the mouse-down's element when it is removed. So the others are removed and inserted around it.
  for (const child of [...el.childNodes]) if (!nodes.includes(child)) child.remove();
  let next = el.firstChild;
  for (const node of nodes) {
    if (node === next) next = next.nextSibling;
    else el.insertBefore(node, next);
  }
  return el;
}

/** Start a message with a capital, unless it starts with a field name such as sequence_length. */
export function sentence(text) {
  const value = String(text ?? "");
  if (/^[a-z0-9]+_[a-z0-9_]*\b/.test(value)) return value;
  return value.charAt(0).toUpperCase() + value.slice(1);
}

/** The message of an error, as a sentence a person reads. */
export function errorText(err) {
  return sentence(err?.message || err || "Something went wrong");
}

// ---- formatting ---------------------------------------------------------------------------

const integer = new Intl.NumberFormat();

export function formatInt(n) {
  return Number.isFinite(n) ? integer.format(n) : "–";
}

/** 1536 → "1.5 KB". */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/** 842624 → "843K", 12_400_000 → "12.4M". */
export function formatParams(n) {
  if (!Number.isFinite(n)) return "–";
  if (n < 1_000) return String(n);
  if (n < 1_000_000) return `${(n / 1_000).toFixed(n < 10_000 ? 1 : 0)}K`;
  if (n < 1_000_000_000) return `${(n / 1_000_000).toFixed(n < 10_000_000 ? 2 : 1)}M`;
  return `${(n / 1_000_000_000).toFixed(2)}B`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

const dayThisYear = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const dayOtherYear = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function parse(iso) {
  const date = iso ? new Date(iso) : null;
  return date && !Number.isNaN(date.getTime()) ? date : null;
}

/** A compact local day for table cells: "Nov 29", or "Nov 29, 2025" in another year. */
export function formatDay(iso) {
  const date = parse(iso);
  if (!date) return iso || "–";
  return (date.getFullYear() === new Date().getFullYear() ? dayThisYear : dayOtherYear).format(date);
}

/** How long ago: "just now", "5 minutes ago", "yesterday"; a day after a week. */
export function formatAgo(iso) {
  const date = parse(iso);
  if (!date) return iso || "–";
  const seconds = (date.getTime() - Date.now()) / 1000;
  const ago = -seconds;
  if (ago < 45) return "just now";
  if (ago < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (ago < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  if (ago < 7 * 86400) return relative.format(Math.round(seconds / 86400), "day");
  return formatDay(iso);
}

/** "2026-11-29T00:19:28Z" → local date and time. */
export function formatDate(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTime.format(date);
}

// ---- toasts -------------------------------------------------------------------------------

function toastRegion() {
  let region = document.getElementById("toasts");
  if (!region) {
    region = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  return region;
}

/**
 * Show a short message at the bottom of the window.
 * toast("Deleted x", {action: {label: "Undo", onClick}, kind: "ok" | "error" | "info", timeout: ms})
 */
export function toast(message, { action = null, kind = "info", timeout } = {}) {
  const el = h("div", { class: `toast toast-${kind}`, dataset: { testid: "toast" } });
  const close = () => {
    clearTimeout(timer);
    el.remove();
  };
  el.append(h("span", { class: "toast-message" }, message));
  if (action) {
    el.append(
      h("button", {
        type: "button",
        class: "btn btn-small toast-action",
        onclick: async () => {
          close();
          await action.onClick();
        },
      }, action.label),
    );
  }
  el.append(h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", onclick: close }, "×"));
  toastRegion().append(el);
  const ms = timeout ?? (action ? 12000 : kind === "error" ? 9000 : 4000);
  const timer = setTimeout(close, ms);
  return { close, element: el };
}

/** Show an API refusal (or any error) as a toast with its own message. */
/** Put `text` on the clipboard and say so. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard permission (some embedded views): a selected textarea and the copy command.
    const area = h("textarea", { class: "visually-hidden" }, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast("Copied", { kind: "ok", timeout: 1500 });
}

export function toastError(err) {
  console.warn(err);
  return toast(errorText(err), { kind: "error" });
}

// ---- dialogs ------------------------------------------------------------------------------

function openDialog(build) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "dialog" });
    let result = null;
    const finish = (value) => {
      result = value;
      dialog.close();
    };
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    build(dialog, finish);
    document.body.append(dialog);
    dialog.showModal();
  });
}

/**
 * Ask a yes/no question in a modal <dialog>. Resolves true only when confirmed;
 * Escape, Cancel and the close button resolve false.
 */
export function confirmDialog({ title, message, confirmLabel = "OK", cancelLabel = "Cancel", danger = false }) {
  return openDialog((dialog, finish) => {
    const cancel = h("button", { type: "button", class: "btn", dataset: { testid: "dialog-cancel" }, onclick: () => finish(false) }, cancelLabel);
    const ok = h("button", {
      type: "button",
      class: `btn ${danger ? "btn-danger" : "btn-primary"}`,
      dataset: { testid: "dialog-confirm" },
      onclick: () => finish(true),
    }, confirmLabel);
    dialog.setAttribute("aria-labelledby", "dialog-title");
    dialog.append(
      h("h2", { class: "dialog-title", id: "dialog-title" }, title),
      h("div", { class: "dialog-body" }, message),
      h("div", { class: "dialog-actions" }, cancel, ok),
    );
    queueMicrotask(() => cancel.focus());
  }).then((value) => value === true);
}

/**
 * Ask for a text value. `validate(value)` may return {ok, message} (or a promise of it);
 * the OK button stays disabled while the value is invalid. Resolves the value or null.
 */
export function promptDialog({ title, message, value = "", label = "Name", confirmLabel = "OK", validate = null }) {
  return openDialog((dialog, finish) => {
    const input = h("input", { type: "text", class: "input", value, dataset: { testid: "dialog-input" }, autocomplete: "off", spellcheck: false });
    const hint = h("p", { class: "field-message", "aria-live": "polite", dataset: { testid: "dialog-message" } });
    const ok = h("button", { type: "submit", class: "btn btn-primary", dataset: { testid: "dialog-confirm" } }, confirmLabel);
    const cancel = h("button", { type: "button", class: "btn", dataset: { testid: "dialog-cancel" }, onclick: () => finish(null) }, "Cancel");
    let seq = 0;
    const check = async () => {
      const mine = ++seq;
      if (!validate) return;
      ok.disabled = true;
      const verdict = await validate(input.value);
      if (mine !== seq) return;
      ok.disabled = !verdict.ok;
      hint.textContent = verdict.ok ? "" : verdict.message;
      hint.classList.toggle("is-error", !verdict.ok);
    };
    input.addEventListener("input", check);
    const form = h("form", { method: "dialog", class: "dialog-form", onsubmit: (e) => {
      e.preventDefault();
      if (!ok.disabled) finish(input.value);
    } },
      h("h2", { class: "dialog-title", id: "dialog-title" }, title),
      message ? h("div", { class: "dialog-body" }, message) : null,
      h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, hint),
      h("div", { class: "dialog-actions" }, cancel, ok),
    );
    dialog.setAttribute("aria-labelledby", "dialog-title");
    dialog.append(form);
    queueMicrotask(() => {
      input.focus();
      input.select();
      check();
    });
  });
}

/** Run `fn` after `ms` of quiet; each call restarts the wait. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
