"""Training speed: our trainer against PyTorch, eager and torch.compile, on the same model, init and data.

    python bench/bench_train.py [--config A|B|C|all] [--rounds N] [--steps N] [--no-compile] [--load]
    python bench/bench_train.py --end-to-end      (a whole `cllm train` epoch: see end_to_end.py)

Each side runs in a process of its own (2 threads each, as the app uses), so peak
memory is measured per side. The first losses of every side are printed and must
agree; the table gives tokens/s, the ratios ours/eager and ours/compile (> 1: we
are faster), our GFLOP/s and its share of this machine's fp32 FMA peak (measured
first by fma_peak.py), and peak memory. torch.compile's compile time is excluded:
its first steps (where it compiles) are warm-up, and only the steps after count.

FLOPs per token follow nanoGPT's estimate_mfu (from the PaLM paper): 6N + 12 L D T,
N the matrix weights (12 L D^2 + V D, the tied head counted once), the second term
attention's two T x T products over the whole context, forward and backward.

The machine this runs on is shared and its speed drifts by 20-40% from minute to
minute, so the sides take turns over --rounds rounds (the order rotating), each
round's ratios come from its own runs, and the table shows the medians; every
round is printed. --load runs one CPU-bound busy process per core for the whole
bench, the way a person's machine is busy with something else. Needs the [bench]
extra (torch 2.13.0, CPU build) and, for torch.compile, a C++ compiler.
"""

import argparse
import importlib.util
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

