"""Training speed: our trainer against PyTorch eager on the same model, init and data.

    python bench/bench_train.py [--config A|B|all] [--steps N]

Each side runs in a process of its own (2 threads each, as the app uses), so peak
memory is measured per side. The first losses of both are printed side by side and
must agree; the table gives tokens/s and the ratio ours/torch (> 1: we are faster).

The machine this runs on is shared and its speed drifts by 20-40% from minute to
minute, so the two sides take turns over --rounds rounds (ours then torch, then
torch then ours, ...), each round's ratio is taken from its own pair of runs, and
the table shows the medians: a drift hits both sides of a round alike. Each
round's figures are printed too. Needs the [bench] extra (torch 2.13.0, CPU build).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

CONFIGS = {
    "A": {"vocab_size": 256, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128, "B": 8, "steps": 30},
    "B": {"vocab_size": 4096, "n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "B": 8, "steps": 8},
}
LR, WD, BETAS, EPS, CLIP = 3e-4, 0.1, (0.9, 0.95), 1e-8, 1.0
WARMUP = 2


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
    return {"losses": losses, "times": times, "variant": getattr(ops, "VARIANT", "?")}


def run_torch(cfg: dict, steps: int) -> dict:
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

    decay = [p for p in w.values() if p.dim() == 2]
    no_decay = [p for p in w.values() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=BETAS, eps=EPS
    )
    losses, times = [], []
    for x, y in batches(cfg, steps + WARMUP):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = forward(torch.from_numpy(x).long(), torch.from_numpy(y).long())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(w.values()), CLIP)
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t0)
    return {"losses": losses, "times": times, "variant": f"torch {torch.__version__}"}


def side(name: str, config: str, steps: int) -> dict:
    """Run one side in a fresh process and return its figures."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, __file__, "--side", name, "--config", config, "--steps", str(steps)],
        capture_output=True, text=True, env=env, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="all", choices=["A", "B", "all"])
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: per config)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of both sides, taking turns (default 3)")
    ap.add_argument("--side", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        cfg = CONFIGS[args.config]
        steps = args.steps or cfg["steps"]
        result = (run_ours if args.side == "ours" else run_torch)(cfg, steps)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed: pip install -e '.[bench]' (torch 2.13.0, CPU build)")
        return 2
    print(f"{'config':<7}{'ours tok/s':>12}{'torch tok/s':>13}{'ours/torch':>12}{'ours MB':>9}{'torch MB':>10}  first losses (ours | torch)")
    for name in (["A", "B"] if args.config == "all" else [args.config]):
        cfg = CONFIGS[name]
        steps = args.steps or cfg["steps"]
        tokens = cfg["B"] * cfg["block_size"]
        rounds = []
        for r in range(max(1, args.rounds)):
            order = ("ours", "torch") if r % 2 == 0 else ("torch", "ours")
            got = {who: side(who, name, steps) for who in order}
            rates = {who: tokens / float(np.median(got[who]["times"][WARMUP:])) for who in order}
            rounds.append((got["ours"], got["torch"], rates["ours"], rates["torch"]))
            print(f"  round {r + 1}: ours {rates['ours']:,.0f} tok/s, torch {rates['torch']:,.0f} tok/s, "
                  f"ratio {rates['ours'] / rates['torch']:.2f}", flush=True)
        ours, ref = rounds[0][0], rounds[0][1]
        ours_rate = float(np.median([r[2] for r in rounds]))
        torch_rate = float(np.median([r[3] for r in rounds]))
        ratio = float(np.median([r[2] / r[3] for r in rounds]))
        agree = max(abs(a - b) for a, b in zip(ours["losses"], ref["losses"], strict=True))
        first = " ".join(f"{a:.4f}|{b:.4f}" for a, b in zip(ours["losses"][:3], ref["losses"][:3], strict=True))
        print(
            f"{name:<7}{ours_rate:>12,.0f}{torch_rate:>13,.0f}{ratio:>12.2f}"
            f"{max(r[0]['peak_rss_mb'] for r in rounds):>9.0f}{max(r[1]['peak_rss_mb'] for r in rounds):>10.0f}"
            f"  {first}  (max |diff| {agree:.2e}, kernels {ours['variant']}, median of {len(rounds)} rounds)"
        )
        if agree > 2e-2:
            print(f"  WARNING: losses disagree by {agree:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
