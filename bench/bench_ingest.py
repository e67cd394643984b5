"""Ingest-and-tokenize throughput of plain text files, end to end, beside the tokenizer
libraries' own in-memory encode of the same text, and peak memory while ingesting 1 GB.

    python bench/bench_ingest.py [--mb 200] [--rss-mb 1024] [--skip-rss]

End to end means what `cllm data add` does: reading the files, detecting the encoding,
normalizing, hashing, compressing (zstd) and storing the text, and writing the token cache.
The references encode the same text already in memory: HF `tokenizers` (our byte-level BPE,
vocab 4096, trained here on the same text; batch encode) and tiktoken (the same merges in
tiktoken's encoder, its own batch encode). Peak RSS is measured
in a child process (resource.getrusage) that ingests one generated file of --rss-mb.
"""

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cllm_app.engine.bpe import BPETokenizer, train_bpe

COMMON = (
    "the a of and to in is was that for on with as by at from his her they we it this which river "
    "morning light garden window letter voice winter city road house friend evening story quiet bright "
    "slow early old small green warm distant open heavy gentle sudden walked said found kept turned wrote "
    "carried waited watched remembered opened followed 1984 2025 café naïve"
).split()
SYLLABLES = "ka lo mi ne ru sa te vo an el is or un ba de fi go hu ja ke li mo nu pa qu re si to".split()


def vocabulary(n: int = 20000, seed: int = 3) -> tuple[list[str], list[float]]:
    """Common words plus n made-up ones, with Zipf-like weights, so a 4096-token BPE has
    something to learn (real text has tens of thousands of distinct words)."""
    rng = random.Random(seed)
    made = {"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(n)}
    words = COMMON + sorted(made)
    return words, [1.0 / (rank + 1) for rank in range(len(words))]


WORDS, WEIGHTS = vocabulary()
SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


def text_block(n_bytes: int, seed: int) -> str:
    """About n_bytes of sentences in lines and paragraphs."""
    rng = random.Random(seed)
    out, size = [], 0
    while size < n_bytes:
        line = " ".join(rng.choices(WORDS, WEIGHTS, k=rng.randint(6, 18))).capitalize() + ".\n"
        if rng.random() < 0.1:
            line += "\n"
        out.append(line)
        size += len(line)
    return "".join(out)


def write_corpus(folder: Path, total_mb: int, file_mb: int = 10) -> list[Path]:
    block = text_block(1 << 20, 1)  # one varied megabyte, rotated so files differ
    paths = []
    for i in range(max(1, total_mb // file_mb)):
        p = folder / f"part{i:04d}.txt"
        with open(p, "w", encoding="utf-8") as f:
            for j in range(file_mb):
                k = (i * 7919 + j * 104729) % len(block)
                f.write(f"Part {i} block {j}.\n" + block[k:] + block[:k])
        paths.append(p)
    return paths


def ingest_rate(paths: list[Path], tokenizer=None) -> tuple[float, int]:
    """MB/s of ingesting `paths` into a new model (with our byte tokenizer, or `tokenizer`)."""
    from cllm_app.services import queue as queue_module
    from cllm_app.services.studio import Studio

    home = tempfile.mkdtemp(prefix="cllm-bench-ingest-")
    studio = Studio(home)
    studio.models.create("bench", **SMALL)
    if tokenizer is not None:
        queue_module.load_tokenizer = lambda folder, kind: tokenizer
    size = sum(p.stat().st_size for p in paths)
    t0 = time.perf_counter()
    report = studio.queue.ingest("bench", [str(p) for p in paths])
    seconds = time.perf_counter() - t0
    assert report["added"] == len(paths), report["report"][:3]
    studio.close()
    subprocess.run(["rm", "-rf", home], check=False)
    return size / 1e6 / seconds, report["tokens"]


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux keeps ru_maxrss across exec (a child started by
    a big parent would report the parent's peak), so VmHWM, which starts afresh, comes first."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_rss(mb: int) -> None:
    """In a child process: write one file of `mb` MB, ingest it, print the peak RSS in MB."""
    folder = Path(tempfile.mkdtemp(prefix="cllm-bench-rss-"))
    block = text_block(1 << 20, 7)
    big = folder / "big.txt"
    with open(big, "w", encoding="utf-8") as f:
        for i in range(mb):
            f.write(block[i % 1000 :] + block[: i % 1000])
    os.environ["CLLM_HOME"] = str(folder / "home")
    before = peak_rss_mb()
    rate, _ = ingest_rate([big])
    peak = peak_rss_mb()
    subprocess.run(["rm", "-rf", str(folder)], check=False)
    print(f"RSS {peak:.0f} {before:.0f} {rate:.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=200, help="MB of text files for the throughput runs")
    ap.add_argument("--rss-mb", type=int, default=1024, help="MB of the one file ingested for peak memory")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--child-rss", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_rss:
        child_rss(args.child_rss)
        return 0

    if not args.skip_rss:
        out = subprocess.run([sys.executable, __file__, "--child-rss", str(args.rss_mb)], capture_output=True,
                             text=True, check=True).stdout
        peak, before, rate = out.split("RSS ", 1)[1].split()
        print(f"peak RSS ingesting one {args.rss_mb} MB file: {peak} MB (process before ingest: {before} MB; "
              f"{rate} MB/s) · bar: < 500 MB")

    work = Path(tempfile.mkdtemp(prefix="cllm-bench-corpus-"))
    try:
        paths = write_corpus(work, args.mb)
        text = "".join(p.read_text(encoding="utf-8") for p in paths)
        mb = len(text.encode()) / 1e6
        print(f"corpus: {len(paths)} files, {mb:.0f} MB of plain text")

        byte_rate, _ = ingest_rate(paths)

        t0 = time.perf_counter()
        sample = text[: 4 << 20]
        hf = train_bpe([sample[i : i + 10000] for i in range(0, len(sample), 10000)], 4096)
        ours = BPETokenizer.from_hf(hf)
        print(f"trained a byte-level BPE (vocab {ours.vocab_size}) in {time.perf_counter() - t0:.1f} s; "
              f"ours encodes with {ours.encoder}")
        pieces = [text[i : i + 65536] for i in range(0, len(text), 65536)]
        t0 = time.perf_counter()
        n_hf = sum(len(e.ids) for e in hf.encode_batch(pieces, add_special_tokens=False))
        hf_rate = mb / (time.perf_counter() - t0)
        enc = ours.tiktoken  # the same merges in tiktoken's encoder (checked exact when loaded)
        t0 = time.perf_counter()
        n_tt = sum(len(ids) for ids in enc.encode_ordinary_batch(pieces))
        tt_rate = mb / (time.perf_counter() - t0)
        bpe_rate, n_ours = ingest_rate(paths, ours)

        rows = [
            ("byte-level ingest, end to end (ours)", byte_rate, "bar: >= 100 MB/s"),
            ("BPE ingest, end to end (ours)", bpe_rate,
             f"{bpe_rate / hf_rate:.2f}x HF in-memory, {bpe_rate / tt_rate:.2f}x tiktoken"),
            ("HF tokenizers encode_batch, in memory", hf_rate, f"{n_hf:,} tokens"),
            ("tiktoken encode_ordinary_batch, in memory", tt_rate, f"{n_tt:,} tokens"),
        ]
        print(f"\n{'what':<48} {'MB/s':>8}  note")
        for what, rate, note in rows:
            print(f"{what:<48} {rate:>8.1f}  {note}")
        print(f"\nour BPE ingest wrote {n_ours:,} tokens (HF whole-piece encode: {n_hf:,})")
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)

    return 0


if __name__ == "__main__":
    sys.exit(main())
