"""The engine a training job runs on: the built-in one, PyTorch in the worker's process, or
PyTorch over many processes, the worker being rank 0 and starting the others itself.

torch is imported only when a job names it, so the app starts without it.
"""

import ctypes
import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager

from cllm_app.procs import worker_command
from cllm_app.services.engines import INSTALL_HINT

RANK_EXIT_WAIT = 15.0  # seconds the other ranks get to finish after rank 0 has


class EngineUnavailable(RuntimeError):
    """The model names an engine or device this machine cannot run; the message says why."""


class RankFailed(RuntimeError):
    """A process of a many-process run died or stopped answering; the message is for a person."""


def import_torch_numerics():
    try:
        from cllm_app.engine import torch_numerics
    except ImportError as e:
        raise EngineUnavailable(f"the PyTorch engine needs PyTorch, which is not installed here ({e}): {INSTALL_HINT}") from e
    return torch_numerics


def describe(numerics) -> dict:
    """What the window shows of the engine a run uses."""
    if numerics.engine == "builtin":
        return {"engine": "builtin", "device": "cpu", "precision": "fp32", "processes": 1, "label": "Built-in (CPU)"}
    device = numerics.device
    name = str(device)
    if device.type == "cuda":
        import torch

        props = torch.cuda.get_device_properties(device)
        name = f"{device} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    processes = f" · {numerics.world} processes" if numerics.world > 1 else ""
    return {"engine": "torch", "device": str(device), "precision": numerics.precision, "processes": numerics.world,
            "label": f"PyTorch · {name} · {numerics.precision}{processes}"}


def _free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _die_with_parent() -> None:
    """In a rank's process before exec: when rank 0 is killed, the kernel kills this one too
    (Linux); elsewhere the failed collective ends it within the timeout."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _spawn_rank(job_id: int, rank: int, world: int, address: str, root, log_path) -> subprocess.Popen:
    env = {**os.environ, "CLLM_HOME": str(root), "LOCAL_RANK": str(rank)}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [*worker_command(job_id), "--rank", str(rank), "--world", str(world), "--address", address],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, close_fds=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def numerics(cfg, settings, rank: int = 0, world: int = 1, address: str | None = None):
    """The PyTorch engine's arithmetic for `settings`, joining a group first when world > 1."""
    tn = import_torch_numerics()
    try:
        device = tn.pick_device(settings.device)
        if world > 1:
            tn.init_ranks(rank, world, address, device)
        tn.share_cpu(device, world)
        return tn.TorchNumerics(cfg, settings, settings.device)
    except (RuntimeError, ValueError) as e:
        raise EngineUnavailable(str(e)) from e


@contextmanager
def numerics_for_job(studio, job_id: int, cfg, settings):
    """None for the built-in engine (the caller's kernels do the work); else PyTorch's, with the
    other ranks started when the model asks for more than one process and stopped at the end."""
    if settings.engine != "torch":
        yield None
        return
    world = settings.nproc
    if world == 1:
        yield numerics(cfg, settings)
        return
    tn = import_torch_numerics()  # a missing torch is said before any process starts
    address = _free_address()
    log_dir = studio.root.path / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    others = [_spawn_rank(job_id, r, world, address, studio.root.path, log_dir / f"job-{job_id}-rank-{r}.log")
              for r in range(1, world)]
    import torch.distributed as dist

    ended_well = False
    try:
        try:
            yield numerics(cfg, settings, 0, world, address)
            ended_well = True
        except EngineUnavailable:
            raise
        except Exception as e:
            if isinstance(e, dist.DistError) or any(p.poll() not in (None, 0) for p in _settled(others)):
                raise RankFailed(_rank_failure(others, world, e)) from e
            raise
    finally:
        tn.leave_ranks(together=ended_well)
        for p in others:
            try:
                p.wait(timeout=RANK_EXIT_WAIT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _settled(procs: list[subprocess.Popen], wait: float = 2.0) -> list[subprocess.Popen]:
    """The processes, given a moment to finish dying (a peer's socket closes before its exit)."""
    for p in procs:
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
    return procs


def _rank_failure(others: list[subprocess.Popen], world: int, error: Exception) -> str:
    dead = [(rank, p.returncode) for rank, p in enumerate(others, start=1) if p.returncode not in (None, 0)]
    if dead:
        rank, code = dead[0]
        how = f"was killed (signal {-code})" if code < 0 else f"ended with exit code {code}"
        what = f"training process {rank + 1} of {world} {how}"
    else:
        what = f"the {world} training processes lost contact ({str(error).splitlines()[0][:200]})"
    return f"{what}; Continue resumes from the last checkpoint"
