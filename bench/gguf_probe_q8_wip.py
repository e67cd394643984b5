import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.gguf_export import write_gguf
from cllm_app.engine.torch_model import TorchGPT
from cllm_app.engine.weights import init_weights

cfg = GPTConfig(vocab_size=257, n_layer=3, n_head=4, n_embd=128, block_size=128)
rng = np.random.default_rng(0)
w = {k: v + rng.normal(0, 0.2, v.shape).astype(np.float32) for k, v in init_weights(cfg, seed=1).items()}
ids = list(b"Once upon a time")
m = TorchGPT(cfg); m.load(w)
ours = m(torch.tensor([ids]))[0][0].detach().numpy()
from llama_cpp import Llama

for dtype in ("f32", "q8_0"):
    write_gguf(pathlib.Path(f"/tmp/q-{dtype}.gguf"), "q", cfg, w, "byte", None, dtype)
    llm = Llama(model_path=f"/tmp/q-{dtype}.gguf", n_ctx=128, n_threads=2, verbose=False, logits_all=True)
    llm.eval(ids)
    got = np.array(llm.scores[: len(ids)])
    print(dtype, "max abs diff", float(np.max(np.abs(got - ours))), "logit spread", float(ours.std()),
          "argmax agree", float(np.mean(got.argmax(-1) == ours.argmax(-1))))
