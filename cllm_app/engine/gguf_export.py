"""GGUF for llama.cpp, Ollama and LM Studio: our GPT as llama.cpp's `gpt2` architecture, with
its tokenizer (byte-level or our BPE) as llama.cpp's `gpt2` BPE tokenizer, written with the
`gguf` package llama.cpp maintains. tests/test_gguf.py loads every kind of export in llama.cpp
and checks that it agrees with us.

Our matrices are stored (in, out) as GPT-2's Conv1D; llama.cpp's gpt2 reads (out, in), so
each block matrix is transposed. The head is tied to the token embedding: llama.cpp's
converter writes GPT-2's `output.weight` as a copy of it, and so do we.

Which tensors take the file's dtype follows llama.cpp's own converter (convert_hf_to_gguf.py):
norms, biases and the position embedding stay f32; the other matrices (blocks, token
embedding, output) are f16 or q8_0. q8_0 packs 32 values of a row per block, so a matrix whose
rows are not whole blocks falls back to f16, as the converter's does.
"""

import json
from collections.abc import Callable, Iterator
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
KEEP_F32 = ("position_embd.weight",)  # llama.cpp's converter never quantizes it


def gguf_tensors(cfg: GPTConfig, weights: dict[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """(llama.cpp name, f32 array in llama.cpp's (out, in) layout), the embeddings first, then
    block by block, then the final norm and the tied output. Transposes lazily, one at a time."""
    yield TOP["wte.weight"], weights["wte.weight"]
    yield TOP["wpe.weight"], weights["wpe.weight"]
    for i in range(cfg.n_layer):
        for ours, theirs in BLOCK.items():
            value = weights[f"h.{i}.{ours}"]
            yield f"blk.{i}.{theirs}", value.T if value.ndim == 2 else value
    yield TOP["ln_f.weight"], weights["ln_f.weight"]
    yield TOP["ln_f.bias"], weights["ln_f.bias"]
    yield "output.weight", weights["wte.weight"]


def tensor_type(name: str, shape: tuple[int, ...], dtype: str):
    """The GGML type `name` is stored as in a `dtype` file (see the module docstring)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    if len(shape) < 2 or name in KEEP_F32 or dtype == "f32":
        return GGMLQuantizationType.F32
    if dtype == "q8_0" and shape[-1] % GGML_QUANT_SIZES[GGMLQuantizationType.Q8_0][0] == 0:
        return GGMLQuantizationType.Q8_0
    return GGMLQuantizationType.F16


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
               bpe_json: str | None, dtype: str = "f32",
               progress: Callable[[int, int], None] | None = None) -> None:
    """Write model `name` to `path` as a `dtype` GGUF (one of DTYPES). The tensors are
    converted one at a time as they are written, so memory holds one extra tensor at most;
    `progress(done_bytes, total_bytes)` is called after each."""
    import gguf

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    writer = gguf.GGUFWriter(str(path), ARCH)
    writer.add_name(name)
    writer.add_context_length(cfg.block_size)
    writer.add_embedding_length(cfg.n_embd)
    writer.add_feed_forward_length(4 * cfg.n_embd)
    writer.add_block_count(cfg.n_layer)
    writer.add_head_count(cfg.n_head)
    writer.add_layer_norm_eps(LAYERNORM_EPS)
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types, merges, eot = tokenizer_tables(kind, bpe_json)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZER)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # The byte tokenizer has no merges, but llama.cpp wants the key and gguf writes no empty
    # array: one merge of two NUL bytes, whose result is no token, so llama.cpp splits it back
    # into its bytes and the tokens stay the bytes (tests/test_gguf.py checks it).
    nul = bytes_to_unicode()[0]
    writer.add_token_merges(merges or [f"{nul} {nul}"])
    writer.add_bos_token_id(eot)
    writer.add_eos_token_id(eot)
    writer.add_add_bos_token(False)

    # The header lists every tensor's type and size before the data: plan them, then write.
    plan = []
    for tname, value in gguf_tensors(cfg, weights):
        qtype = tensor_type(tname, value.shape, dtype)
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = value.size // block * type_size
        writer.add_tensor_info(tname, value.shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
        plan.append(nbytes)
    total, done = sum(plan), 0
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for (tname, value), nbytes in zip(gguf_tensors(cfg, weights), plan, strict=True):
        qtype = tensor_type(tname, value.shape, dtype)
        writer.write_tensor_data(gguf.quants.quantize(np.ascontiguousarray(value, np.float32), qtype))
        done += nbytes
        if progress is not None:
            progress(done, total)
    writer.close()
