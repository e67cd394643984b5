"""Notes: create, edit, rename, delete, search with snippets, safe names, safe rendering,
attachments that survive renames, and importing a document."""

import io

import pytest

from cllm_app.errors import ConfirmationRequired, Conflict, InvalidInput, NotFound
from cllm_app.services.research.notes import check_note_name


def test_crud_and_files_on_disk(studio):
    notes = studio.notes
    folder = studio.root.research_dir
    made = notes.create("Run log", "# Runs\n\nFirst try.")
    assert made["note_name"] == "Run log.md" and made["title"] == "Runs"
    assert (folder / "Run log.md").read_text() == "# Runs\n\nFirst try."
    saved = notes.save("Run log.md", "# Runs\n\nSecond try.")
    assert "Second try." in saved["html"]
    renamed = notes.rename("Run log.md", "runs.txt")
    assert renamed["note_name"] == "runs.txt" and renamed["html"].startswith("<pre>")
    assert not (folder / "Run log.md").exists() and (folder / "runs.txt").exists()
    with pytest.raises(Conflict):
        notes.create("RUNS.txt", "x")  # names ignore case
    with pytest.raises(ConfirmationRequired):
        notes.delete("runs.txt")
    assert notes.delete("runs.txt", confirm=True) == {"note_name": "runs.txt"}
    assert notes.list()["notes"] == []
    with pytest.raises(NotFound):
        notes.get("runs.txt")


@pytest.mark.parametrize("name", [
    "../escape", "a/b", "..\\x", ".hidden", "/etc/passwd", "", "   ", "CON", "x" * 120, "bad\x00name", "a..md", "sub/../x.md",
])
def test_unsafe_names_are_refused_and_nothing_is_written(studio, tmp_path, name):
    before = set(studio.root.path.rglob("*"))
    with pytest.raises(InvalidInput):
        studio.notes.create(name, "x")
    with pytest.raises(InvalidInput):
        check_note_name(name)
    assert set(studio.root.path.rglob("*")) == before


def test_search_is_case_insensitive_with_snippets(studio):
    notes = studio.notes
    notes.create("alpha", "The learning RATE was too high at first.\n" + "filler " * 40 + "\nLower rate: fine.")
    notes.create("beta.txt", "nothing to see")
    notes.create("rate ideas", "empty")
    found = notes.list("rate")["notes"]
    assert [n["note_name"] for n in found] == ["alpha.md", "rate ideas.md"]
    snippets = found[0]["snippets"]
    assert len(snippets) == 2 and "RATE" in snippets[0] and "Lower rate" in snippets[1]
    assert found[1]["snippets"] == []  # matched by its name
    assert notes.list("ZZZ")["notes"] == []


def test_rendering_shows_raw_html_as_text(studio):
    note = studio.notes.create("x", "Hi <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
                                    "[click](javascript:alert(1)) **bold**")
    html = note["html"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html
    assert 'href="javascript:' not in html
    assert "<strong>bold</strong>" in html


def test_attachments_follow_model_and_note_renames(studio):
    studio.models.create("m1")
    studio.models.create("m2")
    notes = studio.notes
    notes.create("plan", "text")
    assert notes.attach("plan.md", "m1")["models"] == ["m1"]
    notes.attach("plan.md", "m1")  # twice is once
    notes.attach("plan.md", "m2")
    studio.models.rename("m1", "renamed")
    assert notes.get("plan.md")["models"] == ["m2", "renamed"]
    notes.rename("plan.md", "the plan")
    assert [n["note_name"] for n in notes.list(model_name="renamed")["notes"]] == ["the plan.md"]
    assert notes.detach("the plan.md", "m2")["models"] == ["renamed"]
    assert notes.list(model_name="m2")["notes"] == []
    studio.models.delete("renamed", confirm=True)
    assert notes.get("the plan.md")["models"] == []  # a trashed model's link is not shown
    with pytest.raises(NotFound):
        notes.attach("the plan.md", "ghost")


def test_import_a_document(studio):
    notes = studio.notes
    first = notes.import_file("paper draft.markdown", io.BytesIO("# Draft\nbody".encode()))
    assert first["note_name"] == "paper draft.md" and first["title"] == "Draft"
    second = notes.import_file("paper draft.md", io.BytesIO(b"again"))
    assert second["note_name"] == "paper draft (2).md"
    odd = notes.import_file("../../weird:name?.rst", io.BytesIO(b"rst text"))
    assert odd["note_name"] == "weird_name.txt"
    for data, code in [(b"\x00\x00", "binary_file"), (b"\xff\xfe bad", "not_utf8"), (b" \n ", "empty_file")]:
        with pytest.raises(InvalidInput) as e:
            notes.import_file("f.txt", io.BytesIO(data))
        assert e.value.code == code
    assert len(notes.list()["notes"]) == 3
