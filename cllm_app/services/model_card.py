"""The model card (README.md) written beside every export: the YAML header the Hugging Face Hub
reads, then what the store knows of the model, then how to run the exported files.

`card_facts` reads the store into a `CardFacts`; `render_card` turns facts into markdown and
touches nothing else, so the wording is tested without a store. `model_card` is both in one.

The card claims only what the store holds. Losses are the trainer's (nats per token) at the
step whose weights were exported. Bits per byte follow Research > Evaluate's definition (total
nats / ln 2 / UTF-8 bytes); from a loss per token that is loss / ln 2 x tokens per byte, the
ratio taken from the queue's own counts, so the card calls it an estimate and says on what.
A finished evaluate job on the validation split, run on the weights as they are now, is a
measurement, and the card gives it as one.
"""

import json
import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cllm_app import __version__
from cllm_app.services.export_paths import slug
from cllm_app.services.research.lineage import graph
from cllm_app.store import Job, LanguageModel, LossPoint, ModelEvent, QueueEntry
from cllm_app.store.schema import iso

KINDS = ("hf", "gguf")
MAX_FILES_NAMED = 5
MAX_SITES_NAMED = 10
# Events that leave the weights as they were: an evaluation from before them still holds.
DATA_EVENTS = ("data_imported", "data_copied_to")
PROMPT = "Once upon a time"
MAX_NEW_TOKENS = 100


@dataclass
class LossAt:
    step: int
    loss: float  # nats per token
    bits_per_byte: float | None  # estimated from the queue's tokens per byte


@dataclass
class CardFacts:
    """What the card says, read from the store once."""

    model_name: str
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    vocab_size: int
    n_params: int
    tokenizer: str  # byte | bpe
    created_at: str | None = None
    tokenizer_trained_on: str | None = None  # for a BPE: "the queue of 'x'" or "3 files"
    # training
    steps_trained: int = 0
    epochs_trained: int = 0
    target_epochs: int = 0
    tokens_trained: int = 0
    train: LossAt | None = None
    val: LossAt | None = None
    measured: dict | None = None  # {"bits_per_byte", "loss", "tokens"} of an evaluate job
    trained_outside: list[str] = field(default_factory=list)
    # data: the queue's ready items
    items: int = 0
    data_tokens: int = 0
    data_bytes: int = 0
    not_trained_on: int = 0  # items added after the exported weights' last step
    file_count: int = 0
    file_names: list[str] = field(default_factory=list)
    sites: list[tuple[str, int]] = field(default_factory=list)  # (host, pages), most pages first
    other_kinds: list[tuple[str, int]] = field(default_factory=list)  # pasted text and the like
    imported: list[tuple[str, int]] = field(default_factory=list)  # (model name, items) copied in
    # lineage
    hf_import: str | None = None  # the folder's name, when it (or the model it copies) came from a Hugging Face folder
    hf_import_via: str | None = None  # the ancestor that was imported, when it is a copy
    weights_reset: bool = False  # a new shape or tokenizer gave it fresh random weights
    ancestors: list[tuple[str, bool]] = field(default_factory=list)  # duplicated from, nearest first; (name, deleted)
    data_from: list[tuple[str, bool]] = field(default_factory=list)  # models it took data from; (name, deleted)
    # (the ancestor's name, or None for this model; from, to, after training), oldest first
    layers_grown: list[tuple[str | None, int, int, bool]] = field(default_factory=list)
    recovered: bool = False

    @property
    def has_trained(self) -> bool:
        return self.steps_trained > 0 or self.epochs_trained > 0


# ---- facts from the store ----------------------------------------------------------------------

def _json(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _base_name(path: str) -> str:
    # Only the last part: a full path would publish the person's folders (and user name).
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1] or path


def _bits_per_byte(loss: float, tokens: int, n_bytes: int) -> float | None:
    """Research > Evaluate's bits per byte (total nats / ln 2 / bytes), with total nats = loss x tokens."""
    if not tokens or not n_bytes or not math.isfinite(loss):
        return None
    return loss * tokens / math.log(2) / n_bytes


