// Boot: the change feed, tabs, the theme picker, each tab's module, then the first models list.
// When that list has rendered, <body data-ready="1"> tells the desktop smoke test the UI is up.

import { hasToken } from "./api.js";
import { applyThemeCss, onThemes, themes } from "./bridge.js";
import * as events from "./events.js";
import * as selection from "./selection.js";
import * as store from "./store.js";
import { errorText, h, toast, toastError } from "./ui.js";
import * as modelsTab from "./tabs/models.js";
import * as trainingTab from "./tabs/training.js";
import * as crawlerTab from "./tabs/crawler.js";
import * as llmTab from "./tabs/llm.js";
import * as researchTab from "./tabs/research.js";

const TAB_KEY = "cllm-tab";
const TABS = { models: modelsTab, training: trainingTab, crawler: crawlerTab, llm: llmTab, research: researchTab };

// Use the last theme straight away (the server's answer follows) so a dark window does not flash light.
try {
  const remembered = localStorage.getItem("cllm-theme");
  if (remembered) applyThemeCss(remembered);
} catch {
  /* no storage: the server's choice arrives in a moment */
}

// ---- tabs ---------------------------------------------------------------------------------

const tabButtons = () => [...document.querySelectorAll('[role="tab"][data-tab]')];

export function openTab(name, { focus = false } = {}) {
  if (!TABS[name]) name = "models";
  for (const button of tabButtons()) {
    const active = button.dataset.tab === name;
    button.setAttribute("aria-selected", String(active));
    button.tabIndex = active ? 0 : -1;
    document.getElementById(`panel-${button.dataset.tab}`).hidden = !active;
    if (active && focus) button.focus();
  }
  sessionStorage.setItem(TAB_KEY, name);
  TABS[name].shown?.();
}

function setUpTabs() {
  const buttons = tabButtons();
  for (const button of buttons) {
    button.addEventListener("click", () => openTab(button.dataset.tab));
    button.addEventListener("keydown", (e) => {
      const i = buttons.indexOf(button);
      const target = {
        ArrowRight: buttons[(i + 1) % buttons.length],
        ArrowLeft: buttons[(i - 1 + buttons.length) % buttons.length],
        Home: buttons[0],
        End: buttons[buttons.length - 1],
      }[e.key];
      if (target) {
        e.preventDefault();
        openTab(target.dataset.tab, { focus: true });
      }
    });
  }
  openTab(sessionStorage.getItem(TAB_KEY) || "models");
}

// ---- theme picker -------------------------------------------------------------------------

function renderThemePicker(listing) {
  const picker = document.getElementById("theme-select");
  picker.replaceChildren(
    ...listing.themes.map((t) => h("option", { value: t.name }, t.builtin ? `${capital(t.name)}` : t.name)),
  );
  picker.value = listing.current;
  picker.disabled = false;
  applyThemeCss(listing.current);
}

function capital(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

async function setUpThemes() {
  const picker = document.getElementById("theme-select");
  onThemes(renderThemePicker);
  picker.addEventListener("change", async () => {
    try {
      await themes.use(picker.value);
    } catch (err) {
      toastError(err);
    }
  });
  document.getElementById("import-theme").addEventListener("click", async () => {
    try {
      const listing = await themes.import();
      if (!listing) return;
      if (listing.added) {
        await themes.use(listing.added);
        applyThemeCss(listing.added, { reload: true }); // in case a theme of that name was replaced
        toast(`Imported the theme “${listing.added}” and switched to it`, { kind: "ok" });
      } else {
        // A theme of the same name was replaced: load the one in use again in case it was that one.
        applyThemeCss(listing.current, { reload: true });
        toast("Imported the theme, replacing the one of the same name", { kind: "ok" });
      }
    } catch (err) {
      toastError(err);
    }
  });
  try {
    const listing = await themes.list();
    renderThemePicker(listing);
    // Files in themes/ that are not themes are left out of the picker; say which and why.
    for (const bad of listing.skipped || []) {
      toast(`The theme file ${bad.name}.css was skipped: ${bad.message}`, { kind: "error", timeout: 15000 });
    }
  } catch (err) {
    toastError(err);
  }
}

// ---- boot ---------------------------------------------------------------------------------

function showNoAccess(detail) {
  document.getElementById("no-access").hidden = false;
  document.getElementById("no-access-detail").textContent = detail || "";
  document.querySelector(".tabbar").hidden = true;
  document.querySelector(".panels").hidden = true;
  document.querySelector(".header-tools").hidden = true;
  document.body.dataset.ready = "no-access";
}

async function boot() {
  if (!hasToken()) {
    showNoAccess("This page was opened without the token.");
    return;
  }
  // First the feed, then the first loads: a change made after them is always heard of.
  await events.start();
  for (const [name, tab] of Object.entries(TABS)) {
    tab.mount(document.getElementById(`panel-${name}`), { openTab });
  }
  setUpTabs();
  try {
    await store.init();
    await selection.init();
  } catch (err) {
    if (err.status === 403) {
      showNoAccess(errorText(err));
      return;
    }
    toastError(err);
  }
  document.body.dataset.ready = "1";
  setUpThemes();
}

boot();
