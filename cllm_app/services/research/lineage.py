"""Lineage: the family tree of all models, as nodes and edges for the Research tab to draw.

Edges: "duplicated" (a copy and its source: the model's duplicated_from, or the source_id of
its "duplicated" event once the source row is gone from that field) and "data_imported" (a
model took training data from another: its queue entries' imported_from, and its
"data_imported" events, whose detail names the source by any of IMPORT_ID_KEYS, or by name
with IMPORT_NAME_KEYS). Layers grown are annotations on a node, not edges.

Models in the trash stay in the picture, marked deleted, because a live copy's source may be
there; models whose trash was emptied are gone from the store and so from the tree.
Generations (`depth`) follow the duplicate edges only, which always form a tree; imports are
drawn across it.
"""

import json

from cllm_app.store import LanguageModel, ModelEvent, QueueEntry
from cllm_app.store.schema import iso

IMPORT_ID_KEYS = ("from_model_id", "source_model_id", "source_id", "imported_from_id", "from_id", "model_id")
IMPORT_NAME_KEYS = ("from_model", "source_model", "from_model_name", "source_model_name")


def _import_ref(detail: dict, by_name: dict[str, LanguageModel]) -> int | None:
    for key in IMPORT_ID_KEYS:
        value = detail.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    for key in IMPORT_NAME_KEYS:
        value = detail.get(key)
        if isinstance(value, str) and value.casefold() in by_name:
            return by_name[value.casefold()].id
    return None


def _detail(e: ModelEvent) -> dict:
    try:
        value = json.loads(e.detail or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def import_sources(row: LanguageModel) -> list[LanguageModel]:
    """The models `row` took training data from (queue entries and data_imported events)."""
    ids = {
        e.imported_from_id
        for e in QueueEntry.select(QueueEntry.imported_from).where(
            (QueueEntry.model == row) & QueueEntry.imported_from.is_null(False)
        )
    }
    live = {m.name_key: m for m in LanguageModel.select().where(LanguageModel.deleted_at.is_null())}
    for e in row.events.where(ModelEvent.kind == "data_imported"):
        ref = _import_ref(_detail(e), live)
        if ref is not None:
            ids.add(ref)
    ids.discard(row.id)
    return list(LanguageModel.select().where(LanguageModel.id.in_(list(ids))).order_by(LanguageModel.id))


def graph(models) -> dict:
    """Every model as a node (with its generation and grown layers) and the edges between them."""
    rows = list(LanguageModel.select().order_by(LanguageModel.id))
    ids = {r.id for r in rows}
    live_by_name = {r.name_key: r for r in rows if r.deleted_at is None}
    events: dict[int, list[ModelEvent]] = {}
    for e in ModelEvent.select().order_by(ModelEvent.id):
        events.setdefault(e.model_id, []).append(e)
    edges = []
    parent: dict[int, int] = {}
    for r in rows:
        source = r.duplicated_from_id
        if source is None:
            dup = next((e for e in events.get(r.id, []) if e.kind == "duplicated"), None)
            source = _detail(dup).get("source_id") if dup else None
        if source in ids and source != r.id:
            parent[r.id] = source
            edges.append({"kind": "duplicated", "from": source, "to": r.id})
    imports: set[tuple[int, int]] = set()
    for q in QueueEntry.select(QueueEntry.model, QueueEntry.imported_from).where(QueueEntry.imported_from.is_null(False)):
        imports.add((q.imported_from_id, q.model_id))
    for model_id, evs in events.items():
        for e in evs:
            if e.kind == "data_imported":
                ref = _import_ref(_detail(e), live_by_name)
                if ref is not None:
                    imports.add((ref, model_id))
    for src, dst in sorted(imports):
        if src in ids and dst in ids and src != dst:
            edges.append({"kind": "data_imported", "from": src, "to": dst})

    def depth(model_id: int) -> int:
        d, seen = 0, {model_id}
        while model_id in parent and parent[model_id] not in seen:
            model_id = parent[model_id]
            seen.add(model_id)
            d += 1
        return d

    nodes = [
        {
            "id": r.id,
            "model_name": r.model_name,
            "deleted": r.deleted_at is not None,
            "created_at": iso(r.created_at),
            "n_layer": r.n_layer,
            "n_embd": r.n_embd,
            "n_params": models.config_of(r).n_params,
            "epochs_trained": r.epochs_trained,
            "depth": depth(r.id),
            "layers_grown": [
                {**_detail(e), "at": iso(e.created_at)} for e in events.get(r.id, []) if e.kind == "layers_grown"
            ],
        }
        for r in rows
    ]
    return {"nodes": nodes, "edges": edges}