def _last_loss(row: LanguageModel, column, tokens: int, n_bytes: int) -> LossAt | None:
    point = (LossPoint.select().where((LossPoint.model == row) & column.is_null(False)
                                      & (LossPoint.step <= row.steps_trained))
             .order_by(LossPoint.step.desc()).first())
    if point is None:
        return None
    value = getattr(point, column.name)
    return LossAt(point.step, value, _bits_per_byte(value, tokens, n_bytes))


def _measured(row: LanguageModel) -> dict | None:
    """The newest done evaluate job on the model's own validation split, if nothing has
    changed the weights since it started."""
    last_point = (LossPoint.select(LossPoint.created_at).where(LossPoint.model == row)
                  .order_by(LossPoint.created_at.desc()).first())
    last_event = (ModelEvent.select(ModelEvent.created_at)
                  .where((ModelEvent.model == row) & ModelEvent.kind.not_in(DATA_EVENTS))
                  .order_by(ModelEvent.created_at.desc()).first())
    changed = max((x.created_at for x in (last_point, last_event) if x is not None), default=None)
    jobs = (Job.select().where((Job.model == row) & (Job.kind == "evaluate") & (Job.state == "done"))
            .order_by(Job.finished_at.desc(), Job.id.desc()))
    for job in jobs:
        detail = _json(job.detail)
        source = detail.get("source") if isinstance(detail.get("source"), dict) else {}
        if source.get("source") != "validation" or not isinstance(detail.get("bits_per_byte"), (int, float)):
            continue
        began = job.started_at or job.created_at
        if changed is not None and began < changed:
            return None  # the newest such measurement is of other weights
        return {"bits_per_byte": float(detail["bits_per_byte"]), "loss": detail.get("loss"),
                "tokens": detail.get("tokens")}
    return None


def _data(facts: CardFacts, row: LanguageModel, trained_until) -> None:
    entries = list(QueueEntry.select().where((QueueEntry.model == row) & (QueueEntry.status == "ready"))
                   .order_by(QueueEntry.id))
    facts.items = len(entries)
    facts.data_tokens = sum(e.token_count for e in entries)
    facts.data_bytes = sum(e.byte_count for e in entries)
    if facts.has_trained:
        # No loss point (a record rebuilt after damage) says nothing of when it trained: claim nothing.
        facts.not_trained_on = sum(1 for e in entries if trained_until is not None and e.added_at > trained_until)
    names = {m.id: m.model_name for m in LanguageModel.select(LanguageModel.id, LanguageModel.model_name)}
    imported: Counter = Counter()
    sites: Counter = Counter()
    others: Counter = Counter()
    files: list[str] = []
    for e in entries:
        if e.imported_from_id is not None:
            imported[names.get(e.imported_from_id, "a model since removed")] += 1
        elif e.source_kind == "file":
            files.append(_base_name(e.origin))
        elif e.source_kind == "crawl":
            sites[urlsplit(e.origin).hostname or "an unnamed site"] += 1
        else:
            others[e.source_kind] += 1
    facts.file_count, facts.file_names = len(files), files[:MAX_FILES_NAMED]
    facts.sites = sorted(sites.items(), key=lambda s: (-s[1], s[0]))
    facts.other_kinds = sorted(others.items())
    facts.imported = sorted(imported.items())


def _grown(model_id: int, before_event: int | None = None) -> list[tuple[int, int, bool]]:
    """A model's layers_grown events, oldest first; with `before_event`, those logged before it
    (event ids, not times: a grow and a copy can fall in one second)."""
    query = ModelEvent.select().where((ModelEvent.model == model_id) & (ModelEvent.kind == "layers_grown"))
    if before_event is not None:
        query = query.where(ModelEvent.id < before_event)
    grown = [_json(e.detail) for e in query.order_by(ModelEvent.id)]
    return [(g["from"], g["to"], bool(g.get("trained"))) for g in grown
            if isinstance(g.get("from"), int) and isinstance(g.get("to"), int)]


def _copied_at(model_id: int) -> int | None:
    event = (ModelEvent.select(ModelEvent.id).where((ModelEvent.model == model_id) & (ModelEvent.kind == "duplicated"))
             .order_by(ModelEvent.id).first())
    return event.id if event else None


