"""Train this bundle's model with PyTorch: one process, or many under torchrun (see launch.sh
and README.md). Needs torch, numpy and safetensors; nothing of CLLM Studio is installed: the
part of it that trains (cllm_app/ beside this file) came with the bundle.

Each run goes on from the newest checkpoint in checkpoints/ and appends its steps to
history.jsonl and a line to runs.jsonl; `cllm bundle import DIR` brings it all back.
"""

import argparse
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the cllm_app/ that came with the bundle

from safetensors.numpy import load_file  # noqa: E402

from cllm_app.engine.config import GPTConfig  # noqa: E402
from cllm_app.engine.token_shards import held_out_ids, read_documents  # noqa: E402
from cllm_app.engine.trainer import Document, Trainer, TrainingError, TrainSettings  # noqa: E402


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class History:
    """history.jsonl: one line per step (and per evaluation), written by rank 0. Steps after the
    checkpoint a run starts from are dropped first: that run does them again."""

    def __init__(self, path: Path, start_step: int):
        self.path = path
        kept = []
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip() and json.loads(line)["step"] <= start_step:
                    kept.append(line)
        path.write_text("".join(line + "\n" for line in kept))
        self.file = open(path, "a")

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def sync(self) -> None:
        os.fsync(self.file.fileno())


def main() -> int:
    ap = argparse.ArgumentParser(description="Train this bundle's model (see README.md).")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (a short try)")
    ap.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda or mps")
    args = ap.parse_args()

    from cllm_app.engine import torch_numerics as tn

    bundle = json.loads((HERE / "bundle.json").read_text())
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    device = tn.pick_device(args.device)
    if world > 1:
        tn.init_from_env(device)
    tn.share_cpu(device, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    cfg = GPTConfig(**bundle["config"])
    settings = TrainSettings(**{**bundle["settings"], "engine": "torch", "device": args.device, "nproc": world})
    numerics = tn.TorchNumerics(cfg, settings, args.device)
    held = held_out_ids(HERE / "data")
    docs = [Document(doc_id=i, key=k, tokens=t, holdout=i in held) for i, k, t in read_documents(HERE / "data")]
    weights = load_file(str(HERE / "model" / "model.safetensors"))
    trainer = Trainer(cfg, settings, None, lambda: docs, HERE / "checkpoints", weights, bundle["eot"], numerics=numerics)
    start = trainer.step
    stop = [False]
    if rank == 0:
        # Ctrl+C or a scheduler's SIGTERM: checkpoint at the next step, then stop.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: stop.__setitem__(0, True))
    history = History(HERE / "history.jsonl", start) if rank == 0 else None
    t0 = time.monotonic()

    def on_step(r):
        if history:
            history.write({"step": r.step, "epoch": r.epoch, "train_loss": r.train_loss, "learning_rate": r.learning_rate,
                           "tokens_per_sec": r.tokens_per_sec, "time": now()})
            if r.step % 10 == 0 or r.step == start + 1:
                print(f"step {r.step} · epoch {r.epoch:.2f} · loss {r.train_loss:.4f} · "
                      f"{r.tokens_per_sec:,.0f} tokens/s", flush=True)

    def on_eval(step, val_loss):
        if history and val_loss is not None:
            history.write({"step": step, "val_loss": val_loss, "time": now()})

    def on_checkpoint(t):
        if history:
            history.sync()

    ended_well = False
    try:
        outcome = trainer.run(lambda: stop[0], on_step, on_eval, on_checkpoint, max_steps=args.max_steps)
        ended_well = True
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        tn.leave_ranks(together=ended_well)
    if rank == 0:
        run = {"started_from": start, "ended_at": trainer.step, "outcome": outcome, "processes": world,
               "device": device.type, "precision": numerics.precision, "seconds": round(time.monotonic() - t0, 1),
               "time": now()}
        with open(HERE / "runs.jsonl", "a") as f:
            f.write(json.dumps(run) + "\n")
        print(f"{outcome} at step {trainer.step} (epoch {trainer.epoch_float:.2f} of {settings.target_epochs}); "
              "bring it back with: cllm bundle import " + str(HERE), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
