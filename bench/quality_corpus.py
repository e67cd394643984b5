"""The text bench_quality.py trains and evaluates on: the Python 3.11 documentation as Debian
ships it (package python3.11-doc, Debian 12), HTML under /usr/share/doc/python3.11/html/.

Written by the Python project (PSF licence), not by us. Each HTML page becomes plain text with
the app's own HTML reader (cllm_app/data/readers.py: trafilatura, favouring recall, tables
kept), the way `cllm data add` reads an .html file.

Which pages: every *.html under the html/ folder, in sorted order of its path, except the
folders Sphinx keeps its sources and assets in (_sources/, _static/, _images/, _downloads/) and
the generated navigation pages (genindex*.html, py-modindex.html, search.html, contents.html).
Which text: every second page in that order (index % 2 == 0), which covers every part of the
documentation (library, whatsnew, howto, reference, tutorial, C API, ...) and is about 4.5 MB
of UTF-8 text of the 9 MB all pages hold (a page with no readable text is dropped). Every tenth
page of that subset (index % 10 == 9) is held out; the rest train.

    python bench/quality_corpus.py [--work DIR]     # prepare (or show) the cached corpus

Installing the package (apt-get install python3.11-doc) may also upgrade python3.11 itself to
the same Debian revision: on the machine this was written on it went from 3.11.2-6+deb12u6 to
3.11.2-6+deb12u9.

The extracted pages are cached under WORK/python3.11-doc-VERSION-every2/, so only the first run
extracts (a few minutes on 2 cores).
"""

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "python3.11-doc"
HTML_ROOT = Path("/usr/share/doc/python3.11/html")
SKIP_DIRS = {"_sources", "_static", "_images", "_downloads"}
SKIP_PAGES = {"py-modindex.html", "search.html", "contents.html"}
SUBSET_EVERY = 2  # page i of the sorted list is taken when i % 2 == 0
HELD_OUT_EVERY = 10  # page i is held out when i % 10 == 9
DEFAULT_WORK = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cllm-bench-quality"


@dataclass
class Corpus:
    package: str
    version: str
    root: str
    train: list[tuple[str, str]]  # (path under html/, text)
    held_out: list[tuple[str, str]]
    pages_available: int
    folder: Path

    @property
    def train_bytes(self) -> int:
        return sum(len(t.encode("utf-8")) for _, t in self.train)

    @property
    def held_out_bytes(self) -> int:
        return sum(len(t.encode("utf-8")) for _, t in self.held_out)

    def describe(self) -> dict:
        return {
            "package": self.package,
            "version": self.version,
            "html_root": self.root,
            "pages_available": self.pages_available,
            "pages": len(self.train) + len(self.held_out),
            "train_pages": len(self.train),
            "held_out_pages": len(self.held_out),
            "train_bytes": self.train_bytes,
            "held_out_bytes": self.held_out_bytes,
            "subset": "every second page in sorted path order (index % 2 == 0); of those, every tenth "
                      "(index % 10 == 9) held out",
            "held_out_sha256": hashlib.sha256("\0".join(t for _, t in self.held_out).encode()).hexdigest()[:16],
        }


def package_version() -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def ensure_package(install: bool) -> str:
    """The installed version of python3.11-doc; installs it first when asked (needs root)."""
    version = package_version()
    if version and HTML_ROOT.is_dir():
        return version
    command = ["apt-get", "install", "-y", PACKAGE]
    if not install:
        raise SystemExit(f"{PACKAGE} is not installed (no {HTML_ROOT}). Install it with:\n"
                         f"    sudo {' '.join(command)}\nor run the bench with --install.")
    print(f"{PACKAGE} is not installed: running `{' '.join(command)}` (Debian 12 ships it)", flush=True)
    if subprocess.run(command, check=False).returncode != 0 or not HTML_ROOT.is_dir():
        raise SystemExit(f"installing {PACKAGE} failed; install it by hand and run again")
    return package_version() or "?"


def page_paths(root: Path = HTML_ROOT) -> list[str]:
    """The pages, as paths under html/, in sorted order."""
    paths = []
    for p in root.rglob("*.html"):
        rel = p.relative_to(root)
        if rel.parts[0] in SKIP_DIRS or rel.name in SKIP_PAGES or rel.name.startswith("genindex"):
            continue
        paths.append(rel.as_posix())
    return sorted(paths)


def extract(path: Path) -> str:
    """One page's text, read as `cllm data add` reads an .html file."""
    from cllm_app.data import readers

    data = path.read_bytes()
    try:
        doc = readers.read(readers.Item(path.name, path.name, len(data), None), io.BytesIO(data), readers.Options())
    except readers.Empty:
        return ""
    return "".join(doc.chunks)


def load(work: Path = DEFAULT_WORK, install: bool = False, quiet: bool = False) -> Corpus:
    version = ensure_package(install)
    folder = Path(work) / f"{PACKAGE}-{version}-every{SUBSET_EVERY}"
    cache = folder / "pages.jsonl"
    paths = page_paths()
    if not cache.exists():
        folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        pages, total = [], 0
        chosen = paths[::SUBSET_EVERY]
        for i, rel in enumerate(chosen):
            text = extract(HTML_ROOT / rel)
            if not text.strip():
                continue  # a page with no readable text is no page
            pages.append({"path": rel, "text": text})
            total += len(text.encode("utf-8"))
            if not quiet and (i % 25 == 0 or i == len(chosen) - 1):
                print(f"\rextracting {PACKAGE} pages: {i + 1} of {len(chosen)}, {total / 1e6:.2f} MB of text "
                      f"({time.monotonic() - started:.0f} s)", end="", flush=True)
        if not quiet:
            print()
        tmp = cache.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pages), encoding="utf-8")
        tmp.replace(cache)
    pages = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines() if line]
    train = [(p["path"], p["text"]) for i, p in enumerate(pages) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    held = [(p["path"], p["text"]) for i, p in enumerate(pages) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return Corpus(PACKAGE, version, str(HTML_ROOT), train, held, len(paths), folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--install", action="store_true", help=f"apt-get install {PACKAGE} when it is missing")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(json.dumps(load(args.work, args.install).describe(), indent=2))


if __name__ == "__main__":
    main()
