"""Which kernels a model computes with: the compiled ones (kernels/ops.py takes the fastest build
this CPU runs; CLLM_KERNELS=baseline, x86_64_v3 or x86_64_v4 names a build), or, with
CLLM_KERNELS=reference, the numpy references (slow: for checking a result against the reading
version of every layer). Training and evaluation both ask here."""

import os

REFERENCE = "reference"


def model_kernels():
    if os.environ.get("CLLM_KERNELS") == REFERENCE:
        from cllm_app.kernels import reference

        return reference
    from cllm_app.kernels import ops

    return ops
