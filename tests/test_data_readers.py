"""Reading files as text: every format, encodings, binary refusal, limits, folders and archives."""

import io
import json

import pytest
from data_files import FRENCH, JAPANESE, make_pdf, write_all_formats, write_zip

from cllm_app.data import Empty, Refused, limits, readers
from cllm_app.data.decode import decoded_chunks, detect


def read_text(name: str, data: bytes, **options) -> tuple[str, readers.Doc]:
    item = readers.Item(name, name, len(data), None)
    doc = readers.read(item, io.BytesIO(data), readers.Options(**options))
    return "".join(doc.chunks), doc


@pytest.mark.parametrize(
    "data, expected",
    [
        ("with a BOM".encode("utf-16"), "with a BOM"),
        ("UTF-16 big endian".encode("utf-16-be"), "UTF-16 big endian"),
        ("UTF-16 little endian, no BOM".encode("utf-16-le"), "UTF-16 little endian, no BOM"),
        ("\ufeffUTF-8 with a BOM".encode("utf-8"), "UTF-8 with a BOM"),
        (FRENCH.encode("cp1252"), FRENCH),
        (FRENCH.encode("latin-1"), FRENCH),
        (JAPANESE.encode("shift_jis"), JAPANESE),
        ("Привет, мир! Это проверка кодировки текста. ".encode("cp1251") * 5, "Привет, мир! Это проверка кодировки текста. " * 5),
    ],
)
def test_encodings_are_detected(data, expected):
    text, _ = read_text("x.txt", data)
    assert text.lstrip("\ufeff") == expected


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
        (b"\x7fELF\x02\x01\x01" + bytes(100), "a program"),
        (bytes(range(256)) * 4, "binary"),
        (b"text\x01\x02\x03\x04\x05\x06\x07\x08" * 10, "control characters"),
        (b"ends mid character \xe2\x82", "middle of a UTF-8 character"),
        (b"PK\x03\x04rest of a docx", "ZIP container"),
        (b"\x00\x01\x02\x03", "binary"),  # NULs in a UTF-16-like pattern, but not text
    ],
)
def test_binary_and_broken_files_are_refused(data, reason):
    with pytest.raises(Refused) as e:
        read_text("x.txt", data)
    assert reason in e.value.reason


def test_empty_and_whitespace():
    with pytest.raises(Empty):
        read_text("x.txt", b"")
    with pytest.raises(Empty):
        read_text("x.html", b"<html><body><script>only()</script></body></html>")


def test_a_late_bad_byte_is_refused_with_its_position(monkeypatch):
    data = b"a" * (2 << 20) + b"\xff\xfe\xfd" + b"b" * 100  # the sample (1 MB) is clean UTF-8
    with pytest.raises(Refused) as e:
        "".join(decoded_chunks(io.BytesIO(data), chunk=1 << 20))
    assert "byte 2,097,152" in e.value.reason


def test_file_limit(monkeypatch):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1000)
    with pytest.raises(Refused) as e:
        "".join(decoded_chunks(io.BytesIO(b"x" * 5000), chunk=256))
    assert "larger than" in e.value.reason


def test_formats(tmp_path):
    expected = write_all_formats(tmp_path)
    for name, phrase in expected.items():
        text, doc = read_text(name, (tmp_path / name).read_bytes())
        assert phrase in text, name
    _, page = read_text("page.html", (tmp_path / "page.html").read_bytes())
    assert page.title == "The Page Title"
    text, _ = read_text("page.html", (tmp_path / "page.html").read_bytes())
    assert "var x" not in text
    _, pdf = read_text("paper.pdf", make_pdf("Hi there"))
    assert pdf.title == "A Small Paper"


def test_json_field_detection_and_choice():
    data = json.dumps({"meta": {"n": 2}, "rows": [{"q": "short", "answer": "a much longer answer text"},
                                                   {"q": "tiny", "answer": "another long answer text"}]}).encode()
    text, doc = read_text("d.json", data)
    assert text == "a much longer answer text\n\nanother long answer text" and "field 'answer'" in doc.notes[0]
    text, _ = read_text("d.json", data, text_field="q")
    assert text == "short\n\ntiny"
    with pytest.raises(Refused) as e:
        read_text("d.json", data, text_field="nope")
    assert "no record has the field 'nope'" in e.value.reason and "answer" in e.value.reason
    with pytest.raises(Refused):
        read_text("d.json", b'{"broken": ')
    text, _ = read_text("s.json", json.dumps(["one string", "two strings"]).encode())
    assert text == "one string\n\ntwo strings"