def _lineage(facts: CardFacts, models, row: LanguageModel) -> None:
    tree = graph(models)
    nodes = {n["id"]: n for n in tree["nodes"]}
    parent = {e["to"]: e["from"] for e in tree["edges"] if e["kind"] == "duplicated"}
    facts.layers_grown = [(None, *g) for g in _grown(row.id)]
    at, seen = row.id, {row.id}
    while at in parent and parent[at] not in seen:
        child, at = at, parent[at]
        seen.add(at)
        source = nodes[at]
        facts.ancestors.append((source["model_name"], source["deleted"]))
        # A copy has the layers its source had grown by the time it was copied, not later ones.
        copied = _copied_at(child)
        if copied is not None:
            facts.layers_grown[:0] = [(source["model_name"], *g) for g in _grown(at, copied)]
        imported = (ModelEvent.select().where((ModelEvent.model == at) & (ModelEvent.kind == "imported"))
                    .order_by(ModelEvent.id).first())
        if facts.hf_import is None and imported is not None and isinstance(_json(imported.detail).get("from"), str):
            facts.hf_import, facts.hf_import_via = _base_name(_json(imported.detail)["from"]), source["model_name"]
    facts.data_from = [(nodes[e["from"]]["model_name"], nodes[e["from"]]["deleted"]) for e in tree["edges"]
                       if e["kind"] == "data_imported" and e["to"] == row.id]


def card_facts(models, row: LanguageModel, checkpoint: dict | None = None) -> CardFacts:
    """Everything the card says about `row`, from the store (lifecycle service `models`).
    `checkpoint` ({step, epoch, tokens}): the state the exported weights hold, when training
    has saved them; the store's counts may already be one checkpoint further on."""
    row = LanguageModel.get_by_id(row.id)  # as stored now, not as the caller last read it
    if checkpoint is not None:  # in memory only: this row object is never saved
        row.steps_trained, row.epochs_trained, row.tokens_trained = (
            checkpoint["step"], checkpoint["epoch"], checkpoint["tokens"])
    facts = CardFacts(
        model_name=row.model_name, n_layer=row.n_layer, n_head=row.n_head, n_embd=row.n_embd,
        block_size=row.block_size, vocab_size=row.vocab_size, n_params=models.config_of(row).n_params,
        tokenizer=row.tokenizer, created_at=iso(row.created_at), steps_trained=row.steps_trained,
        epochs_trained=row.epochs_trained, target_epochs=row.target_epochs, tokens_trained=row.tokens_trained,
    )
    events = list(row.events.order_by(ModelEvent.id))
    last = (LossPoint.select(LossPoint.created_at).where((LossPoint.model == row) & (LossPoint.step <= row.steps_trained))
            .order_by(LossPoint.step.desc()).first())
    _data(facts, row, last.created_at if last else None)
    if facts.has_trained:
        facts.train = _last_loss(row, LossPoint.train_loss, facts.data_tokens, facts.data_bytes)
        facts.val = _last_loss(row, LossPoint.val_loss, facts.data_tokens, facts.data_bytes)
        facts.measured = _measured(row)
    for e in events:
        detail = _json(e.detail)
        if e.kind == "imported" and isinstance(detail.get("from"), str):
            facts.hf_import = _base_name(detail["from"])
        elif e.kind == "created" and isinstance(detail.get("tokenizer"), dict):
            tok = detail["tokenizer"]
            if isinstance(tok.get("from_queue_of"), str):
                facts.tokenizer_trained_on = f"the training data of the model '{tok['from_queue_of']}'"
            elif isinstance(tok.get("files"), list):
                n = len(tok["files"])
                facts.tokenizer_trained_on = f"{n} file{'s' * (n != 1)}"
        elif e.kind == "tokenizer_changed":
            facts.tokenizer_trained_on = None  # the event does not say what the new one learned from
            facts.weights_reset = True
        elif e.kind == "reshaped":
            facts.weights_reset = True
        elif e.kind == "trained_outside" and isinstance(detail.get("summary"), str):
            facts.trained_outside.append(detail["summary"])
        elif e.kind == "recovered":
            facts.recovered = True
    _lineage(facts, models, row)
    return facts


