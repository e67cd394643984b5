"""Hugging Face GPT-2 layout: export a model so it can go on training with PyTorch on a bigger
machine, and import such a folder back.

Our tensors already have GPT-2's names and its Conv1D layout (in, out), so export is a
rename (`transformer.` in front) plus a `config.json` and tokenizer files that
`transformers` reads. The byte tokenizer becomes a byte-level BPE with no merges whose
ids are the byte values, and <|endoftext|> = 256. A BPE model's own tokenizer.json is
copied byte for byte (so an import gets the same fingerprint), with GPT-2's slow-tokenizer
files (vocab.json, merges.txt) beside it.
"""

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from cllm_app.engine.bpe import EOT_TEXT, BPETokenizer, TokenizerError, bytes_to_unicode
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.tokenizer import TOKENIZER_FILE
from cllm_app.engine.weights import save_weights
from cllm_app.fsutil import atomic_write_json

PREFIX = "transformer."


def _bytes_to_unicode() -> dict[int, str]:
    return bytes_to_unicode()


def byte_tokenizer_json() -> dict:
    vocab = {ch: b for b, ch in _bytes_to_unicode().items()}
    vocab[EOT_TEXT] = 256
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": 256, "content": EOT_TEXT, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": []},
    }


def _write_bpe_files(out_dir: Path, bpe: BPETokenizer, block_size: int) -> None:
    """tokenizer.json as the model keeps it, plus what GPT2Tokenizer (the slow one) reads."""
    from cllm_app.fsutil import atomic_write_bytes

    data = json.loads(bpe.json_text)
    atomic_write_bytes(out_dir / TOKENIZER_FILE, bpe.json_text.encode("utf-8"))
    atomic_write_json(out_dir / "vocab.json", data["model"]["vocab"])
    merges = [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in data["model"]["merges"]]
    atomic_write_bytes(out_dir / "merges.txt", ("#version: 0.2\n" + "".join(m + "\n" for m in merges)).encode("utf-8"))
    atomic_write_json(
        out_dir / "tokenizer_config.json",
        {"tokenizer_class": "GPT2Tokenizer", "bos_token": EOT_TEXT, "eos_token": EOT_TEXT, "unk_token": EOT_TEXT,
         "add_prefix_space": False, "model_max_length": block_size, "clean_up_tokenization_spaces": False},
    )
    atomic_write_json(
        out_dir / "special_tokens_map.json", {"bos_token": EOT_TEXT, "eos_token": EOT_TEXT, "unk_token": EOT_TEXT}
    )


def export_hf(
    cfg: GPTConfig, weights: dict[str, np.ndarray], out_dir: Path, tokenizer: str = "byte",
    bpe: BPETokenizer | None = None,
) -> Path:
    """Write the GPT-2 folder; a BPE model passes its loaded tokenizer as `bpe`."""
    if tokenizer not in ("byte", "bpe") or (tokenizer == "bpe") != (bpe is not None):
        raise ValueError(f"export of the '{tokenizer}' tokenizer needs its tokenizer (bpe=...)")
    eot = bpe.eot if bpe is not None else 256
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_weights(out_dir / "model.safetensors", {PREFIX + k: v for k, v in weights.items()})
    atomic_write_json(
        out_dir / "config.json",
        {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": cfg.vocab_size,
            "n_positions": cfg.block_size,
            "n_ctx": cfg.block_size,
            "n_embd": cfg.n_embd,
            "n_layer": cfg.n_layer,
            "n_head": cfg.n_head,
            "n_inner": None,
            "activation_function": "gelu_new",  # the tanh approximation, as we train with
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "layer_norm_epsilon": 1e-5,
            "initializer_range": 0.02,
            "bos_token_id": eot,
            "eos_token_id": eot,
            "tie_word_embeddings": True,
            "torch_dtype": "float32",
        },
    )
    if bpe is not None:
        _write_bpe_files(out_dir, bpe, cfg.block_size)
        return out_dir
    atomic_write_json(out_dir / TOKENIZER_FILE, byte_tokenizer_json())
    atomic_write_json(
        out_dir / "tokenizer_config.json",
        {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": EOT_TEXT, "eos_token": EOT_TEXT,
         "model_max_length": cfg.block_size, "clean_up_tokenization_spaces": False},
    )
    atomic_write_json(out_dir / "special_tokens_map.json", {"bos_token": EOT_TEXT, "eos_token": EOT_TEXT})
    return out_dir


class ImportRefused(ValueError):
    pass


def import_hf(src: Path) -> tuple[GPTConfig, dict[str, np.ndarray], BPETokenizer | None]:
    """Read a GPT-2 folder: (config, weights, its BPE tokenizer or None for the byte tokenizer).

    A vocabulary of 257 is our byte tokenizer; any other size needs a byte-level BPE
    tokenizer.json of that size (ours, or GPT-2's own)."""
    src = Path(src)
    try:
        conf = json.loads((src / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ImportRefused(f"{src} has no readable config.json ({e})") from None
    if conf.get("model_type") != "gpt2":
        raise ImportRefused(f"{src} holds a '{conf.get('model_type')}' model; only GPT-2 models can be imported")
    if conf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ImportRefused(f"{src} uses {conf['activation_function']}; only the tanh GELU of GPT-2 is supported")
    bpe = None
    if conf.get("vocab_size") != 257:
        try:
            bpe = BPETokenizer.from_file(src / TOKENIZER_FILE)
        except TokenizerError as e:
            raise ImportRefused(
                f"{src} has a vocabulary of {conf.get('vocab_size')} tokens but no usable byte-level BPE "
                f"tokenizer.json: {e}"
            ) from None
        if bpe.vocab_size != conf.get("vocab_size"):
            raise ImportRefused(
                f"{src}: config.json says {conf.get('vocab_size')} tokens, its tokenizer.json has {bpe.vocab_size}"
            )
    cfg = GPTConfig(
        vocab_size=conf["vocab_size"], n_layer=conf["n_layer"], n_head=conf["n_head"],
        n_embd=conf["n_embd"], block_size=conf["n_positions"],
    )
    path = src / "model.safetensors"
    if not path.exists():
        raise ImportRefused(f"{src} has no model.safetensors")
    try:
        raw = load_file(str(path))
    except Exception as e:  # safetensors raises its own error type for a damaged file
        raise ImportRefused(f"{path} cannot be read as safetensors ({e})") from None
    weights = {(k[len(PREFIX):] if k.startswith(PREFIX) else k): v.astype(np.float32) for k, v in raw.items()}
    weights.pop("lm_head.weight", None)  # tied to wte
    from cllm_app.engine.model import param_shapes

    expected = dict(param_shapes(cfg))
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ImportRefused(f"{src} lacks {len(missing)} tensors, e.g. {missing[0]}")
    for name, shape in expected.items():
        if weights[name].shape != shape:
            raise ImportRefused(f"{name} has shape {weights[name].shape}; the config says {shape}")
    return cfg, {k: weights[k] for k in expected}, bpe
