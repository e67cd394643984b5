"""The PyTorch engine's arithmetic, the twin of trainer.BuiltinNumerics: the same GPT
(torch_model.py), the same AdamW (torch's, whose order of operations kernels/adamw.pyx
follows), the same clipping, on any device torch has, in one process or as one rank of many.

With many processes each rank takes its own rows of every global batch (batch_size is the
global batch, so the data order, the steps and the epochs do not depend on how many
processes share the work) and DistributedDataParallel averages the gradients. Every rank
then holds the same weights; rank 0 writes the checkpoints.

torch is imported here and in torch_model.py only.
"""

import os
from contextlib import nullcontext
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.model import FlatTensors, param_shapes
from cllm_app.engine.torch_model import TorchGPT

# A rank that dies must fail the others' next collective, not hang them.
COLLECTIVE_TIMEOUT = timedelta(seconds=int(os.environ.get("CLLM_COLLECTIVE_TIMEOUT", "60")))


def pick_device(name: str) -> torch.device:
    """'auto' is the best there is: a CUDA GPU, Apple's MPS, else the CPU."""
    if name in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("this machine has no CUDA GPU that PyTorch can use; choose the device cpu or auto")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("this machine has no Apple GPU (MPS) that PyTorch can use; choose the device cpu or auto")
    return device


def precision_for(device: torch.device) -> str:
    """bf16 autocast where the GPU has it; fp32 elsewhere (the CPU's numbers then equal ours)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def init_ranks(rank: int, world: int, address: str, device: torch.device) -> None:
    """Join a group of `world` processes (gloo on the CPU, NCCL on CUDA) at tcp://address."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://{address}", rank=rank, world_size=world,
                            timeout=COLLECTIVE_TIMEOUT)


def share_cpu(device: torch.device, processes_here: int) -> None:
    """Processes sharing one CPU share its cores, rather than each taking them all."""
    if device.type == "cpu" and processes_here > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // processes_here))


def leave_ranks(together: bool) -> None:
    """Leave the group. `together` (the run ended as planned on every rank): wait for all first,
    since a rank that tore down its connections while rank 0 still wrote the last checkpoint
    aborted inside gloo ("terminate called without an active exception"). After a failure a
    peer may be gone, so nobody waits for it."""
    if not dist.is_initialized():
        return
    try:
        if together:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def check_split(batch_size: int, world: int) -> None:
    if batch_size % world:
        raise ValueError(
            f"batch_size {batch_size} does not split evenly over {world} processes; choose a multiple of {world}"
        )


def init_from_env(device: torch.device) -> None:
    """Join the group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)."""
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)