# ---- markdown ----------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Characters that can start markdown or HTML inside a line; every user string passes through md().
_MARKUP = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")


def md(text: str) -> str:
    """A user's string (name, file name, URL) as literal markdown text on one line."""
    return _MARKUP.sub(r"\\\1", _CONTROL.sub(" ", str(text)))


def _quoted(name: str) -> str:
    return f"“{md(name)}”"


def _named(name: str, deleted: bool) -> str:
    return _quoted(name) + (" (since deleted)" if deleted else "")


def _fence(body: str, lang: str = "") -> str:
    """A code block whose fence is longer than any run of backticks in it."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{body}\n{fence}"


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (plural or word + 's')}"


def _listed(parts: list[str]) -> str:
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _header(kind: str) -> str:
    library = "transformers" if kind == "hf" else "gguf"
    tags = ["cllm-studio", "gpt2", "text-generation"] + (["gguf"] if kind == "gguf" else [])
    return "\n".join([
        "---",
        f"library_name: {library}",
        "pipeline_tag: text-generation",
        "tags:",
        *(f"- {t}" for t in tags),
        "# license: not chosen. Write the license you give this model here (for example mit,",
        "# apache-2.0 or cc-by-4.0) and remove the '#'; the training data's own terms still apply.",
        "---",
    ])


def _tokenizer_text(f: CardFacts) -> str:
    if f.tokenizer == "byte":
        return "bytes: each UTF-8 byte is one token (ids 0 to 255), and `<|endoftext|>` (256) ends each document"
    text = f"byte-level BPE with {f.vocab_size:,} tokens, trained in CLLM Studio"
    return text + (f" on {md(f.tokenizer_trained_on)}" if f.tokenizer_trained_on else "")


def _model_section(f: CardFacts) -> list[str]:
    return [
        "## Model",
        "",
        "GPT-2's architecture: a decoder-only transformer with learned positions, LayerNorm before "
        "attention and MLP, GELU (tanh approximation), and the output head tied to the token embedding.",
        "",
        "| | |",
        "|---|---|",
        f"| Layers (n_layer) | {f.n_layer} |",
        f"| Attention heads (n_head) | {f.n_head} |",
        f"| Width (n_embd) | {f.n_embd} |",
        f"| Context (block_size) | {f.block_size:,} tokens |",
        f"| Vocabulary (vocab_size) | {f.vocab_size:,} |",
        f"| Parameters | {f.n_params:,} |",
        "",
        f"Tokenizer: {_tokenizer_text(f)}.",
    ]


def _data_section(f: CardFacts) -> list[str]:
    out = ["## Training data", ""]
    if not f.items:
        return out + ["Its training-data queue is empty."]
    out.append(f"Its training-data queue holds {_n(f.items, 'item')}: {_n(f.data_tokens, 'token')} "
               f"from {_n(f.data_bytes, 'byte')} of text.")
    if f.not_trained_on:
        out.append(f"{_n(f.not_trained_on, 'item was', 'items were')} added after its last training "
                   "step and not trained on yet.")
    out.append("")
    if f.file_count:
        named = ", ".join(_quoted(n) for n in f.file_names)
        more = f" and {f.file_count - len(f.file_names):,} more" if f.file_count > len(f.file_names) else ""
        out.append(f"- Files: {f.file_count:,} ({named}{more})")
    if f.sites:
        pages = sum(n for _, n in f.sites)
        shown = [f"{md(host)} ({_n(n, 'page')})" for host, n in f.sites[:MAX_SITES_NAMED]]
        rest = f.sites[MAX_SITES_NAMED:]
        if rest:
            shown.append(f"{_n(len(rest), 'more site')} ({_n(sum(n for _, n in rest), 'page')})")
        out.append(f"- Crawled web pages: {pages:,} from {_n(len(f.sites), 'site')}: {'; '.join(shown)}")
    for kind, n in f.other_kinds:
        label = "Pasted text" if kind == "text" else f"Other ({md(kind)})"
        out.append(f"- {label}: {_n(n, 'item')}")
    for name, n in f.imported:
        out.append(f"- Copied from the model {_quoted(name)}: {_n(n, 'item')}")
    return out


def _untrained_weights(f: CardFacts) -> str:
    if f.hf_import and not f.weights_reset:
        return "Its weights are those of the Hugging Face folder it was imported from (see Lineage)."
    return "Its weights are random, so what it writes is noise."


def _training_section(f: CardFacts) -> list[str]:
    out = ["## Training", ""]
    if not f.has_trained:
        return out + [f"**Not trained{' in CLLM Studio' if f.hf_import else ''}.** {_untrained_weights(f)} "
                      "No loss was measured."]
    epochs = _n(f.epochs_trained, "complete epoch") + (f" of a target of {f.target_epochs}" if f.target_epochs else "")
    out += [f"Trained for {_n(f.steps_trained, 'step')} ({epochs}), {_n(f.tokens_trained, 'token')} seen.", ""]
    for summary in f.trained_outside:
        out.append(f"- Part of it ran outside the app with a training bundle: {md(summary)}.")
    per_byte = (f" ({f.data_tokens / f.data_bytes:.4g}: {f.data_tokens:,} tokens over {f.data_bytes:,} bytes)"
                if f.data_bytes else "")

    def loss_line(label: str, at: LossAt) -> str:
        bpb = f", about {at.bits_per_byte:.4f} bits per byte" if at.bits_per_byte is not None else ""
        return f"- {label} loss at step {at.step:,}: {at.loss:.4f} nats per token{bpb}"

    out.append(loss_line("Train", f.train) if f.train else "- No train loss is recorded for the exported weights.")
    if f.val:
        out.append(loss_line("Validation", f.val) + " (on the documents the trainer holds out)")
    else:
        out.append("- No validation loss was measured.")
    if f.measured:
        tokens = f.measured.get("tokens")
        over = f" over {tokens:,} tokens" if isinstance(tokens, int) else ""
        out.append(f"- Measured with Research > Evaluate on the validation split{over}: "
                   f"{f.measured['bits_per_byte']:.4f} bits per byte.")
    if (f.train and f.train.bits_per_byte is not None) or (f.val and f.val.bits_per_byte is not None):
        out += ["", "Losses are the trainer's mean cross-entropy per token. Bits per byte here are estimates: "
                f"loss / ln 2 x the training data's tokens per byte{per_byte}, as Research > Evaluate defines "
                "them (total nats / ln 2 / UTF-8 bytes)."]
    return out


def _lineage_section(f: CardFacts) -> list[str]:
    out = ["## Lineage", ""]
    if f.hf_import and not f.hf_import_via:
        out.append(f"- Imported from a Hugging Face GPT-2 folder named {_quoted(f.hf_import)}.")
    elif not f.ancestors:
        out.append(f"- Created from scratch in CLLM Studio{' on ' + f.created_at[:10] if f.created_at else ''}.")
    if f.ancestors:
        out.append(f"- A copy of {', a copy of '.join(_named(n, gone) for n, gone in f.ancestors)}, "
                   "with its weights, queue and loss history as they were then.")
    if f.hf_import_via:
        out.append(f"- {_quoted(f.hf_import_via)} was imported from a Hugging Face GPT-2 folder named "
                   f"{_quoted(f.hf_import)}.")
    for whose, old, new, trained in f.layers_grown:
        to = f" to {_quoted(whose)} before it was copied" if whose else ""
        when = "after training" if trained else "before training"
        out.append(f"- Layers added{to}, {when}: {old} to {new} (each new block started as an identity).")
    if f.data_from:
        out.append(f"- Took training data from {_listed([_named(n, gone) for n, gone in f.data_from])}.")
    if f.recovered:
        out.append("- Its record was rebuilt from its folder after the app's store was damaged; "
                   "history from before that may be missing.")
    return out


def run_prompt(block_size: int) -> tuple[str, int]:
    """A prompt and a reply length that fit the context (prompt tokens never exceed its bytes)."""
    prompt = PROMPT if len(PROMPT.encode()) < block_size // 2 else "The"
    return prompt, max(1, min(MAX_NEW_TOKENS, block_size - len(prompt.encode())))


def _use_hf(f: CardFacts, folder: str | None) -> list[str]:
    prompt, new = run_prompt(f.block_size)
    path = repr(folder) if folder else '"path/to/this/folder"'
    code = "\n".join([
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f"path = {path}  # this folder, or its Hub id once uploaded",
        "tokenizer = AutoTokenizer.from_pretrained(path)",
        "model = AutoModelForCausalLM.from_pretrained(path)",
        f"inputs = tokenizer({prompt!r}, return_tensors=\"pt\")",
        f"out = model.generate(**inputs, max_new_tokens={new}, do_sample=True, top_k=40,",
        "                     pad_token_id=tokenizer.eos_token_id)",
        "print(tokenizer.decode(out[0], skip_special_tokens=True))",
    ])
    return ["## How to use", "", "With `transformers` (and PyTorch):", "", _fence(code, "python"), "",
            f"The model sees at most {f.block_size:,} tokens, prompt and reply together."]


def _use_gguf(f: CardFacts, file_name: str, modelfile: str | None) -> list[str]:
    prompt, new = run_prompt(f.block_size)
    q = shlex.quote(file_name)
    name = slug(f.model_name)
    out = ["## How to use", "", f"The file {_quoted(file_name)} runs in llama.cpp, Ollama and LM Studio.", "",
           "llama.cpp:", "", _fence(f"llama-cli -m {q} -c {f.block_size} -n {new} -p {shlex.quote(prompt)}", "sh"),
           "", "Ollama:", ""]
    if modelfile:
        out += [_fence(f"ollama create {name} -f {shlex.quote(modelfile)}\nollama run {name}", "sh"), "",
                f"({_quoted(modelfile)} beside it sets the chat template, the stop words and the sampling.)"]
    else:
        out += ["Write a file named `Modelfile` beside it that holds", "", _fence(f"FROM ./{file_name}"), "",
                "then:", "", _fence(f"ollama create {name} -f Modelfile\nollama run {name}", "sh")]
    out += ["", "LM Studio (or copy the file into `~/.lmstudio/models/PUBLISHER/MODEL/` yourself), then load it:", "",
            _fence(f"lms import {q}", "sh"), "",
            f"The model sees at most {f.block_size:,} tokens, prompt and reply together."]
    return out


def render_card(f: CardFacts, kind: str, file_name: str | None = None, modelfile: str | None = None) -> str:
    """The card as markdown with the Hub's YAML header. kind "hf": a transformers folder
    (`file_name`, if given, the folder's name); "gguf": the GGUF file `file_name`, with the
    Ollama `modelfile` beside it if one was written."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "gguf" and not file_name:
        raise ValueError("a GGUF card needs the GGUF file's name")
    what = ("a Hugging Face `transformers` folder (GPT-2 layout, safetensors)" if kind == "hf"
            else "one GGUF file for llama.cpp, Ollama and LM Studio")
    lines = [
        _header(kind),
        "",
        f"# {md(f.model_name)}",
        "",
        f"A small GPT-2-style language model made with CLLM Studio {__version__}, exported as {what}.",
    ]
    if not f.has_trained:
        lines += ["", f"**This model has not been trained{' in CLLM Studio' if f.hf_import else ''}.** "
                  + _untrained_weights(f)]
    for section in (_model_section(f), _data_section(f), _training_section(f), _lineage_section(f),
                    _use_hf(f, file_name) if kind == "hf" else _use_gguf(f, file_name, modelfile)):
        lines += ["", *section]
    lines += ["", "## License", "",
              "None chosen yet: set `license:` in the header above. The texts it learned from keep their own terms."]
    return "\n".join(lines) + "\n"


def model_card(models, row: LanguageModel, kind: str, file_name: str | None = None,
               modelfile: str | None = None, checkpoint: dict | None = None) -> str:
    """The README.md to write beside an export of `row` (see render_card and card_facts for the
    arguments)."""
    return render_card(card_facts(models, row, checkpoint), kind, file_name, modelfile)
