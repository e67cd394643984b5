"""The training loop: epochs over a queue of documents, AdamW with warmup and cosine decay,
gradient accumulation and clipping, validation, and checkpoints that resume exactly.

It knows nothing of the store: the caller hands it documents and callbacks. Everything
a resumed run needs to continue bit for bit is in the checkpoint: weights, AdamW
moments, step, epoch, position in the epoch, the learning-rate plan and the RNG.
"""

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, make_dataclass
from pathlib import Path

import numpy as np

from cllm_app.engine.batches import BatchAccumulator
from cllm_app.engine.checkpoint import clean_partials, load_latest, save_checkpoint
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.model import GPT, FlatTensors
from cllm_app.training_settings import SETTINGS

# A model's own settings (batch_size, learning_rate, ...) come from the one declaration in
# training_settings.py; the fields after them are the optimizer's constants, the same for
# every model.
TrainSettings = make_dataclass("TrainSettings", [
    *((s.name, s.type, field(default=s.default)) for s in SETTINGS),
    ("min_lr_ratio", float, field(default=0.1)),
    ("grad_clip", float, field(default=1.0)),
    ("beta1", float, field(default=0.9)),
    ("beta2", float, field(default=0.95)),
    ("eps", float, field(default=1e-8)),
    ("eval_batches", int, field(default=8)),
    ("keep_checkpoints", int, field(default=3)),
])


@dataclass
class Document:
    """One queue item: its id (for bookkeeping), a stable key (for the split), and its tokens."""

    doc_id: int
    key: str
    tokens: np.ndarray


