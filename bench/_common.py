"""What the benches share: torch and our compiled kernels, or a plain way out; the app
started as `cllm serve` on a data root of its own."""

import importlib
import os
import re
import select
import subprocess
import sys
import time

URL_LINE = re.compile(r"serving at (http://127\.0\.0\.1:(\d+))/#token=(\S+)")


def load(kernel_module: str, threads: int):
    """(torch, cllm_app.kernels.<kernel_module>), both ready; exit 2 saying why if one is missing."""
    try:
        import torch
    except ImportError:
        print(
            "PyTorch is not installed, so there is nothing to compare against.\n"
            "Install the bench extra (CPU build, torch==2.13.0):\n"
            "    pip install -e '.[bench]'",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        module = importlib.import_module(f"cllm_app.kernels.{kernel_module}")
    except ImportError as exc:
        print(
            f"The Cython kernels are not built ({exc}).\n"
            "Build them with: pip install -e . --no-build-isolation",
            file=sys.stderr,
        )
        sys.exit(2)
    torch.set_num_threads(threads)
    return torch, module


def start_app(home, env: dict | None = None) -> tuple[subprocess.Popen, str, int, str]:
    """`cllm serve` on the data root `home`: (process, origin, port, token) once it says where it serves."""
    env = {**os.environ, "CLLM_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "cllm_app", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            match = URL_LINE.search(proc.stdout.readline())
            if match:
                return proc, match.group(1), int(match.group(2)), match.group(3)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("the app did not start")
