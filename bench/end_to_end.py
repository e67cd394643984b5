"""A whole `cllm train` epoch as a person runs it, against the bare training step.

    python bench/bench_train.py --end-to-end [--small-mb 0.5] [--large-mb 1.5] [--load]

Config A's shape (V256 L4 H4 D128 T128) at the default training settings (batch 8,
context 128, an evaluation with its sample text and a checkpoint every 100 steps, a
loss-history row and a progress report every step) on real text: the Python standard
library's own sources, which every machine with Python has.

1. From outside: `cllm train` on a 0.5 MB and on a 1.5 MB queue, each in a fresh data
   root, timed from the command's start to its end. The difference of the two, in tokens
   trained and seconds, is the epoch's own speed: start-up cancels. Start-up itself is
   printed too, from the command's start to its first step's loss row.
2. Where the time goes: the 1.5 MB epoch again, in this process through the job's own
   TrainingRun, with every part timed: the training step (kernels), the store rows and
   progress, validation, the sample text, checkpoints, the epoch's bookkeeping, and the
   rest of the loop (data loading, Python).
3. The bare step: bench_train's loop on the same shape, ours and PyTorch eager.
"""

import argparse
import collections
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

SHAPE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128}
NAME = "e2e"


def corpus(megabytes: float, folder: Path) -> Path:
    """`megabytes` of the standard library's sources, in one file."""
    want = int(megabytes * 1_000_000)
    parts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if size >= want:
            break
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        parts.append(text)
        size += len(text.encode("utf-8"))
    data = "".join(parts).encode("utf-8")[:want].decode("utf-8", errors="ignore")
    out = folder / f"stdlib-{megabytes:g}MB.txt"
    out.write_text(data, encoding="utf-8")
    return out


def prepare(home: Path, text: Path) -> None:
    """A config-A model with `text` in its queue, on the data root `home`."""
    from cllm_app.services.studio import Studio

    studio = Studio(home)
    studio.models.create(NAME, **SHAPE)
    studio.queue.add_files(NAME, [str(text)])
    studio.close()


def outside(text: Path, env: dict) -> dict:
    """`cllm train` timed from outside on a fresh data root: seconds, tokens, start-up."""
    with tempfile.TemporaryDirectory(prefix="cllm-e2e-") as home:
        run_env = {**env, "CLLM_HOME": home}
        prepare(Path(home), text)
        started = datetime.now(timezone.utc).replace(tzinfo=None)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cllm_app", "train", NAME], env=run_env, check=True,
                       stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        from cllm_app.services.studio import Studio
        from cllm_app.store import LanguageModel, LossPoint

        studio = Studio(Path(home))
        row = LanguageModel.get(LanguageModel.model_name == NAME)
        first = LossPoint.select().where(LossPoint.model == row.id).order_by(LossPoint.step).first()
        result = {"seconds": seconds, "tokens": row.tokens_trained, "steps": row.steps_trained,
                  "first_step_s": (first.created_at - started).total_seconds()}
        studio.close()
        return result


