"""The two training engines side by side: the built-in one against the PyTorch engine, both
driven by the app's own training loop (engine/trainer.py) on the same model, init and
documents, both on this CPU; on a GPU too where there is one.

    python bench/bench_engines.py [--config A|B|all] [--steps N] [--rounds R]
                                  [--no-ddp] [--no-start]

Prints, for each config, tokens/s of each engine and the ratio built-in/PyTorch (> 1: the
built-in engine is faster), with the first losses of both side by side; then the losses of
two gloo processes against one (the same global batch); then the seconds a person waits
from pressing Start (POST /api/models/NAME/train on a running app) to the first step, for
each engine. Where torch sees a CUDA GPU, the PyTorch engine also runs there on A, B and a
GPT-2-small-sized model (124M parameters, a 32,768-token BPE-sized vocabulary).

Each side runs in a process of its own with 2 threads; the sides take turns over --rounds
rounds and the medians are shown (the machine's speed drifts from minute to minute).
Needs the torch extra: pip install -e '.[torch]'.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

CONFIGS = {
    "A": {"vocab_size": 256, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128, "B": 8, "steps": 30},
    "B": {"vocab_size": 4096, "n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "B": 8, "steps": 8},
    "124M": {"vocab_size": 32768, "n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024, "B": 8, "steps": 30},
}
DATA_STEPS = 400  # the documents hold an epoch of this many steps at least
WARMUP = 2  # steps not timed (first touches of memory, torch's first kernels)
ARCH = ("vocab_size", "n_layer", "n_head", "n_embd", "block_size")


def documents(cfg: dict, tokens: int):
    """A fixed Zipf-like token stream cut into documents of 4,096 tokens."""
    from cllm_app.engine.trainer import Document

    rng = np.random.default_rng(0)
    stream = ((rng.zipf(1.3, size=tokens) - 1) % (cfg["vocab_size"] - 1)).astype(np.int32)
    return [Document(doc_id=i + 1, key=f"d{i}", tokens=stream[s : s + 4096])
            for i, s in enumerate(range(0, tokens, 4096))]


def run_side(config: str, engine: str, device: str, steps: int, rank: int = 0, world: int = 1,
             address: str | None = None) -> dict:
    """Train `steps` + WARMUP steps through the app's Trainer; losses and seconds per step."""
    from cllm_app.engine.config import GPTConfig
    from cllm_app.engine.kernel_choice import model_kernels
    from cllm_app.engine.trainer import Trainer, TrainSettings
    from cllm_app.engine.weights import init_weights

    cfg = CONFIGS[config]
    g = GPTConfig(**{k: cfg[k] for k in ARCH})
    total = steps + WARMUP
    settings = TrainSettings(batch_size=cfg["B"], sequence_length=cfg["block_size"], learning_rate=3e-4,
                             target_epochs=1, warmup_steps=WARMUP, eval_interval=10**6, checkpoint_interval=10**6,
                             seed=0)
    numerics = None
    if engine == "torch":
        from cllm_app.engine import torch_numerics as tn

        if world > 1:
            tn.init_ranks(rank, world, address, tn.pick_device(device))
        numerics = tn.TorchNumerics(g, settings, device)
    # The same documents whatever the number of steps, so a short run's batches are a long one's
    # first (a tenth of the documents validates).
    docs = documents(cfg, (max(total, DATA_STEPS) + 2) * cfg["B"] * cfg["block_size"] * 10 // 9 + 8192)
    losses, seconds = [], []
    last = [time.perf_counter()]

    def on_step(r):
        now = time.perf_counter()
        losses.append(r.train_loss)
        seconds.append(now - last[0])
        last[0] = now

    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(g, settings, model_kernels() if engine == "builtin" else None, lambda: docs, Path(folder),
                          init_weights(g, seed=0), cfg["vocab_size"] - 1, numerics=numerics)
        last[0] = time.perf_counter()
        trainer.run(on_step=on_step, max_steps=total)
    label = "built-in" if numerics is None else f"torch {numerics.device} {numerics.precision}"
    if world > 1:
        tn.leave_ranks(together=True)
    return {"losses": losses, "seconds": seconds, "label": label}


def side(config: str, engine: str, device: str, steps: int, world: int = 1) -> dict:
    """One side in processes of its own (`world` of them for the PyTorch engine with DDP)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, 2 // world))}
    cmd = [sys.executable, __file__, "--side", engine, "--device", device, "--config", config, "--steps", str(steps)]
    if world == 1:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    from cllm_app.jobs.engines import _free_address

    address = _free_address()
    procs = [subprocess.Popen([*cmd, "--rank", str(r), "--world", str(world), "--address", address],
                              stdout=subprocess.PIPE, text=True, env=env) for r in range(world)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a DDP side failed")
    return json.loads(outs[0].strip().splitlines()[-1])


def compare(config: str, steps: int, rounds: int, device: str) -> None:
    cfg = CONFIGS[config]
    tokens = cfg["B"] * cfg["block_size"]
    rates = []
    firsts = None
    for r in range(max(1, rounds)):
        order = ("builtin", "torch") if r % 2 == 0 else ("torch", "builtin")
        got = {who: side(config, who, device, steps) for who in order}
        rate = {who: tokens / float(np.median(got[who]["seconds"][WARMUP:])) for who in order}
        rates.append((rate["builtin"], rate["torch"]))
        print(f"  round {r + 1}: built-in {rate['builtin']:,.0f} tok/s, {got['torch']['label']} "
              f"{rate['torch']:,.0f} tok/s, ratio {rate['builtin'] / rate['torch']:.2f}", flush=True)
        firsts = firsts or got
    ours = float(np.median([a for a, _ in rates]))
    theirs = float(np.median([b for _, b in rates]))
    ratio = float(np.median([a / b for a, b in rates]))
    diff = max(abs(a - b) / abs(b) for a, b in zip(firsts["builtin"]["losses"], firsts["torch"]["losses"], strict=True))
    shown = " ".join(f"{a:.4f}|{b:.4f}" for a, b in zip(firsts["builtin"]["losses"][:4], firsts["torch"]["losses"][:4],
                                                          strict=True))
    print(f"{config:<6}{ours:>12,.0f}{theirs:>13,.0f}{ratio:>10.2f}  {shown}  (max relative diff {diff:.1e} "
          f"over {len(firsts['torch']['losses'])} steps, median of {len(rates)} rounds)")


def ddp(config: str, steps: int) -> None:
    one = side(config, "torch", "cpu", steps)
    two = side(config, "torch", "cpu", steps, world=2)
    diff = max(abs(a - b) / abs(a) for a, b in zip(one["losses"], two["losses"], strict=True))
    print(f"config {config}, global batch {CONFIGS[config]['B']}: 1 process "
          + " ".join(f"{v:.5f}" for v in one["losses"][:4]) + " | 2 gloo processes "
          + " ".join(f"{v:.5f}" for v in two["losses"][:4]) + f"  (max relative diff {diff:.1e} over {len(one['losses'])} steps)")


def start_to_first_step() -> None:
    """Seconds from POST /train to the job's first step on a running app, for each engine."""
    import requests
    from _common import start_app

    cfg = CONFIGS["A"]
    text = (" ".join(f"word{i % 97} token{i % 13}" for i in range(60_000))).encode()
    with tempfile.TemporaryDirectory() as home:
        proc, origin, _port, token = start_app(home)
        s = requests.Session()
        s.headers["X-CLLM-Token"] = token
        try:
            for engine in ("builtin", "torch"):
                name = f"start-{engine}"
                made = s.post(f"{origin}/api/models", json={"model_name": name, **{k: cfg[k] for k in ARCH if k != "vocab_size"}})
                made.raise_for_status()
                ingest = s.post(f"{origin}/api/models/{name}/queue/upload", files=[("files", ("t.txt", text))])
                ingest.raise_for_status()
                while s.get(f"{origin}/api/jobs/{ingest.json()['id']}").json()["state"] in ("queued", "running"):
                    time.sleep(0.1)
                t0 = time.monotonic()
                answer = s.post(f"{origin}/api/models/{name}/train",
                                json={"engine": engine, "device": "cpu", "batch_size": cfg["B"], "target_epochs": 1})
                if answer.status_code != 202:
                    raise SystemExit(f"Start was refused: {answer.text}")
                job = answer.json()
                while s.get(f"{origin}/api/jobs/{job['id']}").json()["detail"].get("step", 0) < 1:
                    time.sleep(0.02)
                waited = time.monotonic() - t0
                s.post(f"{origin}/api/jobs/{job['id']}/stop", json={})
                print(f"  {engine:8} {waited:6.2f} s from Start to the first step")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="all", choices=["A", "B", "124M", "all"])
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: per config)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-ddp", action="store_true")
    ap.add_argument("--no-start", action="store_true")
    ap.add_argument("--side", choices=["builtin", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    ap.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--address", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        steps = args.steps or CONFIGS[args.config]["steps"]
        print(json.dumps(run_side(args.config, args.side, args.device, steps, args.rank, args.world, args.address)))
        return 0
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: pip install -e '.[torch]'")
        return 2
    configs = ["A", "B"] if args.config == "all" else [args.config]
    print(f"{'config':<6}{'built-in':>12}{'PyTorch':>13}{'ratio':>10}  first losses (built-in | PyTorch), both on this CPU")
    for name in (c for c in configs if c != "124M"):
        compare(name, args.steps or CONFIGS[name]["steps"], args.rounds, "cpu")
    if torch.cuda.is_available():
        print(f"\nPyTorch engine on {torch.cuda.get_device_name(0)}:")
        for name in ["A", "B", "124M"] if args.config == "all" else configs:
            got = side(name, "torch", "cuda", args.steps or CONFIGS[name]["steps"])
            rate = CONFIGS[name]["B"] * CONFIGS[name]["block_size"] / float(np.median(got["seconds"][WARMUP:]))
            print(f"  {name:<6}{rate:>12,.0f} tok/s  ({got['label']}; losses {got['losses'][0]:.3f} -> {got['losses'][-1]:.3f})")
    else:
        print("\n(no CUDA GPU here: the GPU rows are left out)")
    if not args.no_ddp:
        print("\nDDP: one process against two gloo processes sharing each global batch")
        ddp("A", 10)
    if not args.no_start:
        print("\nFrom Start to the first step (config A, through a running app):")
        start_to_first_step()
    return 0


if __name__ == "__main__":
    sys.exit(main())
