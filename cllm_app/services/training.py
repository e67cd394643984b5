"""Starting training and reading its history: the rules the Train button, `cllm train` and a
crawl's continuous mode share."""

import csv
import io
import json

from cllm_app.engine.trainer import Document
from cllm_app.errors import Conflict, InvalidInput
from cllm_app.services.engines import check_can_train
from cllm_app.services.models import changing
from cllm_app.services.orphans import recover_if_orphan
from cllm_app.services.validate import as_int
from cllm_app.store import Job, LossPoint, ModelEvent, QueueEntry, db
from cllm_app.store.schema import ACTIVE_JOB_STATES, iso

# The loss history as CSV: a point's fields, in the order the JSON history gives them.
CSV_COLUMNS = ("step", "epoch", "train_loss", "val_loss", "learning_rate", "tokens_per_sec", "time")


def active_training(model) -> Job | None:
    """The model's (a row or an id) queued or running training job. One whose process is gone
    (killed with `kill -9`, a power cut) is marked interrupted first: it trains no more."""
    job = Job.select().where((Job.model == model) & Job.state.in_(ACTIVE_JOB_STATES) & (Job.kind == "train")).first()
    if recover_if_orphan(job):
        return active_training(model)
    return job


class Training:
    """Starting training and reading its history (the Train button, `cllm train`, a crawl's
    continuous mode). The run itself is jobs/train.py."""

    def __init__(self, models, queue, jobs):
        self.models, self.queue, self.jobs = models, queue, jobs

    def check_can_start(self, model_name: str) -> None:
        row = self.models.get(model_name)
        job = active_training(row)
        if job is not None:
            raise Conflict(f"'{row.model_name}' is already training (job #{job.id}, {job.state})", code="already_training")
        if row.epochs_trained >= row.target_epochs and row.minutes <= 0:  # a time budget trains on regardless
            raise InvalidInput(
                f"'{row.model_name}' has trained {row.epochs_trained} of {row.target_epochs} target epochs; "
                "raise target_epochs to train more",
                code="target_reached",
            )
        check_can_train({"engine": row.engine, "device": row.device, "nproc": row.nproc, "batch_size": row.batch_size})
        if not QueueEntry.select().where((QueueEntry.model == row) & (QueueEntry.status == "ready")).exists():
            raise InvalidInput(
                f"the training-data queue of '{row.model_name}' is empty: add text files first", code="empty_queue"
            )

    def start(self, model_name: str, settings: dict, foreground: bool = False, new_cycle=False) -> dict:
        """Save `settings` on the model, then queue a training job for it. `foreground`: the caller
        trains in its own process (`cllm train`), so the job is running from its first moment and
        the window's runner, beside it on the same data root, never starts it a second time.
        `new_cycle`: the steps still to train warm up to the peak learning rate again and decay
        to the floor, instead of going on from the current rate (the floor, once a target was
        reached)."""
        if not isinstance(new_cycle, bool):
            raise InvalidInput("new_cycle must be true or false", code="invalid_new_cycle")
        if settings:
            self.models.configure(model_name, **settings)
        # The check and the insert in one write transaction: the window and the CLI pressing Start
        # on one model at the same moment give one job and one refusal, never two trainers.
        with changing, db.atomic():
            self.check_can_start(model_name)
            return self.jobs.submit("train", model_name, {"new_cycle": True} if new_cycle else None,
                                    state="running" if foreground else "queued")

    def history(self, model_name: str, since_step=0) -> dict:
        since = as_int("since_step", int(since_step) if str(since_step).isdigit() else -1, 0, 2**62)
        row = self.models.get(model_name)
        points = self._points(row, since)
        markers = [
            {"kind": e.kind, "time": iso(e.created_at, "milliseconds"), "detail": json.loads(e.detail)}
            for e in row.events.where(ModelEvent.kind.in_(("training_resumed", "layers_grown", "engine_changed", "trained_outside", "new_cycle"))).order_by(ModelEvent.id)
        ] + [
            {"kind": "data_added", "time": iso(q.added_at, "milliseconds"), "detail": {"origin": q.origin, "tokens": q.token_count}}
            for q in row.queue.order_by(QueueEntry.id)
        ]
        return {"model_name": row.model_name, "points": points, "markers": sorted(markers, key=lambda m: m["time"]),
                "validation_note": self.validation_note(row)}

    def history_csv(self, model_name: str) -> tuple[str, str]:
        """The model's name and its whole loss history as CSV: a header row, then a row a point
        with the values the JSON history gives (an empty cell where it has null)."""
        row = self.models.get(model_name)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows([p[c] for c in CSV_COLUMNS] for p in self._points(row))
        return row.model_name, out.getvalue()

    @staticmethod
    def _points(row, since: int | None = None) -> list[dict]:
        rows = row.loss_history if since is None else row.loss_history.where(LossPoint.step > since)
        return [
            {
                "step": p.step,
                "epoch": p.epoch,
                "train_loss": p.train_loss,
                "val_loss": p.val_loss,
                "learning_rate": p.learning_rate,
                "tokens_per_sec": p.tokens_per_sec,
                "time": iso(p.created_at, "milliseconds"),
            }
            for p in rows.order_by(LossPoint.step)
        ]

    def validation_note(self, row) -> str | None:
        """Why the chart has no validation line, when it has none."""
        split = self.queue.split(row)
        if split["validation_tokens"] == 0 and split["train_tokens"] > 0:
            return f"No validation line: nothing is held out (the split is {split['description']})."
        if not row.loss_history.where(LossPoint.val_loss.is_null(False)).exists():
            if row.steps_trained == 0 and split["validation_tokens"] == 0:
                return None  # nothing queued, nothing trained: the chart says so already
            return f"No validation line yet: the first validation loss comes at step {row.eval_interval} (eval_interval)."
        return None

    def documents(self, row) -> list[Document]:
        """The queue's ready items as tokens of the model's tokenizer, mapped from the token cache
        (built from the stored text where it is missing)."""
        held = {e.id for e in row.queue.select(QueueEntry.id).where(QueueEntry.holdout == True)}  # noqa: E712
        return [Document(doc_id=i, key=h, tokens=t, holdout=i in held) for i, h, t in self.queue.documents(row)]
