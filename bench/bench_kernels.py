"""Time every training kernel, forward + backward, against its PyTorch equivalent.

    python bench/bench_kernels.py [--config A|B] [--reps 50] [--warmup 5]

Shapes are those of two training configs (rows N = batch * time):

    A  B=8, T=128, C=128, NH=4, V=256,  4 layers
    B  B=8, T=256, C=384, NH=6, V=4096, 6 layers

One step of a kernel is its forward and its backward, on both sides:

    encoder       ours: encoder_forward/backward; torch: wte[idx] + wpe[:T], autograd
    layernorm     ours: layernorm_*; torch: F.layer_norm
    linear XxY    ours: matmul_forward/backward (weight (C, OC)); torch: F.linear (weight (OC, C))
    head (tied)   ours: matmul_*_tied; torch: x @ wte.T
    attention     ours: attention_* on the fused qkv; torch: split qkv into heads,
                  F.scaled_dot_product_attention(is_causal=True), autograd
    gelu          ours: gelu_*; torch: F.gelu(approximate="tanh")
    residual      forward only (its backward is the identity): ours residual_forward,
                  torch a + b
    crossentropy  ours: crossentropy_*; torch: F.cross_entropy (mean)
    adamw         one update of all the model's parameters; ours adamw_update,
                  torch torch.optim.AdamW(...).step() (its CPU default)
    grad norm^2   ours grad_norm_squared; torch vector_norm(g) ** 2 (max err: ours
                  against the float64 sum, as torch's float32 sum is off by ~1e-3)

Our backward adds into gradients, so each of our steps zeroes them first
(like a training step), and that is timed; torch's autograd starts from
.grad = None. Before timing, each pair's results are compared and the bench
stops if they differ by more than 1e-4 (relative above 1, absolute below).
The two sides are timed in turns, and the table shows medians. The last
lines add up the per-step kernel times of a whole training step (each kernel
as often as the model calls it): an estimate that leaves out the model's
Python code and buffer fills on our side and autograd's bookkeeping beyond
these ops on torch's.

Needs PyTorch: pip install -e '.[bench]' (the CPU build, torch==2.13.0).
"""

import argparse
import os
import sys
import time
from pathlib import Path

# Both OpenMP runtimes (ours and PyTorch's own copy) read these when they
# load: the same two threads, and the same short spin before idle threads
# sleep that cllm_app.kernels sets for itself (see its docstring), so the
# table compares kernels, not OpenMP wait policies. Explicit settings win.
os.environ.setdefault("OMP_NUM_THREADS", "2")
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

# Runnable from a checkout without installing: the package is one level up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common  # noqa: E402  (bench/ is on sys.path when a bench script runs)
import numpy as np  # noqa: E402

THREADS = 2
AGREE = 1e-4
CONFIGS = {
    "A": {"B": 8, "T": 128, "C": 128, "NH": 4, "V": 256, "L": 4},
    "B": {"B": 8, "T": 256, "C": 384, "NH": 6, "V": 4096, "L": 6},
}
ADAMW = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}


def load():
    return _common.load("ops", THREADS)


class Case:
    """One kernel pair: our step and torch's step over the same inputs."""

    def __init__(self, name, shape, calls, ours, theirs, results):
        self.name, self.shape, self.calls = name, shape, calls
        self.ours, self.theirs, self.results = ours, theirs, results


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def encoder_case(torch, K, rng, cfg):
    B, T, C, V = cfg["B"], cfg["T"], cfg["C"], cfg["V"]
    idx = rng.integers(0, V, (B, T)).astype(np.int32)
    wte, wpe, dout = randn(rng, V, C), randn(rng, T, C), randn(rng, B * T, C)
    out = np.empty((B * T, C), np.float32)
    dwte, dwpe = np.zeros_like(wte), np.zeros_like(wpe)

    def ours():
        K.encoder_forward(out, idx, wte, wpe)
        dwte.fill(0.0)
        dwpe.fill(0.0)
        K.encoder_backward(dwte, dwpe, dout, idx)

    tw = torch.from_numpy(wte).requires_grad_()
    tp = torch.from_numpy(wpe).requires_grad_()
    ti, td = torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(dout).view(B, T, C)
    box = {}

    def theirs():
        tw.grad = tp.grad = None
        y = tw[ti] + tp[:T]
        y.backward(td)
        box["y"] = y

    def results():
        return [(out, box["y"].reshape(B * T, C)), (dwte, tw.grad), (dwpe, tp.grad)]

    return Case("encoder", f"{B * T} x {C}", 1, ours, theirs, results)


