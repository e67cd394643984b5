"""A varied corpus for BPE tests: the standard library's own source and documentation, prose in
several scripts, emoji, numbers and odd whitespace, the same on every machine."""

import inspect
import json
import random
import textwrap

WORDS = (
    "the of and to in is was for on that with as by at from language model small train token text "
    "über straße façade naïve café 日本語 テキスト 中文 한국어 русский язык Ελληνικά עברית العربية "
    "😀 👍🏽 👩‍👩‍👧 🇫🇷 ❤️ 2024 3.14 1,000,000 0x1F -42 don't it's we'll I'd they've"
).split()
ODD = ["\u00a0", "\u3000", "\u2028", "\x85", "\x0b", "\t", "\r\n", "\n\n\n", "   ", "\u200b", "\ufeff"]


def corpus(n_prose: int = 3000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = [inspect.getsource(m) for m in (json, random, textwrap, inspect)]
    for _ in range(n_prose):
        words = [rng.choice(WORDS) for _ in range(rng.randint(5, 40))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(ODD))
        texts.append(" ".join(words) + rng.choice([".", "!\n", "?\n\n", ":\n    "]))
    return texts


def varied_texts(seed: int = 1, n: int = 400) -> list[str]:
    """Short texts that stress the pre-tokenizer: every script, whitespace run and number form."""
    rng = random.Random(seed)
    pool = WORDS + ODD + ["<|endoftext|>", "'s", "'LL", " ", "  ", "\n", "a" * 50, "١٢٣", "Ⅻ", "½", "\u0301", "ǅ", "ﬁ"]
    out = ["", " ", "\n" * 5000, " " * 20000, "\t \n" * 300, "<|endoftext|>", "x<|endoftext|>y"]
    for _ in range(n):
        out.append("".join(rng.choice(pool) + rng.choice(["", " ", "", "\n"]) for _ in range(rng.randint(1, 30))))
    return out


def corpus_files(folder, parts: int = 3) -> list:
    """The corpus split round-robin into `parts` UTF-8 text files in folder (Paths)."""
    lines = corpus()
    paths = []
    for i in range(parts):
        p = folder / f"part{i}.txt"
        p.write_text("\n".join(lines[i::parts]), encoding="utf-8")
        paths.append(p)
    return paths
