"""Small real files of every format the queue reads, made on the spot for the tests."""

import json
import zipfile
from pathlib import Path


def make_pdf(text: str, title: str = "A Small Paper") -> bytes:
    """A minimal valid one-page PDF whose page shows `text` (ASCII) in Helvetica."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({title}) >>".encode(),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


FRENCH = ("Le café était très animé ce matin-là; à côté, les élèves répétaient leurs leçons. "
          "Où est la boîte à lettres? Déjà midi! ") * 4
JAPANESE = ("吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
            "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。") * 3


def write_all_formats(folder: Path) -> dict[str, str]:
    """One file per format in `folder`; returns name -> a phrase its stored text must hold."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plain.txt").write_text("Plain text, line one.\r\nLine two.\r\n", encoding="utf-8")
    (folder / "notes.md").write_text("# Heading\n\nSome *markdown* body.\n", encoding="utf-8")
    (folder / "page.html").write_text(
        "<html><head><title>The Page Title</title><script>var x = 1;</script></head>"
        "<body><nav>menu</nav><article><p>The main paragraph of the page tells a story about a river "
        "that runs through an old town.</p></article></body></html>", encoding="utf-8")
    (folder / "records.json").write_text(json.dumps([{"id": 1, "body": "first json record"},
                                                     {"id": 2, "body": "second json record"}]))
    (folder / "lines.jsonl").write_text('{"text": "first line record"}\n{"text": "second line record"}\n')
    (folder / "table.csv").write_text('id,title,content\n1,a,"first csv cell, with a comma"\n2,b,second csv cell\n')
    (folder / "paper.pdf").write_bytes(make_pdf("Hello from a PDF page"))
    return {
        "plain.txt": "Plain text, line one.",
        "notes.md": "Some *markdown* body.",
        "page.html": "The main paragraph of the page",
        "records.json": "first json record\n\nsecond json record",
        "lines.jsonl": "first line record\n\nsecond line record",
        "table.csv": "first csv cell, with a comma\n\nsecond csv cell",
        "paper.pdf": "Hello from a PDF page",
    }


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def folder_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path -> bytes), to show a folder did not change."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}
