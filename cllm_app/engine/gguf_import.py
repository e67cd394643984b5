"""Import a llama.cpp `gpt2` GGUF (f32 or f16) as one of our models: gguf_export.py backwards,
read with the `gguf` package's GGUFReader.

Tensors get our names back and the Conv1D matrices their (in, out) layout. Our head is tied
to the token embedding, so `output.weight` may be absent (llama.cpp then ties it too) or equal
to `token_embd.weight`; a separate head is refused, since dropping it would change the model.
The tokenizer comes back as our byte tokenizer when the vocabulary is exactly the 256 bytes
and <|endoftext|> (merges cannot make a token outside the vocabulary, so whatever merges the
file lists change nothing), else as a byte-level BPE tokenizer.json written the way our
trainer writes one, so a model we exported comes back with the same tokenizer file.
"""

from pathlib import Path

import numpy as np

from cllm_app.engine.bpe import EOT_TEXT, BPETokenizer, TokenizerError, bytes_to_unicode
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.gguf_export import ARCH, BLOCK, LAYERNORM_EPS, PRE_TOKENIZER, TOKEN_NORMAL, TOP
from cllm_app.engine.hf import ImportRefused
from cllm_app.engine.model import param_shapes

HEAD = "output.weight"


def read_gguf(path: Path) -> tuple[GPTConfig, dict[str, np.ndarray], BPETokenizer | None]:
    """(config, weights in our names and layouts as float32, BPE tokenizer or None for the
    byte tokenizer); ImportRefused says in words why a file cannot be imported."""
    import gguf

    path = Path(path)
    reader = _open(path)
    arch = _string(reader, gguf.Keys.General.ARCHITECTURE, path)
    if arch != ARCH:
        raise ImportRefused(f"{path.name} holds a '{arch}' model; only GPT-2 models (llama.cpp's '{ARCH}') can be imported")
    tensors = {t.name: t for t in reader.tensors}
    for t in reader.tensors:
        if t.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            raise ImportRefused(
                f"{path.name} holds {t.tensor_type.name.lower()} tensors (e.g. {t.name}); "
                "only f32 and f16 GGUF files can be imported"
            )
    tokens = _strings(reader, gguf.Keys.Tokenizer.LIST, path)
    cfg = _config(reader, path, len(tokens), len(tensors))
    bpe = _tokenizer(reader, path, tokens)
    return cfg, _weights(tensors, cfg, path), bpe


def _open(path: Path):
    import gguf

    if not path.is_file():
        raise ImportRefused(f"{path} is not a file")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ImportRefused(f"{path.name} is not a GGUF file")
    try:
        return gguf.GGUFReader(path)
    except Exception as e:  # a damaged or cut-short file fails anywhere inside the reader
        raise ImportRefused(f"{path.name} is a damaged or cut-short GGUF file ({type(e).__name__}: {e})") from None


def _field(reader, key: str, path: Path, required: bool = True):
    field = reader.get_field(key)
    if field is None:
        if required:
            raise ImportRefused(f"{path.name} lacks the key {key}, which a GPT-2 GGUF needs")
        return None
    return field


def _int(reader, key: str, path: Path, required: bool = True) -> int | None:
    field = _field(reader, key, path, required)
    if field is None:
        return None
    value = field.contents()
    if isinstance(value, bool) or not isinstance(value, int):
        raise ImportRefused(f"{path.name}: {key} is {value!r}, not a whole number")
    return value


def _string(reader, key: str, path: Path, required: bool = True) -> str | None:
    field = _field(reader, key, path, required)
    if field is None:
        return None
    value = field.contents()
    if not isinstance(value, str):
        raise ImportRefused(f"{path.name}: {key} is {value!r}, not text")
    return value


def _strings(reader, key: str, path: Path, required: bool = True) -> list[str]:
    import gguf

    field = _field(reader, key, path, required)
    if field is None:
        return []
    if field.types != [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING]:
        raise ImportRefused(f"{path.name}: {key} is not a list of text")
    return field.contents()


def _config(reader, path: Path, vocab_size: int, n_tensors: int) -> GPTConfig:
    import gguf

    def key(k: str) -> str:
        return k.format(arch=ARCH)

    n_embd = _int(reader, key(gguf.Keys.LLM.EMBEDDING_LENGTH), path)
    n_head = _int(reader, key(gguf.Keys.Attention.HEAD_COUNT), path)
    cfg = GPTConfig(
        vocab_size=vocab_size, n_layer=_int(reader, key(gguf.Keys.LLM.BLOCK_COUNT), path), n_head=n_head,
        n_embd=n_embd, block_size=_int(reader, key(gguf.Keys.LLM.CONTEXT_LENGTH), path),
    )
    # Ours are GPT-2's fixed choices; a file that made others holds a different network.
    n_ff = _int(reader, key(gguf.Keys.LLM.FEED_FORWARD_LENGTH), path, required=False)
    if n_ff is not None and n_ff != 4 * n_embd:
        raise ImportRefused(f"{path.name} has a feed-forward width of {n_ff}; this app's models use 4 x n_embd ({4 * n_embd})")
    n_kv = _int(reader, key(gguf.Keys.Attention.HEAD_COUNT_KV), path, required=False)
    if n_kv is not None and n_kv != n_head:
        raise ImportRefused(f"{path.name} shares {n_kv} key/value heads among {n_head} heads; this app's attention does not")
    eps = _field(reader, key(gguf.Keys.Attention.LAYERNORM_EPS), path).contents()
    if not isinstance(eps, float) or np.float32(eps) != np.float32(LAYERNORM_EPS):
        raise ImportRefused(f"{path.name} uses a LayerNorm epsilon of {eps!r}; this app's models use {LAYERNORM_EPS}")
    if not 0 <= cfg.n_layer <= n_tensors:  # checked before param_shapes lists that many layers
        raise ImportRefused(f"{path.name} says it has {cfg.n_layer} blocks but holds only {n_tensors} tensors")
    return cfg


