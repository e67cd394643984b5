"""Generation speed: batch 1, KV cache, 200 greedy tokens, ours against PyTorch eager.

    python bench/bench_generate.py [--config A|B|all] [--tokens N]

Both sides decode one token at a time with a KV cache from the same weights and
prompt; the greedy tokens must agree for the first tokens (float rounding can split
them later). PyTorch runs with the thread count that is fastest for it (1 on A, 2 on B,
as measured on this machine).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CONFIGS = {
    "A": {"vocab_size": 256, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 256, "torch_threads": 1},
    "B": {"vocab_size": 4096, "n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "torch_threads": 2},
}
PROMPT = [5, 17, 42, 99, 3, 7, 11, 13]


def _cfg(c):
    from cllm_app.engine.config import GPTConfig

    return GPTConfig(**{k: c[k] for k in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size")})


def _weights(cfg):
    """Init weights plus noise, so greedy decoding does not sit on one token."""
    from cllm_app.engine.weights import init_weights

    rng = np.random.default_rng(0)
    return {k: v + rng.normal(0, 0.02, v.shape).astype(np.float32) for k, v in init_weights(cfg, seed=0).items()}


def run_ours(c, n):
    from cllm_app.engine.generate import KVCache
    from cllm_app.engine.kernel_choice import decode_kernel
    from cllm_app.engine.model import FlatTensors

    cfg = _cfg(c)
    P = FlatTensors(cfg)
    P.load(_weights(cfg))
    step, name = decode_kernel(cfg, P)
    logits = np.empty(cfg.vocab_size, np.float32)
    cache = KVCache(cfg)
    for t in PROMPT:
        step(logits, t, cache)
    out = []
    t0 = time.perf_counter()
    for _ in range(n):
        nxt = int(np.argmax(logits))
        out.append(nxt)
        step(logits, nxt, cache)
    return {"tokens": out, "seconds": time.perf_counter() - t0, "variant": name}


def run_torch(c, n):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(c["torch_threads"])
    cfg = _cfg(c)
    w = {k: torch.from_numpy(v) for k, v in _weights(cfg).items()}
    C, NH = cfg.n_embd, cfg.n_head
    hs = C // NH
    kc = [torch.zeros(1, NH, cfg.block_size, hs) for _ in range(cfg.n_layer)]
    vc = [torch.zeros(1, NH, cfg.block_size, hs) for _ in range(cfg.n_layer)]

    def ln(x, p):
        return F.layer_norm(x, (C,), w[p + ".weight"], w[p + ".bias"], 1e-5)

    @torch.inference_mode()
    def step(token, pos):
        x = (w["wte.weight"][token] + w["wpe.weight"][pos]).view(1, 1, C)
        for i in range(cfg.n_layer):
            p = f"h.{i}."
            qkv = ln(x, p + "ln_1") @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
            q, k, v = (t.view(1, 1, NH, hs).transpose(1, 2) for t in qkv.split(C, dim=2))
            kc[i][:, :, pos] = k[:, :, 0]
            vc[i][:, :, pos] = v[:, :, 0]
            y = F.scaled_dot_product_attention(q, kc[i][:, :, : pos + 1], vc[i][:, :, : pos + 1])
            x = x + y.transpose(1, 2).reshape(1, 1, C) @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
            h = F.gelu(ln(x, p + "ln_2") @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"], approximate="tanh")
            x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
        return (ln(x, "ln_f") @ w["wte.weight"].T).view(-1)

    pos = 0
    for t in PROMPT:
        logits = step(t, pos)
        pos += 1
    out = []
    t0 = time.perf_counter()
    for _ in range(n):
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        logits = step(nxt, pos)
        pos += 1
    return {"tokens": out, "seconds": time.perf_counter() - t0, "variant": f"torch {torch.__version__}"}


def side(name, config, n):
    out = subprocess.run(
        [sys.executable, __file__, "--side", name, "--config", config, "--tokens", str(n)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"}, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="all", choices=["A", "B", "all"])
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--side", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        print(json.dumps((run_ours if args.side == "ours" else run_torch)(CONFIGS[args.config], args.tokens)))
        return 0
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed: pip install -e '.[bench]' (torch 2.13.0, CPU build)")
        return 2
    print(f"{'config':<7}{'ours tok/s':>12}{'torch tok/s':>13}{'ours/torch':>12}  agreement")
    for name in (["A", "B"] if args.config == "all" else [args.config]):
        ours, ref = side("ours", name, args.tokens), side("torch", name, args.tokens)
        same = next((i for i, (a, b) in enumerate(zip(ours["tokens"], ref["tokens"], strict=True)) if a != b), len(ours["tokens"]))
        r_ours, r_torch = args.tokens / ours["seconds"], args.tokens / ref["seconds"]
        print(f"{name:<7}{r_ours:>12,.0f}{r_torch:>13,.0f}{r_ours / r_torch:>12.2f}  first {same} greedy tokens identical ({ours['variant']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
