"""Time LayerNorm forward + backward: our Cython kernel against PyTorch's.

    python bench/bench_layernorm.py [--reps 300] [--warmup 30]

Both sides run on two threads and on the shapes of two training configs
(rows = batch * time), and read the same input arrays. One step is a forward
and a backward, timed in two ways:

  fresh       each step starts from zero gradients. Ours: forward, zero the
              three gradient arrays (our backward adds into them), backward.
              PyTorch: F.layer_norm, then autograd backward into fresh .grad
              tensors (.grad set to None first, PyTorch's default).
  accumulate  each step adds into gradients that already hold values, as for
              a residual stream's gradient or over micro-batches. Ours:
              forward, backward, no zeroing. PyTorch: the same with .grad
              kept, so autograd adds the new gradient into it.

"fresh" is the conservative comparison: it charges our side for zeroing.
The sides are timed in turns, step by step, so a busy machine slows both
alike; the table shows the median of each. Before timing, the outputs and
gradients of the two are checked to agree within 1e-4 (absolute, or relative
for values above 1).

Needs PyTorch: pip install -e '.[bench]' (the CPU build, torch==2.13.0).
"""

import argparse
import os
import sys
import time
from pathlib import Path

# Both OpenMP runtimes read this when they load: pin ours to the same two
# threads PyTorch gets, on any machine. An explicit setting still wins.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# Runnable from a checkout without installing: the package is one level up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402  (bench/ is on sys.path when a bench script runs)
import numpy as np  # noqa: E402

THREADS = 2
EPS = 1e-5
AGREE = 1e-4
CONFIGS = [("A", 8 * 128, 128), ("B", 8 * 256, 384)]


def load():
    return _common.load("layernorm", THREADS)


class Ours:
    def __init__(self, layernorm, inp, weight, bias, dout, fresh):
        n, c = inp.shape
        self.ln = layernorm
        self.fresh = fresh
        self.inp, self.weight, self.bias, self.dout = inp, weight, bias, dout
        self.out = np.empty((n, c), np.float32)
        self.mean = np.empty(n, np.float32)
        self.rstd = np.empty(n, np.float32)
        self.dinp = np.zeros((n, c), np.float32)
        self.dweight = np.zeros(c, np.float32)
        self.dbias = np.zeros(c, np.float32)

    def step(self):
        self.ln.layernorm_forward(self.out, self.mean, self.rstd, self.inp, self.weight, self.bias)
        if self.fresh:
            self.dinp.fill(0.0)
            self.dweight.fill(0.0)
            self.dbias.fill(0.0)
        self.ln.layernorm_backward(self.dinp, self.dweight, self.dbias, self.dout,
                                   self.inp, self.weight, self.mean, self.rstd)

    def results(self):
        return self.out, self.dinp, self.dweight, self.dbias


class Torch:
    def __init__(self, torch, inp, weight, bias, dout, fresh):
        self.torch = torch
        self.fresh = fresh
        self.c = inp.shape[1]
        # The same input memory as ours (PyTorch only reads it), so neither
        # side's timing includes fetching a second copy of the inputs.
        self.x = torch.from_numpy(inp).requires_grad_()
        self.w = torch.from_numpy(weight).requires_grad_()
        self.b = torch.from_numpy(bias).requires_grad_()
        self.dout = torch.from_numpy(dout)
        self.y = None

    def step(self):
        if self.fresh:
            self.x.grad = self.w.grad = self.b.grad = None
        self.y = self.torch.nn.functional.layer_norm(self.x, (self.c,), self.w, self.b, eps=EPS)
        self.y.backward(self.dout)

    def results(self):
        return tuple(t.detach().numpy() for t in (self.y, self.x.grad, self.w.grad, self.b.grad))


def agree(ours, theirs):
    """Largest error of ours against PyTorch over the four results.

    Error is |ours - torch| / max(1, |torch|): absolute for values up to 1,
    relative above (dweight and dbias are sums over all rows and reach ~100).
    """
    worst = 0.0
    for a, b in zip(ours.results(), theirs.results(), strict=True):
        err = np.abs(a.astype(np.float64) - b) / np.maximum(1.0, np.abs(b))
        worst = max(worst, float(err.max()))
    return worst


def time_alternately(a, b, reps, warmup):
    """Median µs per step of a and of b, timed in turns.

    Turns swap which side goes first, so neither always finds the shared
    inputs warm in cache from the other.
    """
    for _ in range(warmup):
        a.step()
        b.step()
    times = {a: [], b: []}
    clock = time.perf_counter
    for rep in range(reps):
        for side in (a, b) if rep % 2 == 0 else (b, a):
            t0 = clock()
            side.step()
            times[side].append(clock() - t0)
    return float(np.median(times[a])) * 1e6, float(np.median(times[b])) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=300, help="timed steps per side (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first (default 30)")
    args = parser.parse_args()

    torch, layernorm = load()
    print(f"LayerNorm forward+backward, float32, median of {args.reps} steps after "
          f"{args.warmup} warm-up; ours OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"torch {torch.__version__} set_num_threads({THREADS})")
    rows = []
    for name, n, c in CONFIGS:
        rng = np.random.default_rng(0)
        inp = rng.standard_normal((n, c), dtype=np.float32)
        weight = (1.0 + 0.1 * rng.standard_normal(c)).astype(np.float32)
        bias = (0.1 * rng.standard_normal(c)).astype(np.float32)
        dout = rng.standard_normal((n, c), dtype=np.float32)
        for mode in ("fresh", "accumulate"):
            ours = Ours(layernorm, inp, weight, bias, dout, fresh=mode == "fresh")
            theirs = Torch(torch, inp, weight, bias, dout, fresh=mode == "fresh")
            # One step from zero gradients: both modes must agree here.
            ours.step()
            theirs.step()
            worst = agree(ours, theirs)
            if worst > AGREE:
                print(f"config {name}: results differ from PyTorch by up to {worst:.3g} "
                      f"(allowed {AGREE:g}); not timing a wrong kernel", file=sys.stderr)
                sys.exit(1)
            ours_us, torch_us = time_alternately(ours, theirs, args.reps, args.warmup)
            rows.append((name, f"{n} x {c}", mode, ours_us, torch_us, worst))

    print(f"{'config':<7}{'rows x C':>11}  {'grads':<11}{'ours µs':>9}{'torch µs':>10}"
          f"{'torch/ours':>12}{'max err':>10}")
    for name, shape, mode, ours_us, torch_us, worst in rows:
        print(f"{name:<7}{shape:>11}  {mode:<11}{ours_us:>9.1f}{torch_us:>10.1f}"
              f"{torch_us / ours_us:>12.2f}{worst:>10.1e}")
    print("torch/ours > 1 means our kernel is faster. max err: largest |ours - torch| / "
          f"max(1, |torch|) over out, dinp, dweight, dbias after one step (limit {AGREE:g}).")

if __name__ == "__main__":
    main()
