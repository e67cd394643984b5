"""Where the Research tab gets a model's weights, tokenizer and training documents.

A model's queue as token documents comes from the Training service (`Training.documents`),
the reader training itself uses, so "the validation split" here is exactly training's.
"""


import numpy as np

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.tokenizer import Tokenizer, load_tokenizer
from cllm_app.engine.weights import load_weights
from cllm_app.errors import InvalidInput
from cllm_app.services.models import served_weights
from cllm_app.store import LanguageModel


def model_parts(models, row: LanguageModel) -> tuple[GPTConfig, dict[str, np.ndarray], Tokenizer]:
    """The model's shape, weights (the latest, or the best where it says so) and tokenizer."""
    folder = models.folder(row)
    path = served_weights(folder, row)
    if not path.exists():
        raise InvalidInput(f"'{row.model_name}' has no weights file at {path}", code="no_weights")
    cfg = GPTConfig.load(folder / "config.json")
    return cfg, load_weights(path), load_tokenizer(folder, row.tokenizer)


def retokenize(tokens: np.ndarray, source: Tokenizer, target: Tokenizer) -> np.ndarray:
    """Another model's tokens in this model's tokenizer (unchanged when the mapping is the same)."""
    if source.fingerprint == target.fingerprint:
        return np.asarray(tokens)
    return target.encode(source.decode(tokens))


def text_bytes(tok: Tokenizer, tokens: np.ndarray) -> int:
    """UTF-8 bytes the tokens stand for (<|endoftext|> stands for none). Counted token by token:
    a window may end inside a character a byte-level BPE split over two tokens, and decoding
    that part alone would count a replacement character instead of its bytes."""
    tokens = np.asarray(tokens)
    if tok.kind == "byte":
        return int(np.count_nonzero(tokens < 256))
    lengths = getattr(tok, "_byte_lengths", None)
    if lengths is None:
        lengths = np.array([len(tok.token_bytes(i)) for i in range(tok.vocab_size)], np.int64)
        tok._byte_lengths = lengths
    return int(lengths[tokens].sum())
