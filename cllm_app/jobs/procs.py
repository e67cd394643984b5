"""Starting a job's process, and telling whether a process is still alive."""

import os
import subprocess
import sys
from pathlib import Path


def worker_command(job_id: int) -> list[str]:
    # A PyInstaller binary is `cllm` itself; from source, run the package.
    if getattr(sys, "frozen", False):
        return [sys.executable, "worker", str(job_id)]
    return [sys.executable, "-m", "cllm_app", "worker", str(job_id)]


def spawn_worker(job_id: int, root: Path, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "CLLM_HOME": str(root)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            worker_command(job_id),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            close_fds=True,
        )


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    if os.name == "nt":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child has not been reaped yet but runs no more
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True