class TorchNumerics:
    engine = "torch"

    def __init__(self, cfg: GPTConfig, settings, device: str = "auto"):
        self.cfg, self.s = cfg, settings
        self.device = pick_device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.precision = precision_for(self.device)
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        check_split(settings.batch_size, self.world)
        self.model = TorchGPT(cfg).to(self.device)
        self.net = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        shapes = param_shapes(cfg)
        self.names = [name for name, _ in shapes]
        self.params = [self.model.w(name) for name in self.names]
        decay = [self.model.w(name) for name, shape in shapes if len(shape) == 2]
        rest = [self.model.w(name) for name, shape in shapes if len(shape) != 2]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": settings.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=settings.learning_rate, betas=(settings.beta1, settings.beta2), eps=settings.eps,
            **({"fused": True} if self.device.type == "cuda" else {"foreach": False}),
        )

    # ---- state ----------------------------------------------------------------------------

    def load(self, params: dict[str, np.ndarray], moments: dict[str, np.ndarray], step: int) -> None:
        self.model.load(params)
        self.model.to(self.device)
        self.opt.state.clear()
        if step == 0 and not moments:
            return  # torch starts the moments at zero itself
        for name in self.names:
            p = self.model.w(name)
            state = {"step": torch.tensor(float(step), dtype=torch.float32,
                                          device=p.device if self.device.type == "cuda" else "cpu")}
            for key, prefix in (("exp_avg", "m."), ("exp_avg_sq", "v.")):
                value = moments.get(prefix + name)
                state[key] = (torch.from_numpy(np.ascontiguousarray(value, np.float32)).to(self.device)
                              if value is not None else torch.zeros_like(p))
            self.opt.state[p] = state

    def tensors(self) -> dict[str, np.ndarray]:
        out = {"param." + k: v for k, v in self.model.named_arrays().items()}
        for name in self.names:
            p = self.model.w(name)
            state = self.opt.state.get(p, {})
            for key, prefix in (("exp_avg", "m."), ("exp_avg_sq", "v.")):
                t = state.get(key)
                out[prefix + name] = (t.detach().to("cpu", torch.float32).numpy().copy() if t is not None
                                      else np.zeros(tuple(p.shape), np.float32))
        return out

    def weights(self) -> dict[str, np.ndarray]:
        return self.model.named_arrays()

    def decoding_params(self) -> FlatTensors:
        flat = FlatTensors(self.cfg)
        flat.load(self.weights())
        return flat

    # ---- a step -----------------------------------------------------------------------------

    def _rows(self, a: np.ndarray) -> torch.Tensor:
        """This rank's rows of a global batch, on the device."""
        n = a.shape[0] // self.world
        part = a[self.rank * n : (self.rank + 1) * n] if self.world > 1 else a
        return torch.from_numpy(np.ascontiguousarray(part, dtype=np.int64)).to(self.device, non_blocking=True)

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return torch.autocast(self.device.type, enabled=False)

    def forward_backward(self, micro_batches: list) -> float:
        A = len(micro_batches)
        self.opt.zero_grad(set_to_none=False)
        total = torch.zeros((), dtype=torch.float32, device=self.device)
        for i, (x, y) in enumerate(micro_batches):
            last = i == A - 1
            # DDP averages the gradients once per step, after the last micro-batch.
            sync = self.net.no_sync() if (self.world > 1 and not last) else nullcontext()
            with sync:
                with self._autocast():
                    _, loss = self.net(self._rows(x), self._rows(y))
                (loss / A).backward()
            total += loss.detach().float() / A
        if self.world > 1:
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
            total /= self.world
        return float(total.item())

    def optimizer_step(self, lr: float, step: int, s) -> float:
        """Clip by the global norm (added in double, as the built-in engine does), then AdamW.
        `step` is the step being taken; torch's AdamW counts it in its own state."""
        grads = [p.grad for p in self.params]
        norm = float(torch.sqrt(sum(g.double().pow(2).sum() for g in grads)).item())
        if norm > s.grad_clip and norm > 0:
            torch._foreach_mul_(grads, s.grad_clip / norm)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()
        return norm

    @torch.no_grad()
    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        if self.world > 1 and x.shape[0] % self.world == 0:
            with self._autocast():
                _, loss = self.model(self._rows(x), self._rows(y))
            total = loss.detach().float()
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
            return float(total.item()) / self.world
        with self._autocast():  # too few rows to share: every rank takes them all
            _, loss = self.model(torch.from_numpy(np.ascontiguousarray(x, np.int64)).to(self.device),
                                 torch.from_numpy(np.ascontiguousarray(y, np.int64)).to(self.device))
        return float(loss.float().item())

    # ---- agreement between ranks ----------------------------------------------------------

    def agree(self, code: int) -> int:
        """Rank 0's word (it alone watches for a stop) for every rank."""
        if self.world == 1:
            return code
        t = torch.tensor([code], dtype=torch.int32, device=self.device)
        dist.broadcast(t, src=0)
        return int(t.item())

    def agree_ids(self, ids: list[int]) -> list[int]:
        if self.world == 1:
            return ids
        box = [ids]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return list(box[0])

