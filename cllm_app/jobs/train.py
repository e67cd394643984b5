"""A training job: the model's saved settings and queue in, losses, checkpoints and epochs out.

Runs in the worker's process (or in the foreground for `cllm train`). Everything the
window shows (loss history, progress, epochs) goes to the store as it happens.
"""

import json
import time
from collections.abc import Callable

import numpy as np

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.generate import Generator, Sampling
from cllm_app.engine.kernel_choice import decode_kernel, model_kernels
from cllm_app.engine.tokenizer import load_tokenizer
from cllm_app.engine.trainer import StepReport, Trainer, TrainingError, TrainSettings
from cllm_app.engine.weights import load_weights, save_weights
from cllm_app.services.models import WEIGHTS_FILE
from cllm_app.services.studio import Studio
from cllm_app.services.training import documents
from cllm_app.store import LanguageModel, LossPoint, ModelEvent, QueueEntry, db
from cllm_app.store.schema import utcnow

STOP_POLL_SECONDS = 0.2
SAMPLE_TOKENS = 120
# The text written at each evaluation: these settings, seeded with the step, so the checkpoint of
# that step (or /v1/completions asked with them, an empty prompt and that seed) writes it again.
SAMPLE_SAMPLING = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "repetition_penalty": 1.1,
                   "max_new_tokens": SAMPLE_TOKENS}


def settings_of(row: LanguageModel) -> TrainSettings:
    return TrainSettings(
        batch_size=row.batch_size,
        sequence_length=row.sequence_length,
        learning_rate=row.learning_rate,
        target_epochs=row.target_epochs,
        grad_accum=row.grad_accum,
        eval_interval=row.eval_interval,
        checkpoint_interval=row.checkpoint_interval,
        warmup_steps=row.warmup_steps,
        weight_decay=row.weight_decay,
        seed=row.seed,
    )


def _throttled(check: Callable[[], bool], every: float) -> Callable[[], bool]:
    last = [0.0, False]

    def poll() -> bool:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0], last[1] = now, check()
        return last[1]

    return poll


