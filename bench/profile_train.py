"""Where a training step's time goes: every kernel call timed, and the Python between them.

    python bench/profile_train.py [--config A|B|C] [--steps N] [--cpu]

Runs our trainer's step (zero_grad, forward, backward, clip + AdamW) on the
bench_train model and data, with every kernel wrapped in a timer, and prints the
step's split (forward, backward, optimizer), the time in kernels against the rest
(Python glue: argument checks, attribute lookups, array fills), the share of the
blocks' GEMMs, the tied output head's, attention, LayerNorm, the optimizer, the other
kernels and the Python between them, and a table of kernels by total time with their
call counts. --cpu times process CPU time instead of wall time: steadier on a shared
machine, but it counts both threads.
The first 5 steps are warm-up and not counted.
"""

import argparse
import collections
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import BETAS, CLIP, CONFIGS, EPS, LR, WD, batches  # noqa: E402

WARMUP = 5
# The README's split of a step: kernels by what they are (first match wins).
GROUPS = (
    ("output head (tied GEMMs)", ("matmul_forward_tied", "matmul_backward_tied")),
    ("block GEMMs", ("matmul_",)),
    ("attention", ("attention_",)),
    ("LayerNorm", ("layernorm_",)),
    ("optimizer", ("adamw_", "grad_norm")),
    ("other kernels", ("",)),  # GELU, cross-entropy, embeddings, residual adds
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="A", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=40, help="counted steps")
    ap.add_argument("--cpu", action="store_true", help="process CPU time instead of wall time")
    args = ap.parse_args()

    from cllm_app.engine.config import GPTConfig
    from cllm_app.engine.model import GPT, FlatTensors
    from cllm_app.engine.trainer import TrainSettings, optimizer_step
    from cllm_app.engine.weights import init_weights
    from cllm_app.kernels import ops

    clock = time.process_time if args.cpu else time.perf_counter
    spent: dict[str, float] = collections.defaultdict(float)
    calls: collections.Counter = collections.Counter()

    def timed(name):
        fn = getattr(ops, name)

        def call(*a, **kw):
            t = clock()
            result = fn(*a, **kw)
            spent[name] += clock() - t
            calls[name] += 1
            return result

        return call

    cfg = CONFIGS[args.config]
    K = SimpleNamespace(**{name: timed(name) for name in ops.FUNCTIONS})
    g = GPTConfig(**{k: cfg[k] for k in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size")})
    model = GPT(g, K)
    model.params.load(init_weights(g, seed=0))
    m, v = FlatTensors(g), FlatTensors(g)
    s = TrainSettings(learning_rate=LR, weight_decay=WD, beta1=BETAS[0], beta2=BETAS[1], eps=EPS, grad_clip=CLIP)
    phases: dict[str, float] = collections.defaultdict(float)
    for i, (x, y) in enumerate(batches(cfg, args.steps + WARMUP)):
        if i == WARMUP:
            spent.clear(), calls.clear(), phases.clear()
        t0 = clock()
        model.zero_grad()
        t1 = clock()
        model.forward(x, y)
        t2 = clock()
        model.backward()
        t3 = clock()
        optimizer_step(K, model, m, v, i + 1, LR, s)
        t4 = clock()
        for name, dt in (("zero_grad", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2), ("optimizer", t4 - t3)):
            phases[name] += dt
    n = args.steps
    step = sum(phases.values()) / n
    in_kernels = sum(spent.values()) / n
    print(f"config {args.config}, kernels {ops.VARIANT}, {'CPU' if args.cpu else 'wall'} time per step, {n} steps")
    print(f"step {step * 1e3:8.2f} ms   {cfg['B'] * cfg['block_size'] / step:,.0f} tok/s")
    for name, total in phases.items():
        print(f"  {name:<22}{total / n * 1e3:8.2f} ms")
    print(f"kernels {in_kernels * 1e3:6.2f} ms, Python glue {(step - in_kernels) * 1e3:6.2f} ms")
    shares = collections.defaultdict(float)
    for name, total in spent.items():
        shares[next(group for group, names in GROUPS if name.startswith(names))] += total / n
    shares["Python between kernels"] = step - in_kernels
    print("share of the step: " + ", ".join(f"{group} {100 * t / step:.1f}%"
                                            for group, t in sorted(shares.items(), key=lambda kv: -kv[1])))
    for name, total in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<22}{total / n * 1e3:8.2f} ms {calls[name] // n:4d} calls {total / calls[name] * 1e6:9.1f} us/call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
