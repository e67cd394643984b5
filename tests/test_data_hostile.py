"""Hostile input: zip bombs, archive paths that would escape, random bytes posing as text, and
the libraries' own warnings, which belong in the report and the job's log, not the terminal."""

import re
import stat
import zipfile
from pathlib import Path

from data_files import write_zip

from cllm_app.data import limits, readers

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
