"""The training settings each model remembers, declared once.

The store's columns (store/schema.py, and store/migrations.py adds a missing one), the checks
(services/models.py), the trainer's settings (engine/trainer.py), the `cllm` options
(cli.py), the API's schema (api/openapi.py) and the Training tab's form (through
GET /api/training-settings) all read this table, so a new setting is one line here.

Imports nothing of ours: every floor may read it.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str  # one word everywhere: store column, API field, form field
    type: type  # int, float, or str (one of `choices`)
    default: int | float | str
    minimum: int | float | None
    maximum: int | float | None
    help: str
    flag: str  # the `cllm models set` / `cllm train` option
    exclusive_minimum: bool = False  # the minimum itself is refused (a learning rate of 0 learns nothing)
    choices: tuple[str, ...] = ()  # a str setting's allowed values
    group: str = "training"  # "engine": shown beside Start, not in the settings form
    legacy: int | float | str | None = None  # the value for models that trained before the setting came

    def as_json(self) -> dict:
        if self.type is str:
            return {"name": self.name, "type": "string", "default": self.default, "enum": list(self.choices),
                    "help": self.help, "group": self.group}
        return {
            "name": self.name,
            "type": "integer" if self.type is int else "number",
            "default": self.default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "exclusive_minimum": self.exclusive_minimum,
            "help": self.help,
            "group": self.group,
        }


SETTINGS = (
    Setting("batch_size", int, 8, 1, 1024, "sequences per step", "--batch-size"),
    Setting("sequence_length", int, 128, 8, 8192, "tokens per sequence, at most block_size", "--sequence-length"),
    Setting("learning_rate", float, 3e-4, 0.0, 1.0, "peak step size", "--lr", exclusive_minimum=True),
    Setting("target_epochs", int, 1, 0, 1_000_000, "passes over the queue to reach", "--target-epochs"),
    Setting("grad_accum", int, 1, 1, 1024, "steps whose gradients add up before an update", "--accumulate"),
    Setting("eval_interval", int, 100, 1, 1_000_000, "steps between evaluations", "--eval-interval"),
    Setting("checkpoint_interval", int, 100, 1, 1_000_000, "steps between checkpoints", "--checkpoint-interval"),
    Setting("warmup_steps", int, 100, 0, 1_000_000, "steps of rising learning rate", "--warmup-steps"),
    Setting("weight_decay", float, 0.1, 0.0, 1.0, "AdamW weight decay", "--weight-decay"),
    Setting("seed", int, 1337, 0, 2**31 - 1, "random seed (the data order and the first weights)", "--seed"),
    # What is never trained on (engine/heldout.py). Models that trained before the setting
    # existed were split by whole documents, and keep that.
    Setting("validation_split", str, "auto", None, None, "what is held out: the tail of each document, "
            "whole documents, or only the items marked as validation (auto: tails below 20 documents)",
            "--validation-split", choices=("auto", "tail", "documents", "marked"), legacy="documents"),
    Setting("validation_share", float, 0.1, 0.0, 0.5, "the share held out (of each document's tokens, or "
            "of the documents)", "--validation-share"),
    # When a run ends before its target: a time budget, a loss reached, validation no longer improving.
    Setting("minutes", float, 0.0, 0.0, 10_080.0, "train for this many minutes (0: to target_epochs); the "
            "learning rate's decay is fitted to the time", "--minutes"),
    Setting("stop_at_loss", float, 0.0, 0.0, 100.0, "stop once the validation loss (the training loss without a "
            "validation split) is at most this (0: off)", "--stop-at-loss"),
    Setting("early_stop_patience", int, 0, 0, 10_000, "stop after this many evaluations without the validation "
            "loss improving by early_stop_min_delta (0: off)", "--patience"),
    Setting("early_stop_min_delta", float, 0.0, 0.0, 10.0, "the improvement early stopping counts as one",
            "--min-delta"),
    # Which weights chat, export and evaluate use.
    Setting("use_weights", str, "latest", None, None, "the weights the model answers with: latest, or best (the "
            "lowest validation loss so far)", "--use-weights", choices=("latest", "best")),
    # Where the steps run. Any engine continues any checkpoint: a model may switch between runs.
    Setting("engine", str, "builtin", None, None, "builtin (this CPU's own kernels) or torch (PyTorch: "
            "GPUs, many processes)", "--engine", choices=("builtin", "torch"), group="engine"),
    Setting("device", str, "auto", None, None, "the PyTorch engine's device (auto: a GPU if there is one)",
            "--device", choices=("auto", "cpu", "cuda", "mps"), group="engine"),
    Setting("nproc", int, 1, 1, 64, "processes the PyTorch engine trains with (one per GPU); batch_size is "
            "split between them", "--nproc", group="engine"),
)

NAMES = tuple(s.name for s in SETTINGS)
DEFAULTS = {s.name: s.default for s in SETTINGS}
BY_NAME = {s.name: s for s in SETTINGS}


def defaults_for(block_size: int) -> dict:
    """A new model's settings: the defaults, with no sequence longer than the model's context."""
    return {**DEFAULTS, "sequence_length": min(DEFAULTS["sequence_length"], block_size)}
