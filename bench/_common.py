"""What the kernel benches share: torch and our compiled kernels, or a plain way out."""

import importlib
import sys


def load(kernel_module: str, threads: int):
    """(torch, cllm_app.kernels.<kernel_module>), both ready; exit 2 saying why if one is missing."""
    try:
        import torch
    except ImportError:
        print(
            "PyTorch is not installed, so there is nothing to compare against.\n"
            "Install the bench extra (CPU build, torch==2.13.0):\n"
            "    pip install -e '.[bench]'",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        module = importlib.import_module(f"cllm_app.kernels.{kernel_module}")
    except ImportError as exc:
        print(
            f"The Cython kernels are not built ({exc}).\n"
            "Build them with: pip install -e . --no-build-isolation",
            file=sys.stderr,
        )
        sys.exit(2)
    torch.set_num_threads(threads)
    return torch, module
