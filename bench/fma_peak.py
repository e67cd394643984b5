"""This machine's fp32 FMA peak in GFLOP/s: the ceiling every speed figure is measured against.

    python bench/fma_peak.py [--threads N] [--rounds R]

Compiles bench/fma_peak.c with gcc for this CPU (-O2 -march=native: AVX-512 where there
is one) into a temporary folder, runs it R times on 1 and on N threads, and prints the
best of each. A GEMM cannot go faster than this loop: it is nothing but independent
vector FMAs. bench_train.py prints each config's GFLOP/s as a fraction of it.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("fma_peak.c")


def build(folder: str) -> str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise SystemExit("fma_peak needs gcc (or cc) to compile its FMA loop")
    exe = os.path.join(folder, "fma_peak")
    subprocess.run([gcc, "-O2", "-march=native", "-pthread", str(SOURCE), "-o", exe], check=True)
    return exe


def run(exe: str, threads: int, iterations: int = 40_000_000) -> tuple[int, float]:
    """(vector width in floats, GFLOP/s) of one run on `threads` threads."""
    out = subprocess.run([exe, str(threads), str(iterations)], capture_output=True, text=True, check=False)
    _, width, gflops = out.stdout.split()
    return int(width), float(gflops)


def measure(threads: int = 2, rounds: int = 3) -> dict:
    """{'width', 'threads', 'gflops_1', 'gflops_n'}: the best of `rounds` runs on 1 and on `threads` threads."""
    with tempfile.TemporaryDirectory(prefix="cllm-fma-") as folder:
        exe = build(folder)
        ones, many = [], []
        for _ in range(rounds):
            width, g = run(exe, 1)
            ones.append(g)
            many.append(run(exe, threads)[1])
    return {"width": width, "threads": threads, "gflops_1": max(ones), "gflops_n": max(many)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="threads for the many-thread figure (default 2, as the app)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU") if Path("/proc/cpuinfo").exists() else "unknown CPU"
    p = measure(args.threads, args.rounds)
    print(f"CPU: {cpu}")
    print(f"fp32 FMA peak ({p['width']}-float vectors, best of {args.rounds}): "
          f"{p['gflops_1']:.1f} GFLOP/s on 1 thread, {p['gflops_n']:.1f} GFLOP/s on {p['threads']} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
