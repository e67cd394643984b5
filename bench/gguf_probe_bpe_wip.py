import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from cllm_app.engine.bpe import BPETokenizer, train_bpe
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.gguf_export import write_gguf
from cllm_app.engine.torch_model import TorchGPT
from cllm_app.engine.weights import init_weights

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "tests"))
from bpe_support import corpus

tok = train_bpe(corpus(), 600)
tok = BPETokenizer.from_hf(tok)
cfg = GPTConfig(vocab_size=600, n_layer=2, n_head=2, n_embd=64, block_size=128)
rng = np.random.default_rng(0)
w = {k: v + rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in init_weights(cfg, seed=1).items()}
write_gguf(pathlib.Path("/tmp/b.gguf"), "b", cfg, w, "bpe", tok.json_text, "f32")
text = "The river runs, déjà vu à Paris 😀\n\tdef f(x):  return x**2 <|endoftext|> end  123 4567"
ids = [int(i) for i in tok.encode(text)]
from llama_cpp import Llama

llm = Llama(model_path="/tmp/b.gguf", n_ctx=128, n_threads=2, verbose=False, logits_all=True)
theirs = llm.tokenize(text.encode(), add_bos=False, special=False)
print("tokens equal:", theirs == ids, len(ids), len(theirs))
if theirs != ids:
    print(ids[:40]); print(theirs[:40])
m = TorchGPT(cfg); m.load(w)
ours = m(torch.tensor([ids]))[0][0].detach().numpy()
llm.reset(); llm.eval(ids)
print("max abs logit diff:", float(np.max(np.abs(np.array(llm.scores[: len(ids)]) - ours))))
i = next(k for k in range(min(len(ids), len(theirs))) if ids[k] != theirs[k])
print("first diff at", i, "ours", ids[i-2:i+12], "theirs", theirs[i-2:i+12])
print(repr(tok.decode(ids[i-2:i+12])), [tok.decode([t]) for t in theirs[i-2:i+12]])
