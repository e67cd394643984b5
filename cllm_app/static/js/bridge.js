// The JS bridge between the page and its host.
//
// Inside the desktop window (pywebview), `window.pywebview.api` appears after the
// `pywebviewready` event and offers native methods: list_themes(), use_theme(name),
// import_theme() (a native file dialog; returns the themes listing, or null when cancelled),
// pick_files() (a native multi-file dialog; returns a list of paths), pick_folder() (a
// native folder dialog; returns a path, or null when cancelled) and save_file(name, base64) (a
// native save dialog, then the file written; returns its path, or null when cancelled: the
// window allows no downloads, so saveFile() below goes there). In a plain browser the theme
// functions fall back to HTTP: GET /api/themes, PUT /api/themes/current, and for import a
// hidden <input type=file> whose text is POSTed to /api/themes; the pickers are absent there
// (a browser cannot give a path), so the page offers its own file input or a path field.
// The desktop methods answer a refusal with {"error": {"code", "message"}} (exceptions do not
// cross into JavaScript usefully); here that becomes a thrown ApiError, as with HTTP.
//
// Restyling from the developer console (both in the window and in a browser):
//
//   await cllmStudio.themes.list()               // → {themes: [{name, builtin}], current}
//   await cllmStudio.themes.use("dark")          // switch theme (and remember it)
//   await cllmStudio.themes.add("mine", "--theme-base: dark; --accent: #c0392b;");
//                                                // (saved as themes/mine.css in the data root)
//   await cllmStudio.themes.use("mine")
//   cllmStudio.selection.current()               // the selected model's name
//   await cllmStudio.selection.select("model_2") // select another model in every tab
//
// A theme is a set of overrides on a built-in theme: the custom properties of /themes/light.css
// it changes, and `--theme-base: dark;` to start from the dark theme instead of the light one.
// `cllmStudio.themes.add("mine", "--accent: #c00;")` is a whole theme: everything it does not
// set comes from its base. Every colour, font and size in the app comes from those variables.
// It may hold nothing but those declarations: the server checks every theme, whichever way it
// comes (services/theme_css.py, services/themes.py), and add() rejects with the server's
// message naming what is not allowed (a variable the app does not have, a selector,
// `@import`, `url(`…).

import * as api from "./api.js";
import * as selection from "./selection.js";

const THEME_EVENT = "cllm:themes";

/** A desktop method's answer, or the ApiError it stands for. */
function unwrap(result) {
  if (result && typeof result === "object" && result.error && typeof result.error === "object") {
    throw new api.ApiError(0, result.error.code || "bridge_error", result.error.message || "The desktop bridge refused");
  }
  return result;
}

/** The pywebview API object, when running inside the desktop window and it is ready. */
function desktop() {
  const native = window.pywebview?.api;
  return native && typeof native.list_themes === "function" ? native : null;
}

let readyPromise = null;

/** Resolves once we know whether the desktop bridge is there (at most ~3 s of waiting). */
export function bridgeReady() {
  if (!readyPromise) {
    readyPromise = new Promise((resolve) => {
      if (desktop() || !window.pywebview) {
        resolve(Boolean(desktop()));
        return;
      }
      const done = () => resolve(Boolean(desktop()));
      window.addEventListener("pywebviewready", done, { once: true });
      setTimeout(done, 3000);
    });
  }
  return readyPromise;
}

export function isDesktop() {
  return Boolean(desktop());
}

/** Tell the page (the theme picker) that the theme listing changed. */
function announce(listing) {
  if (listing && Array.isArray(listing.themes)) {
    window.dispatchEvent(new CustomEvent(THEME_EVENT, { detail: listing }));
  }
  return listing;
}

/** Listen for theme listing changes: fn({themes, current}). */
export function onThemes(fn) {
  window.addEventListener(THEME_EVENT, (e) => fn(e.detail));
}

/** Point the page's theme stylesheet at `name`; `reload` fetches it again (its file changed).
 * A theme that does not load (removed, or refused since it was chosen) gives way to the light
 * theme: the page never goes without its variables. */