def layernorm_case(torch, K, rng, cfg, calls):
    n, c = cfg["B"] * cfg["T"], cfg["C"]
    x, w, b, dout = randn(rng, n, c), 1 + randn(rng, c, scale=0.1), randn(rng, c, scale=0.1), randn(rng, n, c)
    out, mean, rstd = np.empty((n, c), np.float32), np.empty(n, np.float32), np.empty(n, np.float32)
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)

    def ours():
        K.layernorm_forward(out, mean, rstd, x, w, b)
        dx.fill(0.0)
        dw.fill(0.0)
        db.fill(0.0)
        K.layernorm_backward(dx, dw, db, dout, x, w, mean, rstd)

    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    td = torch.from_numpy(dout)
    box = {}

    def theirs():
        tx.grad = tw.grad = tb.grad = None
        y = torch.nn.functional.layer_norm(tx, (c,), tw, tb, eps=1e-5)
        y.backward(td)
        box["y"] = y

    def results():
        return [(out, box["y"]), (dx, tx.grad), (dw, tw.grad), (db, tb.grad)]

    return Case("layernorm", f"{n} x {c}", calls, ours, theirs, results)


def linear_case(torch, K, rng, cfg, cin, cout, calls, name):
    n = cfg["B"] * cfg["T"]
    x, dout = randn(rng, n, cin), randn(rng, n, cout)
    w, b = randn(rng, cin, cout, scale=cin**-0.5), randn(rng, cout, scale=0.1)
    out = np.empty((n, cout), np.float32)
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)

    def ours():
        K.matmul_forward(out, x, w, b)
        dx.fill(0.0)
        dw.fill(0.0)
        db.fill(0.0)
        K.matmul_backward(dx, dw, db, dout, x, w)

    tx = torch.from_numpy(x).requires_grad_()
    tw = torch.from_numpy(np.ascontiguousarray(w.T)).requires_grad_()  # nn.Linear's layout
    tb = torch.from_numpy(b).requires_grad_()
    td = torch.from_numpy(dout)
    box = {}

    def theirs():
        tx.grad = tw.grad = tb.grad = None
        y = torch.nn.functional.linear(tx, tw, tb)
        y.backward(td)
        box["y"] = y

    def results():
        return [(out, box["y"]), (dx, tx.grad), (dw, tw.grad.T), (db, tb.grad)]

    return Case(name, f"{n}x{cin}x{cout}", calls, ours, theirs, results)


def head_case(torch, K, rng, cfg):
    n, c, v = cfg["B"] * cfg["T"], cfg["C"], cfg["V"]
    x, wte, dout = randn(rng, n, c), randn(rng, v, c, scale=c**-0.5), randn(rng, n, v)
    out = np.empty((n, v), np.float32)
    dx, dw = np.zeros_like(x), np.zeros_like(wte)

    def ours():
        K.matmul_forward_tied(out, x, wte)
        dx.fill(0.0)
        dw.fill(0.0)
        K.matmul_backward_tied(dx, dw, dout, x, wte)

    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(wte).requires_grad_()
    td = torch.from_numpy(dout)
    box = {}

    def theirs():
        tx.grad = tw.grad = None
        y = tx @ tw.T
        y.backward(td)
        box["y"] = y

    def results():
        return [(out, box["y"]), (dx, tx.grad), (dw, tw.grad)]

    return Case("head (tied)", f"{n}x{c}x{v}", 1, ours, theirs, results)


def attention_case(torch, K, rng, cfg):
    B, T, C, NH = cfg["B"], cfg["T"], cfg["C"], cfg["NH"]
    hs = C // NH
    qkv, dout = randn(rng, B * T, 3 * C), randn(rng, B * T, C)
    out, lse = np.empty((B * T, C), np.float32), np.empty((B, NH, T), np.float32)
    dqkv = np.zeros_like(qkv)

    def ours():
        K.attention_forward(out, lse, qkv, B, T, NH)
        dqkv.fill(0.0)
        K.attention_backward(dqkv, dout, qkv, out, lse, B, T, NH)

    tq = torch.from_numpy(qkv).requires_grad_()
    td = torch.from_numpy(dout)
    box = {}

    def theirs():
        tq.grad = None
        q, k, v = tq.view(B, T, 3 * C).split(C, dim=2)
        q, k, v = (a.view(B, T, NH, hs).transpose(1, 2) for a in (q, k, v))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(B * T, C)
        y.backward(td)
        box["y"] = y

    def results():
        return [(out, box["y"]), (dqkv, tq.grad)]

    return Case("attention", f"B{B} T{T} NH{NH} hs{hs}", cfg["L"], ours, theirs, results)


