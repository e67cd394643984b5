"""The kernels compiled with -march=x86-64-v4 (AVX-512); setup.py builds them from the same .pyx.

Import them through ``cllm_app.kernels.ops``, which checks that the CPU can run them.
"""