export function applyThemeCss(name, { reload = false } = {}) {
  const link = document.getElementById("theme-css");
  const href = `/themes/${encodeURIComponent(name)}.css${reload ? `?v=${Date.now()}` : ""}`;
  const now = link?.getAttribute("href") || "";
  if (link) {
    link.onerror = name === "light" ? null : () => applyThemeCss("light");
    if (reload || now.split("?")[0] !== href) link.setAttribute("href", href);
  }
  try {
    localStorage.setItem("cllm-theme", name);
  } catch {
    /* storage may be off; the server still remembers the theme */
  }
  document.documentElement.dataset.theme = name;
}

async function listThemes() {
  await bridgeReady();
  const native = desktop();
  return native ? unwrap(await native.list_themes()) : api.get("/api/themes");
}

async function useTheme(name) {
  await bridgeReady();
  const native = desktop();
  const listing = native ? unwrap(await native.use_theme(name)) : await api.put("/api/themes/current", { name });
  applyThemeCss(name);
  return announce(listing || (await listThemes()));
}

async function addTheme(name, css) {
  return announce(await api.post("/api/themes", { name, css }));
}

function pickCssFileInBrowser() {
  return new Promise((resolve) => {
    const input = document.createElement("input");
    input.type = "file";
    input.accept = ".css,text/css";
    input.hidden = true;
    input.dataset.testid = "theme-file-input";
    const finish = (file) => {
      input.remove();
      resolve(file);
    };
    input.addEventListener("change", () => finish(input.files[0] || null), { once: true });
    input.addEventListener("cancel", () => finish(null), { once: true });
    document.body.append(input);
    input.click();
  });
}

/**
 * Let the person choose a .css theme file and save it as a theme.
 * Resolves the new listing with `added` (the new theme's name when one is known), or null if cancelled.
 */
async function importTheme() {
  await bridgeReady();
  const native = desktop();
  if (native) {
    const before = new Set((unwrap(await native.list_themes())?.themes || []).map((t) => t.name));
    const listing = unwrap(await native.import_theme());
    if (!listing) return null;
    const added = (listing.themes || []).map((t) => t.name).find((n) => !before.has(n)) || null;
    return { ...announce(listing), added };
  }
  const file = await pickCssFileInBrowser();
  if (!file) return null;
  const name = file.name.replace(/\.css$/i, "");
  const listing = await addTheme(name, await file.text());
  return { ...listing, added: name };
}

/**
 * Native multi-file dialog (desktop only). `kinds`: extensions such as ["txt", "jsonl"], or
 * omitted for any file. Returns a list of paths ([] when cancelled), or null in a browser.
 */
export async function pickFiles(kinds) {
  await bridgeReady();
  const native = desktop();
  if (!native || typeof native.pick_files !== "function") return null;
  return unwrap(await (kinds ? native.pick_files(kinds) : native.pick_files()));
}

/** Whether a native folder dialog is there (the desktop window): a browser types the path. */
export async function canPickFolder() {
  await bridgeReady();
  return typeof desktop()?.pick_folder === "function";
}

/**
 * Native folder dialog (desktop only), opening in `start` when that folder exists. Returns the
 * folder's path, null when cancelled, or undefined in a browser (canPickFolder() says which).
 */
export async function pickFolder(start) {
  await bridgeReady();
  const native = desktop();
  if (!native || typeof native.pick_folder !== "function") return undefined;
  return unwrap(await native.pick_folder(start || null)) || null;
}

function base64Of(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

/**
 * Save `blob` as a file named `filename`: in the desktop window through its native save dialog,
 * in a browser as a download. Resolves the path saved to (desktop), "" for a download (the
 * browser says where), or null when the person cancelled the dialog.
 */
export async function saveFile(blob, filename) {
  await bridgeReady();
  const native = desktop();
  if (native && typeof native.save_file === "function") {
    return unwrap(await native.save_file(filename, await base64Of(blob))) || null;
  }
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The download reads the blob after click() returns: let it go later, not at once.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return "";
}

export const themes = {
  list: listThemes,
  use: useTheme,
  add: addTheme,
  import: importTheme,
};

window.cllmStudio = { themes: { list: listThemes, use: useTheme, add: addTheme }, selection };
