"""A training job: the model's saved settings and queue in, losses, checkpoints and epochs out.

Runs in the worker's process (or in the foreground for `cllm train`). Everything the
window shows (loss history, progress, epochs) goes to the store as it happens.
"""

import json
import time

import numpy as np

from cllm_app import training_settings
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.generate import Generator, Sampling
from cllm_app.engine.kernel_choice import decode_kernel, model_kernels
from cllm_app.engine.tokenizer import load_tokenizer
from cllm_app.engine.trainer import ENDINGS, StepReport, Trainer, TrainingError, TrainSettings
from cllm_app.engine.weights import load_weights, save_weights
from cllm_app.jobs import engines
from cllm_app.services.models import BEST_FILE, WEIGHTS_FILE
from cllm_app.services.sampling import PRESETS
from cllm_app.services.studio import Studio
from cllm_app.store import Job, LanguageModel, LossPoint, ModelEvent, QueueEntry, db
from cllm_app.store.schema import utcnow

SAMPLE_TOKENS = 120
# Loss rows and progress go to the store at most this often (and at every evaluation, checkpoint
# and end): the window's chart is never more than this behind, and fast steps share a commit.
FLUSH_SECONDS = 0.2
# The text written at each evaluation: these settings, seeded with the step, so the checkpoint of
# that step (or /v1/completions asked with them, an empty prompt and that seed) writes it again.
SAMPLE_SAMPLING = {**{k: v for k, v in PRESETS["Balanced"].items() if k != "seed"}, "max_new_tokens": SAMPLE_TOKENS}


def settings_of(row: LanguageModel) -> TrainSettings:
    return TrainSettings(**{name: getattr(row, name) for name in training_settings.NAMES})


