"""Compare: several models' loss curves on one chart and a table of what made them.

Loss points carry a step and a time; tokens seen at a point are estimated as step times the
model's average tokens per step so far (tokens_trained / steps_trained), exact while its
batch settings stayed the same.
"""

import json

from peewee import fn

from cllm_app.errors import InvalidInput
from cllm_app.services.research.lineage import import_sources
from cllm_app.store import LanguageModel, LossPoint, ModelEvent, QueueEntry
from cllm_app.store.schema import iso

MAX_MODELS = 12
MAX_POINTS = 2000  # per model and series; longer runs are thinned evenly, the last point kept


def _thin(points: list[dict]) -> list[dict]:
    if len(points) <= MAX_POINTS:
        return points
    stride = len(points) / MAX_POINTS
    kept = [points[int(i * stride)] for i in range(MAX_POINTS - 1)]
    return kept + [points[-1]]


def _row_summary(models, row: LanguageModel) -> dict:
    items, tokens, byte_count = (
        QueueEntry.select(fn.COUNT(QueueEntry.id), fn.COALESCE(fn.SUM(QueueEntry.token_count), 0),
                          fn.COALESCE(fn.SUM(QueueEntry.byte_count), 0))
        .where(QueueEntry.model == row).tuples().first()
    )
    best = (LossPoint.select(LossPoint.step, LossPoint.val_loss)
            .where((LossPoint.model == row) & LossPoint.val_loss.is_null(False))
            .order_by(LossPoint.val_loss, LossPoint.step).first())
    parent = row.duplicated_from if row.duplicated_from_id else None
    cfg = models.config_of(row)
    return {
        "id": row.id,
        "model_name": row.model_name,
        "n_layer": row.n_layer,
        "n_head": row.n_head,
        "n_embd": row.n_embd,
        "block_size": row.block_size,
        "vocab_size": row.vocab_size,
        "tokenizer": row.tokenizer,
        "n_params": cfg.n_params,
        "queue": {"items": items, "tokens": int(tokens), "bytes": int(byte_count)},
        "epochs_trained": row.epochs_trained,
        "target_epochs": row.target_epochs,
        "steps_trained": row.steps_trained,
        "tokens_trained": row.tokens_trained,
        "best_val_loss": best.val_loss if best else None,
        "best_val_step": best.step if best else None,
        "lineage": {
            "parent": parent.model_name if parent else None,
            "parent_deleted": bool(parent and parent.deleted_at is not None),
            "imports": [m.model_name for m in import_sources(row)],
            "layers_grown": _grown(row),
        },
    }


def _grown(row: LanguageModel) -> list[dict]:
    return [
        {**json.loads(e.detail), "at": iso(e.created_at)}
        for e in row.events.where(ModelEvent.kind == "layers_grown").order_by(ModelEvent.id)
    ]


def compare(models, model_names) -> dict:
    """Loss series (train and val, by step, tokens seen and time) and a summary row per model."""
    if isinstance(model_names, str):
        model_names = [model_names]
    names = [n for n in (model_names or []) if isinstance(n, str) and n.strip()]
    if not names:
        raise InvalidInput("choose at least one model to compare", code="no_models")
    if len(names) > MAX_MODELS:
        raise InvalidInput(f"compare at most {MAX_MODELS} models at once", code="too_many_models")
    out = []
    seen = set()
    for name in names:
        row = models.get(name)
        if row.id in seen:
            continue
        seen.add(row.id)
        per_step = row.tokens_trained / row.steps_trained if row.steps_trained else 0
        points = [
            {
                "step": p.step,
                "tokens": round(p.step * per_step),
                "train_loss": p.train_loss,
                "val_loss": p.val_loss,
                "time": iso(p.created_at, "milliseconds"),
            }
            for p in row.loss_history.order_by(LossPoint.step)
        ]
        val = [p for p in points if p["val_loss"] is not None]
        train = _thin([p for p in points if p["train_loss"] is not None])
        kept = {id(p) for p in train} | {id(p) for p in val}
        series = [p for p in points if id(p) in kept]
        out.append({**_row_summary(models, row), "points": series})
    return {"models": out}