def gelu_case(torch, K, rng, cfg):
    n, c = cfg["B"] * cfg["T"], 4 * cfg["C"]
    x, dout = randn(rng, n, c), randn(rng, n, c)
    out, dx = np.empty_like(x), np.zeros_like(x)

    def ours():
        K.gelu_forward(out, x)
        dx.fill(0.0)
        K.gelu_backward(dx, x, dout)

    tx, td = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dout)
    box = {}

    def theirs():
        tx.grad = None
        y = torch.nn.functional.gelu(tx, approximate="tanh")
        y.backward(td)
        box["y"] = y

    def results():
        return [(out, box["y"]), (dx, tx.grad)]

    return Case("gelu", f"{n} x {c}", cfg["L"], ours, theirs, results)


def residual_case(torch, K, rng, cfg):
    n, c = cfg["B"] * cfg["T"], cfg["C"]
    a, b = randn(rng, n, c), randn(rng, n, c)
    out = np.empty_like(a)

    def ours():
        K.residual_forward(out, a, b)

    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    box = {}

    def theirs():
        box["y"] = ta + tb

    def results():
        return [(out, box["y"])]

    return Case("residual (fwd)", f"{n} x {c}", 2 * cfg["L"], ours, theirs, results)


def crossentropy_case(torch, K, rng, cfg):
    n, v = cfg["B"] * cfg["T"], cfg["V"]
    logits = randn(rng, n, v, scale=2.0)
    targets = rng.integers(0, v, n).astype(np.int32)
    losses, dlogits = np.empty(n, np.float32), np.empty_like(logits)
    box = {}

    def ours():
        box["loss"] = K.crossentropy_forward(losses, logits, targets)
        K.crossentropy_backward(dlogits, logits, targets, 1.0 / n)

    tl = torch.from_numpy(logits).requires_grad_()
    tt = torch.from_numpy(targets.astype(np.int64))

    def theirs():
        tl.grad = None
        loss = torch.nn.functional.cross_entropy(tl, tt)
        loss.backward()
        box["tloss"] = loss

    def results():
        return [(np.array([box["loss"]]), box["tloss"].reshape(1)), (dlogits, tl.grad)]

    return Case("crossentropy", f"{n} x {v}", 1, ours, theirs, results)


def n_params(cfg):
    C, L = cfg["C"], cfg["L"]
    return cfg["V"] * C + cfg["T"] * C + L * (12 * C * C + 13 * C) + 2 * C


def adamw_case(torch, K, rng, cfg):
    P = n_params(cfg)
    params, grads = randn(rng, P, scale=0.02), randn(rng, P, scale=1e-3)
    m, v = np.zeros(P, np.float32), np.zeros(P, np.float32)
    tp = torch.from_numpy(params.copy()).requires_grad_()
    tp.grad = torch.from_numpy(grads)
    opt = torch.optim.AdamW([tp], lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]),
                            eps=ADAMW["eps"], weight_decay=ADAMW["weight_decay"])
    state = {"step": 0}

    def ours():
        state["step"] += 1
        K.adamw_update(params, grads, m, v, ADAMW["lr"], ADAMW["beta1"], ADAMW["beta2"],
                       ADAMW["eps"], ADAMW["weight_decay"], state["step"], 1.0)

    def theirs():
        opt.step()

    def results():
        return [(params, tp.detach())]

    return Case("adamw", f"{P / 1e6:.2f}M params", 1, ours, theirs, results)


def norm_case(torch, K, rng, cfg):
    P = n_params(cfg)
    grads = randn(rng, P, scale=1e-2)
    tg = torch.from_numpy(grads)
    box = {}

    def ours():
        box["ours"] = K.grad_norm_squared(grads)

    def theirs():
        box["torch"] = torch.linalg.vector_norm(tg) ** 2

    truth = float(np.square(grads, dtype=np.float64).sum())

    def results():
        # Against the float64 sum: PyTorch's float32 reduction is itself off by
        # ~1e-3 at this size, ours adds in double.
        return [(np.array([box["ours"]], np.float64), np.array([truth]))]

    return Case("grad norm^2", f"{P / 1e6:.2f}M params", 1, ours, theirs, results)


