"""GGUF for llama.cpp, Ollama and LM Studio: our GPT as llama.cpp's `gpt2` architecture, with
its tokenizer (byte-level or our BPE) as llama.cpp's `gpt2` BPE tokenizer, written with the
`gguf` package llama.cpp maintains.

Our matrices are stored (in, out) as GPT-2's Conv1D; llama.cpp's gpt2 reads (out, in), so
each is transposed. The head is tied to the token embedding: llama.cpp's gpt2 takes
`output.weight`, so the embedding is written there too.

Work in progress (issue 14): f32 and f16 only; q8_0 and import come next.
"""

import json
from pathlib import Path

import numpy as np

from cllm_app.engine.bpe import EOT_TEXT, bytes_to_unicode
from cllm_app.engine.config import GPTConfig

LAYERNORM_EPS = 1e-5
DTYPES = ("f32", "f16", "q8_0")
ARCH = "gpt2"
# llama.cpp's pre-tokenizer name for GPT-2's split (our BPE's pre-tokenization; the byte
# tokenizer has no merges, so any split gives the same bytes)
PRE_TOKENIZER = "gpt-2"
TOKEN_NORMAL, TOKEN_CONTROL = 1, 3

# our name (after h.{i}.) -> llama.cpp's gpt2 tensor name (after blk.{i}.)
BLOCK = {
    "ln_1.weight": "attn_norm.weight", "ln_1.bias": "attn_norm.bias",
    "attn.c_attn.weight": "attn_qkv.weight", "attn.c_attn.bias": "attn_qkv.bias",
    "attn.c_proj.weight": "attn_output.weight", "attn.c_proj.bias": "attn_output.bias",
    "ln_2.weight": "ffn_norm.weight", "ln_2.bias": "ffn_norm.bias",
    "mlp.c_fc.weight": "ffn_up.weight", "mlp.c_fc.bias": "ffn_up.bias",
    "mlp.c_proj.weight": "ffn_down.weight", "mlp.c_proj.bias": "ffn_down.bias",
}
TOP = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
       "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias"}


def gguf_tensors(cfg: GPTConfig, weights: dict[str, np.ndarray], dtype: str = "f32") -> dict[str, np.ndarray]:
    """llama.cpp's names and layouts; matrices in `dtype` (f32 or f16), vectors in f32."""
    out = {}
    for name, value in weights.items():
        if name.startswith("h."):
            layer, rest = name[2:].split(".", 1)
            target = f"blk.{layer}.{BLOCK[rest]}"
        else:
            target = TOP[name]
        value = np.asarray(value, np.float32)
        if value.ndim == 2 and rest_is_conv1d(name):
            value = value.T
        out[target] = np.ascontiguousarray(value.astype(np.float16) if dtype == "f16" and value.ndim == 2 else value)
    out["output.weight"] = out["token_embd.weight"]
    return out


def rest_is_conv1d(name: str) -> bool:
    return name.startswith("h.") and name.endswith(".weight") and ("c_attn" in name or "c_proj" in name or "c_fc" in name)


def tokenizer_tables(kind: str, bpe_json: str | None) -> tuple[list[str], list[int], list[str], int]:
    """(tokens, token types, merges, eot id) in GPT-2's byte-to-unicode spelling."""
    if kind == "byte":
        chars = bytes_to_unicode()
        tokens = [chars[b] for b in range(256)] + [EOT_TEXT]
        return tokens, [TOKEN_NORMAL] * 256 + [TOKEN_CONTROL], [], 256
    data = json.loads(bpe_json)
    vocab = data["model"]["vocab"]
    for added in data.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    tokens = [""] * len(vocab)
    for text, i in vocab.items():
        tokens[i] = text
    merges = [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in data["model"]["merges"]]
    eot = vocab[EOT_TEXT]
    types = [TOKEN_CONTROL if i == eot else TOKEN_NORMAL for i in range(len(tokens))]
    return tokens, types, merges, eot


def write_gguf(path: Path, name: str, cfg: GPTConfig, weights: dict[str, np.ndarray], kind: str,
               bpe_json: str | None, dtype: str = "f32") -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), ARCH)
    writer.add_name(name)
    writer.add_context_length(cfg.block_size)
    writer.add_embedding_length(cfg.n_embd)
    writer.add_feed_forward_length(4 * cfg.n_embd)
    writer.add_block_count(cfg.n_layer)
    writer.add_head_count(cfg.n_head)
    writer.add_layer_norm_eps(LAYERNORM_EPS)
    writer.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}.get(
        dtype, gguf.LlamaFileType.ALL_F32))
    tokens, types, merges, eot = tokenizer_tables(kind, bpe_json)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZER)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # The byte tokenizer has no merges, but llama.cpp wants the key and gguf writes no empty
    # array: one merge of two NUL bytes, whose result is no token, so llama.cpp splits it back
    # into its bytes and the tokens stay the bytes (checked against llama.cpp).
    writer.add_token_merges(merges or [f"{bytes_to_unicode()[0]} {bytes_to_unicode()[0]}"])
    writer.add_bos_token_id(eot)
    writer.add_eos_token_id(eot)
    writer.add_add_bos_token(False)
    for tname, value in gguf_tensors(cfg, weights, "f32" if dtype == "q8_0" else dtype).items():
        if dtype == "q8_0" and tname.startswith("blk.") and value.ndim == 2 and value.shape[1] % 32 == 0:
            # q8_0 blocks hold 32 values of a row: rows of another length stay f32
            packed = gguf.quants.quantize(value, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(tname, packed, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(tname, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def modelfile(gguf_name: str, sampling: dict) -> str:
    """An Ollama Modelfile for the GGUF beside it: the app's chat turns (services/chat.py) as
    its TEMPLATE, its stops, and the model's sampling settings from the LLM tab."""
    lines = [
        f"FROM ./{gguf_name}",
        'TEMPLATE """{{- if .System }}System: {{ .System }}\n{{ end }}'
        '{{- range .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n'
        '{{ else if eq .Role "assistant" }}Assistant: {{ .Content }}\n{{ end }}{{ end }}Assistant: """',
        f'PARAMETER stop "{EOT_TEXT}"',
        'PARAMETER stop "\\nUser:"',
    ]
    names = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
             "repetition_penalty": "repeat_penalty", "max_new_tokens": "num_predict", "seed": "seed"}
    for ours, theirs in names.items():
        if sampling.get(ours) is not None:
            lines.append(f"PARAMETER {theirs} {sampling[ours]}")
    return "\n".join(lines) + "\n"
