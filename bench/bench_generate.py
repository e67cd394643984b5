"""Generation speed: batch 1, KV cache, 200 greedy tokens, ours against llama.cpp and PyTorch.

    python bench/bench_generate.py [--config A|B|all] [--tokens N] [--threads 1,2] [--repeat R]

The anchor for generation speed is llama.cpp (llama-cpp-python) on the same model: the same
config and seed, exported to GGUF f32 with engine.gguf_export.write_gguf, its KV cache f32.
Every side runs in a process of its own, one at a time, with its thread count set both
ways (OMP_NUM_THREADS, and the side's own knob: decode_step's threads=, torch.set_num_threads,
llama.cpp's n_threads and n_threads_batch). Each side takes the prompt untimed (ours and
PyTorch token by token, llama.cpp as one batch), then the timed loop is the same for all:
argmax of the last logits in numpy or torch, then one decode step with that token, N times.
Model loading and the GGUF export are not timed. The sides run in turn, R rounds, and the
table shows each side's median tokens/s.

The prompt and the N tokens must fit the context (prompt + N <= block_size), so no side
slides or truncates its window. The greedy tokens of llama.cpp and PyTorch are checked
against ours for the first AGREE tokens (float rounding can split them later); a
disagreement is reported, not raised.

Config A's vocabulary is 257, the byte tokenizer's (256 bytes and <|endoftext|>), exported
with it; config B's 4096 tokens get a made-up byte-level BPE table of that size (llama.cpp
wants a token list as long as the embedding), whose text is never used: every side is
fed token ids.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONFIGS = {
    "A": {"vocab_size": 257, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 256},
    "B": {"vocab_size": 4096, "n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256},
}
PROMPT = [5, 17, 42, 99, 3, 7, 11, 13]
AGREE = 20
SIDES = ("ours", "llama.cpp", "torch")


def _cfg(c):
    from cllm_app.engine.config import GPTConfig

    return GPTConfig(**{k: c[k] for k in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size")})


def _weights(cfg):
    """Init weights plus noise, so greedy decoding does not sit on one token."""
    from cllm_app.engine.weights import init_weights

    rng = np.random.default_rng(0)
    return {k: v + rng.normal(0, 0.02, v.shape).astype(np.float32) for k, v in init_weights(cfg, seed=0).items()}


def _bpe_table(vocab_size: int) -> str:
    """A byte-level BPE tokenizer JSON of exactly vocab_size tokens: the 256 bytes, pairs of
    bytes merged in order, <|endoftext|> last. Only its length matters here."""
    from cllm_app.engine.bpe import EOT_TEXT, bytes_to_unicode

    chars = [bytes_to_unicode()[b] for b in range(256)]
    pairs = [(a, b) for a in chars for b in chars][: vocab_size - 257]
    vocab = {c: i for i, c in enumerate(chars)} | {a + b: 256 + i for i, (a, b) in enumerate(pairs)}
    vocab[EOT_TEXT] = vocab_size - 1
    return json.dumps({"model": {"type": "BPE", "vocab": vocab, "merges": [f"{a} {b}" for a, b in pairs]}})


def export_gguf(c, path: Path) -> None:
    """The model every side runs, as GGUF f32 for llama.cpp."""
    from cllm_app.engine.gguf_export import write_gguf

    cfg = _cfg(c)
    byte = cfg.vocab_size == 257
    write_gguf(path, "bench", cfg, _weights(cfg), "byte" if byte else "bpe",
               None if byte else _bpe_table(cfg.vocab_size), "f32")


def run_ours(c, n, threads, gguf=None):
    try:
        from cllm_app.kernels import decode
    except ImportError as exc:
        raise SystemExit(f"The Cython kernels are not built ({exc}): pip install -e . --no-build-isolation") from None
    from cllm_app.engine.generate import KVCache
    from cllm_app.engine.model import FlatTensors

    cfg = _cfg(c)
    P = FlatTensors(cfg)
    P.load(_weights(cfg))
    logits = np.empty(cfg.vocab_size, np.float32)
    cache = KVCache(cfg)
    shape = (cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_layer, cfg.n_head)

    def step(token):
        decode.decode_step(logits, P.flat, cache.k, cache.v, token, cache.length, *shape, threads=threads)
        cache.length += 1

    for t in PROMPT:
        step(t)
    out = []
    t0 = time.perf_counter()
    for _ in range(n):
        nxt = int(np.argmax(logits))
        out.append(nxt)
        step(nxt)
    return {"tokens": out, "seconds": time.perf_counter() - t0, "variant": f"compiled decode, {decode.isa()}"}


def run_llama(c, n, threads, gguf):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=gguf, n_ctx=c["block_size"], n_batch=len(PROMPT), n_threads=threads,
                          n_threads_batch=threads, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,
                          logits_all=False, verbose=False)
    if llm.n_vocab() != c["vocab_size"] or llm.n_ctx() < len(PROMPT) + n:
        raise SystemExit(f"llama.cpp loaded n_vocab={llm.n_vocab()}, n_ctx={llm.n_ctx()}: not the model asked for")
    ctx = llm.ctx

    def last_logits():
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(c["vocab_size"],))

    llm.eval(PROMPT)
    out = []
    t0 = time.perf_counter()
    for _ in range(n):
        nxt = int(np.argmax(last_logits()))
        out.append(nxt)
        llm.eval([nxt])
    seconds = time.perf_counter() - t0
    system = llama_cpp.llama_print_system_info().decode()
    isa = "avx512" if "AVX512 = 1" in system else "avx2" if "AVX2 = 1" in system else "no avx2"
    return {"tokens": out, "seconds": seconds, "variant": f"llama-cpp-python {llama_cpp.__version__}, {isa}"}


def run_torch(c, n, threads, gguf=None):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
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


RUNNERS = {"ours": run_ours, "llama.cpp": run_llama, "torch": run_torch}


def side(name, config, n, threads, gguf):
    out = subprocess.run(
        [sys.executable, __file__, "--side", name, "--config", config, "--tokens", str(n),
         "--threads", str(threads), "--gguf", str(gguf)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
    )
    if out.returncode != 0:
        raise SystemExit(f"the {name} side failed (config {config}, {threads} threads):\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def agreement(ours, other) -> str:
    same = next((i for i, (a, b) in enumerate(zip(ours, other, strict=True)) if a != b), len(ours))
    head = "agree" if same >= min(AGREE, len(ours)) else f"DISAGREE at token {same}"
    return f"{head} ({same}/{len(ours)} identical)"


def missing() -> str | None:
    """Why the comparison cannot run, or None."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return "PyTorch is not installed: pip install -e '.[bench]' (torch 2.13.0, CPU build)"
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return ("llama-cpp-python is not installed, so there is no llama.cpp to compare against:\n"
                "    pip install llama-cpp-python  (measured with 0.3.36; the test environment installs it)")
    try:
        import gguf  # noqa: F401
    except ImportError:
        return "the gguf package is not installed (it writes the model for llama.cpp): pip install gguf"
    try:
        from cllm_app.kernels import decode  # noqa: F401
    except ImportError as exc:
        return f"The Cython kernels are not built ({exc}): pip install -e . --no-build-isolation"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="all", choices=["A", "B", "all"])
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--threads", default="1,2", help="thread counts to run every side with (default 1,2)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of all sides; the table shows medians")
    ap.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--gguf", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = ["A", "B"] if args.config == "all" else [args.config]
    try:
        thread_counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        ap.error(f"--threads takes whole numbers separated by commas, not {args.threads!r}")
    if args.tokens < 1 or args.repeat < 1 or min(thread_counts) < 1:
        ap.error("--tokens, --repeat and --threads must be at least 1")
    room = min(CONFIGS[n]["block_size"] for n in names) - len(PROMPT)
    if args.tokens > room:
        ap.error(f"--tokens {args.tokens} does not fit the context: block_size - {len(PROMPT)} prompt tokens "
                 f"leaves {room}, and no side should slide its window in a like-for-like run")
    if args.side:
        print(json.dumps(RUNNERS[args.side](CONFIGS[args.config], args.tokens, thread_counts[0], args.gguf)))
        return 0
    why = missing()
    if why:
        print(why)
        return 2

    head = (f"{'config':<7}{'threads':>8}{'ours tok/s':>12}{'llama.cpp tok/s':>17}{'torch tok/s':>13}"
            f"{'ours/llama.cpp':>16}{'ours/torch':>12}")
    rows, notes, variants = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            gguf = Path(tmp) / f"{name}.gguf"
            export_gguf(CONFIGS[name], gguf)
            for threads in thread_counts:
                rates = {s: [] for s in SIDES}
                tokens = {}
                for _ in range(args.repeat):
                    for s in SIDES:
                        res = side(s, name, args.tokens, threads, gguf)
                        rates[s].append(args.tokens / res["seconds"])
                        tokens.setdefault(s, res["tokens"])
                        variants[s] = res["variant"]
                med = {s: statistics.median(r) for s, r in rates.items()}
                rows.append(f"{name:<7}{threads:>8}{med['ours']:>12,.0f}{med['llama.cpp']:>17,.0f}{med['torch']:>13,.0f}"
                            f"{med['ours'] / med['llama.cpp']:>16.2f}{med['ours'] / med['torch']:>12.2f}")
                notes.append(f"{name}, {threads} thread{'s' * (threads > 1)}: greedy tokens vs ours: "
                             f"llama.cpp {agreement(tokens['ours'], tokens['llama.cpp'])}, "
                             f"torch {agreement(tokens['ours'], tokens['torch'])}; tok/s range "
                             + ", ".join(f"{s} {min(r):,.0f}-{max(r):,.0f}" for s, r in rates.items()))
                print(rows[-1] if len(rows) > 1 else f"{head}\n{rows[-1]}", flush=True)
    print()
    for line in notes:
        print(line)
    print(f"{args.tokens} tokens after a {len(PROMPT)}-token prompt, median of {args.repeat} rounds; "
          + "; ".join(f"{s}: {v}" for s, v in variants.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
