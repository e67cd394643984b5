"""The training kernels under one namespace, from the fastest build this CPU can run.

The model takes ``kernels=ops`` (``reference`` is the drop-in numpy twin).
setup.py compiles every kernel .pyx once per instruction-set level (see its
docstring); at import this module picks the best variant the CPU supports,
using the features numpy detected at its own start-up:

    x86_64_v4   AVX-512 (F, CD, VL, BW, DQ), cllm_app.kernels.x86_64_v4.*
    x86_64_v3   AVX2 + FMA (+ BMI, F16C, ...), cllm_app.kernels.x86_64_v3.*
    baseline    portable build, cllm_app.kernels.*

Set ``CLLM_KERNELS=baseline`` (or ``x86_64_v3``, ``x86_64_v4``) to force one;
importing fails if the CPU cannot run it or it was not built. (``CLLM_KERNELS=reference``
never reaches this module: engine/kernel_choice.py gives the numpy references instead.) ``VARIANT``
says which was chosen; ``load(name)`` gives any other available one (the
tests compare every variant with the reference).
"""

import os
from importlib import import_module
from types import SimpleNamespace

MODULES = ("encoder", "layernorm", "matmul", "attention", "gelu", "crossentropy", "adamw")

FUNCTIONS = (
    "encoder_forward",
    "encoder_backward",
    "layernorm_forward",
    "layernorm_backward",
    "matmul_forward",
    "matmul_backward",
    "matmul_forward_tied",
    "matmul_backward_tied",
    "attention_forward",
    "attention_backward",
    "gelu_forward",
    "gelu_backward",
    "gelu_backward_saved",
    "residual_forward",
    "crossentropy_forward",
    "crossentropy_backward",
    "adamw_update",
    "grad_norm_squared",
)

# Best first: variant -> (numpy's name for the whole level, the features it needs
# when numpy is too old to report the level itself).
VARIANTS = {
    "x86_64_v4": ("X86_V4", ("AVX512F", "AVX512CD", "AVX512VL", "AVX512BW", "AVX512DQ")),
    "x86_64_v3": ("X86_V3", ("AVX", "AVX2", "FMA3", "F16C")),
    "baseline": (None, ()),
}

ENV_VAR = "CLLM_KERNELS"


def cpu_features() -> dict[str, bool]:
    """numpy's run-time CPU feature flags ({} if this numpy does not expose them)."""
    for path in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            return dict(import_module(path).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return {}


def cpu_supports(variant: str) -> bool:
    """Whether this CPU can run the variant's instructions."""
    level, needs = VARIANTS[variant]
    if level is None:
        return True
    features = cpu_features()
    if level in features:
        return bool(features[level])
    return bool(features) and all(features.get(name, False) for name in needs)


def _package(variant: str) -> str:
    return "cllm_app.kernels" if variant == "baseline" else f"cllm_app.kernels.{variant}"


def is_built(variant: str) -> bool:
    """Whether setup.py built this variant's modules."""
    try:
        for name in MODULES:
            import_module(f"{_package(variant)}.{name}")
    except ImportError:
        return False
    return True


def available_variants() -> list[str]:
    """Variants that are built and that this CPU can run, best first."""
    return [v for v in VARIANTS if cpu_supports(v) and is_built(v)]


def load(variant: str) -> SimpleNamespace:
    """The kernel functions of one variant, by name; raises if it is unknown, unbuilt or unsupported."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown kernel variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if not cpu_supports(variant):
        raise RuntimeError(f"this CPU cannot run the {variant} kernels")
    modules = [import_module(f"{_package(variant)}.{name}") for name in MODULES]
    found = {}
    for module in modules:
        for fn in FUNCTIONS:
            if hasattr(module, fn):
                found[fn] = getattr(module, fn)
    missing = [fn for fn in FUNCTIONS if fn not in found]
    if missing:
        raise ImportError(f"the {variant} kernels lack {', '.join(missing)}")
    return SimpleNamespace(variant=variant, **found)


def _choose() -> str:
    forced = os.environ.get(ENV_VAR, "").strip()
    if forced:
        return forced
    for variant in available_variants():
        return variant
    return "baseline"


VARIANT = _choose()
_k = load(VARIANT)

encoder_forward = _k.encoder_forward
encoder_backward = _k.encoder_backward
layernorm_forward = _k.layernorm_forward
layernorm_backward = _k.layernorm_backward
matmul_forward = _k.matmul_forward
matmul_backward = _k.matmul_backward
matmul_forward_tied = _k.matmul_forward_tied
matmul_backward_tied = _k.matmul_backward_tied
attention_forward = _k.attention_forward
attention_backward = _k.attention_backward
gelu_forward = _k.gelu_forward
gelu_backward = _k.gelu_backward
gelu_backward_saved = _k.gelu_backward_saved
residual_forward = _k.residual_forward
crossentropy_forward = _k.crossentropy_forward
crossentropy_backward = _k.crossentropy_backward
adamw_update = _k.adamw_update
grad_norm_squared = _k.grad_norm_squared
