"""Starting a job's process, and telling whether a process is still alive."""

import functools
import os
import subprocess
import sys
from pathlib import Path

# Background jobs yield the CPU to the window and to replies being written: at the same priority a
# training job's threads kept a 2-core machine so busy that the model list's p99 passed 50 ms.
# With nothing else running a job still has every core. CLLM_JOB_NICENESS (0 to 19) changes it;
# 0 runs jobs at the app's own priority.
JOB_NICENESS = 10


def job_niceness() -> int:
    try:
        return max(0, min(19, int(os.environ.get("CLLM_JOB_NICENESS", JOB_NICENESS))))
    except ValueError:
        return JOB_NICENESS


def lower_priority(niceness: int) -> None:
    """Run this process at `niceness` more than now (POSIX): its threads, and those it starts later."""
    if not hasattr(os, "nice") or niceness <= 0:
        return
    os.nice(niceness)  # this thread, and the threads it starts from now on
    now = os.getpriority(os.PRIO_PROCESS, 0)
    try:  # on Linux a niceness is a thread's own: threads already running (OpenBLAS's) keep theirs
        tids = os.listdir("/proc/self/task")
    except OSError:
        return
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), now)
        except OSError:
            pass  # a thread that ended meanwhile


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


@functools.cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _windows_creation_time(pid: int) -> str | None:
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFORMATION
    if not handle:
        return None
    try:
        created, exited, kernel, user = (wintypes.FILETIME() for _ in range(4))
        if not kernel32.GetProcessTimes(handle, ctypes.byref(created), ctypes.byref(exited),
                                        ctypes.byref(kernel), ctypes.byref(user)):
            return None
        return str((created.dwHighDateTime << 32) | created.dwLowDateTime)
    finally:
        kernel32.CloseHandle(handle)


def process_start(pid: int | None) -> str | None:
    """When process `pid` started, as a text to compare for equality: two processes that had the
    same pid, one after the other, have different ones. None when the process is gone or the
    system will not say."""
    if not pid:
        return None
    if os.name == "nt":
        return _windows_creation_time(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None  # Linux, and the process is gone
    except OSError:
        return None
    else:
        # Field 22, starttime, in clock ticks after boot; the fields are counted after the
        # command name's closing parenthesis (the name itself may hold spaces and parentheses).
        # The boot id tells a tick count of this boot from the same count of an earlier one.
        fields = stat.rsplit(b")", 1)[-1].split()
        return f"{_boot_id()}:{fields[19].decode()}" if len(fields) > 19 else None
    # macOS and the BSDs have no /proc: ps tells the start to the second, which with the pid is
    # enough (the system would have to hand the pid out again within that second).
    try:
        out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True,
                             timeout=5, env={**os.environ, "LC_ALL": "C"}, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def process_alive(pid: int | None, started: str | None) -> bool:
    """Whether the process that had `pid` when it `started` (process_start's text) still runs.
    A live process with another start is one that got the pid after the first ended. Without a
    recorded start (a job from before they were kept) the pid alone decides; so it does where
    the system does not tell the start now."""
    if not pid_alive(pid):
        return False
    if started is None:
        return True
    now = process_start(pid)
    return now is None or now == started
