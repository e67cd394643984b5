"""In-memory BPE encoding speed: our encoder against HF tokenizers' encode_batch and tiktoken.

    python bench/bench_tokenize.py [--mb 20] [--vocab 4096] [--reps 3]

The text is the Python standard library's own source (the same on every machine with this
Python), about --mb megabytes in files. A byte-level BPE of --vocab tokens is trained on it
(engine/bpe.py train_bpe), then the same texts are encoded by:

  ours        BPETokenizer.encode_batch: uint16 arrays, the ingest path
  tokenizers  Tokenizer.encode_batch (HF, Rust, its own threads), ids only
  tiktoken    Encoding.encode_ordinary_batch on the Encoding built from the same merges

All three are checked to give the same tokens first. Each side runs --reps times in turns;
the table shows the best MB/s (UTF-8 bytes in) and the ratio to HF tokenizers.
"""

import argparse
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cllm_app.engine.bpe import BPETokenizer, train_bpe  # noqa: E402


def stdlib_texts(megabytes: float) -> list[str]:
    texts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        texts.append(text)
        size += len(text.encode("utf-8"))
        if size >= megabytes * 1e6:
            break
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=20)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    texts = stdlib_texts(args.mb)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    start = time.perf_counter()
    ours = BPETokenizer.from_hf(train_bpe(iter(texts), args.vocab))
    print(f"{len(texts)} files, {mb:.1f} MB; trained vocab {ours.vocab_size} in {time.perf_counter() - start:.1f} s; "
          f"our encoder: {ours.encoder}")
    hf, tt = ours.hf, ours.tiktoken
    sides = {
        "ours": lambda: ours.encode_batch(texts),
        "tokenizers": lambda: hf.encode_batch(texts, add_special_tokens=False),
    }
    if tt is not None:
        sides["tiktoken"] = lambda: tt.encode_ordinary_batch(texts)

    reference = [e.ids for e in sides["tokenizers"]()]
    assert [a.tolist() for a in sides["ours"]()] == reference, "ours differs from tokenizers"
    if tt is not None:
        assert sides["tiktoken"]() == reference, "tiktoken differs from tokenizers"
    n_tokens = sum(map(len, reference))

    best = {name: float("inf") for name in sides}
    for _ in range(args.reps):
        for name, run in sides.items():
            t = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t)
    base = mb / best["tokenizers"]
    print(f"{n_tokens:,} tokens ({mb * 1e6 / n_tokens:.2f} bytes/token)\n")
    print(f"{'encoder':<12} {'MB/s':>8} {'vs tokenizers':>14}")
    for name, secs in best.items():
        print(f"{name:<12} {mb / secs:>8.2f} {mb / secs / base:>13.2f}x")


if __name__ == "__main__":
    main()
