"""The rules for model names.

A name becomes a folder name on every platform, so it is kept to characters
that are safe everywhere and unique without regard to case (macOS and Windows
folders are case-insensitive).
"""

import re
import unicodedata

from cllm_app.errors import InvalidInput

MAX_NAME_LENGTH = 64
NAME_RULE = (
    "A model name is 1 to 64 characters: letters, digits, spaces, '-', '_' and '.', "
    "and does not start or end with a space or a dot."
)
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}
_DEFAULT = re.compile(r"^model_(\d+)$", re.IGNORECASE)


def _allowed_char(ch: str) -> bool:
    if ch in " -_.":
        return True
    category = unicodedata.category(ch)
    return category.startswith("L") or category == "Nd"


_INVISIBLE = {"\t": "a tab", "\n": "a line break", "\r": "a carriage return"}


def _shown(ch: str) -> str:
    """A refused character as a person reads it: itself in quotes (a backslash is one
    backslash), or its code and name when it cannot be seen (a tab, a zero-width space)."""
    if ch in _INVISIBLE:
        return _INVISIBLE[ch]
    if ch.isprintable() and not ch.isspace():
        return f"'{ch}'"
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" ({name.lower()})" if name else "")


def check_name(name) -> str:
    """Return the name, NFC-normalised, or raise InvalidInput saying what is allowed."""
    if not isinstance(name, str):
        raise InvalidInput(f"model_name must be text. {NAME_RULE}", code="invalid_name")
    name = unicodedata.normalize("NFC", name)
    if not name:
        raise InvalidInput(f"The name is empty. {NAME_RULE}", code="invalid_name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"The name is {len(name)} characters long. {NAME_RULE}", code="invalid_name")
    bad = sorted({ch for ch in name if not _allowed_char(ch)})
    if bad:
        shown = " ".join(_shown(ch) for ch in bad[:5])
        raise InvalidInput(f"The name contains {shown}. {NAME_RULE}", code="invalid_name")
    if name[0] in " ." or name[-1] in " .":
        raise InvalidInput(f"The name starts or ends with a space or a dot. {NAME_RULE}", code="invalid_name")
    if name.split(".")[0].strip().casefold() in _WINDOWS_DEVICES:
        raise InvalidInput(
            f"'{name}' is reserved for devices on Windows and cannot name a folder. {NAME_RULE}",
            code="invalid_name",
        )
    return name


def name_key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def lowest_free_default(taken_keys: set[str]) -> str:
    n = 1
    while f"model_{n}" in taken_keys:
        n += 1
    return f"model_{n}"


def copy_name(name: str, taken_keys: set[str]) -> str:
    """`NAME-copy`, then `NAME-copy-2`, …, shortened so the result stays a valid name."""
    n = 1
    while True:
        suffix = "-copy" if n == 1 else f"-copy-{n}"
        candidate = name[: MAX_NAME_LENGTH - len(suffix)].rstrip(" .") + suffix
        if name_key(candidate) not in taken_keys:
            return candidate
        n += 1
