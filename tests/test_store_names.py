"""The rules for model names."""

import pytest

from cllm_app.errors import InvalidInput
from cllm_app.services.names import check_name, copy_name, lowest_free_default


@pytest.mark.parametrize(
    "name",
    ["a", "model_1", "My Model", "v1.2-final", "x" * 64, "Modèle été", "模型", "a.b.c", "A B"],
)
def test_allowed_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("", "empty"),
        ("x" * 65, "65 characters"),
        (" lead", "starts or ends"),
        ("trail ", "starts or ends"),
        (".hidden", "starts or ends"),
        ("dot.", "starts or ends"),
        ("a/b", "'/'"),
        ("a\\b", "contains '\\'."),  # one backslash, as typed
        ("tab\there", "contains a tab"),
        ("new\nline", "contains a line break"),
        ("zero\u200bwidth", "U+200B (zero width space)"),
        ("colon:", "':'"),
        ("emoji🙂", "🙂"),
        ("CON", "reserved"),
        ("nul.txt", "reserved"),
        ("com1", "reserved"),
    ],
)
def test_refused_names_say_what_is_allowed(name, fragment):
    with pytest.raises(InvalidInput) as e:
        check_name(name)
    assert fragment in e.value.message
    assert "1 to 64 characters" in e.value.message
    assert e.value.code == "invalid_name"


def test_non_text_name_is_refused():
    with pytest.raises(InvalidInput):
        check_name(42)


def test_name_is_nfc_normalised():
    decomposed = "e\u0301te"
    assert check_name(decomposed) == "\u00e9te"


def test_lowest_free_default_fills_gaps():
    assert lowest_free_default(set()) == "model_1"
    assert lowest_free_default({"model_1", "model_3"}) == "model_2"


def test_copy_name_stays_valid_and_unique():
    assert copy_name("a", set()) == "a-copy"
    assert copy_name("a", {"a-copy"}) == "a-copy-2"
    long = "y" * 64
    assert len(copy_name(long, set())) <= 64
    check_name(copy_name("ends with dot." + "z" * 50, set()))
