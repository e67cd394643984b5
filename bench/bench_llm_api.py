"""The LLM tab's path against the generator itself: time to first token and tokens/s.

    python bench/bench_llm_api.py [--config A|B|all] [--tokens N] [--runs R]

For configs A and B of bench_generate.py (random-init weights plus noise; A's vocabulary is
257, the byte tokenizer's, instead of 256), a real app is started (`python -m cllm_app serve`,
its own process and data root) and a model of that shape is given the weights. Then the same
greedy 200-token continuation is timed two ways:

- kernel: Generator.tokens() in this process (the decode kernel plus sampling, nothing else);
- API: POST /api/models/<name>/complete over HTTP, reading the server-sent events as they
  arrive (what the LLM tab does), timed at the client.

Each side runs R times after a warm-up; the medians are printed, with the API's overhead on
tokens/s in % (the bar: at most 10%).
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import start_app  # noqa: E402
from bench_generate import CONFIGS, PROMPT  # noqa: E402

BAR = 10.0


def _cfg(c):
    from cllm_app.engine.config import GPTConfig

    return GPTConfig(vocab_size=max(257, c["vocab_size"]), n_layer=c["n_layer"], n_head=c["n_head"],
                     n_embd=c["n_embd"], block_size=c["block_size"])


def _weights(cfg, seed):
    from cllm_app.engine.weights import init_weights

    rng = np.random.default_rng(seed)
    return {k: v + rng.normal(0, 0.02, v.shape).astype(np.float32) for k, v in init_weights(cfg, seed=0).items()}


def _generator(cfg, weights):
    from cllm_app.engine.generate import Generator
    from cllm_app.engine.kernel_choice import decode_kernel
    from cllm_app.engine.model import FlatTensors
    from cllm_app.engine.tokenizer import ByteTokenizer

    P = FlatTensors(cfg)
    P.load(weights)
    step, variant = decode_kernel(cfg, P)
    return Generator(cfg, P, ByteTokenizer(), step), variant


def _sampling(n):
    return {"temperature": 0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0, "max_new_tokens": n}


def kernel_run(gen, n):
    from cllm_app.engine.generate import Sampling

    t0 = time.perf_counter()
    first = None
    count = 0
    for _ in gen.tokens(PROMPT, Sampling(**_sampling(n))):
        count += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return {"ttft": first - t0, "tps": (count - 1) / (end - first), "count": count}


def api_run(port, token, name, n):
    """One streamed completion; times at the client, as the tab sees it."""
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps({"prompt": bytes(PROMPT).decode(), "sampling": _sampling(n)})
    t0 = time.perf_counter()
    con.request("POST", f"/api/models/{name}/complete", body=body,
                headers={"X-CLLM-Token": token, "Content-Type": "application/json", "Accept": "text/event-stream"})
    response = con.getresponse()
    assert response.status == 200, response.read()
    first = last = None
    count = 0
    done = None
    event = None
    while True:
        line = response.readline()
        if not line:
            break
        if line.startswith(b"event: "):
            event = line[7:].strip()
        elif line.startswith(b"data: "):
            if event == b"token":
                count += 1
                last = time.perf_counter()
                if first is None:
                    first = last
            elif event == b"done":
                done = json.loads(line[6:])
    con.close()
    # Tokens can arrive several to an event when a character spans tokens; count the server's.
    tokens = done["completion_tokens"]
    return {"ttft": first - t0, "tps": (tokens - 1) / (last - first), "count": tokens, "events": count,
            "server_tps": done["tokens_per_sec"]}


def api_call(port, token, method, path, body=None):
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    con.request(method, path, body=json.dumps(body) if body is not None else None,
                headers={"X-CLLM-Token": token, "Content-Type": "application/json"})
    r = con.getresponse()
    data = json.loads(r.read() or b"null")
    con.close()
    assert r.status < 300, data
    return data


def bench_config(key, n, runs, port, token, home):
    from cllm_app.engine.weights import save_weights

    cfg = _cfg(CONFIGS[key])
    # Noise seeds until greedy decoding makes all n tokens (a random model may say <|endoftext|>).
    for seed in range(20):
        weights = _weights(cfg, seed)
        gen, variant = _generator(cfg, weights)
        if kernel_run(gen, n)["count"] == n:
            break
    name = f"bench-{key}"
    api_call(port, token, "POST", "/api/models", {"model_name": name, "vocab_size": cfg.vocab_size, "n_layer": cfg.n_layer,
                                                   "n_head": cfg.n_head, "n_embd": cfg.n_embd, "block_size": cfg.block_size})
    save_weights(Path(home) / "models" / name / "model.safetensors", weights)
    api_run(port, token, name, n)  # warm-up: the server loads the model into its cache
    kernel_run(gen, n)
    kern, api = [], []
    for _ in range(runs):  # interleaved, so a noisy neighbour hits both sides alike
        kern.append(kernel_run(gen, n))
        api.append(api_run(port, token, name, n))
    assert all(r["count"] == n for r in kern + api), "a run stopped early"
    med = {side: {k: statistics.median(r[k] for r in rs) for k in ("ttft", "tps")} for side, rs in
           (("kernel", kern), ("api", api))}
    med["api"]["server_tps"] = statistics.median(r["server_tps"] for r in api)
    return med, variant


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="all", choices=["A", "B", "all"])
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory(prefix="cllm-bench-") as tmp:
        home = Path(tmp) / "home"
        proc, _origin, port, token = start_app(home, {"OMP_NUM_THREADS": "2"})
        try:
            print(f"{'config':<7}{'kernel tok/s':>13}{'API tok/s':>11}{'overhead':>10}{'kernel TTFT':>13}"
                  f"{'API TTFT':>10}{'server tok/s':>14}  bar ≤{BAR:.0f}%")
            worst = 0.0
            for key in (["A", "B"] if args.config == "all" else [args.config]):
                m, variant = bench_config(key, args.tokens, args.runs, port, token, home)
                k, a = m["kernel"], m["api"]
                overhead = (k["tps"] / a["tps"] - 1) * 100
                worst = max(worst, overhead)
                print(f"{key:<7}{k['tps']:>13,.0f}{a['tps']:>11,.0f}{overhead:>9.1f}%{k['ttft'] * 1000:>11.2f}ms"
                      f"{a['ttft'] * 1000:>8.2f}ms{a['server_tps']:>14,.0f}  {'ok' if overhead <= BAR else 'OVER'} ({variant})")
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    return 0 if worst <= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
