"""Quality in the same wall time: our trainer against nanoGPT-style PyTorch eager, on real text.

    python bench/bench_quality.py                      # both sides, 10 minutes each: ~22 minutes
    python bench/bench_quality.py --minutes 0.3        # a smoke run: ~1.5 minutes
    python bench/bench_quality.py --only ours --out ours.json [--work DIR] [--install]
    python bench/bench_quality.py --only ours --recipe '{"learning_rate": 3e-3}'   # try a recipe

How long: each side trains for --minutes of wall time, one after the other, then each is
evaluated on the held-out pages (about 10-30 s each on 2 cores); the first run also extracts
the corpus (about 15 s) and caches it under --work.

The bar (the issue): on a public corpus none of us wrote, our trainer for 10 minutes at the
recipe proposed for 10 minutes must reach a held-out bits per byte at least 0.15 lower than
nanoGPT-style PyTorch eager at config A in the same 10 minutes, and below 1.8.

Corpus: the Python 3.11 documentation from Debian 12's python3.11-doc (see quality_corpus.py:
every second HTML page in sorted path order, made plain text by the app's own HTML reader,
about 4.6 MB; every tenth of those pages held out, the rest train). --install runs apt-get when
the package is missing.

Ours: the app itself, on a throwaway data root (CLLM_HOME=WORK/runs/...): a model is created,
the training pages go into its queue (studio.queue.add_text, the same text the PyTorch side
reads), and the app's recipe chooser (services/recipe.py) applies what it proposes for the
minutes, as `cllm train NAME --minutes M` does (shape, tokenizer, batch, learning rate; its BPE
tokenizer trained on the queue). Creating, queueing and choosing are not timed; they are
printed. Then `python -m cllm_app train NAME --minutes M --keep-shape` trains with the app's
defaults for threads and priority and stops itself at its budget (the bench sends SIGINT only
as a backstop). Its model's queue holds out nothing (validation_split "marked", nothing
marked): the bench's held-out pages are never in it.

PyTorch: nanoGPT's training loop, eager, at config A: the app's own TorchGPT (engine/
torch_model.py: GPT-2 layout, tied head, tanh GELU, no dropout) with V256 (plain bytes 0-255),
L4 H4 D128 T128, batches of B8 windows at random offsets of the training pages concatenated
(each page preceded by "\\n", the page start it is also evaluated from), init as the app's
(GPT-2's: N(0, 0.02), residual projections 0.02/sqrt(2L); positions N(0, 0.01)), AdamW lr 1e-3,
betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on the matrices only, gradient clipping at 1.0
(nanoGPT's defaults), and nanoGPT's schedule as its char-level config sets it: 100 steps of
linear warmup, then a cosine from 1e-3 down to 1e-4 that ends at the deadline (by wall time,
since the steps a deadline allows are not known in advance). torch.set_num_threads(2).

Wall time: each side's budget runs from the moment its process is started, so start-up
(interpreter, imports, opening the store and reading the queue for ours; importing torch and
reading the pages for PyTorch) is inside the budget for both; the wall seconds printed run from
that moment to the side's last training step. The final checkpoint and the evaluation are not
timed.

Evaluation, the same code for both: cllm_app/services/research/evaluate.score (the Research
tab's evaluate of a pasted text) over the held-out pages, each read as its start token followed
by its bytes, in non-overlapping windows of 128 tokens, on our compiled forward. The PyTorch
model's weights are loaded into it under the same names. Bits per byte = total nats / ln 2 /
UTF-8 bytes predicted. Our byte models start a page from <|endoftext|> (token 256); the V256
PyTorch model has no such token and starts it from "\\n", as in its training.
"""

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import quality_corpus  # noqa: E402

# ---- the recipe: the app's chooser ---------------------------------------------------------------

# Fields of the chooser's proposal --recipe may change (for trying recipes), and what the bench
# itself sets: the queue holds no validation text, the held-out pages are the bench's.
RECIPE_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "sequence_length", "learning_rate",
                 "warmup_steps", "weight_decay", "seed", "eval_interval", "checkpoint_interval")
