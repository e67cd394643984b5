// The Engine choice beside Start: Built-in (CPU) or PyTorch, with PyTorch's device and how
// many processes (GPUs) share the work. The choice is the model's own (its engine, device and
// nproc settings), saved the moment it changes; what this machine has comes from GET
// /api/engines, asked once (PyTorch is looked for in a process of its own, so the first answer
// can take a few seconds).

import * as api from "../api.js";
import { errorText, h } from "../ui.js";

/**
 * createEngineChoice({ onSaved }) -> { el, show(model), setBusy(bool) }
 * `onSaved(model)`: the server's model after a change was saved.
 */
export function createEngineChoice({ onSaved }) {
  let model = null;
  let known = null; // GET /api/engines
  let busy = false;
  const engine = h("select", { id: "engine-select", class: "input", dataset: { testid: "engine-select" } });
  const device = h("select", { id: "engine-device", class: "input", dataset: { testid: "engine-device" } });
  const nproc = h("input", { id: "engine-nproc", class: "input input-num", type: "number", min: "1", max: "64", step: "1",
    dataset: { testid: "engine-nproc" }, title: "processes (one per GPU); batch_size is split between them" });
  const note = h("p", { class: "engine-note small muted", dataset: { testid: "engine-note" } });
  const error = h("p", { class: "form-error", role: "alert", dataset: { testid: "engine-error" } });
  const torchOnly = h("span", { class: "engine-torch" },
    h("label", { for: "engine-device", class: "field-label" }, "Device"), device,
    h("label", { for: "engine-nproc", class: "field-label" }, "Processes"), nproc);
  const el = h("div", { class: "engine-choice", dataset: { testid: "engine-choice" } },
    h("div", { class: "engine-row" }, h("label", { for: "engine-select", class: "field-label" }, "Engine"), engine, torchOnly),
    note, error);

  api.get("/api/engines").then((answer) => {
    known = answer;
    render();
  }, (err) => {
    error.textContent = `Could not list the engines: ${errorText(err)}`;
  });

  function torchInfo() {
    return known?.engines.find((e) => e.name === "torch") || null;
  }

  function render() {
    const torch = torchInfo();
    const options = [h("option", { value: "builtin" }, "Built-in (CPU)")];
    options.push(h("option", { value: "torch", disabled: Boolean(known && !torch?.available && model?.engine !== "torch") },
      torch && !torch.available ? "PyTorch (not available here)" : "PyTorch"));
    engine.replaceChildren(...options);
    const devices = torch?.devices?.length ? torch.devices : [{ name: "auto", label: "Auto" }, { name: "cpu", label: "CPU" }];
    const names = devices.map((d) => d.name);
    const current = model?.device || "auto";
    device.replaceChildren(...devices.map((d) => h("option", { value: d.name }, d.label)),
      ...(names.includes(current) ? [] : [h("option", { value: current }, `${current} (not on this machine)`)]));
    if (!model) {
      engine.disabled = device.disabled = nproc.disabled = true;
      torchOnly.hidden = true;
      note.textContent = "";
      return;
    }
    if (document.activeElement !== engine) engine.value = model.engine;
    if (document.activeElement !== device) device.value = current;
    if (document.activeElement !== nproc) nproc.value = String(model.nproc);
    engine.disabled = device.disabled = nproc.disabled = busy;
    torchOnly.hidden = model.engine !== "torch";
    if (model.engine === "torch" && torch && !torch.available) {
      const reason = torch.reason || "PyTorch is not available here";
      note.textContent = reason.includes(torch.install) ? `${reason}.` : `${reason}. To install it: ${torch.install}`;
    } else if (model.engine === "torch" && torch) {
      note.textContent = `PyTorch ${torch.version}. Any engine continues this model's last checkpoint.`;
    } else if (known && torch && !torch.available) {
      note.textContent = `PyTorch (GPUs, many processes) needs: ${torch.install}`;
    } else {
      note.textContent = "";
    }
  }

  async function save(body) {
    if (!model) return;
    error.textContent = "";
    try {
      const saved = await api.patch(`/api/models/${api.seg(model.model_name)}`, body);
      onSaved(saved);
    } catch (err) {
      error.textContent = errorText(err);
      render(); // back to the stored choice
    }
  }

  engine.addEventListener("change", () => save({ engine: engine.value }));
  device.addEventListener("change", () => save({ device: device.value }));
  nproc.addEventListener("change", () => {
    const value = Number(nproc.value);
    if (!Number.isInteger(value) || value < 1) {
      error.textContent = "Processes needs a whole number, 1 or more.";
      return;
    }
    save({ nproc: value });
  });

  return {
    el,
    show(next) {
      model = next;
      render();
    },
    setBusy(value) {
      busy = value;
      render();
    },
  };
}
