"""Sampling settings and their checks (the LLM tab, /v1/ and the CLI share them), and generation for
the command line: load a model's latest weights (read-only, even while it trains) and stream text."""

from collections.abc import Callable, Iterator

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.generate import Generator, Sampling
from cllm_app.engine.kernel_choice import decode_kernel
from cllm_app.engine.model import FlatTensors
from cllm_app.engine.tokenizer import load_tokenizer
from cllm_app.engine.weights import load_weights
from cllm_app.errors import InvalidInput
from cllm_app.services.models import CONFIG_FILE, WEIGHTS_FILE
from cllm_app.services.validate import as_float, as_int

# The range of each sampling setting (None keeps the default): check_sampling and the API's
# description (api/openapi.py) read this table. top_p must be more than 0. Tests raise
# max_new_tokens' bound to make a stream that cannot end by itself.
SAMPLING_LIMITS = {
    "temperature": (0.0, 5.0),
    "top_k": (0, 1_000_000),
    "top_p": (0.0, 1.0),
    "repetition_penalty": (1.0, 10.0),
    "max_new_tokens": (1, 100_000),
    "seed": (0, 2**63 - 1),
}
SAMPLING_FLOATS = ("temperature", "top_p", "repetition_penalty")


def check_sampling(values: dict) -> Sampling:
    s = Sampling()
    for field, value in values.items():
        if value is None:
            continue
        if field in SAMPLING_FLOATS:
            setattr(s, field, as_float(field, value, *SAMPLING_LIMITS[field], lo_open=field == "top_p"))
        elif field in SAMPLING_LIMITS:
            setattr(s, field, as_int(field, value, *SAMPLING_LIMITS[field]))
        else:
            raise InvalidInput(f"unknown sampling setting '{field}'", code="unknown_field")
    return s


def load_generator(studio, model_name: str) -> Generator:
    row = studio.models.get(model_name)
    folder = studio.models.folder(row)
    cfg = GPTConfig.load(folder / CONFIG_FILE)
    params = FlatTensors(cfg)
    params.load(load_weights(folder / WEIGHTS_FILE))
    step, _ = decode_kernel(cfg, params)
    return Generator(cfg, params, load_tokenizer(folder, row.tokenizer), step, context=row.sequence_length)


def generate(studio, model_name: str, prompt: str, sampling: dict, should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
    if not isinstance(prompt, str):
        raise InvalidInput("prompt must be text", code="invalid_prompt")
    s = check_sampling(sampling)
    return load_generator(studio, model_name).text(prompt, s, should_stop)