CONFIGS = {
    "A": {"vocab_size": 256, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128, "B": 8, "steps": 30},
    "B": {"vocab_size": 4096, "n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "B": 8, "steps": 8},
    # A BPE model as a person makes one: the output head is a large part of the work.
    "C": {"vocab_size": 8192, "n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "B": 8, "steps": 8},
}
LR, WD, BETAS, EPS, CLIP = 3e-4, 0.1, (0.9, 0.95), 1e-8, 1.0
WARMUP = 2
COMPILE_WARMUP = 3  # torch.compile compiles the forward at step 1 and the backward's graph with it
SIDES = ("ours", "eager", "compile")


def flops_per_token(cfg: dict) -> float:
    L, D, V, T = cfg["n_layer"], cfg["n_embd"], cfg["vocab_size"], cfg["block_size"]
    return 6.0 * (12 * L * D * D + V * D) + 12.0 * L * D * T


def batches(cfg: dict, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A fixed token stream with some structure (Zipf-like), cut into (B, T) windows."""
    rng = np.random.default_rng(0)
    B, T, V = cfg["B"], cfg["block_size"], cfg["vocab_size"]
    stream = (rng.zipf(1.3, size=n * B * T + 1) - 1) % V
    out = []
    for i in range(n):
        w = stream[i * B * T : (i + 1) * B * T + 1].astype(np.int32)
        out.append((w[:-1].reshape(B, T), w[1:].reshape(B, T)))
    return out


def run_ours(cfg: dict, steps: int) -> dict:
    from cllm_app.engine.config import GPTConfig
    from cllm_app.engine.model import GPT, FlatTensors
    from cllm_app.engine.trainer import TrainSettings, optimizer_step
    from cllm_app.engine.weights import init_weights
    from cllm_app.kernels import ops

    g = GPTConfig(**{k: cfg[k] for k in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size")})
    model = GPT(g, ops)
    model.params.load(init_weights(g, seed=0))
    m, v = FlatTensors(g), FlatTensors(g)
    s = TrainSettings(learning_rate=LR, weight_decay=WD, beta1=BETAS[0], beta2=BETAS[1], eps=EPS, grad_clip=CLIP)
    losses, times = [], []
    for i, (x, y) in enumerate(batches(cfg, steps + WARMUP)):
        t0 = time.perf_counter()
        model.zero_grad()
        losses.append(model.forward(x, y))
        model.backward()
        optimizer_step(ops, model, m, v, i + 1, LR, s)
        times.append(time.perf_counter() - t0)
    return {"losses": losses, "times": times[WARMUP:], "variant": getattr(ops, "VARIANT", "?")}


def run_torch(cfg: dict, steps: int, compiled: bool = False) -> dict:
    import torch
    import torch.nn.functional as F

    from cllm_app.engine.config import GPTConfig
    from cllm_app.engine.weights import init_weights

    torch.set_num_threads(2)
    g = GPTConfig(**{k: cfg[k] for k in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size")})
    w = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in init_weights(g, seed=0).items()}
    C, NH = g.n_embd, g.n_head

    def ln(x, p):
        return F.layer_norm(x, (C,), w[p + ".weight"], w[p + ".bias"], 1e-5)

    def forward(idx, targets):
        B, T = idx.shape
        x = w["wte.weight"][idx] + w["wpe.weight"][:T]
        for i in range(g.n_layer):
            p = f"h.{i}."
            qkv = ln(x, p + "ln_1") @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
            q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in qkv.split(C, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
            x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
            h = F.gelu(ln(x, p + "ln_2") @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"], approximate="tanh")
            x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
        logits = ln(x, "ln_f") @ w["wte.weight"].T
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    step_forward = torch.compile(forward) if compiled else forward
    warmup = COMPILE_WARMUP if compiled else WARMUP
    decay = [p for p in w.values() if p.dim() == 2]
    no_decay = [p for p in w.values() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=BETAS, eps=EPS
    )
    losses, times = [], []
    for x, y in batches(cfg, steps + warmup):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = step_forward(torch.from_numpy(x).long(), torch.from_numpy(y).long())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(w.values()), CLIP)
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t0)
    return {"losses": losses, "times": times[warmup:], "variant": f"torch {torch.__version__}"}


def side(name: str, config: str, steps: int) -> dict:
    """Run one side in a fresh process and return its figures."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, __file__, "--side", name, "--config", config, "--steps", str(steps)],
        capture_output=True, text=True, env=env, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"the {name} side of config {config} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _spin() -> None:
    while True:
        pass


def busy_processes() -> list[multiprocessing.Process]:
    """One CPU-bound process per core: a machine busy with something else."""
    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    for proc in procs:
        proc.start()
    return procs


def bench_config(name: str, sides: tuple[str, ...], rounds: int, steps: int, peak: float | None) -> None:
    cfg = CONFIGS[name]
    steps = steps or cfg["steps"]
    tokens = cfg["B"] * cfg["block_size"]
    per_round = []
    for r in range(max(1, rounds)):
        order = sides[r % len(sides):] + sides[: r % len(sides)]
        got = {who: side(who, name, steps) for who in order}
        rate = {who: tokens / float(np.median(got[who]["times"])) for who in sides}
        per_round.append((got, rate))
        print(f"  {name} round {r + 1}: " + ", ".join(f"{who} {rate[who]:,.0f}" for who in sides) + " tok/s; ours/"
              + ", ours/".join(f"{who} {rate['ours'] / rate[who]:.2f}" for who in sides if who != "ours"), flush=True)

    def med(values):
        return float(np.median(list(values)))

    rate = {who: med(r[1][who] for r in per_round) for who in sides}
    ratio = {who: med(r[1]["ours"] / r[1][who] for r in per_round) for who in sides if who != "ours"}
    mem = {who: max(r[0][who]["peak_rss_mb"] for r in per_round) for who in sides}
    gflops = rate["ours"] * flops_per_token(cfg) / 1e9
    first = per_round[0][0]
    agree = max(abs(a - b) for who in sides if who != "ours"
                for a, b in zip(first["ours"]["losses"], first[who]["losses"], strict=False))
    cells = [f"{name:<4}", f"{rate['ours']:>9,.0f}"]
    cells += [f"{rate[w]:>9,.0f}" if w in rate else f"{'-':>9}" for w in ("eager", "compile")]
    cells += [f"{ratio['eager']:>8.2f}", f"{ratio['compile']:>9.2f}" if "compile" in ratio else f"{'-':>9}"]
    cells += [f"{gflops:>8.1f}", f"{100 * gflops / peak:>6.0f}%" if peak else f"{'-':>7}"]
    cells += [f"{mem['ours']:>8.0f}", f"{mem['eager']:>9.0f}"]
    cells += [f"{mem['ours'] / mem['eager']:>6.2f}"]
    print("".join(cells) + f"   max |loss diff| {agree:.1e}, kernels {first['ours']['variant']}, "
          f"median of {len(per_round)} rounds", flush=True)
    if agree > 2e-2:
        print(f"  WARNING: losses disagree by {agree:.3g}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="all", choices=[*CONFIGS, "all"])
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: per config)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of all sides, taking turns (default 3)")
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it compiles for ~1 min)")
    ap.add_argument("--load", action="store_true", help="run one busy process per core beside the bench")
    ap.add_argument("--end-to-end", action="store_true", help="time a whole `cllm train` epoch instead (end_to_end.py)")
    ap.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.side:
        cfg = CONFIGS[args.config]
        steps = args.steps or cfg["steps"]
        if args.side == "ours":
            result = run_ours(cfg, steps)
        else:
            result = run_torch(cfg, steps, compiled=args.side == "compile")
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0
    # Found, not imported: torch's OpenMP runtime would set the threads of our kernels, which
    # --end-to-end runs in this process, differently from the app's.
    if importlib.util.find_spec("torch") is None:
        print("PyTorch is not installed: pip install -e '.[bench]' (torch 2.13.0, CPU build)")
        return 2
    if args.end_to_end:
        import end_to_end

        return end_to_end.main(rest, load=args.load)
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    import fma_peak

    peak = fma_peak.measure(threads=2, rounds=5)
    print(f"fp32 FMA peak of this CPU ({peak['width']}-float vectors): {peak['gflops_1']:.1f} GFLOP/s on 1 thread, "
          f"{peak['gflops_n']:.1f} on 2 (bench/fma_peak.py)")
    busy = busy_processes() if args.load else []
    if busy:
        print(f"under load: {len(busy)} busy processes beside the bench")
    sides = SIDES if not args.no_compile else ("ours", "eager")
    print(f"{'cfg':<4}{'ours':>9}{'eager':>9}{'compile':>9}{'/eager':>8}{'/compile':>9}{'GFLOP/s':>8}{'peak':>7}"
          f"{'our MB':>8}{'eager MB':>9}{'mem':>6}   (tok/s; ratios ours/torch; mem = ours/eager peak RSS)")
    try:
        for name in (list(CONFIGS) if args.config == "all" else [args.config]):
            bench_config(name, sides, args.rounds, args.steps, peak["gflops_n"])
    finally:
        for proc in busy:
            proc.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
