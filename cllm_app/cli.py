"""The `cllm` command: the window, the server, and model management.

Every command asks the same services the API asks. A refusal prints one plain
line on stderr and exits with status 2.
"""

import functools
import json
import os
import sys

import click

from cllm_app import training_settings
from cllm_app.errors import CllmError, as_refusal
from cllm_app.services.models import SORT_KEYS
from cllm_app.services.sampling import PRESETS

BALANCED = PRESETS["Balanced"]  # `cllm generate` samples as the LLM tab's default preset does

EXIT_REFUSED = 2


def _studio():
    from cllm_app.services.studio import Studio

    studio = Studio()
    for notice in studio.notices:
        click.echo(f"warning: {notice}", err=True)
    return studio


def refusals(func):
    """Turn a service refusal into one line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CllmError as e:
            click.echo(f"error: {e.message}", err=True)
            sys.exit(EXIT_REFUSED)
        except Exception as e:
            ctx = click.get_current_context(silent=True)
            refusal = as_refusal(e, f"`{ctx.command_path}`" if ctx else "the command")
            if refusal is not None:  # a full disk under the store or a file, wherever it struck
                click.echo(f"error: {refusal.message}", err=True)
                sys.exit(EXIT_REFUSED)
            if isinstance(e, OSError):
                click.echo(f"error: {e.strerror or e} ({e.filename or 'data root'})", err=True)
                sys.exit(EXIT_REFUSED)
            raise

    return wrapper


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _print_model(m: dict) -> None:
    rows = [
        ("model_name", m["model_name"]),
        ("shape", f"n_layer={m['n_layer']} n_head={m['n_head']} n_embd={m['n_embd']} "
                  f"block_size={m['block_size']} vocab_size={m['vocab_size']} ({m['tokenizer']})"),
        ("tokenizer", f"{m['tokenizer']}, vocab_size {m['vocab_size']:,}"
                      + (" (byte-level BPE, tokenizer.json in the model's folder)" if m["tokenizer"] == "bpe" else "")),
        ("parameters", f"{m['n_params']:,}"),
        ("epochs", f"{m['epochs_trained']} trained of {m['target_epochs']} target"),
        ("training", f"batch_size={m['batch_size']} sequence_length={m['sequence_length']} "
                     f"learning_rate={m['learning_rate']:g}"),
        ("queue", f"{m['queue']['items']} items, {m['queue']['tokens']:,} tokens"),
        ("disk", _human_bytes(m["disk_bytes"])),
        ("created", m["created_at"]),
        ("updated", m["updated_at"]),
    ]
    if m.get("duplicated_from"):
        rows.append(("duplicated from", m["duplicated_from"]))
    if m.get("busy"):
        rows.append(("busy", f"{m['busy']['kind']} job #{m['busy']['job_id']} {m['busy']['state']}"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:<{width}}  {v}")


@click.group(invoke_without_command=True)
@click.version_option(package_name="cllm-studio")
@click.pass_context
def cli(ctx):
    """CLLM Studio: your own small language models, on your own computer.

    With no command, opens the app window (or, with no display, serves the UI
    on a local URL and prints it).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(window)


@cli.command()
@click.option("--self-check", is_flag=True, hidden=True,
              help="Open the window, wait for the UI to load, print what it shows, and exit.")
@refusals
def window(self_check):
    """Open the app window."""
    from cllm_app.desktop import display

    if not display.available():
        click.echo("No display found, so no window can open: serving the UI in your browser instead.")
        _serve(0)
        return
    from cllm_app.desktop.window import run_window

    sys.exit(run_window(_studio(), self_check=self_check))


def _serve(port: int) -> None:
    import logging

    from cllm_app.server import Server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = Server(_studio(), port=port).claim()  # a second app on this data root refuses here
    click.echo(f"CLLM Studio is serving at {server.url}")
    click.echo("Open that address in a browser on this computer. Press Ctrl+C to stop.")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")


@cli.command()
@click.option("--port", default=0, show_default="a free port", type=click.IntRange(0, 65535))
@refusals
def serve(port):
    """Serve the UI to a browser on 127.0.0.1 (the printed URL carries the launch secret)."""
    _serve(port)