class TrainingRun:
    """One run of a training job: the trainer, and what each step, evaluation, checkpoint and
    epoch writes to the store (the window reads it from there)."""

    def __init__(self, studio: Studio, job_id: int, kernels, numerics=None):
        """`numerics`: the engine's arithmetic (engines.numerics_for); the built-in engine's
        on `kernels` when None."""
        self.jobs, self.job_id = studio.jobs, job_id
        self.row = LanguageModel.get_by_id(Job.get_by_id(job_id).model_id)
        self.folder = studio.models.folder(self.row)
        self.cfg = GPTConfig.load(self.folder / "config.json")
        self.settings = settings_of(self.row)
        self.tok = load_tokenizer(self.folder, self.row.tokenizer)
        model_id = self.row.id
        self.trainer = Trainer(  # raises TrainingError (no usable weights, nothing to train on)
            self.cfg, self.settings, kernels, lambda: studio.training.documents(LanguageModel.get_by_id(model_id)),
            self.folder / "checkpoints", load_weights(self.folder / WEIGHTS_FILE), self.tok.eot,
            numerics=numerics,
        )
        self.engine = engines.describe(self.trainer.numerics)
        t, s = self.trainer, self.settings
        self.start_step = t.step
        self.total_steps = t.step + t.steps_per_epoch * (s.target_epochs - t.epoch) - t.batch_in_epoch // s.grad_accum
        self.step_times: list[float] = []  # wall-clock seconds per step, store writes, evals and checkpoints included
        self.last = time.monotonic()
        self.samples: list[dict] = []  # the last few texts generated at evals, shown under the chart
        self.pending_rows: list[dict] = []  # loss rows not yet written (see flush)
        self.progress: dict = {}
        self.flushed_at = float("-inf")  # the first step is shown at once
        self.deadline: float | None = None  # a time budget's end (time.monotonic()), set by run_training
        self.began = time.monotonic()

    def record_start(self) -> str:
        """Forget the steps the last process ran after its last checkpoint (they are redone), say
        where training resumed, and which damaged checkpoints were skipped. Returns a note on those."""
        t, model_id = self.trainer, self.row.id
        with db.atomic():
            LossPoint.delete().where((LossPoint.model == model_id) & (LossPoint.step > self.start_step)).execute()
            if t.resumed_from is not None:
                ModelEvent.create(model=model_id, kind="training_resumed", detail=json.dumps({"step": self.start_step}))
            now = t.numerics.engine
            if t.resumed_engine is not None and t.resumed_engine != now:
                ModelEvent.create(model=model_id, kind="engine_changed", detail=json.dumps(
                    {"step": self.start_step, "from": t.resumed_engine, "to": now, "engine": self.engine}))
            for path, why in t.skipped_checkpoints:
                ModelEvent.create(model=model_id, kind="checkpoint_skipped",
                                  detail=json.dumps({"path": str(path), "reason": why}))
            if json.loads(Job.get_by_id(self.job_id).params or "{}").get("new_cycle") and t.new_cycle():
                ModelEvent.create(model=model_id, kind="new_cycle", detail=json.dumps(
                    {"step": self.start_step, "learning_rate": t.plan.lr(t.step), "peak": t.plan.peak_lr}))
            if self.row.validation_split == "auto" and t.split_mode:
                # auto decides once: items added later never move text it trained on into validation
                LanguageModel.update(validation_split=t.split_mode).where(LanguageModel.id == model_id).execute()
        went_on = f"step {self.start_step}" if t.resumed_from is not None else "the model's weights"
        return "".join(f" · skipped the damaged checkpoint {path} ({why}); went on from {went_on}"
                       for path, why in t.skipped_checkpoints)

    def on_step(self, r: StepReport) -> None:
        s = self.settings
        now = time.monotonic()
        self.step_times.append(now - self.last)
        self.last = now
        seconds_per_step = float(np.mean(self.step_times[-50:]))
        tokens_per_step = s.batch_size * s.sequence_length * s.grad_accum
        self.pending_rows.append({
            "model": self.row.id, "step": r.step, "epoch": r.epoch, "train_loss": r.train_loss,
            "learning_rate": r.learning_rate, "tokens_per_sec": r.tokens_per_sec, "created_at": utcnow(),
        })
        if self.deadline is not None:  # a time budget: the clock is the progress
            spent, budget = now - self.began, s.minutes * 60
            fraction, eta = min(1.0, spent / budget), max(0.0, self.deadline - now)
            message = f"{spent / 60:.1f} of {s.minutes:g} minutes · epoch {r.epoch:.2f} · step {r.step} · loss {r.train_loss:.4f}"
            total_steps = max(r.step, self.trainer.plan.segments[-1]["end"] if self.trainer.plan.segments else r.step)
        else:
            fraction = r.epoch / s.target_epochs if s.target_epochs else 1.0
            eta = max(0, self.total_steps - r.step) * seconds_per_step
            message = f"epoch {r.epoch:.2f} of {s.target_epochs} · step {r.step} · loss {r.train_loss:.4f}"
            total_steps = self.total_steps
        self.progress = {
            "progress": fraction,
            "message": message,
            "detail": {
                "step": r.step,
                "total_steps": total_steps,
                "epoch": r.epoch,
                "target_epochs": s.target_epochs,
                "train_loss": r.train_loss,
                "learning_rate": r.learning_rate,
                "tokens_per_sec": tokens_per_step / seconds_per_step if seconds_per_step > 0 else 0.0,
                "eta_seconds": eta,
                "minutes": s.minutes,
                "grad_norm": r.grad_norm,
                "samples": self.samples,
                "validation": self.progress.get("detail", {}).get("validation"),
                "engine": self.engine,
            },
        }
        if now - self.flushed_at >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the loss rows and the progress of the steps since the last write, in one
        transaction (also before each checkpoint, at each evaluation and at the end). A step of
        a small model takes a few milliseconds, and a commit with its SQL most of one: written
        every step, the store cost an epoch 3% of its time."""
        self.flushed_at = time.monotonic()
        if not self.pending_rows:
            return
        with db.atomic():
            LossPoint.insert_many(self.pending_rows).execute()
            self.jobs.report(self.job_id, **self.progress)
        self.pending_rows.clear()

    def on_eval(self, step: int, val_loss: float | None) -> None:
        self.flush()  # the step's row, which the validation loss goes on
        if val_loss is not None:
            LossPoint.update(val_loss=val_loss).where((LossPoint.model == self.row.id) & (LossPoint.step == step)).execute()
        best = self.trainer.best
        if best is not None and best["step"] == step and self.trainer.numerics.rank == 0:
            # The best weights so far, kept beside the latest: a checkpoint rotation never drops them.
            t = self.trainer
            save_weights(self.folder / BEST_FILE, t.weights(),
                         {"step": step, "epoch": t.epoch, "val_loss": best["loss"], "saved_at": utcnow().isoformat()})
            LanguageModel.update(best_step=step, best_val_loss=best["loss"]).where(
                LanguageModel.id == self.row.id).execute()
        # A short sample from the weights as they are now, so a person sees what the loss means.
        params = self.trainer.numerics.decoding_params()
        step_fn, _ = decode_kernel(self.cfg, params)
        gen = Generator(self.cfg, params, self.tok, step_fn, context=self.settings.sequence_length)
        text = "".join(gen.text("", Sampling(**SAMPLE_SAMPLING, seed=step)))
        self.samples.append({"step": step, "val_loss": val_loss, "text": text, "sampling": {**SAMPLE_SAMPLING, "seed": step}})
        del self.samples[:-5]
        # How much of the split the loss is over, and its standard error when that is a sample.
        held = self.trainer.last_eval
        validation = {"step": step, **held.as_json()} if held is not None else None
        self.progress.setdefault("detail", {})["validation"] = validation
        detail = json.loads(Job.get_by_id(self.job_id).detail or "{}")
        self.jobs.report(self.job_id, detail={**detail, "samples": self.samples, "validation": validation})

    def on_checkpoint(self, t: Trainer) -> None:
        # What the LLM tab talks to and exports read; the header says which checkpoint it is.
        save_weights(self.folder / WEIGHTS_FILE, t.weights(),
                     {"step": t.step, "epoch": t.epoch, "tokens": t.tokens_seen, "saved_at": utcnow().isoformat()})
        LanguageModel.update(
            steps_trained=t.step, tokens_trained=t.tokens_seen, epochs_trained=t.epoch, updated_at=utcnow()
        ).where(LanguageModel.id == self.row.id).execute()

    def on_epoch(self, t: Trainer) -> None:
        with db.atomic():
            for e in QueueEntry.select().where(QueueEntry.id.in_(t.trained_doc_ids)):
                used = json.loads(e.epochs_used or "[]")
                if t.epoch not in used:
                    e.epochs_used = json.dumps([*used, t.epoch])
                    e.save()


def run_training(studio: Studio, job_id: int, kernels=None, max_steps: int | None = None) -> str:
    """Train the job's model to its target epochs (or for its minutes), on the engine the model
    names. Returns the final state of the job."""
    # A time budget counts from here: loading the model and the data is part of the wait.
    began = time.monotonic()
    jobs = studio.jobs
    row = LanguageModel.get_by_id(Job.get_by_id(job_id).model_id)
    settings, cfg = settings_of(row), GPTConfig.load(studio.models.folder(row) / "config.json")
    deadline = began + settings.minutes * 60 if settings.minutes > 0 else None
    try:
        with engines.numerics_for_job(studio, job_id, cfg, settings) as numerics:
            run = TrainingRun(studio, job_id, kernels if kernels is not None else model_kernels(), numerics)
            run.deadline, run.began = deadline, began
            skipped = run.record_start()
            should_stop = jobs.stop_check(job_id)
            try:
                # The loss rows are flushed before each checkpoint: one that a resume starts from
                # must find every step before it on the chart.
                outcome = run.trainer.run(should_stop, run.on_step, run.on_eval, run.on_checkpoint, run.on_epoch,
                                          max_steps=max_steps, before_checkpoint=run.flush, deadline=deadline)
            finally:
                run.flush()  # the steps up to a failure stay on the chart
    except (TrainingError, engines.EngineUnavailable, engines.RankFailed) as e:
        jobs.finish(job_id, "failed", error=str(e))
        return "failed"
    t, s = run.trainer, run.settings
    state = "stopped" if outcome in ("stopped", "paused") else "done"
    best = f"; the best validation loss {t.best['loss']:.4f} at step {t.best['step']}" if t.best else ""
    message = {
        "done": f"trained to epoch {t.epoch} of {s.target_epochs}",
        "stopped": f"stopped at step {t.step}; Continue resumes from here",
        "paused": f"paused at step {t.step}",
        "time_up": f"trained for {s.minutes:g} minutes ({time.monotonic() - began:.0f} s): step {t.step}, "
                   f"epoch {t.epoch_float:.2f}",
        "loss_reached": f"reached stop_at_loss {s.stop_at_loss:g} at step {t.step} (epoch {t.epoch_float:.2f})",
        "early_stopped": f"stopped early at step {t.step}: the validation loss did not improve by "
                         f"{s.early_stop_min_delta:g} in {s.early_stop_patience} evaluations",
    }[outcome]
    if outcome == "time_up":
        # Epochs count as usual; a part-trained epoch becomes the target, so Continue without a
        # budget finishes it.
        target = max(run.row.target_epochs, t.epoch + (1 if t.batch_in_epoch else 0))
        LanguageModel.update(target_epochs=target).where(LanguageModel.id == run.row.id).execute()
    jobs.finish(job_id, state, message=message + (best if outcome in ENDINGS else "") + skipped)
    return state


def run_rank(studio: Studio, job_id: int, rank: int, world: int, address: str) -> int:
    """Another rank of a many-process PyTorch run (rank 0, the job's worker, started it): the
    same steps on its own rows of each batch. Rank 0 alone reports, samples and checkpoints."""
    row = LanguageModel.get_by_id(Job.get_by_id(job_id).model_id)
    settings, cfg = settings_of(row), GPTConfig.load(studio.models.folder(row) / "config.json")
    numerics = engines.numerics(cfg, settings, rank, world, address)
    ended_well = False
    try:
        run = TrainingRun(studio, job_id, None, numerics)
        run.trainer.run()
        ended_well = True
    finally:
        engines.import_torch_numerics().leave_ranks(together=ended_well)
    return 0