@dataclass
class Plan:
    """The learning-rate plan: linear warmup, then cosine segments. When the target grows,
    a new segment continues from the current rate down to the floor over the new steps,
    so the rate never jumps."""

    warmup_steps: int
    peak_lr: float
    min_lr: float
    segments: list[dict] = field(default_factory=list)  # {"start", "end", "lr_start"}

    def lr(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        seg = next((s for s in reversed(self.segments) if step >= s["start"]), None)
        if seg is None:
            return self.peak_lr
        span = max(1, seg["end"] - seg["start"])
        progress = min(1.0, (step - seg["start"]) / span)
        return self.min_lr + 0.5 * (seg["lr_start"] - self.min_lr) * (1 + math.cos(math.pi * progress))

    def extend_to(self, step: int, total_steps: int) -> None:
        """Make the plan end at `total_steps`, continuing smoothly from `step`."""
        if self.segments and self.segments[-1]["end"] == total_steps:
            return
        start = max(step, self.warmup_steps)
        lr_now = self.lr(start) if self.segments else self.peak_lr
        self.segments = [s for s in self.segments if s["start"] < start]
        self.segments.append({"start": start, "end": max(total_steps, start + 1), "lr_start": lr_now})


def split_documents(docs: list[Document], val_fraction: float = 0.1) -> tuple[list[Document], list[Document]]:
    """Validation by document, chosen by a hash of its content key, so the split never changes
    as items are added. Needs two documents at least; one document has no validation set."""
    if len(docs) < 2:
        return list(docs), []

    def bucket(d: Document) -> float:
        return int(hashlib.sha256(d.key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    val = [d for d in docs if bucket(d) < val_fraction]
    if not val:  # small queues: the document with the lowest hash validates
        val = [min(docs, key=bucket)]
    if len(val) == len(docs):
        val = val[:1]
    val_ids = {d.doc_id for d in val}
    return [d for d in docs if d.doc_id not in val_ids], val


class EpochStream:
    """The batches of one epoch: documents in a seeded order, each followed by <|endoftext|>."""

    def __init__(self, docs: list[Document], epoch: int, seed: int, B: int, T: int, eot: int):
        self.docs, self.B, self.T, self.eot = docs, B, T, eot
        order = np.random.default_rng([seed, epoch]).permutation(len(docs)) if docs else []
        self.order = [docs[i] for i in order]
        tokens = sum(d.tokens.size + 1 for d in docs)
        self.n_batches = max(0, (tokens - 1) // (B * T))

    def __iter__(self):
        acc = BatchAccumulator(self.B, self.T)
        eot = np.array([self.eot], dtype=np.int32)
        for d in self.order:
            acc.add(d.tokens)
            acc.add(eot)
            while acc.ready():
                yield acc.next_batch()


@dataclass
class StepReport:
    step: int
    epoch: float
    train_loss: float
    learning_rate: float
    tokens_per_sec: float
    grad_norm: float


def optimizer_step(K, model: GPT, m: FlatTensors, v: FlatTensors, step: int, lr: float, s: TrainSettings) -> float:
    """Clip the gradient to `s.grad_clip` by its global norm, then one AdamW step (weight
    decay on the matrices only). Returns the norm before clipping."""
    P, G = model.params, model.grads
    norm = math.sqrt(K.grad_norm_squared(G.flat))
    scale = 1.0 if norm <= s.grad_clip or norm == 0 else s.grad_clip / norm
    d = m.n_decay
    for lo, hi, wd in ((0, d, s.weight_decay), (d, P.flat.size, 0.0)):
        K.adamw_update(P.flat[lo:hi], G.flat[lo:hi], m.flat[lo:hi], v.flat[lo:hi], lr, s.beta1, s.beta2, s.eps, wd, step, scale)
    return norm


class TrainingError(RuntimeError):
    """Training cannot go on (no data, NaN, divergence); the message is for a person."""


class Trainer:
    def __init__(
        self,
        cfg: GPTConfig,
        settings: TrainSettings,
        kernels,
        docs_source: Callable[[], list[Document]],
        checkpoint_dir: Path,
        initial_weights: dict[str, np.ndarray],
        eot: int,
    ):
        """`docs_source` gives the queue's documents; it is asked again at each epoch's start,
        so items added during an epoch join the next one."""
        self.cfg, self.s, self.K = cfg, settings, kernels
        self.docs_source = docs_source
        self.ckpt_dir = Path(checkpoint_dir)
        self.eot = eot
        if settings.sequence_length > cfg.block_size:
            raise TrainingError(
                f"sequence_length {settings.sequence_length} is longer than the model's block_size {cfg.block_size}"
            )
        self.model = GPT(cfg, kernels)
        self.m = FlatTensors(cfg)
        self.v = FlatTensors(cfg)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0  # micro-batches of the current epoch already used
        self.tokens_seen = 0
        self.epoch_doc_ids: list[int] | None = None
        self.plan = Plan(settings.warmup_steps, settings.learning_rate, settings.learning_rate * settings.min_lr_ratio)
        self.rng = np.random.default_rng(settings.seed)
        self.resumed_from: int | None = None
        self.skipped_checkpoints: list[tuple[Path, str]] = []  # damaged ones, newest first, with why
        self._load(initial_weights)
        self._start_epoch(resuming=self.batch_in_epoch > 0)

    def _start_epoch(self, resuming: bool) -> None:
        docs = self.docs_source()
        if resuming and self.epoch_doc_ids is not None:
            keep = set(self.epoch_doc_ids)  # the documents this epoch started with, no newcomers
            docs = [d for d in docs if d.doc_id in keep]
        self.train_docs, self.val_docs = split_documents(docs)
        self.epoch_doc_ids = sorted(d.doc_id for d in docs)
        s = self.s
        stream = EpochStream(self.train_docs, self.epoch, s.seed, s.batch_size, s.sequence_length, self.eot)
        self.steps_per_epoch = stream.n_batches // s.grad_accum
        if self.steps_per_epoch < 1:
            tokens = sum(d.tokens.size + 1 for d in self.train_docs)
            need = s.batch_size * s.sequence_length * s.grad_accum + 1
            raise TrainingError(
                f"the queue holds {tokens:,} training tokens and one step needs {need:,} "
                f"(batch_size {s.batch_size} x sequence_length {s.sequence_length} x grad_accum "
                f"{s.grad_accum}, plus one): add more data or lower those settings"
            )
        steps_left = self.steps_per_epoch * (s.target_epochs - self.epoch) - self.batch_in_epoch // s.grad_accum
        self.plan.extend_to(self.step, self.step + max(0, steps_left))

    # ---- state ----------------------------------------------------------------------------

    def _load(self, initial_weights: dict[str, np.ndarray]) -> None:
        clean_partials(self.ckpt_dir)
        ck = load_latest(self.ckpt_dir, on_skip=lambda path, why: self.skipped_checkpoints.append((path, why)))
        if ck is None:
            self.model.params.load(initial_weights)
            return
        params = {k[len("param.") :]: v for k, v in ck.tensors.items() if k.startswith("param.")}
        # Layers added since the checkpoint come from the grown weights, with fresh moments.
        for name in self.model.params.views:
            if name not in params:
                params[name] = initial_weights[name]
        self.model.params.load(params)
        for prefix, flat in (("m.", self.m), ("v.", self.v)):
            for name, view in flat.views.items():
                if prefix + name in ck.tensors:
                    view[...] = ck.tensors[prefix + name]
        meta = ck.meta
        self.step, self.epoch, self.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        self.tokens_seen = meta["tokens_seen"]
        self.epoch_doc_ids = meta["epoch_doc_ids"]
        self.plan = Plan(**meta["plan"])
        self.plan.peak_lr = self.s.learning_rate  # a changed rate takes effect from here on
        self.rng.bit_generator.state = meta["rng"]
        self.resumed_from = self.step

    def checkpoint(self) -> Path:
        tensors = {"param." + k: v for k, v in self.model.params.views.items()}
        tensors.update({"m." + k: v for k, v in self.m.views.items()})
        tensors.update({"v." + k: v for k, v in self.v.views.items()})
        meta = {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "tokens_seen": self.tokens_seen,
            "epoch_doc_ids": self.epoch_doc_ids,
            "plan": asdict(self.plan),
            "rng": self.rng.bit_generator.state,
            "config": self.cfg.to_dict(),
            "settings": asdict(self.s),
        }
        return save_checkpoint(self.ckpt_dir, self.step, tensors, meta, keep=self.s.keep_checkpoints)

    def weights(self) -> dict[str, np.ndarray]:
        return self.model.params.as_dict()

    @property
    def epochs_done(self) -> int:
        return self.epoch

    @property
    def epoch_float(self) -> float:
        return self.epoch + self.batch_in_epoch / max(1, self.steps_per_epoch * self.s.grad_accum)

    # ---- one optimizer step ---------------------------------------------------------------

    def _optimizer_step(self, lr: float) -> float:
        return optimizer_step(self.K, self.model, self.m, self.v, self.step + 1, lr, self.s)

    def evaluate(self) -> float | None:
        """Mean loss over the first eval_batches batches of the validation documents."""
        if not self.val_docs:
            return None
        B, T = self.s.batch_size, self.s.sequence_length
        losses = []
        for x, y in EpochStream(self.val_docs, 0, 0, B, T, self.eot):
            losses.append(self.model.forward(x, y))
            if len(losses) >= self.s.eval_batches:
                break
        if not losses:  # validation text shorter than one batch: evaluate it as one short window
            tokens = np.concatenate([np.append(d.tokens, self.eot) for d in self.val_docs]).astype(np.int32)
            n = min(tokens.size - 1, T)
            if n < 1:
                return None
            losses.append(self.model.forward(tokens[None, :n], tokens[None, 1 : n + 1]))
        return float(np.mean(losses))

    def run(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        on_step: Callable[[StepReport], None] = lambda r: None,
        on_eval: Callable[[int, float | None], None] = lambda step, loss: None,
        on_checkpoint: Callable[["Trainer"], None] = lambda t: None,
        on_epoch: Callable[["Trainer"], None] = lambda t: None,
        max_steps: int | None = None,
    ) -> str:
        """Train until the target epochs are done ("done"), a stop is asked ("stopped"), or
        `max_steps` more steps ran ("paused"). Raises TrainingError on NaN or divergence,
        having kept the last good checkpoint."""
        s = self.s
        B, T, A = s.batch_size, s.sequence_length, s.grad_accum
        budget = max_steps
        diverge_at = 3.0 * math.log(self.cfg.vocab_size) + 5.0  # far above a uniform guess
        while self.epoch < s.target_epochs:
            if self.batch_in_epoch == 0 and self.epoch_doc_ids is None:
                self._start_epoch(resuming=False)
            stream = EpochStream(self.train_docs, self.epoch, s.seed, B, T, self.eot)
            batches = iter(stream)
            for _ in range(self.batch_in_epoch):  # skip what this epoch already used
                next(batches)
            while self.batch_in_epoch + A <= stream.n_batches:
                if should_stop():
                    self.checkpoint()
                    on_checkpoint(self)
                    return "stopped"
                if budget is not None and budget <= 0:
                    self.checkpoint()
                    on_checkpoint(self)
                    return "paused"
                t0 = time.perf_counter()
                lr = self.plan.lr(self.step)
                self.model.zero_grad()
                loss = 0.0
                for _ in range(A):
                    x, y = next(batches)
                    loss += self.model.forward(x, y) / A
                    self.model.backward(scale=1.0 / A)
                if not math.isfinite(loss) or loss > diverge_at:
                    raise TrainingError(
                        f"training diverged at step {self.step + 1} (loss {loss:.4g}); the last good "
                        "checkpoint is kept: lower learning_rate and continue"
                    )
                norm = self._optimizer_step(lr)
                self.step += 1
                self.batch_in_epoch += A
                self.tokens_seen += B * T * A
                if budget is not None:
                    budget -= 1
                elapsed = time.perf_counter() - t0
                on_step(StepReport(self.step, self.epoch_float, loss, lr, B * T * A / max(elapsed, 1e-9), norm))
                if self.step % s.eval_interval == 0:
                    on_eval(self.step, self.evaluate())
                if self.step % s.checkpoint_interval == 0:
                    self.checkpoint()
                    on_checkpoint(self)
            self.epoch += 1
            self.batch_in_epoch = 0
            on_epoch(self)
            self.epoch_doc_ids = None  # the next epoch asks for the queue again
            self.checkpoint()
            on_checkpoint(self)
        return "done"