@cli.group()
def models():
    """Create, list, show, rename, duplicate, delete and restore models."""


def _arch_options(func):
    for flag, field in reversed([("--layers", "n_layer"), ("--heads", "n_head"), ("--dim", "n_embd"), ("--context", "block_size")]):
        func = click.option(flag, field, type=int, default=None, help=f"{field}")(func)
    return func


def _training_options(more_flags: dict | None = None):
    """One option for each training setting (training_settings.py), with its help and range;
    `more_flags` adds a command's own spellings (`cllm train --epochs`)."""

    def decorate(func):
        for s in reversed(training_settings.SETTINGS):
            flags = [s.flag, *([more_flags[s.name]] if more_flags and s.name in more_flags else [])]
            if s.type is str:
                func = click.option(*flags, s.name, type=click.Choice(s.choices), default=None,
                                    help=f"{s.help} (default {s.default}).")(func)
                continue
            shown = (lambda v: f"{v:,}") if s.type is int else (lambda v: f"{v:g}")
            lo = f"more than {shown(s.minimum)}" if s.exclusive_minimum else shown(s.minimum)
            func = click.option(*flags, s.name, type=s.type, default=None,
                                help=f"{s.help} ({lo} to {shown(s.maximum)}; default {shown(s.default)}).")(func)
        return func

    return decorate


def _tokenizer_options(func):
    """--tokenizer, --vocab-size, --tokenizer-data, --tokenizer-from (a BPE tokenizer is trained on data)."""
    for decorator in reversed([
        click.option("--tokenizer", type=click.Choice(["byte", "bpe"]), default=None,
                     help="byte (the default: 256 bytes + <|endoftext|>) or bpe (byte-level BPE trained on data)."),
        click.option("--vocab-size", "vocab_size", type=int, default=None, help="BPE vocabulary, 512 to 32768 (default 4096)."),
        click.option("--tokenizer-data", "tokenizer_data", multiple=True, type=click.Path(path_type=str),
                     help="A UTF-8 text file to train the BPE tokenizer on (repeat for more)."),
        click.option("--tokenizer-from", "tokenizer_from", default=None, metavar="MODEL",
                     help="Train the BPE tokenizer on the training-data queue of MODEL."),
    ]):
        func = decorator(func)
    return func


def _tokenizer_fields(tokenizer, vocab_size, tokenizer_data, tokenizer_from) -> dict:
    fields = {"tokenizer": tokenizer, "vocab_size": vocab_size, "tokenizer_from": tokenizer_from,
              "tokenizer_data": list(tokenizer_data) or None}
    if fields["tokenizer"] is None and (tokenizer_data or tokenizer_from):
        fields["tokenizer"] = "bpe"  # data to train on can only mean a BPE tokenizer
    return {k: v for k, v in fields.items() if v is not None}


@models.command("create")
@click.argument("name", required=False)
@_arch_options
@_tokenizer_options
@_training_options()
@click.option("--json", "as_json", is_flag=True, help="Print the new model as JSON.")
@refusals
def models_create(name, as_json, tokenizer, vocab_size, tokenizer_data, tokenizer_from, **arch):
    """Create a model (named NAME, or model_N with the lowest free N).

    With --tokenizer bpe, its tokenizer is trained first on --tokenizer-data files or on the
    queue of --tokenizer-from MODEL."""
    fields = {k: v for k, v in arch.items() if v is not None}
    fields.update(_tokenizer_fields(tokenizer, vocab_size, tokenizer_data, tokenizer_from))
    m = _studio().models.create(name, **fields)
    _print_json(m) if as_json else click.echo(
        f"created {m['model_name']} ({m['n_params']:,} parameters, {m['tokenizer']} tokenizer of {m['vocab_size']:,} tokens)"
    )