BENCH_SETTINGS = {"validation_split": "marked"}


def choose_recipe(studio, minutes: float, changes: dict) -> dict:
    """The recipe the app's chooser proposes for `minutes` (services/recipe.py), applied to the
    model as `cllm train --minutes` applies it; `changes` then override fields of it."""
    proposal = studio.recipes.apply(MODEL_NAME, minutes)
    shape = {k: v for k, v in changes.items() if k in ("n_layer", "n_head", "n_embd", "block_size")}
    if shape:
        studio.models.configure(MODEL_NAME, **shape)
    rest = {k: v for k, v in changes.items() if k in RECIPE_FIELDS and k not in shape}
    studio.models.configure(MODEL_NAME, **rest, **BENCH_SETTINGS)
    row = studio.models.show(MODEL_NAME)
    return {"tokenizer": row["tokenizer"], "vocab_size": row["vocab_size"],
            **{k: row[k] for k in RECIPE_FIELDS}, "minutes": row["minutes"], "why": proposal["why"]}


# ---- how ours is stopped ---------------------------------------------------------------------------

# `cllm train --minutes M` stops itself at its budget; the bench sends SIGINT only as a backstop,
# GRACE_SECONDS after the deadline.
GRACE_SECONDS = 30.0


def ours_train_argv(name: str, minutes: float) -> tuple[list[str], float]:
    """The command that trains our model for `minutes` (the recipe is already applied, so the
    shape is kept), and the seconds after its start at which the bench sends SIGINT."""
    argv = [sys.executable, "-m", "cllm_app", "train", name, "--minutes", f"{minutes:g}", "--keep-shape"]
    return argv, minutes * 60 + GRACE_SECONDS


# ---- PyTorch, config A -------------------------------------------------------------------------

CONFIG_A = {"vocab_size": 256, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128}
TORCH = {"batch_size": 8, "learning_rate": 1e-3, "min_lr": 1e-4, "warmup_steps": 100, "betas": (0.9, 0.95),
         "eps": 1e-8, "weight_decay": 0.1, "grad_clip": 1.0, "seed": 1337, "threads": 2}
PAGE_START = "\n"  # the V256 model's page-start token, in training and in evaluation


class PlainBytes:
    """The V256 model's tokenizer for evaluate.score: bytes 0-255, "\\n" as the page start."""

    kind = "byte"
    vocab_size = 256
    eot = ord(PAGE_START)
    fingerprint = "bytes256"

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)

    def decode(self, ids) -> str:
        return bytes(int(t) for t in ids).decode("utf-8", errors="replace")


