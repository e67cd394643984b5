"""The training loop: epochs over a queue of documents, AdamW with warmup and cosine decay,
gradient accumulation and clipping, validation, and checkpoints that resume exactly.

It knows nothing of the store: the caller hands it documents and callbacks. Everything
a resumed run needs to continue bit for bit is in the checkpoint: weights, AdamW
moments, step, epoch, position in the epoch, the learning-rate plan and the RNG.
"""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, make_dataclass
from pathlib import Path

import numpy as np

from cllm_app.engine import heldout
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
    ("eval_tokens", int, field(default=heldout.SAMPLE_TOKENS)),
    ("keep_checkpoints", int, field(default=3)),
])


@dataclass
class Document:
    """One queue item: its id (for bookkeeping), a stable key (for the split), its tokens, and
    whether a person marked it as validation."""

    doc_id: int
    key: str
    tokens: np.ndarray
    holdout: bool = False


@dataclass
class Plan:
    """The learning-rate plan: linear warmup, then cosine segments. When the target grows,
    a new segment continues from the current rate down to the floor over the new steps,
    so the rate never jumps; or, asked for (`new_cycle`), the added steps get a cycle of their
    own: a warmup from the current rate back to the peak, then the decay to the floor."""

    warmup_steps: int
    peak_lr: float
    min_lr: float
    segments: list[dict] = field(default_factory=list)  # {"start", "end", "lr_start"[, "warmup", "peak"]}

    def lr(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        seg = next((s for s in reversed(self.segments) if step >= s["start"]), None)
        if seg is None:
            return self.peak_lr
        start, top = seg["start"], seg["lr_start"]
        warmup = seg.get("warmup", 0)
        if warmup:
            if step < start + warmup:
                return seg["lr_start"] + (self.peak_lr - seg["lr_start"]) * (step - start + 1) / warmup
            start, top = start + warmup, self.peak_lr
        span = max(1, seg["end"] - start)
        progress = min(1.0, (step - start) / span)
        return self.min_lr + 0.5 * (top - self.min_lr) * (1 + math.cos(math.pi * progress))

    def new_cycle(self, step: int, total_steps: int) -> bool:
        """From `step`, warm up to the peak again and decay to the floor at `total_steps`.
        False (and nothing changes) when the plan already has that cycle: a resumed job asks
        again."""
        last = self.segments[-1] if self.segments else None
        if last is not None and last.get("warmup") and last["end"] == total_steps:
            return False
        lr_now = self.lr(step) if self.segments else self.peak_lr
        warmup = max(1, min(self.warmup_steps, (total_steps - step) // 10))
        self.segments = [s for s in self.segments if s["start"] < step]
        self.segments.append({"start": step, "end": max(total_steps, step + warmup + 1), "lr_start": lr_now,
                              "warmup": warmup})
        return True

    def extend_to(self, step: int, total_steps: int) -> None:
        """Make the plan end at `total_steps`, continuing smoothly from `step`."""
        if self.segments and self.segments[-1]["end"] == total_steps:
            return
        start = max(step, self.warmup_steps)
        lr_now = self.lr(start) if self.segments else self.peak_lr
        self.segments = [s for s in self.segments if s["start"] < start]
        self.segments.append({"start": start, "end": max(total_steps, start + 1), "lr_start": lr_now})


def split_documents(docs: list[Document], mode: str = "tail", share: float = 0.1) -> tuple[list[Document], list[Document]]:
    """(training pieces, validation pieces) of the documents, as engine/heldout.py's plan says:
    a document may give its head to training and its tail to validation, under the same id."""
    cut = heldout.plan([heldout.Item(d.doc_id, d.key, int(d.tokens.size), d.holdout) for d in docs], mode, share)
    train = [Document(d.doc_id, d.key, d.tokens[: cut[d.doc_id]], d.holdout) for d in docs if cut[d.doc_id] > 0]
    val = [Document(d.doc_id, d.key, d.tokens[cut[d.doc_id] :], d.holdout) for d in docs if cut[d.doc_id] < d.tokens.size]
    return train, val


class EpochStream:
    """The batches of one epoch. Documents in a seeded order, each followed by <|endoftext|>,
    make one token stream, cut into windows of T+1 tokens (a window's last token is the next
    one's first, as targets); each window is used once an epoch. With order "windows" a batch
    takes its B windows from a seeded shuffle of them all, as nanoGPT's random offsets do: a
    batch of consecutive windows reads one stretch of one document, and gradients that all
    come from one page make the held-out loss worse (bench/bench_quality.py measured it).
    Order "stream" is the consecutive one, kept for checkpoints written before the shuffle, so
    a resumed epoch finishes as it began."""

    ORDERS = ("windows", "stream")

    def __init__(self, docs: list[Document], epoch: int, seed: int, B: int, T: int, eot: int,
                 order: str = "windows"):
        if order not in self.ORDERS:
            raise ValueError(f"batch order must be one of {self.ORDERS}, not {order!r}")
        self.B, self.T, self.eot = B, T, eot
        shuffled = np.random.default_rng([seed, epoch]).permutation(len(docs)) if docs else []
        self.docs = [docs[i].tokens for i in shuffled]
        # where each document's tokens and its <|endoftext|> end in the epoch's stream
        self.ends = np.cumsum([d.size + 1 for d in self.docs], dtype=np.int64)
        tokens = int(self.ends[-1]) if self.docs else 0
        n_windows = max(0, (tokens - 1) // T)
        self.n_batches = n_windows // B
        used = self.n_batches * B
        if order == "windows":
            self.windows = np.random.default_rng([seed, epoch, 1]).permutation(n_windows)[:used]
        else:
            self.windows = np.arange(used)

    def _window(self, w: int, out: np.ndarray) -> None:
        """Tokens w*T .. w*T+T of the stream into `out`."""
        pos, filled, need = int(w) * self.T, 0, self.T + 1
        i = int(np.searchsorted(self.ends, pos, side="right"))
        while filled < need:
            doc = self.docs[i]
            off = pos - (int(self.ends[i]) - doc.size - 1)
            take = min(need - filled, doc.size - off)
            if take > 0:
                out[filled : filled + take] = doc[off : off + take]
            else:  # the document's <|endoftext|>
                out[filled], take = self.eot, 1
                i += 1
            filled += take
            pos += take

    def batches(self, start: int = 0):
        """(inputs, targets), each (B, T) int32, from batch `start` of the epoch on."""
        rows = np.empty((self.B, self.T + 1), dtype=np.int32)
        for b in range(start, self.n_batches):
            for r, w in enumerate(self.windows[b * self.B : (b + 1) * self.B]):
                self._window(w, rows[r])
            yield rows[:, :-1].copy(), rows[:, 1:].copy()

    def __iter__(self):
        return self.batches()


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


class BuiltinNumerics:
    """The built-in engine's arithmetic: the model, its gradients and AdamW on the Cython
    kernels of this CPU. engine/torch_numerics.py is its PyTorch twin; the Trainer drives
    either, so the data order, the split, the plan and the checkpoints are one code."""

    engine = "builtin"
    rank, world = 0, 1

    def __init__(self, cfg: GPTConfig, kernels):
        self.K = kernels
        self.model = GPT(cfg, kernels)
        self.m, self.v = FlatTensors(cfg), FlatTensors(cfg)

    def load(self, params: dict[str, np.ndarray], moments: dict[str, np.ndarray], step: int) -> None:
        """Weights, and the AdamW moments ("m.NAME", "v.NAME"; absent ones start at zero)."""
        self.model.params.load(params)
        for prefix, flat in (("m.", self.m), ("v.", self.v)):
            for name, view in flat.views.items():
                if prefix + name in moments:
                    view[...] = moments[prefix + name]

    def forward_backward(self, micro_batches: list) -> float:
        """The gradient of one step (its micro-batches averaged); returns the loss."""
        A = len(micro_batches)
        self.model.zero_grad()
        loss = 0.0
        for x, y in micro_batches:
            loss += self.model.forward(x, y) / A
            self.model.backward(scale=1.0 / A)
        return loss

    def optimizer_step(self, lr: float, step: int, s) -> float:
        return optimizer_step(self.K, self.model, self.m, self.v, step, lr, s)

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        return self.model.forward(x, y)

    def tensors(self) -> dict[str, np.ndarray]:
        """What a checkpoint keeps: "param.", "m." and "v." before the model's names."""
        out = {"param." + k: v for k, v in self.model.params.views.items()}
        out.update({"m." + k: v for k, v in self.m.views.items()})
        out.update({"v." + k: v for k, v in self.v.views.items()})
        return out

    def weights(self) -> dict[str, np.ndarray]:
        return self.model.params.as_dict()

    def decoding_params(self) -> FlatTensors:
        """The weights as the built-in decoder reads them (the sample at each evaluation)."""
        return self.model.params

    def agree(self, code: int) -> int:
        """One process decides alone (the PyTorch engine's ranks take rank 0's word)."""
        return code

    def agree_ids(self, ids: list[int]) -> list[int]:
        return ids


HALT_STOP, HALT_PAUSE, HALT_TIME = 1, 2, 3  # what Trainer.run's ranks agree on before each step (0: go on)
TIME_BUDGET_EPOCHS = 1_000_000  # a time-budget run's target: the clock ends it first
# A time-budget run refits the plan's end to the clock after these steps of the run, then every
# REFIT_EVERY steps: the rate reaches its floor as the time runs out.
REFIT_AT = (3, 10, 30)
REFIT_EVERY = 50
# Outcomes of run() beside "done", "stopped" and "paused", each with its checkpoint written.
ENDINGS = ("time_up", "loss_reached", "early_stopped")


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
        numerics=None,
    ):
        """`docs_source` gives the queue's documents; it is asked again at each epoch's start,
        so items added during an epoch join the next one. `numerics` does the arithmetic
        (BuiltinNumerics on `kernels` unless given, e.g. the PyTorch engine's)."""
        self.cfg, self.s = cfg, settings
        self.numerics = numerics if numerics is not None else BuiltinNumerics(cfg, kernels)
        self.docs_source = docs_source
        self.ckpt_dir = Path(checkpoint_dir)
        self.eot = eot
        if settings.sequence_length > cfg.block_size:
            raise TrainingError(
                f"sequence_length {settings.sequence_length} is longer than the model's block_size {cfg.block_size}"
            )
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0  # micro-batches of the current epoch already used
        self.tokens_seen = 0
        self.epoch_doc_ids: list[int] | None = None
        self.split_mode: str | None = None  # "auto" resolved once, then kept in the checkpoints
        self.batch_order = "windows"  # EpochStream's; an older checkpoint's epoch ends in "stream"
        self.last_eval: heldout.HeldOut | None = None
        # A time budget ends the run, not the epochs: its target is out of reach, and the plan's
        # end is fitted to the clock once steps have been timed (run()).
        self.target_epochs = TIME_BUDGET_EPOCHS if settings.minutes > 0 else settings.target_epochs
        self.best: dict | None = None  # {"step", "loss"}: the lowest validation loss so far
        self.stale_evals = 0  # evaluations since the loss last improved by early_stop_min_delta
        self.patience_ref: float | None = None  # the loss that improvement is measured from
        self.recent_train: list[float] = []  # training losses since the last evaluation
        self.plan = Plan(settings.warmup_steps, settings.learning_rate, settings.learning_rate * settings.min_lr_ratio)
        self.rng = np.random.default_rng(settings.seed)
        self.resumed_from: int | None = None
        self.resumed_engine: str | None = None  # the engine that wrote the checkpoint resumed from
        self.skipped_checkpoints: list[tuple[Path, str]] = []  # damaged ones, newest first, with why
        self._load(initial_weights)
        self._start_epoch(resuming=self.batch_in_epoch > 0)

    def _start_epoch(self, resuming: bool) -> None:
        s = self.s
        docs = self.docs_source()
        # Every rank of a many-process run trains on the documents rank 0 saw.
        agreed = self.numerics.agree_ids(sorted(d.doc_id for d in docs))
        by_id = {d.doc_id: d for d in docs}
        if any(i not in by_id for i in agreed):
            raise TrainingError("the training-data queue changed under a many-process run; Continue to start again")
        docs = [by_id[i] for i in agreed]
        if resuming and self.epoch_doc_ids is not None:
            keep = set(self.epoch_doc_ids)  # the documents this epoch started with, no newcomers
            docs = [d for d in docs if d.doc_id in keep]
        mode = s.validation_split
        if mode == "auto":
            mode = self.split_mode or heldout.resolve(mode, len(docs))
        self.split_mode = mode
        self.train_docs, self.val_docs = split_documents(docs, mode, s.validation_share)
        self.epoch_doc_ids = sorted(d.doc_id for d in docs)
        stream = EpochStream(self.train_docs, self.epoch, s.seed, s.batch_size, s.sequence_length, self.eot,
                             self.batch_order)
        self.steps_per_epoch = stream.n_batches // s.grad_accum
        if self.steps_per_epoch < 1:
            tokens = sum(d.tokens.size + 1 for d in self.train_docs)
            need = s.batch_size * s.sequence_length * s.grad_accum + 1
            raise TrainingError(
                f"the queue holds {tokens:,} training tokens and one step needs {need:,} "
                f"(batch_size {s.batch_size} x sequence_length {s.sequence_length} x grad_accum "
                f"{s.grad_accum}, plus one): add more data or lower those settings"
            )
        if s.minutes > 0 and self.plan.segments:
            return  # a time budget's plan ends where the clock says (run() refits it), not at an epoch count
        steps_left = self.steps_per_epoch * (self.target_epochs - self.epoch) - self.batch_in_epoch // s.grad_accum
        self.plan.extend_to(self.step, self.step + max(0, steps_left))

    # ---- state ----------------------------------------------------------------------------

    def _load(self, initial_weights: dict[str, np.ndarray]) -> None:
        if self.numerics.rank == 0:
            clean_partials(self.ckpt_dir)
        ck = load_latest(self.ckpt_dir, on_skip=lambda path, why: self.skipped_checkpoints.append((path, why)))
        if ck is None:
            self.numerics.load(initial_weights, {}, 0)
            return
        params = {k[len("param.") :]: v for k, v in ck.tensors.items() if k.startswith("param.")}
        ck_params = set(params)
        # Layers added since the checkpoint come from the grown weights, with fresh moments.
        for name in initial_weights:
            if name not in params:
                params[name] = initial_weights[name]
        moments = {k: v for k, v in ck.tensors.items() if k.startswith(("m.", "v."))}
        meta = ck.meta
        self.numerics.load(params, moments, meta["step"])
        self.step, self.epoch, self.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        self.tokens_seen = meta["tokens_seen"]
        self.epoch_doc_ids = meta["epoch_doc_ids"]
        self.split_mode = meta.get("split")
        self.batch_order = meta.get("batch_order", "stream" if self.batch_in_epoch else "windows")
        grown = any(name not in ck_params for name in initial_weights)
        if not grown:  # a grown model computes what it did, but its best weights have the old shape
            self.best = meta.get("best")
            self.stale_evals, self.patience_ref = meta.get("stale_evals", 0), meta.get("patience_ref")
        self.plan = Plan(**meta["plan"])
        self.plan.peak_lr = self.s.learning_rate  # a changed rate takes effect from here on
        self.rng.bit_generator.state = meta["rng"]
        self.resumed_from = self.step
        self.resumed_engine = meta.get("engine", "builtin")

    def checkpoint(self) -> Path | None:
        """Rank 0 writes the checkpoint (every rank holds the same state); None elsewhere."""
        if self.numerics.rank != 0:
            return None
        meta = {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "tokens_seen": self.tokens_seen,
            "epoch_doc_ids": self.epoch_doc_ids,
            "split": self.split_mode,
            "batch_order": self.batch_order,
            "best": self.best,
            "stale_evals": self.stale_evals,
            "patience_ref": self.patience_ref,
            "plan": asdict(self.plan),
            "rng": self.rng.bit_generator.state,
            "config": self.cfg.to_dict(),
            "settings": asdict(self.s),
            "engine": self.numerics.engine,
        }
        return save_checkpoint(self.ckpt_dir, self.step, self.numerics.tensors(), meta, keep=self.s.keep_checkpoints)

    def weights(self) -> dict[str, np.ndarray]:
        return self.numerics.weights()

    @property
    def epochs_done(self) -> int:
        return self.epoch

    @property
    def epoch_float(self) -> float:
        return self.epoch + self.batch_in_epoch / max(1, self.steps_per_epoch * self.s.grad_accum)

    def new_cycle(self) -> bool:
        """A new warmup-and-decay cycle for the steps still to train (see Plan.new_cycle)."""
        s = self.s
        if self.step < s.warmup_steps:
            return False  # the first warmup is still on its way up
        steps_left = self.steps_per_epoch * (self.target_epochs - self.epoch) - self.batch_in_epoch // s.grad_accum
        return self.plan.new_cycle(self.step, self.step + max(0, steps_left))

    def _fit_plan_to(self, deadline: float, started: float, ran: int) -> None:
        """End the learning-rate plan at the step the clock is expected to stop at."""
        per_step = (time.monotonic() - started) / ran
        left = max(0.0, deadline - time.monotonic())
        steps = min(2**30, max(1, int(left / max(per_step, 1e-9))))
        # Ranks of a many-process run keep one plan: each rank's clock differs a little.
        end = self.step + self.numerics.agree(steps)
        last = self.plan.segments[-1] if self.plan.segments else None
        if last is None:
            self.plan.extend_to(self.step, end)
        else:  # the same warmup and cosine, ending where the clock now says
            last["end"] = max(end, last["start"] + last.get("warmup", 0) + 1)

    def _judge(self, val: float | None) -> str | None:
        """Keep the best validation loss, and say whether a stop rule ends the run here."""
        s = self.s
        train = float(np.mean(self.recent_train)) if self.recent_train else None
        self.recent_train = []
        if val is not None:
            if self.best is None or val < self.best["loss"]:
                self.best = {"step": self.step, "loss": val}
            if self.patience_ref is None or val < self.patience_ref - s.early_stop_min_delta:
                self.patience_ref, self.stale_evals = val, 0
            else:
                self.stale_evals += 1
            if s.early_stop_patience > 0 and self.stale_evals >= s.early_stop_patience:
                return "early_stopped"
        watched = val if val is not None else train
        if s.stop_at_loss > 0 and watched is not None and watched <= s.stop_at_loss:
            return "loss_reached"
        return None

    @property
    def trained_doc_ids(self) -> list[int]:
        """The documents this epoch trains on (some of them only in part)."""
        return sorted(d.doc_id for d in self.train_docs)

    def evaluate(self) -> float | None:
        """The held-out loss of the validation split (engine/heldout.py); its details stay in
        `last_eval`. None when there is no validation split."""
        self.last_eval = heldout.measure(self.numerics.loss, [d.tokens for d in self.val_docs], self.eot,
                                         self.s.batch_size, self.s.sequence_length, self.s.eval_tokens)
        return None if self.last_eval is None else self.last_eval.loss

    def run(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        on_step: Callable[[StepReport], None] = lambda r: None,
        on_eval: Callable[[int, float | None], None] = lambda step, loss: None,
        on_checkpoint: Callable[["Trainer"], None] = lambda t: None,
        on_epoch: Callable[["Trainer"], None] = lambda t: None,
        max_steps: int | None = None,
        before_checkpoint: Callable[[], None] = lambda: None,
        deadline: float | None = None,
    ) -> str:
        """Train until the target epochs are done ("done"), a stop is asked ("stopped"), or
        `max_steps` more steps ran ("paused"); or, as the settings ask, the time budget is spent
        ("time_up", at `deadline` on time.monotonic()'s clock, or minutes from now), the loss
        reached stop_at_loss ("loss_reached"), or validation stopped improving
        ("early_stopped"). Raises TrainingError on NaN or divergence, having kept the last good
        checkpoint. `before_checkpoint` runs before each checkpoint is written: what must be
        saved before a resume could start from it."""
        s = self.s
        started, start_step = time.monotonic(), self.step
        if deadline is None and s.minutes > 0:
            deadline = started + s.minutes * 60
        if deadline is not None and self.step >= s.warmup_steps:
            # A trained model's budget gets a warmup and decay of its own (its last plan may have
            # ended at the floor); the refits below move the cycle's end to where the clock stops.
            self.plan.new_cycle(self.step, self.step + TIME_BUDGET_EPOCHS)

        def save() -> None:
            before_checkpoint()
            self.checkpoint()
            on_checkpoint(self)

        B, T, A = s.batch_size, s.sequence_length, s.grad_accum
        budget = max_steps
        diverge_at = 3.0 * math.log(self.cfg.vocab_size) + 5.0  # far above a uniform guess
        while self.epoch < self.target_epochs:
            if self.batch_in_epoch == 0 and self.epoch_doc_ids is None:
                self._start_epoch(resuming=False)
            stream = EpochStream(self.train_docs, self.epoch, s.seed, B, T, self.eot, self.batch_order)
            batches = stream.batches(self.batch_in_epoch)  # on from what this epoch already used
            while self.batch_in_epoch + A <= stream.n_batches:
                # Every rank of a many-process run ends at the same step: rank 0's word holds.
                halt = self.numerics.agree(
                    HALT_STOP if should_stop() else HALT_PAUSE if budget is not None and budget <= 0
                    else HALT_TIME if deadline is not None and time.monotonic() >= deadline else 0
                )
                if halt:
                    save()
                    return {HALT_STOP: "stopped", HALT_PAUSE: "paused", HALT_TIME: "time_up"}[halt]
                ran = self.step - start_step
                if deadline is not None and ran > 0 and (ran in REFIT_AT or ran % REFIT_EVERY == 0):
                    self._fit_plan_to(deadline, started, ran)
                t0 = time.perf_counter()
                lr = self.plan.lr(self.step)
                loss = self.numerics.forward_backward([next(batches) for _ in range(A)])
                if not math.isfinite(loss) or loss > diverge_at:
                    raise TrainingError(
                        f"training diverged at step {self.step + 1} (loss {loss:.4g}); the last good "
                        "checkpoint is kept: lower learning_rate and continue"
                    )
                norm = self.numerics.optimizer_step(lr, self.step + 1, s)
                self.step += 1
                self.batch_in_epoch += A
                self.tokens_seen += B * T * A
                if budget is not None:
                    budget -= 1
                elapsed = time.perf_counter() - t0
                on_step(StepReport(self.step, self.epoch_float, loss, lr, B * T * A / max(elapsed, 1e-9), norm))
                self.recent_train.append(loss)
                if self.step % s.eval_interval == 0:
                    val = self.evaluate()
                    ending = self._judge(val)
                    on_eval(self.step, val)
                    if ending:
                        save()
                        return ending
                if self.step % s.checkpoint_interval == 0:
                    save()
            self.epoch += 1
            self.batch_in_epoch = 0
            self.batch_order = "windows"
            on_epoch(self)
            self.epoch_doc_ids = None  # the next epoch asks for the queue again
            save()
        return "done"