def inside(text: Path) -> dict:
    """The same epoch through the job's TrainingRun, every part timed: {part: seconds}."""
    from cllm_app.engine.kernel_choice import model_kernels
    from cllm_app.jobs.train import TrainingRun
    from cllm_app.services.studio import Studio

    with tempfile.TemporaryDirectory(prefix="cllm-e2e-") as home:
        prepare(Path(home), text)
        studio = Studio(Path(home))
        spent: dict[str, float] = collections.defaultdict(float)

        def timed(part, fn):
            def call(*a, **kw):
                t = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    spent[part] += time.perf_counter() - t
            return call

        t0 = time.perf_counter()
        job = studio.training.start(NAME, {}, foreground=True)
        run = TrainingRun(studio, job["id"], model_kernels())
        run.record_start()
        spent["start-up (queue tokens, weights, trainer)"] = time.perf_counter() - t0
        t, n = run.trainer, run.trainer.numerics
        n.forward_backward = timed("training step (kernels)", n.forward_backward)
        n.optimizer_step = timed("training step (kernels)", n.optimizer_step)
        t.evaluate = timed("validation", t.evaluate)
        t.checkpoint = timed("checkpoint files", t.checkpoint)
        store = "loss rows + progress (store)"
        callbacks = [timed(store, run.on_step), timed("sample text at evaluation", run.on_eval),
                     timed("weights file + store at checkpoint", run.on_checkpoint),
                     timed("epoch bookkeeping", run.on_epoch)]
        t1 = time.perf_counter()
        outcome = t.run(studio.jobs.stop_check(job["id"]), *callbacks, before_checkpoint=timed(store, run.flush))
        loop = time.perf_counter() - t1
        studio.jobs.finish(job["id"], "done" if outcome == "done" else "stopped")
        spent["the loop's rest (data, Python)"] = loop - sum(v for k, v in spent.items() if not k.startswith("start"))
        tokens = t.tokens_seen
        studio.close()
    return {"spent": dict(spent), "loop": loop, "tokens": tokens}


def main(argv: list[str], load: bool = False) -> int:
    ap = argparse.ArgumentParser(prog="bench_train.py --end-to-end")
    ap.add_argument("--small-mb", type=float, default=0.5)
    ap.add_argument("--large-mb", type=float, default=1.5)
    args = ap.parse_args(argv)
    import bench_train

    busy = bench_train.busy_processes() if load else []
    if busy:
        print(f"under load: {len(busy)} busy processes beside the bench")
    try:
        with tempfile.TemporaryDirectory(prefix="cllm-e2e-text-") as folder:
            small, large = corpus(args.small_mb, Path(folder)), corpus(args.large_mb, Path(folder))
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            a, b = outside(small, env), outside(large, env)
            e2e = (b["tokens"] - a["tokens"]) / (b["seconds"] - a["seconds"])
            print(f"cllm train, one epoch from outside: {args.small_mb:g} MB {a['tokens']:,} tokens in {a['seconds']:.1f} s,"
                  f" {args.large_mb:g} MB {b['tokens']:,} tokens in {b['seconds']:.1f} s -> {e2e:,.0f} tok/s")
            print(f"start-up, `cllm train` to its first step: {a['first_step_s']:.2f} s and {b['first_step_s']:.2f} s")
            got = inside(large)
        cfg = bench_train.CONFIGS["A"]
        tokens = cfg["B"] * cfg["block_size"]
        bare = {who: bench_train.side(who, "A", 40) for who in ("ours", "eager")}
        bare_rate = {who: tokens / (sum(r["times"]) / len(r["times"])) for who, r in bare.items()}
    finally:
        for proc in busy:
            proc.terminate()
    loop_rate = got["tokens"] / got["loop"]
    print(f"\nwhere the {args.large_mb:g} MB epoch's time goes (in process, {got['tokens']:,} tokens, "
          f"loop {got['loop']:.1f} s, {loop_rate:,.0f} tok/s):")
    total = got["loop"] + got["spent"]["start-up (queue tokens, weights, trainer)"]
    for part, secs in sorted(got["spent"].items(), key=lambda kv: -kv[1]):
        print(f"  {part:<42}{secs:>8.2f} s {100 * secs / total:>6.1f}%")
    print(f"\nbare step, config A (bench_train's loop, mean of 40 steps): ours {bare_rate['ours']:,.0f} tok/s, "
          f"PyTorch eager {bare_rate['eager']:,.0f} tok/s")
    print(f"end to end from outside / our bare step: {e2e / bare_rate['ours']:.2f}   "
          f"(in process, loop / bare: {loop_rate / bare_rate['ours']:.2f})")
    print(f"end to end from outside / PyTorch's bare loop: {e2e / bare_rate['eager']:.2f}")
    return 0
