"""Hostile input: zip bombs, archive paths that would escape, random bytes posing as text, and
the libraries' own warnings, which belong in the report and the job's log, not the terminal."""

import io
import logging
import os
import random
import re
import stat
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
from data_files import FRENCH, JAPANESE, make_pdf, write_zip

from cllm_app.data import Refused, limits, notices, readers
from cllm_app.data.decode import detect

SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


def zip_bomb(path: Path, mib: int = 64, extra: dict[str, bytes] | None = None) -> Path:
    """`mib` MiB of one repeated byte, deflated to about a thousandth of that on disk."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros.txt", "w") as f:
            block = b"a" * (1 << 20)
            for _ in range(mib):
                f.write(block)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def folder_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def by_origin(report: dict) -> dict[str, dict]:
    return {Path(r["origin"]).name if "!/" not in r["origin"] else r["origin"].split("!/", 1)[1]: r
            for r in report["report"]}


# ---- archives --------------------------------------------------------------------------------


def test_a_zip_bomb_is_refused_before_a_byte_of_it_is_inflated(studio, tmp_path, monkeypatch):
    studio.models.create("m", **SMALL)
    bomb = zip_bomb(tmp_path / "bomb.zip", extra={"readme.txt": b"a small honest text beside the bomb"})
    assert bomb.stat().st_size < 200_000
    inflated = {}
    real_read = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        data = real_read(self, n)
        inflated[self.name] = inflated.get(self.name, 0) + len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    report = studio.queue.ingest("m", [str(bomb)])
    rows = by_origin(report)
    assert rows["readme.txt"]["outcome"] == "added"
    assert rows["zeros.txt"]["outcome"] == "refused"
    assert re.search(r"expand 1,0\d\d-fold, from .* to 64\.0 MB, past the limit of 100-fold", rows["zeros.txt"]["reason"])
    assert "zip bomb" in rows["zeros.txt"]["reason"]
    assert inflated == {"readme.txt": len(b"a small honest text beside the bomb")}  # the bomb: not a byte
    assert folder_size(studio.queue.folder(studio.models.get("m"))) < 100_000  # no token cache of it


def test_what_an_archive_may_expand_to_is_a_limit(tmp_path, monkeypatch):
    text = ("An ordinary sentence of an ordinary document, repeated. " * 200).encode()
    pack = write_zip(tmp_path / "pack.zip", {"a.txt": text, "b.txt": text[::-1]})
    assert [i.refused for i in readers.expand([(str(pack), "pack.zip")])] == [None, None]

    monkeypatch.setattr(limits, "MAX_ARCHIVE_BYTES", len(text) + 100)  # both members: past it
    (whole,) = readers.expand([(str(pack), "pack.zip")])
    assert whole.origin == "pack.zip" and whole.open is None
    assert f"expand to {2 * len(text) / 1024:.1f} KB, past the limit of 11.0 KB for one archive" in whole.refused
    monkeypatch.undo()

    monkeypatch.setattr(limits, "ARCHIVE_RATIO_FROM", 1000)
    monkeypatch.setattr(limits, "MAX_ARCHIVE_RATIO", 5)  # this text deflates some 40-fold
    items = readers.expand([(str(pack), "pack.zip")])
    assert all("past the limit of 5-fold" in i.refused and i.open is None and i.size == 0 for i in items)


def test_unsafe_archive_paths_are_refused_with_the_reason_and_nothing_escapes(studio, tmp_path):
    studio.models.create("m", **SMALL)
    link = zipfile.ZipInfo("link.txt")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    inner = tmp_path / "deep" / "er"
    inner.mkdir(parents=True)
    archive = inner / "slip.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("../../escaped_by_zip.txt", "/etc/absolute.txt", "C:/Windows/drive.txt", "..\\..\\back.txt",
                     "in/../../up.txt", "ctl\x1b[31m.txt", ".hidden.txt", "./dotted/fine.txt", "ok.txt"):
            zf.writestr(name, f"the text of {name}")
        zf.writestr(link, "/etc/passwd")
    report = studio.queue.ingest("m", [str(archive)])
    rows = {r["origin"].split("!/", 1)[1]: r for r in report["report"]}
    assert ".hidden.txt" not in rows  # hidden files stay unread, as in folders
    assert rows["ok.txt"]["outcome"] == rows["./dotted/fine.txt"]["outcome"] == "added"
    reasons = {name: rows[name]["reason"] for name in rows if rows[name]["outcome"] == "refused"}
    assert set(reasons) == {"../../escaped_by_zip.txt", "/etc/absolute.txt", "C:/Windows/drive.txt",
                            "..\\..\\back.txt", "in/../../up.txt", "ctl\\x1b[31m.txt", "link.txt"}
    for name in ("../../escaped_by_zip.txt", "..\\..\\back.txt", "in/../../up.txt"):
        assert "climbs out of it ('..')" in reasons[name] and "unsafe" in reasons[name]
    for name in ("/etc/absolute.txt", "C:/Windows/drive.txt"):
        assert "absolute" in reasons[name] and "unsafe" in reasons[name]
    assert "control characters" in reasons["ctl\\x1b[31m.txt"]  # and the escape is shown, not sent to a terminal
    assert "symbolic link" in reasons["link.txt"]
    assert report["refused"] == 7 and report["added"] == 2
    assert not any(p.name in ("escaped_by_zip.txt", "back.txt", "up.txt") for p in tmp_path.rglob("*"))


def test_members_zipfile_cannot_bound_are_refused(tmp_path):
    """zipfile inflates bzip2 and LZMA a whole block per read, whatever the member claims."""
    archive = tmp_path / "methods.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("b.txt", "bzip2 text", compress_type=zipfile.ZIP_BZIP2)
        zf.writestr("l.txt", "lzma text", compress_type=zipfile.ZIP_LZMA)
        zf.writestr("s.txt", "stored text", compress_type=zipfile.ZIP_STORED)
    items = {i.name: i for i in readers.expand([(str(archive), "methods.zip")])}
    assert "bzip2" in items["b.txt"].refused and "LZMA" in items["l.txt"].refused
    assert items["s.txt"].refused is None


# ---- random bytes and legacy encodings, side by side -----------------------------------------

LEGACY = [
    ("« Où est passé l’été ? » demanda-t-elle — personne ne répondit. Les élèves, déjà fatigués, rangeaient "
     "leurs cahiers ; le professeur soupira : « Voilà, c’est fini pour aujourd’hui. »", "cp1252"),
    ("The café’s “special” was a crème brûlée — €4.50 — and the naïve tourists loved it. Señor García said "
     "it’s the best in town… at least that’s what the sign claimed.", "cp1252"),
    (FRENCH, "cp1252"),
    ("Die Straße war naß und kühl, als wir über die Brücke gingen. Größere Häuser säumten den Weg, und ältere "
     "Männer saßen vor der Tür und grüßten freundlich jeden, der vorbeikam.", "latin-1"),
    (FRENCH, "latin-1"),
    ("// Berechnet die Größe des Fensters\npublic int getFensterGröße() { return this.breite * this.höhe; }\n"
     "// Prüft, ob die Höhe größer als die Breite ist: für Hochformat-Fenster\n", "cp1252"),
    ("今日は天気がいいので、公園へ散歩に行きました。桜の花がきれいに咲いていて、たくさんの人が写真を撮っていました。"
     "このPCはWindowsで動きます。", "shift_jis"),
    (JAPANESE, "shift_jis"),
    ("Привет, мир! Это проверка кодировки текста. Мы хотим убедиться, что русский текст читается "
     "правильно, даже если файл сохранён в старой кодировке Windows.", "cp1251"),
    ("Zażółć gęślą jaźń. Wczoraj pojechaliśmy do Krakowa, gdzie zwiedziliśmy Wawel i spróbowaliśmy "
     "tradycyjnych pierogów w małej restauracji przy rynku.", "cp1250"),
    ("Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο. Χθες πήγαμε στην Αθήνα και "
     "επισκεφθήκαμε την Ακρόπολη, που ήταν γεμάτη τουρίστες.", "cp1253"),
    ("今天天气很好，我们去公园散步。公园里有很多人，有的在跑步，有的在打太极拳，还有的在下棋。"
     "我们走了一个小时，然后去附近的饭馆吃午饭。", "gbk"),
    ("UTF-16 little endian without a byte order mark, a few sentences of plain English text.", "utf-16-le"),
    ("UTF-16 big endian without a byte order mark, and again some plain English sentences.", "utf-16-be"),
    ("Le café était très animé ce matin-là; à côté, les élèves répétaient leurs leçons.", "utf-16-le"),
]


def _random_bytes(kind: str, seed: int, n: int) -> bytes:
    r = random.Random(f"{kind}-{seed}-{n}")
    if kind == "any":  # every byte value
        return r.randbytes(n)
    if kind == "high":  # none of it ASCII, none of it UTF-8
        return bytes(r.randrange(128, 256) for _ in range(n))
    if kind == "printable":  # no control bytes, so no "binary" verdict to lean on
        return bytes(r.choice([*range(32, 256), 9, 10, 13]) for _ in range(n))
    return bytes(r.randrange(128, 256) if r.random() < 0.3 else r.randrange(32, 127) for _ in range(n))  # "mixed"


@pytest.mark.parametrize("text, codec", LEGACY, ids=[f"{c}-{i}" for i, (_t, c) in enumerate(LEGACY)])
def test_legacy_texts_are_read_in_their_encoding(text, codec):
    data = text.encode(codec)
    assert 100 <= len(data) <= 1000
    doc = readers.read(readers.Item("x.txt", "x.txt", len(data), None), io.BytesIO(data), readers.Options())
    assert "".join(doc.chunks) == text  # read right, not merely read


@pytest.mark.parametrize("n", [200, 1000, 5000, 30000])
@pytest.mark.parametrize("kind", ["any", "high", "printable", "mixed"])
def test_random_bytes_are_refused_as_not_text(kind, n):
    for seed in range(5):
        data = _random_bytes(kind, seed, n)
        with pytest.raises(Refused) as e:
            doc = readers.read(readers.Item("x.txt", "x.txt", n, None), io.BytesIO(data), readers.Options())
            "".join(doc.chunks)
        if kind == "any":
            assert "binary" in e.value.reason  # NULs and control bytes tell first
        else:
            assert e.value.reason.startswith("it is not readable as text in any encoding"), (seed, e.value.reason)


@pytest.mark.parametrize("seed, n", [(7, 200), (161, 200), (51, 300), (199, 300)])
def test_noise_that_the_encoding_guess_alone_took_for_text_is_refused(seed, n):
    """A fifth of random high bytes among random ASCII: charset-normalizer read these few as
    cp1250 or mac_latin2, and they were added as mojibake."""
    r = random.Random(f"0.2-{seed}-{n}")
    data = bytes(r.randrange(128, 256) if r.random() < 0.2 else r.randrange(32, 127) for _ in range(n))
    with pytest.raises(Refused) as e:
        detect(data, True)
    assert "not readable as text in any encoding" in e.value.reason and "noise" in e.value.reason


def test_the_issue_s_noise_file_is_refused_and_its_neighbours_added(studio, tmp_path):
    studio.models.create("m", **SMALL)
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "noise.txt").write_bytes(_random_bytes("high", 0, 5000))
    (folder / "legacy.txt").write_bytes(LEGACY[0][0].encode("cp1252"))
    report = studio.queue.ingest("m", [str(folder)])
    rows = by_origin(report)
    assert rows["noise.txt"]["outcome"] == "refused" and "any encoding" in rows["noise.txt"]["reason"]
    assert rows["legacy.txt"]["outcome"] == "added"
    assert detect(LEGACY[0][0].encode("cp1252"), True) == "cp1252"


# ---- the libraries' warnings -----------------------------------------------------------------


def test_notices_catch_library_logging_and_warnings_and_nothing_leaks(capsys):
    heard = notices.Notices()
    with notices.caught(heard):
        for _ in range(3):
            logging.getLogger("pypdf._reader").warning("EOF marker not found")
        logging.getLogger("trafilatura.core").warning("discarding data: %s", "None")
        logging.getLogger("charset_normalizer").info("below warning: not a notice")
        warnings.warn("a library's UserWarning", stacklevel=1)
    assert heard.lines() == ["pypdf: EOF marker not found (3 times)", "trafilatura: discarding data: None",
                             "UserWarning: a library's UserWarning"]
    assert capsys.readouterr() == ("", "")
    assert logging.getLogger("pypdf").propagate and not logging.getLogger("pypdf").handlers  # as it was


def test_library_warnings_go_to_the_report_line_and_the_job_log_not_the_terminal(home, tmp_path):
    env = {**os.environ, "CLLM_HOME": str(home)}

    def cllm(*args):
        return subprocess.run([sys.executable, "-m", "cllm_app", *args], capture_output=True, text=True, env=env,
                              timeout=120)

    assert cllm("models", "create", "m", "--layers", "1", "--heads", "2", "--dim", "16", "--context", "16").returncode == 0
    pdf = make_pdf("Hello from a PDF page")
    (tmp_path / "no_eof.pdf").write_bytes(pdf[: pdf.rindex(b"%%EOF")])  # cut short: pypdf warns, then fails
    xref = re.search(rb"startxref\n(\d+)\n", pdf)
    (tmp_path / "bad_xref.pdf").write_bytes(  # a wrong pointer: pypdf warns, repairs, reads
        pdf[: xref.start(1)] + str(int(xref.group(1)) + 7).encode() + pdf[xref.end(1):])
    p = cllm("data", "add", "m", str(tmp_path / "no_eof.pdf"), str(tmp_path / "bad_xref.pdf"))
    out = p.stdout.splitlines() + p.stderr.splitlines()
    for phrase, line_start in (("EOF marker not found", f"refused {tmp_path / 'no_eof.pdf'}: "),
                               ("incorrect startxref pointer", f"added {tmp_path / 'bad_xref.pdf'} (")):
        lines = [line for line in out if phrase in line]
        assert len(lines) == 1 and lines[0].startswith(line_start), (p.stdout, p.stderr)
    assert "CAUTION" not in "\n".join(line for line in out if not line.startswith("refused "))
    log = "\n".join(f.read_text() for f in (home / "logs").glob("job-*.log"))
    assert f"{tmp_path / 'no_eof.pdf'}: pypdf: EOF marker not found" in log
    assert f"{tmp_path / 'bad_xref.pdf'}: pypdf: incorrect startxref pointer" in log
