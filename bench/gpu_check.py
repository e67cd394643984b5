"""The PyTorch engine on a CUDA GPU, checked in one short run (a few minutes): config B and a
GPT-2-small-sized model (124M) train for a few hundred steps in one process; their losses must
fall, and their first steps must match the built-in engine's on the CPU to 1e-3 (bf16 on the
GPU where it has it); tokens/s is printed.

    python bench/gpu_check.py [--steps-b 300] [--steps-124m 200] [--ref-steps 3]
    python bench/gpu_check.py --device cpu --steps-b 6 --steps-124m 0   # a dry run, no GPU

Exits 1 when a check fails. The data, init and training loop are bench_engines.py's.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engines import CONFIGS, WARMUP, side  # noqa: E402

TOLERANCE = 1e-3


def check(config: str, steps: int, ref_steps: int, device: str) -> bool:
    ref = side(config, "builtin", "cpu", ref_steps)["losses"]  # the built-in engine, this machine's CPU
    got = side(config, "torch", device, steps)
    losses = got["losses"]
    tokens = CONFIGS[config]["B"] * CONFIGS[config]["block_size"]
    rate = tokens / float(np.median(got["seconds"][WARMUP:]))
    first = np.array(losses[: len(ref)])
    diff = float(np.max(np.abs(first - ref) / np.abs(ref)))
    tail = float(np.mean(losses[-10:]))
    fell = tail < losses[0] - 0.5
    print(f"{config:<5} {got['label']}: {rate:,.0f} tok/s over {len(losses)} steps; loss {losses[0]:.4f} -> "
          f"{tail:.4f} (mean of the last 10) {'falls' if fell else 'DOES NOT FALL'}; first {len(ref)} steps vs the "
          f"built-in engine: max relative diff {diff:.1e} {'ok' if diff <= TOLERANCE else 'OVER ' + str(TOLERANCE)}")
    print("      first losses (built-in | PyTorch): "
          + " ".join(f"{a:.4f}|{b:.4f}" for a, b in zip(ref, first, strict=True)), flush=True)
    return fell and diff <= TOLERANCE


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps-b", type=int, default=300)
    ap.add_argument("--steps-124m", type=int, default=200)
    ap.add_argument("--ref-steps", type=int, default=3, help="steps of the built-in engine on the CPU to compare")
    args = ap.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --device cpu for a dry run")
        return 2
    if args.device.startswith("cuda"):
        print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, bf16 {torch.cuda.is_bf16_supported()}")
    ok = True
    for config, steps in (("B", args.steps_b), ("124M", args.steps_124m)):
        if steps > 0:
            ok = check(config, steps, min(args.ref_steps, steps), args.device) and ok
    print("all checks passed" if ok else "A CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