@models.command("set-tokenizer")
@click.argument("name")
@_tokenizer_options
@click.option("--json", "as_json", is_flag=True)
@refusals
def models_set_tokenizer(name, as_json, tokenizer, vocab_size, tokenizer_data, tokenizer_from):
    """Give model NAME another tokenizer (only before it has trained; its weights start afresh)."""
    fields = _tokenizer_fields(tokenizer, vocab_size, tokenizer_data, tokenizer_from)
    m = _studio().models.set_tokenizer(name, **fields)
    _print_json(m) if as_json else click.echo(f"{m['model_name']}: {m['tokenizer']} tokenizer of {m['vocab_size']:,} tokens")


@models.command("list")
@click.option("--sort", type=click.Choice(SORT_KEYS), default="name", show_default=True)
@click.option("--desc", is_flag=True, help="Largest, newest or last first.")
@click.option("--json", "as_json", is_flag=True, help="Print {\"models\": [...]} as JSON.")
@refusals
def models_list(sort, desc, as_json):
    """List models."""
    rows = _studio().models.list(sort=sort, order="desc" if desc else "asc")
    if as_json:
        _print_json({"models": rows})
        return
    if not rows:
        click.echo("no models yet: create one with `cllm models create`")
        return
    header = ("NAME", "LAYERS", "PARAMS", "EPOCHS", "QUEUE", "SIZE", "UPDATED")
    table = [header] + [
        (
            m["model_name"],
            str(m["n_layer"]),
            f"{m['n_params']:,}",
            f"{m['epochs_trained']}/{m['target_epochs']}",
            str(m["queue"]["items"]),
            _human_bytes(m["disk_bytes"]),
            m["updated_at"],
        )
        for m in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@models.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@refusals
def models_show(name, as_json):
    """Show one model in detail."""
    m = _studio().models.show(name)
    _print_json(m) if as_json else _print_model(m)


@models.command("rename")
@click.argument("old")
@click.argument("new")
@refusals
def models_rename(old, new):
    """Rename a model, with its files, queue and history."""
    m = _studio().models.rename(old, new)
    click.echo(f"renamed {old} to {m['model_name']}")


@models.command("duplicate")
@click.argument("name")
@click.argument("new", required=False)
@click.option("--json", "as_json", is_flag=True)
@refusals
def models_duplicate(name, new, as_json):
    """Copy a model (weights, config, queue, history) under NEW or NAME-copy."""
    m = _studio().models.duplicate(name, new)
    _print_json(m) if as_json else click.echo(f"duplicated {name} as {m['model_name']}")


@models.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Confirm: the model goes to the trash.")
@refusals
def models_delete(name, yes):
    """Move a model to the trash (restore it with `cllm models restore`)."""
    entry = _studio().models.delete(name, confirm=yes)
    click.echo(f"moved {entry['model_name']} to the trash; `cllm models restore {entry['model_name']}` brings it back")


@models.command("restore")
@click.argument("name")
@click.option("--as", "new_name", default=None, help="Restore under another name.")
@refusals
def models_restore(name, new_name):
    """Bring a model back from the trash."""
    m = _studio().models.restore(name, new_name)
    click.echo(f"restored {m['model_name']}")


@models.command("trash")
@click.option("--empty", is_flag=True, help="Delete everything in the trash for good.")
@click.option("--yes", is_flag=True, help="Confirm --empty.")
@click.option("--json", "as_json", is_flag=True)
@refusals
def models_trash(empty, yes, as_json):
    """List the trash, or empty it."""
    studio = _studio()
    if empty:
        n = studio.models.empty_trash(confirm=yes)
        click.echo(f"removed {n} model(s) for good")
        return
    rows = studio.models.trash()
    if as_json:
        _print_json({"trash": rows})
    elif not rows:
        click.echo("the trash is empty")
    else:
        for r in rows:
            click.echo(f"{r['model_name']}  deleted {r['deleted_at']}  {_human_bytes(r['disk_bytes'])}")


@models.command("repair")
@click.argument("name")
@refusals
def models_repair(name):
    """Put back a damaged model.safetensors from the newest good checkpoint (the damaged file is kept)."""
    click.echo(_studio().models.repair_weights(name)["message"])


@models.command("set")
@click.argument("name")
@click.option("--layers", "n_layer", type=int, help="Add layers (never fewer than now).")
@click.option("--heads", "n_head", type=int)
@click.option("--dim", "n_embd", type=int)
@click.option("--context", "block_size", type=int)
@_training_options()
@click.option("--json", "as_json", is_flag=True)
@refusals
def models_set(name, as_json, **fields):
    """Change a model's training settings or add layers."""
    fields = {k: v for k, v in fields.items() if v is not None}
    if not fields:
        raise click.UsageError("nothing to change: give at least one option, e.g. --target-epochs 5")
    m = _studio().models.configure(name, **fields)
    if as_json:
        _print_json(m)
    else:
        changed = ", ".join(f"{k}={m[k]}" for k in fields)
        click.echo(f"{m['model_name']}: {changed}")


@cli.group()
def data():
    """A model's training-data queue: add files, import, list, show, remove, clear."""


def _run_ingest_here(studio, job: dict, as_json: bool) -> None:
    """Run an ingest job in this process (like `cllm train`), with a progress line on stderr."""
    import threading

    from cllm_app.jobs.ingest import run_ingest
    from cllm_app.jobs.worker import run_here

    studio.jobs.start(job["id"], os.getpid())
    done = threading.Event()

    def show():
        while not done.wait(0.5):
            d = studio.jobs.get(job["id"])["detail"]
            if d and sys.stderr.isatty():
                click.echo(f"\r{d['files_done']}/{d['files_total']} files · {d['bytes_done'] / 1e6:,.1f} MB · "
                           f"{d['tokens']:,} tokens   ", nl=False, err=True)

    printer = threading.Thread(target=show, daemon=True)
    printer.start()
    try:
        state = run_here(studio, job["id"], run_ingest)
    finally:
        done.set()
        printer.join(timeout=2)
    final = studio.jobs.get(job["id"])
    if final["error"]:
        click.echo(f"error: {final['error']}", err=True)
        sys.exit(EXIT_REFUSED)
    report = final["detail"]
    if as_json:
        _print_json(report)
    else:
        if sys.stderr.isatty():
            click.echo("", err=True)
        for r in report["report"]:
            # The notes carry what the reading libraries said about the file: here, on its line.
            notes = f" ({r['notes']})" if r.get("notes") else ""
            if r["outcome"] == "added":
                click.echo(f"added {r['origin']} ({r['token_count']:,} tokens){notes}")
            elif r["outcome"] == "duplicate":
                click.echo(f"already queued: {r['origin']}{notes}")
            else:
                click.echo(f"{r['outcome']} {r['origin']}: {r['reason']}{notes}", err=True)
        click.echo(f"{final['message']}")
    if state != "done" or (not report["added"] and not report["duplicates"] and report["files_total"]):
        sys.exit(EXIT_REFUSED)


@data.command("add")
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option("--field", "text_field", help="JSON/JSONL: the field holding the text (detected if not given).")
@click.option("--column", "csv_column", help="CSV: the column holding the text, by name or 0-based number.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-file report as JSON.")
@refusals
def data_add(name, paths, text_field, csv_column, as_json):
    """Add files, folders and .zip archives (text, Markdown, HTML, JSON, JSONL, CSV, PDF) to the
    queue of model NAME."""

    studio = _studio()
    job = studio.ingest.start(name, list(paths), text_field=text_field, csv_column=csv_column, foreground=True)
    _run_ingest_here(studio, job, as_json)


@data.command("import")
@click.argument("name")
@click.option("--from", "source", required=True, help="The model whose queue to copy from.")
@click.option("--entry", "entry_ids", type=int, multiple=True, help="Only this item (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@refusals
def data_import(name, source, entry_ids, as_json):
    """Copy the queue of another model (or chosen items of it) into the queue of model NAME."""

    studio = _studio()
    job = studio.ingest.start_import(name, source, list(entry_ids) or None, foreground=True)
    _run_ingest_here(studio, job, as_json)


@data.command("list")
@click.argument("name")
@click.option("--search", help="Only items whose origin or title holds this text.")
@click.option("--offset", type=int, default=0, show_default=True)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@refusals
def data_list(name, search, offset, limit, as_json):
    """List the queue of model NAME."""
    q = _studio().queue.list(name, search, offset, limit)
    if as_json:
        _print_json(q)
        return
    for e in q["items"]:
        click.echo(f"{e['id']:>5}  {e['source_kind']:<6} {e['token_count']:>12,}  {e['origin']}")
    shown = f"{offset + 1}-{offset + len(q['items'])} of {q['total']} shown · " if q["total"] > len(q["items"]) else ""
    click.echo(f"{shown}{q['queue']['items']} items, {q['tokens']:,} tokens")


@data.command("show")
@click.argument("name")
@click.argument("item_id", type=int)
@click.option("--chars", "max_chars", type=int, default=2000, show_default=True, help="How much text to show.")
@click.option("--json", "as_json", is_flag=True)
@refusals
def data_show(name, item_id, max_chars, as_json):
    """Show item ITEM_ID of the queue of model NAME, with the start of its text."""
    e = _studio().queue.preview(name, item_id, max_chars)
    if as_json:
        _print_json(e)
        return
    for key in ("origin", "title", "source_kind", "imported_from", "byte_count", "token_count", "added_at"):
        if e.get(key) is not None:
            click.echo(f"{key:<12} {e[key]}")
    click.echo("")
    click.echo(e["text"] + ("\n…" if e["truncated"] else ""))


@data.command("stats")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@refusals
def data_stats(name, as_json):
    """Items and tokens of the queue of model NAME, per source."""
    st = _studio().queue.stats(name)
    if as_json:
        _print_json(st)
        return
    click.echo(f"{st['items']} items, {st['tokens']:,} tokens, {_human_bytes(st['byte_count'])} of text")
    for s in st["by_source"]:
        click.echo(f"  {s['source_kind']:<8} {s['items']:>6} items {s['tokens']:>14,} tokens")
    for s in st["imported_from"]:
        click.echo(f"  imported from {s['model_name'] or '(deleted model)'}: {s['items']} items, {s['tokens']:,} tokens")


@data.command("remove")
@click.argument("name")
@click.argument("item_ids", type=int, nargs=-1, required=True)
@refusals
def data_remove(name, item_ids):
    """Remove items ITEM_IDS from the queue of model NAME."""
    for e in _studio().queue.remove_many(name, list(item_ids)):
        click.echo(f"removed {e['origin']}")


@data.command("clear")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Confirm: remove every item.")
@refusals
def data_clear(name, yes):
    """Remove every item from the queue of model NAME (needs --yes)."""
    r = _studio().queue.clear(name, confirm=yes)
    click.echo(f"removed {r['removed']} items from the queue of {r['model_name']}")


@cli.command("export")
@click.argument("name")
@click.argument("target", type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(["hf", "gguf", "ollama"]), default="hf", show_default=True,
              help="hf: a Hugging Face GPT-2 folder; gguf: one file for llama.cpp, Ollama and LM Studio; "
                   "ollama: a folder with the GGUF and a Modelfile. Each gets a model card.")
@click.option("--dtype", type=click.Choice(["f32", "f16", "q8_0"]), default="f32", show_default=True,
              help="gguf and ollama: the matrices' type (f32 is exact; f16 and q8_0 are smaller).")
@click.option("--overwrite", is_flag=True, help="gguf: replace an existing file; ollama: a non-empty folder.")
@refusals
def export_cmd(name, target, fmt, dtype, overwrite):
    """Export model NAME to TARGET: a folder (hf, ollama), or a .gguf file or a folder (gguf)."""
    out = _studio().exports.export(name, fmt, os.path.abspath(target), dtype, overwrite)
    click.echo(f"exported {out['model_name']} to {out['path']}")
    for f in out["files"]:
        click.echo(f"  {f}")
    if out["checkpoint"] is not None:
        c = out["checkpoint"]
        busy = "; it is training now" if out["training"] else ""
        click.echo(f"from its checkpoint at step {c['step']:,} (epoch {c['epoch']}){busy}")
    click.echo(f"run it: {out['command']}")


@cli.command("import")
@click.argument("src", type=click.Path(exists=True, path_type=str))
@click.argument("name", required=False)
@refusals
def import_cmd(src, name):
    """Import SRC as a new model (named NAME or model_N): a Hugging Face GPT-2 folder, or a
    llama.cpp GPT-2 GGUF file (f32 or f16)."""
    models = _studio().models
    # A file can only be a GGUF; the reader checks its content, not its name.
    m = models.import_gguf(src, name) if os.path.isfile(src) else models.import_hf(src, name)
    click.echo(f"imported {m['model_name']} ({m['n_params']:,} parameters)")


@cli.command()
@click.argument("name")
@click.argument("prompt")
@click.option("--max-tokens", "max_new_tokens", type=int, default=BALANCED["max_new_tokens"], show_default=True)
@click.option("--temperature", type=float, default=BALANCED["temperature"], show_default=True)
@click.option("--top-k", "top_k", type=int, default=BALANCED["top_k"], show_default=True)
@click.option("--top-p", "top_p", type=float, default=BALANCED["top_p"], show_default=True)
@click.option("--repetition-penalty", "repetition_penalty", type=float, default=BALANCED["repetition_penalty"], show_default=True)
@click.option("--seed", type=int, default=None)
@refusals
def generate(name, prompt, **sampling):
    """Continue PROMPT with model NAME, streaming the text as it is made."""
    pieces = _studio().streams.write_here(name, prompt, sampling)  # refusals happen here, before any output
    click.echo(prompt, nl=False)
    try:
        for piece in pieces:
            click.echo(piece, nl=False)
    finally:
        click.echo("")


@cli.command(hidden=True)
@click.argument("job_id", type=int)
@click.option("--rank", type=int, default=None)
@click.option("--world", type=int, default=None)
@click.option("--address", default=None)
def worker(job_id, rank, world, address):
    """Run one background job, or one rank of a many-process one (started by the app; not for people)."""
    from cllm_app.jobs.worker import run_job, run_rank

    sys.exit(run_job(job_id) if rank is None else run_rank(job_id, rank, world, address))


@cli.command(hidden=True)
@click.argument("channels", type=int)
def generator(channels):
    """Generate the app's replies (started by the app; not for people)."""
    from cllm_app.services.generator_process import serve

    sys.exit(serve(channels))


class _BundleGroup(click.Group):
    """`cllm bundle NAME DIR` makes a bundle; `cllm bundle import DIR [NAME]` brings one back."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["make", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_BundleGroup)
def bundle():
    """Train a model outside the app: NAME DIR writes a training bundle (torchrun, any GPUs or
    machines, nothing of ours installed); `import DIR [NAME]` brings its training back."""


@bundle.command("make")
@click.argument("name")
@click.argument("folder", type=click.Path(file_okay=False, path_type=str))
@refusals
def bundle_make(name, folder):
    """Write model NAME's training bundle into FOLDER (new, or empty)."""
    out = _studio().bundles.export(name, os.path.abspath(folder))
    click.echo(f"wrote the training bundle of {out['model_name']} to {out['path']} ({out['documents']:,} documents, "
               f"{out['tokens']:,} tokens, from step {out['start_step']:,})")
    click.echo(f"train it: {out['path']}/launch.sh [--nproc N]   (see {out['path']}/README.md)")
    click.echo(f"bring it back: cllm bundle import {out['path']}")


@bundle.command("import")
@click.argument("folder", type=click.Path(file_okay=False, path_type=str))
@click.argument("name", required=False)
@refusals
def bundle_import(folder, name):
    """Bring the training of the bundle in FOLDER back into its model (NAME: the model's name now)."""
    out = _studio().bundles.import_(os.path.abspath(folder), name)
    got = out["imported"]
    click.echo(f"{out['model_name']}: steps {got['from_step']:,} to {got['to_step']:,} imported ({got['points']:,} "
               f"loss points; {got['processes']} process{'es' if got['processes'] > 1 else ''}, {got['device']}); "
               f"epoch {out['epochs_trained']} of {out['target_epochs']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def engines(as_json):
    """The engines that train here: built-in always; PyTorch with its devices where installed."""
    from cllm_app.services.engines import engines as listed

    found = listed()
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for e in found["engines"]:
        version = f" {e['version']}" if e.get("version") else ""
        click.echo(f"{e['name']:8} {e['label']}{version}: " + ("available" if e["available"] else e.get("reason", "unavailable")))
        for d in e["devices"] if e["name"] == "torch" else ():
            click.echo(f"           --device {d['name']:5} {d['label']}")


def _say_recipe(p: dict) -> None:
    """What the recipe chooser chose, and why, in a few lines."""
    parts = []
    if p["shape"]:
        s, t = p["shape"], p["tokenizer"]
        parts.append(f"{s['n_layer']} layers, {s['n_head']} heads, width {s['n_embd']}, context {s['block_size']}, "
                     f"{t['tokenizer']} tokenizer ({t['vocab_size']:,} tokens)")
    st = p["settings"]
    parts.append(f"batch {st['batch_size']} x {st['sequence_length']}, learning rate {st['learning_rate']:g}, "
                 f"warmup {st['warmup_steps']} steps")
    click.echo(f"recipe for {p['minutes']:g} minutes: " + "; ".join(parts))
    for line in p["why"]:
        click.echo(f"  - {line}")


@cli.command()
@click.argument("name")
@_training_options(more_flags={"target_epochs": "--epochs", "sequence_length": "--context"})
@click.option("--new-cycle", is_flag=True, help="The epochs still to train warm up to the peak learning rate "
              "again and decay to its floor (after raising a reached target, they go on at the floor otherwise).")
@click.option("--keep-shape", is_flag=True, help="With --minutes on a model that has not trained: keep its shape "
              "and tokenizer (the recipe chooser still sets batch, context and learning rate).")
@refusals
def train(name, new_cycle=False, keep_shape=False, **settings):
    """Train model NAME on its queue to its target epochs (or for --minutes); run it again to
    continue. --minutes on a model that has not trained applies the recipe chooser's proposal
    for that time (the other options given win over it)."""
    from cllm_app.jobs.train import run_training
    from cllm_app.jobs.worker import run_here

    studio = _studio()
    settings = {k: v for k, v in settings.items() if v is not None}
    if settings.get("minutes"):
        row = studio.models.get(name)
        if row.has_trained:
            p = studio.recipes.propose(name, settings["minutes"])
            chosen = ", ".join(f"{k} {v:g}" for k, v in p["settings"].items() if k != "minutes")
            click.echo(f"recipe for {p['minutes']:g} minutes (not applied: set with cllm models set): {chosen}")
        else:
            p = studio.recipes.apply(name, settings["minutes"], keep_shape=keep_shape)
            _say_recipe(p)
    job = studio.training.start(name, settings, foreground=True, new_cycle=new_cycle)
    click.echo(f"training {job['model_name']} (job #{job['id']}); Ctrl+C stops after a checkpoint")
    import signal

    def ask_to_stop(signum, frame):
        # The first Ctrl+C asks the trainer to checkpoint and stop; a second one aborts.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        studio.jobs.stop(job["id"])

    signal.signal(signal.SIGINT, ask_to_stop)
    printer = _ProgressPrinter(studio, job["id"])
    printer.start()
    try:
        state = run_here(studio, job["id"], run_training)
    finally:
        printer.stop()
    final = studio.jobs.get(job["id"])
    click.echo(f"error: {final['error']}" if final["error"] else final["message"] or state, err=bool(final["error"]))
    sys.exit(0 if state in ("done", "stopped") else EXIT_REFUSED)


@cli.command()
@click.argument("name")
@click.argument("urls", nargs=-1)
@click.option("--max-pages", "max_pages", type=int, help="Pages to request at most (default 100).")
@click.option("--depth", "max_depth", type=int, help="Links to follow from a start URL (default 2).")
@click.option("--rate", type=float, help="Requests per second per host; 0 turns the limit off (default 1).")
@click.option("--domain", "allowed_domains", multiple=True, help="An allowed domain (repeat); default: the start URLs' sites.")
@click.option("--max-bytes", "max_page_bytes", type=int, help="Largest page in bytes (default 2 MiB).")
@click.option("--user-agent", "user_agent", help="The User-Agent sent, and matched in robots.txt.")
@click.option("--timeout", type=float, help="Seconds to wait for a server (default 15).")
@click.option("--train-after", "train_after_tokens", type=int,
              help="Continuous mode: queue training once this many untrained tokens are in the queue.")
@click.option("--resume", "resume_id", type=int, help="Go on with crawl #ID from its frontier instead.")
@refusals
def crawl(name, urls, resume_id, **settings):
    """Crawl URLS into model NAME's training-data queue; Ctrl+C stops, --resume ID goes on."""
    import signal

    from cllm_app.jobs.crawl import run_crawl

    studio = _studio()
    if resume_id is not None:
        if urls or any(v not in (None, ()) for v in settings.values()):
            raise click.UsageError("--resume takes no URLs or settings: the crawl keeps its own")
        if studio.crawls.get(resume_id)["model_name"].casefold() != name.casefold():
            raise CllmError(f"crawl #{resume_id} is not a crawl of '{name}'")
        c = studio.crawls.resume(resume_id, foreground=True)
    else:
        if not urls:
            raise click.UsageError("give at least one URL to start from")
        body = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items() if v not in (None, ())}
        c = studio.crawls.start(name, {**body, "start_urls": list(urls)}, foreground=True)
    click.echo(f"crawling for {c['model_name']} (crawl #{c['id']}, job #{c['job_id']}); Ctrl+C stops")

    def ask_to_stop(signum, frame):
        # The first Ctrl+C ends the crawl after the page at hand; a second one aborts.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        studio.crawls.stop(c["id"])

    signal.signal(signal.SIGINT, ask_to_stop)
    printer = _ProgressPrinter(studio, c["job_id"], line=_crawl_line, every=0.5)
    printer.start()
    try:
        state = run_crawl(studio, c["job_id"])
    finally:
        printer.stop()
    final = studio.crawls.get(c["id"])
    error = studio.jobs.get(c["job_id"])["error"]
    click.echo(f"error: {error}" if error else final["message"] or state, err=bool(error))
    if final["resumable"]:
        import shlex

        click.echo(f"resume with: cllm crawl {shlex.quote(final['model_name'])} --resume {final['id']}")
    sys.exit(0 if state in ("done", "stopped") else EXIT_REFUSED)


def _crawl_line(d: dict) -> str:
    return (f"fetched {d['fetched']} · skipped {d['skipped']} · failed {d['failed']} · queued {d['queued']} · "
            f"{d['tokens']:,} tokens · {d['pages_per_sec']:.1f} pages/s")


class _ProgressPrinter:
    """Prints the job's progress line once a second, from the store like the window does."""

    def __init__(self, studio, job_id, line=None, every: float = 1.0):
        import threading

        self.studio, self.job_id = studio, job_id
        self.line, self.every = line, every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self._thread.start()

    def _loop(self):
        while not self._done.wait(self.every):
            d = self.studio.jobs.get(self.job_id)["detail"]
            if d and self.line:
                click.echo(f"\r{self.line(d)}   ", nl=False)
            elif d:
                eta = d.get("eta_seconds")
                eta_text = f" · ETA {int(eta // 60)}m{int(eta % 60):02d}s" if eta is not None else ""
                click.echo(
                    f"\rstep {d['step']}/{d['total_steps']} · epoch {d['epoch']:.2f}/{d['target_epochs']} · "
                    f"loss {d['train_loss']:.4f} · {d['tokens_per_sec']:,.0f} tok/s{eta_text}   ",
                    nl=False,
                )

    def stop(self):
        self._done.set()
        self._thread.join(timeout=2)
        d = self.studio.jobs.get(self.job_id)["detail"] if self.line else None
        click.echo(f"\r{self.line(d)}   " if d else "")


def main() -> None:
    cli(prog_name="cllm")