def run_training(studio: Studio, job_id: int, kernels=None, max_steps: int | None = None) -> str:
    """Train the job's model to its target epochs. Returns the final state of the job."""
    from cllm_app.store import Job

    if kernels is None:
        kernels = model_kernels()
    jobs = studio.jobs
    job = Job.get_by_id(job_id)
    row = LanguageModel.get_by_id(job.model_id)
    folder = studio.models.folder(row)
    cfg = GPTConfig.load(folder / "config.json")
    settings = settings_of(row)
    tok = load_tokenizer(folder, row.tokenizer)
    try:
        trainer = Trainer(
            cfg, settings, kernels, lambda: documents(studio, LanguageModel.get_by_id(row.id)),
            folder / "checkpoints", load_weights(folder / WEIGHTS_FILE), tok.eot,
        )
    except TrainingError as e:
        jobs.finish(job_id, "failed", error=str(e))
        return "failed"
    start_step = trainer.step
    with db.atomic():
        # Steps after the last checkpoint were lost with the process that ran them; they are redone.
        LossPoint.delete().where((LossPoint.model == row.id) & (LossPoint.step > start_step)).execute()
        if trainer.resumed_from is not None:
            ModelEvent.create(model=row.id, kind="training_resumed", detail=json.dumps({"step": start_step}))
        for path, why in trainer.skipped_checkpoints:
            ModelEvent.create(model=row.id, kind="checkpoint_skipped", detail=json.dumps({"path": str(path), "reason": why}))
    skipped = "".join(
        f" · skipped the damaged checkpoint {path} ({why}); went on from "
        + (f"step {start_step}" if trainer.resumed_from is not None else "the model's weights")
        for path, why in trainer.skipped_checkpoints
    )
    total_steps = start_step + trainer.steps_per_epoch * (settings.target_epochs - trainer.epoch) - trainer.batch_in_epoch // settings.grad_accum
    step_times: list[float] = []  # wall-clock seconds per step, store writes, evals and checkpoints included
    last = [time.monotonic()]
    samples: list[dict] = []  # the last few texts generated at evals, shown under the chart

    def on_step(r: StepReport) -> None:
        now = time.monotonic()
        step_times.append(now - last[0])
        last[0] = now
        seconds_per_step = float(np.mean(step_times[-50:]))
        steps_left = max(0, total_steps - r.step)
        tokens_per_step = settings.batch_size * settings.sequence_length * settings.grad_accum
        rate = tokens_per_step / seconds_per_step if seconds_per_step > 0 else 0.0
        LossPoint.create(
            model=row.id, step=r.step, epoch=r.epoch, train_loss=r.train_loss,
            learning_rate=r.learning_rate, tokens_per_sec=r.tokens_per_sec,
        )
        jobs.report(
            job_id,
            progress=r.epoch / settings.target_epochs if settings.target_epochs else 1.0,
            message=f"epoch {r.epoch:.2f} of {settings.target_epochs} · step {r.step} · loss {r.train_loss:.4f}",
            detail={
                "step": r.step,
                "total_steps": total_steps,
                "epoch": r.epoch,
                "target_epochs": settings.target_epochs,
                "train_loss": r.train_loss,
                "learning_rate": r.learning_rate,
                "tokens_per_sec": rate,
                "eta_seconds": steps_left * seconds_per_step,
                "grad_norm": r.grad_norm,
                "samples": samples,
            },
        )

    def on_eval(step: int, val_loss: float | None) -> None:
        if val_loss is not None:
            LossPoint.update(val_loss=val_loss).where((LossPoint.model == row.id) & (LossPoint.step == step)).execute()
        # A short sample from the weights as they are now, so a person sees what the loss means.
        step_fn, _ = decode_kernel(cfg, trainer.model.params)
        gen = Generator(cfg, trainer.model.params, tok, step_fn, context=settings.sequence_length)
        text = "".join(gen.text("", Sampling(**SAMPLE_SAMPLING, seed=step)))
        samples.append({"step": step, "val_loss": val_loss, "text": text, "sampling": {**SAMPLE_SAMPLING, "seed": step}})
        del samples[:-5]
        job_row = Job.get_by_id(job_id)
        detail = json.loads(job_row.detail or "{}")
        jobs.report(job_id, detail={**detail, "samples": samples})

    def on_checkpoint(t: Trainer) -> None:
        save_weights(folder / WEIGHTS_FILE, t.weights())  # what the LLM tab talks to
        LanguageModel.update(
            steps_trained=t.step, tokens_trained=t.tokens_seen, epochs_trained=t.epoch, updated_at=utcnow()
        ).where(LanguageModel.id == row.id).execute()

    def on_epoch(t: Trainer) -> None:
        with db.atomic():
            for e in QueueEntry.select().where(QueueEntry.id.in_(t.epoch_doc_ids or [])):
                used = json.loads(e.epochs_used or "[]")
                if t.epoch not in used:
                    e.epochs_used = json.dumps([*used, t.epoch])
                    e.save()

    should_stop = _throttled(lambda: jobs.stop_requested(job_id), STOP_POLL_SECONDS)
    try:
        outcome = trainer.run(should_stop, on_step, on_eval, on_checkpoint, on_epoch, max_steps=max_steps)
    except TrainingError as e:
        jobs.finish(job_id, "failed", error=str(e))
        return "failed"
    state = {"done": "done", "stopped": "stopped", "paused": "stopped"}[outcome]
    message = {
        "done": f"trained to epoch {trainer.epoch} of {settings.target_epochs}",
        "stopped": f"stopped at step {trainer.step}; Continue resumes from here",
        "paused": f"paused at step {trainer.step}",
    }[outcome]
    jobs.finish(job_id, state, message=message + skipped)
    return state
