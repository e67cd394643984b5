import sys

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.gguf_export import write_gguf
from cllm_app.engine.tokenizer import tokenizer_for
from cllm_app.engine.torch_model import TorchGPT
from cllm_app.engine.weights import init_weights

cfg = GPTConfig(vocab_size=257, n_layer=2, n_head=2, n_embd=64, block_size=64)
rng = np.random.default_rng(0)
w = {k: v + rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in init_weights(cfg, seed=1).items()}
write_gguf(__import__("pathlib").Path("/tmp/t.gguf"), "t", cfg, w, "byte", None, "f32")
tok = tokenizer_for("byte")
text = "Hello, wörld! 😀 def f(x): return x"
ids = [int(i) for i in tok.encode(text)]
from llama_cpp import Llama

llm = Llama(model_path="/tmp/t.gguf", n_ctx=64, n_threads=2, verbose=False, logits_all=True)
theirs = llm.tokenize(text.encode(), add_bos=False, special=True)
print("tokens equal:", theirs == ids, len(ids), len(theirs))
m = TorchGPT(cfg); m.load(w)
ours = m(torch.tensor([ids]))[0][0].detach().numpy()
llm.reset(); llm.eval(ids)
got = np.array(llm.scores[: len(ids)])
print("max abs logit diff:", float(np.max(np.abs(got - ours))))
