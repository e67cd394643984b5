"""The kernels compiled with -march=x86-64-v3 (AVX2, FMA); setup.py builds them from the same .pyx.

Import them through ``cllm_app.kernels.ops``, which checks that the CPU can run them.
"""
