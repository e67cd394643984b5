"""Sampling settings and their checks: the LLM tab, /v1/ and the CLI share them."""


from cllm_app.engine.generate import Sampling
from cllm_app.errors import InvalidInput
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

# The LLM tab's presets; Balanced is also what `cllm generate` uses unless told otherwise.
PRESETS = {
    "Precise": {"temperature": 0.2, "top_k": 10, "top_p": 0.9, "repetition_penalty": 1.15, "max_new_tokens": 200, "seed": None},
    "Balanced": {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "repetition_penalty": 1.1, "max_new_tokens": 200, "seed": None},
    "Creative": {"temperature": 1.2, "top_k": 0, "top_p": 0.98, "repetition_penalty": 1.05, "max_new_tokens": 300, "seed": None},
}
DEFAULT_PRESET = "Balanced"


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
