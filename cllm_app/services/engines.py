"""The engines this machine can train on: the built-in one always, PyTorch where it is
installed, with the devices it reports (GPU names and memory).

Asking PyTorch imports torch, which takes seconds and memory the app never needs for itself,
so a short-lived process asks once and the answer is kept until asked to look again.
"""

import importlib.util
import json
import os
import subprocess
import sys
import threading

from cllm_app.errors import InvalidInput

INSTALL_HINT = "pip install 'cllm-studio[torch]'"
PROBE_TIMEOUT = 120.0

_PROBE = r"""
import json, torch
devices = [{"name": "cpu", "label": "CPU", "count": 1}]
if torch.cuda.is_available():
    n = torch.cuda.device_count()
    p = torch.cuda.get_device_properties(0)
    devices.append({"name": "cuda", "count": n, "bf16": bool(torch.cuda.is_bf16_supported()),
                    "label": f"CUDA: {p.name}, {p.total_memory / 2**30:.0f} GiB" + (f" (x{n})" if n > 1 else "")})
mps = getattr(torch.backends, "mps", None)
if mps is not None and mps.is_available():
    devices.append({"name": "mps", "label": "Apple GPU (MPS)", "count": 1})
print(json.dumps({"version": torch.__version__, "devices": devices}))
"""

_lock = threading.Lock()
_known: dict | None = None


def torch_installed() -> bool:
    return not getattr(sys, "frozen", False) and importlib.util.find_spec("torch") is not None


def _probe_torch() -> dict:
    if not torch_installed():
        return {"available": False, "reason": f"PyTorch is not installed: {INSTALL_HINT}"}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"available": False, "reason": f"PyTorch did not answer within {PROBE_TIMEOUT:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return {"available": False, "reason": f"PyTorch is installed but does not start: {last}"}
    found = json.loads(done.stdout.strip().splitlines()[-1])
    best = next((d["name"] for d in reversed(found["devices"]) if d["name"] != "cpu"), "cpu")
    auto = {"name": "auto", "label": f"Auto (the best here: {best})", "count": 1}
    return {"available": True, "version": found["version"], "devices": [auto, *found["devices"]]}


def engines(refresh: bool = False) -> dict:
    """{"engines": [built-in, PyTorch]}: each with whether it runs here, and its devices."""
    global _known
    with _lock:
        if _known is None or refresh:
            torch_engine = {"name": "torch", "label": "PyTorch", "install": INSTALL_HINT, **_probe_torch()}
            torch_engine.setdefault("devices", [])
            builtin = {"name": "builtin", "label": "Built-in (CPU)", "available": True,
                       "devices": [{"name": "cpu", "label": f"this CPU ({os.cpu_count()} cores)", "count": 1}]}
            _known = {"engines": [builtin, torch_engine]}
        return _known


def check_can_train(settings: dict) -> None:
    """Refuse at Start what the engine cannot do here, rather than fail the job a moment later."""
    if settings.get("engine") != "torch":
        return
    if not torch_installed():
        raise InvalidInput(f"the PyTorch engine needs PyTorch, which is not installed here: {INSTALL_HINT}",
                           code="engine_unavailable")
    nproc, batch = settings.get("nproc", 1), settings.get("batch_size", 1)
    if nproc > 1 and settings.get("device") == "mps":
        raise InvalidInput("Apple's GPU (mps) trains in one process: set nproc to 1", code="invalid_nproc")
    if batch % nproc:
        raise InvalidInput(
            f"batch_size {batch} does not split evenly over {nproc} processes; choose a multiple of {nproc}",
            code="invalid_nproc",
        )
