import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
import os

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.gguf_export import write_gguf
from cllm_app.engine.tokenizer import tokenizer_for
from cllm_app.engine.torch_model import TorchGPT
from cllm_app.engine.weights import init_weights

cfg = GPTConfig(vocab_size=257, n_layer=3, n_head=4, n_embd=int(os.environ.get("EMBD", "128")), block_size=128)
rng = np.random.default_rng(0)
w = {k: v + rng.normal(0, 0.2, v.shape).astype(np.float32) for k, v in init_weights(cfg, seed=1).items()}
tok = tokenizer_for("byte")
ids = [int(i) for i in tok.encode("Once upon a time")]
m = TorchGPT(cfg); m.load(w)
seq = list(ids)
with torch.no_grad():
    for _ in range(50):
        seq.append(int(m(torch.tensor([seq]))[0][0, -1].argmax()))
ours = seq[len(ids):]
from llama_cpp import Llama

DTYPES = sys.argv[1:] or ("f32", "f16", "q8_0")
for dtype in DTYPES:
    write_gguf(pathlib.Path(f"/tmp/g-{dtype}.gguf"), "g", cfg, w, "byte", None, dtype)
    llm = Llama(model_path=f"/tmp/g-{dtype}.gguf", n_ctx=128, n_threads=2, verbose=False)
    theirs = []
    for t in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0):
        theirs.append(t)
        if len(theirs) == 50: break
    agree = next((k for k in range(50) if ours[k] != theirs[k]), 50)
    print(dtype, "greedy tokens agree for", agree, "of 50")
