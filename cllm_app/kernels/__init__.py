"""Compute kernels: Cython forward/backward pairs over float32 numpy arrays.

Each kernel lives in a ``<name>.pyx`` of its own (built by ``setup.py`` with
-O3 and OpenMP) and writes its results into arrays the caller passes in. Every
kernel has a plain numpy twin in ``reference.py`` with the same signature and
semantics, used by the parity tests and as the readable specification.

Kernels import nothing from the rest of ``cllm_app``. This package exports
nothing itself; import a kernel by name, e.g. ``from cllm_app.kernels import
layernorm``.
"""