def test_jsonl_detection_choice_and_bad_lines():
    lines = [json.dumps({"title": f"t{i}", "content": f"content number {i}"}) for i in range(3)]
    data = ("\n".join(lines[:2]) + "\nnot json at all\n" + lines[2] + "\n").encode()
    text, doc = read_text("d.jsonl", data)
    assert text == "content number 0\n\ncontent number 1\n\ncontent number 2"
    assert doc.notes == ["3 records, field 'content'", "1 line was not JSON and skipped"]
    text, _ = read_text("d.jsonl", data, text_field="title")
    assert text == "t0\n\nt1\n\nt2"
    with pytest.raises(Refused):
        read_text("d.jsonl", b"nothing\nhere\n")


def test_csv_column_detection_and_choice():
    data = b"id;label;description\n1;x;a long description of the first row\n2;y;the second row's description\n"
    text, doc = read_text("t.csv", data)
    assert text == "a long description of the first row\n\nthe second row's description"
    text, _ = read_text("t.csv", data, csv_column="label")
    assert text == "x\n\ny"
    text, _ = read_text("t.csv", data, csv_column="1")
    assert text == "x\n\ny"
    with pytest.raises(Refused) as e:
        read_text("t.csv", data, csv_column="missing")
    assert "no column 'missing'" in e.value.reason
    text, _ = read_text("t.tsv", b"text\tn\nfirst\t1\nsecond\t2\n")
    assert text == "first\n\nsecond"


def test_pdf_broken_and_textless():
    with pytest.raises(Refused) as e:
        read_text("bad.pdf", b"%PDF-1.4\nthis is not really a pdf")
    assert "PDF" in e.value.reason


def test_folders_and_zips(tmp_path):
    root = tmp_path / "corpus"
    (root / "deep" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "deep" / "b.md").write_text("b")
    (root / "deep" / "deeper" / "c.txt").write_text("c")
    (root / ".hidden.txt").write_text("hidden")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("x")
    write_zip(root / "pack.zip", {"in/one.txt": b"one", "in/inner.zip": b"PK\x03\x04", "__MACOSX/x": b"x"})
    (root / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    items = readers.expand([(str(root), "corpus")])
    assert [i.origin for i in items] == [
        "corpus/a.txt", "corpus/broken.zip", "corpus/pack.zip!/in/inner.zip", "corpus/pack.zip!/in/one.txt",
        "corpus/deep/b.md", "corpus/deep/deeper/c.txt",
    ]
    by = {i.origin: i for i in items}
    assert "not a readable zip" in by["corpus/broken.zip"].refused
    assert "archive inside an archive" in by["corpus/pack.zip!/in/inner.zip"].refused
    with by["corpus/pack.zip!/in/one.txt"].open() as f:
        assert f.read() == b"one"
    missing = readers.expand([(str(tmp_path / "gone.txt"), "gone.txt")])
    assert "does not exist" in missing[0].refused


def test_detect_needs_bytes():
    with pytest.raises(Empty):
        detect(b"", True)


def test_utf8_chunks_keep_exactly_their_own_bytes():
    """Chunks read from UTF-8 carry their bytes (so storing them needs no re-encoding); a
    character split between two reads belongs wholly to the chunk that completes it."""
    from cllm_app.data.decode import SAMPLE_BYTES

    text = "naïve café — 日本語の文章 🙂 " * (SAMPLE_BYTES // 40 + 200)
    data = text.encode("utf-8")
    chunks = list(decoded_chunks(io.BytesIO(data), chunk=7))  # 7 bytes: most reads split a character
    assert "".join(chunks) == text and len(chunks) > 100
    assert all(c.raw == c.encode("utf-8") for c in chunks)
    assert b"".join(c.raw for c in chunks) == data