def cases(torch, K, cfg):
    rng = np.random.default_rng(0)
    C, L = cfg["C"], cfg["L"]
    return [
        encoder_case(torch, K, rng, cfg),
        layernorm_case(torch, K, rng, cfg, 2 * L + 1),
        linear_case(torch, K, rng, cfg, C, 3 * C, L, "linear qkv"),
        attention_case(torch, K, rng, cfg),
        linear_case(torch, K, rng, cfg, C, C, L, "linear attn proj"),
        residual_case(torch, K, rng, cfg),
        linear_case(torch, K, rng, cfg, C, 4 * C, L, "linear fc"),
        gelu_case(torch, K, rng, cfg),
        linear_case(torch, K, rng, cfg, 4 * C, C, L, "linear fc proj"),
        head_case(torch, K, rng, cfg),
        crossentropy_case(torch, K, rng, cfg),
        adamw_case(torch, K, rng, cfg),
        norm_case(torch, K, rng, cfg),
    ]


def agree(case):
    """Largest |ours - torch| / max(1, |torch|) over the case's results."""
    worst = 0.0
    for ours, theirs in case.results():
        t = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
        err = np.abs(np.asarray(ours, np.float64) - t) / np.maximum(1.0, np.abs(t))
        worst = max(worst, float(err.max()))
    return worst


def time_alternately(a, b, reps, warmup):
    """Median µs per step of a and of b, timed in turns, which side first alternating."""
    for _ in range(warmup):
        a()
        b()
    times = {a: [], b: []}
    clock = time.perf_counter
    for rep in range(reps):
        for side in (a, b) if rep % 2 == 0 else (b, a):
            t0 = clock()
            side()
            times[side].append(clock() - t0)
    return float(np.median(times[a])) * 1e6, float(np.median(times[b])) * 1e6


def run_config(torch, ops, name, reps, warmup):
    cfg = CONFIGS[name]
    tokens = cfg["B"] * cfg["T"]
    print(f"\nconfig {name}: " + ", ".join(f"{k}={v}" for k, v in cfg.items()))
    print(f"{'kernel':<22}{'shape':>20}{'ours µs':>11}{'torch µs':>11}{'torch/ours':>12}"
          f"{'calls':>7}{'max err':>10}")
    total_ours = total_torch = 0.0
    for case in cases(torch, ops, cfg):
        case.ours()
        case.theirs()
        worst = agree(case)
        if worst > AGREE:
            print(f"{case.name}: results differ from PyTorch by up to {worst:.3g} "
                  f"(allowed {AGREE:g}); not timing a wrong kernel", file=sys.stderr)
            sys.exit(1)
        ours_us, torch_us = time_alternately(case.ours, case.theirs, reps, warmup)
        total_ours += case.calls * ours_us
        total_torch += case.calls * torch_us
        print(f"{case.name:<22}{case.shape:>20}{ours_us:>11.1f}{torch_us:>11.1f}"
              f"{torch_us / ours_us:>12.2f}{case.calls:>7}{worst:>10.1e}")
    print(f"{'sum over a training step (x calls)':<42}{total_ours / 1e3:>9.2f}ms"
          f"{total_torch / 1e3:>9.2f}ms{total_torch / total_ours:>12.2f}")
    print(f"{'  as tokens/s (kernels only)':<42}{tokens / total_ours * 1e6:>11,.0f}"
          f"{tokens / total_torch * 1e6:>11,.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), help="one config (default: both)")
    parser.add_argument("--reps", type=int, default=50, help="timed steps per side (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    args = parser.parse_args()

    torch, ops = load()
    print(f"Kernels forward+backward, float32, median of {args.reps} steps after {args.warmup} "
          f"warm-up; ours: {ops.VARIANT} build; torch {torch.__version__}, "
          f"set_num_threads({THREADS}); both OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'unset')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
          f"load average {os.getloadavg()[0]:.2f}")
    for name in [args.config] if args.config else sorted(CONFIGS):
        run_config(torch, ops, name, args.reps, args.warmup)
    print("\ntorch/ours > 1 means ours is faster. calls: times per training step. max err: "
          f"largest |ours - torch| / max(1, |torch|) after one step (limit {AGREE:g}).")


if __name__ == "__main__":
    main()