def torch_side(work: Path, run_dir: Path, deadline: float, started: float) -> dict:
    """Runs in its own process (see run_torch): trains until `deadline` (time.time()), saves
    the weights to run_dir/torch.npz and returns its figures."""
    import torch

    from cllm_app.engine.config import GPTConfig
    from cllm_app.engine.torch_model import TorchGPT
    from cllm_app.engine.weights import init_weights

    h = TORCH
    torch.set_num_threads(h["threads"])
    torch.manual_seed(h["seed"])
    corpus = quality_corpus.load(work, quiet=True)
    data = torch.from_numpy(np.frombuffer(
        b"".join((PAGE_START + text).encode("utf-8") for _, text in corpus.train), dtype=np.uint8).astype(np.int64))
    cfg = GPTConfig(**CONFIG_A)
    model = TorchGPT(cfg)
    model.load(init_weights(cfg, seed=h["seed"]))
    params = list(model.parameters())
    opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": h["weight_decay"]},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=h["learning_rate"], betas=h["betas"], eps=h["eps"])
    B, T = h["batch_size"], cfg.block_size
    budget = deadline - started
    step, first_step_at, last_step_at, warm_end, lr = 0, None, None, None, 0.0
    losses = []
    next_report = time.time() + 30
    while time.time() < deadline:
        if step < h["warmup_steps"]:
            lr = h["learning_rate"] * (step + 1) / h["warmup_steps"]
        else:  # cosine over the wall time from the end of warmup to the deadline
            warm_end = warm_end or time.time()
            progress = min(1.0, (time.time() - warm_end) / max(1e-9, deadline - warm_end))
            lr = h["min_lr"] + 0.5 * (h["learning_rate"] - h["min_lr"]) * (1 + math.cos(math.pi * progress))
        for group in opt.param_groups:
            group["lr"] = lr
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([data[i : i + T] for i in ix])
        y = torch.stack([data[i + 1 : i + 1 + T] for i in ix])
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, h["grad_clip"])
        opt.step()
        step += 1
        losses.append(loss.item())
        last_step_at = time.time()
        first_step_at = first_step_at or last_step_at
        if last_step_at >= next_report:
            print(f"  torch: step {step}, loss {np.mean(losses[-100:]):.4f}, lr {lr:.2e}, "
                  f"{last_step_at - started:.0f} of {budget:.0f} s", file=sys.stderr, flush=True)
            next_report += 30
    np.savez(run_dir / "torch.npz", **model.named_arrays())
    return {
        "steps": step,
        "tokens": step * B * T,
        "epochs": step * B * T / len(data),
        "wall_seconds": (last_step_at or time.time()) - started,
        "first_step_seconds": (first_step_at or time.time()) - started,
        "final_train_loss": float(np.mean(losses[-50:])) if losses else None,
        "final_lr": lr,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def run_torch(work: Path, run_dir: Path, minutes: float) -> dict:
    started = time.time()
    deadline = started + minutes * 60
    env = {**os.environ, "OMP_NUM_THREADS": str(TORCH["threads"])}
    out = subprocess.run(
        [sys.executable, __file__, "--side", "torch", "--work", str(work), "--run-dir", str(run_dir),
         "--deadline", repr(deadline), "--started", repr(started)],
        stdout=subprocess.PIPE, stderr=None, text=True, env=env, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"the PyTorch side failed (exit {out.returncode})")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    with np.load(run_dir / "torch.npz") as z:
        weights = {k: z[k] for k in z.files}
    from cllm_app.engine.config import GPTConfig

    result["recipe"] = {**CONFIG_A, **{k: v for k, v in TORCH.items() if k != "threads"},
                        "schedule": "linear warmup 100 steps, then cosine 1e-3 -> 1e-4 ending at the deadline"}
    return {"result": result, "cfg": GPTConfig(**CONFIG_A), "weights": weights, "tok": PlainBytes()}


# ---- ours ---------------------------------------------------------------------------------------

MODEL_NAME = "quality"


def prepare_ours(home: Path, minutes: float, changes: dict, corpus) -> dict:
    """A data root with the model, the training pages in its queue, and the chooser's recipe
    for `minutes` applied (its BPE tokenizer trained on the queue). Returns the recipe."""
    from cllm_app.services.studio import Studio

    studio = Studio(home)
    try:
        studio.models.create(MODEL_NAME)
        for path, text in corpus.train:
            studio.queue.add_text(MODEL_NAME, text, origin=f"{corpus.package}:{path}", source_kind="file", title=path)
        return choose_recipe(studio, minutes, changes)
    finally:
        studio.close()


def run_ours(run_dir: Path, minutes: float, changes: dict, corpus) -> dict:
    from cllm_app.services.research.sources import model_parts
    from cllm_app.services.studio import Studio
    from cllm_app.store import LossPoint

    home = run_dir / "home"
    t0 = time.monotonic()
    recipe = prepare_ours(home, minutes, changes, corpus)
    print(f"  ours: model created, {len(corpus.train)} pages queued, recipe chosen and applied "
          f"({time.monotonic() - t0:.0f} s, not timed)", flush=True)
    for line in recipe["why"]:
        print(f"    - {line}", flush=True)
    argv, stop_after = ours_train_argv(MODEL_NAME, minutes)
    env = {**os.environ, "CLLM_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    log_path = run_dir / "ours-train.log"
    with open(log_path, "w") as log:
        started = time.time()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        stopped_by = "the app (cllm train --minutes)"
        try:
            proc.wait(timeout=stop_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # `cllm train`: stop at the next step, checkpoint, exit
            stopped_by = "the bench (SIGINT at the deadline)"
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise SystemExit(f"`cllm train` did not stop within 5 minutes of SIGINT; see {log_path}") from None
        exited = time.time()
    tail = log_path.read_text(errors="replace").replace("\r", "\n").strip().splitlines()[-3:]
    if proc.returncode != 0:
        raise SystemExit(f"`cllm train` failed (exit {proc.returncode}):\n" + "\n".join(tail))
    studio = Studio(home)
    try:
        row = studio.models.get(MODEL_NAME)
        points = list(row.loss_history.order_by(LossPoint.step))
        cfg, weights, tok = model_parts(studio.models, row)
        t_start = datetime.fromtimestamp(started, timezone.utc).replace(tzinfo=None)
        last, first = points[-1], points[0]
        result = {
            "steps": row.steps_trained,
            "tokens": row.tokens_trained,
            "epochs": last.epoch,
            "wall_seconds": (last.created_at - t_start).total_seconds(),
            "first_step_seconds": (first.created_at - t_start).total_seconds(),
            "exit_seconds": exited - started,
            "final_train_loss": float(np.mean([p.train_loss for p in points[-50:]])),
            "final_lr": last.learning_rate,
            "stopped_by": stopped_by,
            "command": " ".join(["cllm", *argv[3:]]),
            "last_line": tail[-1] if tail else "",
            "recipe": recipe,
        }
    finally:
        studio.close()
    return {"result": result, "cfg": cfg, "weights": weights, "tok": tok}


# ---- evaluation: the same for both -----------------------------------------------------------------

def evaluate(side: dict, held_out: list[tuple[str, str]]) -> dict:
    """Held-out bits per byte with the app's Research evaluate (evaluate.score)."""
    from cllm_app.services.research.evaluate import score

    tok = side["tok"]
    docs = [np.asarray(tok.encode(text)) for _, text in held_out]
    total = sum(int(d.size) for d in docs)
    s = score(side["cfg"], side["weights"], tok, docs, max_tokens=total)
    expected = sum(len(text.encode("utf-8")) for _, text in held_out)
    if s["bytes"] != expected or s["tokens"] != total:
        raise SystemExit(f"evaluation covered {s['bytes']:,} bytes of {expected:,}: the held-out text differs")
    return {"bpb": s["total_nats"] / math.log(2) / s["bytes"], "loss": s["loss"], "tokens": s["tokens"],
            "bytes": s["bytes"], "windows": s["windows"], "eval_seconds": s["seconds"]}


# ---- the report ---------------------------------------------------------------------------------------

def machine() -> dict:
    name = platform.processor() or "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
    except FileNotFoundError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpu": name, "cores": os.cpu_count(), "load_average_1min_at_start": load}


def show_side(label: str, r: dict, e: dict) -> None:
    rec = r["recipe"]
    shape = (f"V{rec.get('vocab_size', 257 if rec.get('tokenizer') == 'byte' else '?')} L{rec['n_layer']} "
             f"H{rec['n_head']} D{rec['n_embd']} T{rec['block_size']} B{rec['batch_size']} lr {rec['learning_rate']:g}")
    print(f"{label}: {shape}")
    if "minutes" in rec:
        print(f"  recipe: {json.dumps({k: v for k, v in rec.items() if k != 'why'})}")
        print(f"  stopped by {r['stopped_by']}; `{r['command']}` said: {r['last_line']}")
    else:
        print(f"  recipe: {rec['schedule']}, betas {tuple(rec['betas'])}, weight decay {rec['weight_decay']} "
              f"(matrices), clip {rec['grad_clip']}, {r['torch']}, {r['threads']} threads")
    print(f"  {r['steps']:,} steps, {r['tokens']:,} tokens ({r['epochs']:.2f} epochs), last step at "
          f"{r['wall_seconds']:.1f} s (first at {r['first_step_seconds']:.1f} s), final train loss "
          f"{r['final_train_loss']:.4f} nats/token, final lr {r['final_lr']:.2e}")
    print(f"  held-out: {e['bpb']:.4f} bits/byte ({e['loss']:.4f} nats/token over {e['tokens']:,} tokens, "
          f"{e['bytes']:,} bytes; evaluated in {e['eval_seconds']:.0f} s)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="wall time each side trains (default 10)")
    ap.add_argument("--work", type=Path, default=quality_corpus.DEFAULT_WORK,
                    help=f"corpus cache and runs (default {quality_corpus.DEFAULT_WORK})")
    ap.add_argument("--out", type=Path, help="write a JSON summary here")
    ap.add_argument("--only", choices=("ours", "torch"), help="run one side")
    ap.add_argument("--install", action="store_true", help=f"apt-get install {quality_corpus.PACKAGE} if missing")
    ap.add_argument("--recipe", type=json.loads, default={}, metavar="JSON",
                    help='change fields of the chooser\'s recipe, e.g. \'{"learning_rate": 3e-3}\' (for trying recipes)')
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (data root, weights, logs)")
    ap.add_argument("--side", choices=("torch",), help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side == "torch":
        print(json.dumps(torch_side(args.work, args.run_dir, args.deadline, args.started)))
        return 0

    corpus = quality_corpus.load(args.work, install=args.install)
    c, m = corpus.describe(), machine()
    print(f"corpus: {c['package']} {c['version']} ({c['html_root']}): {c['subset']}")
    print(f"  {c['pages']} of {c['pages_available']} pages: {c['train_pages']} train ({c['train_bytes']:,} bytes), "
          f"{c['held_out_pages']} held out ({c['held_out_bytes']:,} bytes, sha256 {c['held_out_sha256']})")
    print(f"machine: {m['cpu']}, {m['cores']} cores, load average {m['load_average_1min_at_start']}")
    print(f"budget: {args.minutes:g} min of wall time per side, from the start of its process to its last step",
          flush=True)

    run_dir = args.work / "runs" / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    sides, evals = {}, {}
    try:
        if args.only in (None, "ours"):
            changed = f", changed by --recipe {json.dumps(args.recipe)}" if args.recipe else ""
            print(f"ours: training {args.minutes:g} min at the recipe the app's chooser proposes{changed}", flush=True)
            sides["ours"] = run_ours(run_dir, args.minutes, args.recipe, corpus)
            evals["ours"] = evaluate(sides["ours"], corpus.held_out)
            show_side("ours", sides["ours"]["result"], evals["ours"])
        if args.only in (None, "torch"):
            print(f"torch: training {args.minutes:g} min at config A", flush=True)
            sides["torch"] = run_torch(args.work, run_dir, args.minutes)
            evals["torch"] = evaluate(sides["torch"], corpus.held_out)
            show_side("torch", sides["torch"]["result"], evals["torch"])
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)

    summary = {"corpus": c, "machine": m, "minutes": args.minutes,
               "sides": {k: {**v["result"], "held_out": evals[k]} for k, v in sides.items()}}
    if len(sides) == 2:
        ours, theirs = evals["ours"]["bpb"], evals["torch"]["bpb"]
        diff = theirs - ours
        bars = {"diff_at_least_0.15": diff >= 0.15, "ours_below_1.8": ours < 1.8}
        summary.update(diff_bpb=diff, bars=bars, passed=all(bars.values()))
        print(f"RESULT {args.minutes:g} min: ours {ours:.4f} bpb, torch {theirs:.4f} bpb, torch - ours = {diff:+.4f}; "
              f"bar diff >= 0.15: {'yes' if bars['diff_at_least_0.15'] else 'NO'}, "
              f"bar ours < 1.8: {'yes' if bars['ours_below_1.8'] else 'NO'}")
    else:
        (k, e), = evals.items()
        print(f"RESULT {args.minutes:g} min: {k} {e['bpb']:.4f} bpb (one side only: no comparison)")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
