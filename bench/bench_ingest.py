"""Ingest-and-tokenize throughput of plain text files, end to end, beside the tokenizer
libraries' own in-memory encode of the same text, and peak memory while ingesting 1 GB.

    python bench/bench_ingest.py [--mb 200] [--rss-mb 1024] [--skip-rss]

End to end means what `cllm data add` does: reading the files, detecting the encoding,
normalizing, hashing, compressing (zstd) and storing the text, and writing the token cache.
The references encode the same text already in memory: HF `tokenizers` (a GPT-2-like
byte-level BPE trained here on the same text, batch encode) and tiktoken (the same merges
loaded into tiktoken's encoder, since its GPT-2 file needs a download). Peak RSS is measured
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

import numpy as np

WORDS = (
    "the a of and to in is was that for on with as by at from his her they we it this which river "
    "morning light garden window letter voice winter city road house friend evening story quiet bright "
    "slow early old small green warm distant open heavy gentle sudden walked said found kept turned wrote "
    "carried waited watched remembered opened followed 1984 2025 café naïve"
).split()
SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


def text_block(n_bytes: int, seed: int) -> str:
    """About n_bytes of sentences in lines and paragraphs."""
    rng = random.Random(seed)
    out, size = [], 0
    while size < n_bytes:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize() + ".\n"
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


class HFTokenizer:
    """HF tokenizers behind our Tokenizer interface, to time our pipeline around a BPE."""

    kind = "hf-bpe"
    eot = 0

    def __init__(self, tok):
        self.tok = tok
        self.vocab_size = tok.get_vocab_size()
        self.fingerprint = f"bench-hf-bpe-{self.vocab_size}"

    def encode(self, text):
        return np.array(self.tok.encode(text).ids, dtype=np.uint16)

    def encode_batch(self, texts):
        return [np.array(e.ids, dtype=np.uint16) for e in self.tok.encode_batch(texts)]


def train_bpe(sample: str, vocab: int = 4096):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([sample[i : i + 10000] for i in range(0, len(sample), 10000)], trainer)
    return tok


def tiktoken_from(tok):
    """The trained merges as a tiktoken Encoding (byte-level BPE: the same tokens, tiktoken's encoder)."""
    import tiktoken
    from tokenizers import pre_tokenizers  # noqa: F401 - the byte-to-unicode table below is GPT-2's

    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    unicode_to_byte = {chr(c): b for b, c in zip(bs, cs, strict=True)}
    ranks = {bytes(unicode_to_byte[ch] for ch in token): rank for token, rank in tok.get_vocab().items()}
    pat = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    return tiktoken.Encoding("bench-bpe", pat_str=pat, mergeable_ranks=ranks, special_tokens={})


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
        tok = train_bpe(text[: 4 << 20])
        print(f"trained a byte-level BPE (vocab {tok.get_vocab_size()}) in {time.perf_counter() - t0:.1f} s")
        pieces = [text[i : i + 65536] for i in range(0, len(text), 65536)]
        t0 = time.perf_counter()
        n_hf = sum(len(e.ids) for e in tok.encode_batch(pieces))
        hf_rate = mb / (time.perf_counter() - t0)
        enc = tiktoken_from(tok)
        t0 = time.perf_counter()
        n_tt = sum(len(ids) for ids in enc.encode_ordinary_batch(pieces))
        tt_rate = mb / (time.perf_counter() - t0)
        bpe_rate, n_ours = ingest_rate(paths, HFTokenizer(tok))

        rows = [
            ("byte-level ingest, end to end (ours)", byte_rate, "bar: >= 100 MB/s"),
            ("BPE ingest, end to end (ours, HF BPE inside)", bpe_rate, f"{bpe_rate / hf_rate:.2f}x HF in-memory"),
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