def _tokenizer(reader, path: Path, tokens: list[str]) -> BPETokenizer | None:
    import gguf

    model = _string(reader, gguf.Keys.Tokenizer.MODEL, path)
    if model != "gpt2":
        raise ImportRefused(f"{path.name} has a '{model}' tokenizer; only GPT-2's byte-level BPE ('gpt2') can be imported")
    if EOT_TEXT not in tokens:
        raise ImportRefused(f"{path.name}'s vocabulary has no {EOT_TEXT}, which this app's models end documents with")
    eot = tokens.index(EOT_TEXT)
    eos = _int(reader, gguf.Keys.Tokenizer.EOS_ID, path, required=False)
    if eos is not None and eos != eot:
        raise ImportRefused(f"{path.name} ends text with token {eos}, not {EOT_TEXT} ({eot})")
    types = _int_list(reader, gguf.Keys.Tokenizer.TOKEN_TYPE, path)
    if types is not None:
        if len(types) != len(tokens):
            raise ImportRefused(f"{path.name} has {len(tokens)} tokens but {len(types)} token types")
        special = [tokens[i] for i, t in enumerate(types) if t != TOKEN_NORMAL and i != eot]
        if special:
            raise ImportRefused(f"{path.name} has special tokens other than {EOT_TEXT} (e.g. {special[0]!r}); "
                                "this app's tokenizers have only that one")
    chars = bytes_to_unicode()
    if tokens == [chars[b] for b in range(256)] + [EOT_TEXT]:
        return None
    pre = _string(reader, gguf.Keys.Tokenizer.PRE, path, required=False)
    if pre not in (None, PRE_TOKENIZER):
        raise ImportRefused(f"{path.name} splits text with llama.cpp's '{pre}' pre-tokenizer; this app's BPE splits as GPT-2 does")
    try:
        return BPETokenizer(bpe_json(tokens, _strings(reader, gguf.Keys.Tokenizer.MERGES, path, required=False)))
    except TokenizerError as e:
        raise ImportRefused(f"{path.name}'s tokenizer cannot be used: {e}") from None


def _int_list(reader, key: str, path: Path) -> list[int] | None:
    field = reader.get_field(key)
    if field is None:
        return None
    values = field.contents()
    if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
        raise ImportRefused(f"{path.name}: {key} is not a list of whole numbers")
    return values


def bpe_json(tokens: list[str], merges: list[str]) -> str:
    """A byte-level BPE tokenizer.json as our trainer (bpe.train_bpe) writes it."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    if len(set(tokens)) != len(tokens):
        raise TokenizerError("a token appears twice in its vocabulary")
    vocab = {t: i for i, t in enumerate(tokens)}
    try:
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges]))
    except Exception as e:  # tokenizers raises a bare Exception, e.g. for a merge of unknown tokens
        raise TokenizerError(f"its merges do not fit its vocabulary ({e})") from None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(EOT_TEXT, special=True, normalized=False)])
    return tok.to_str()


def _weights(tensors: dict, cfg: GPTConfig, path: Path) -> dict[str, np.ndarray]:
    names = {}  # ours -> (theirs, the shape theirs must have)
    for ours, shape in param_shapes(cfg):
        if ours.startswith("h."):
            layer, rest = ours[2:].split(".", 1)
            names[ours] = (f"blk.{layer}.{BLOCK[rest]}", shape[::-1])  # a vector reversed is itself
        else:
            names[ours] = (TOP[ours], shape)
    known = {theirs for theirs, _ in names.values()} | {HEAD}
    missing = sorted({theirs for theirs, _ in names.values()} - tensors.keys())
    if missing:
        raise ImportRefused(f"{path.name} lacks {len(missing)} tensors a model of its shape needs, e.g. {missing[0]}")
    unknown = sorted(tensors.keys() - known)
    if unknown:
        raise ImportRefused(f"{path.name} holds tensors a GPT-2 of its shape does not have, e.g. {unknown[0]}")
    rows = tensors[TOP["wte.weight"]].data.shape[0]
    if rows != cfg.vocab_size:
        raise ImportRefused(f"{path.name} has {cfg.vocab_size} tokens but {rows} rows in its token embedding")
    weights = {}
    for ours, (theirs, shape) in names.items():
        data = tensors[theirs].data
        if data.shape != shape:
            raise ImportRefused(f"{theirs} has shape {data.shape}; a model of this shape needs {shape}")
        value = data.astype(np.float32)
        weights[ours] = np.ascontiguousarray(value.T) if ours.startswith("h.") else value  # Conv1D: (in, out)
    head = tensors.get(HEAD)
    if head is not None and not (head.data.shape == weights["wte.weight"].shape
                                 and np.array_equal(head.data.astype(np.float32), weights["wte.weight"], equal_nan=True)):
        raise ImportRefused(
            f"{path.name} has an output head ({HEAD}) of its own, not tied to the token embedding; "
            "this app's models tie the two, so it cannot hold this model"
        )
    return weights
