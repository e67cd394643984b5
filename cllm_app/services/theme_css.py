"""What a theme may hold: custom-property declarations (`--name: value;`), optionally inside
one `:root { … }`, and comments. Nothing else.

A theme is loaded into the app's own page, so anything beyond variables could change more than
the look: an at-rule (`@import`) or `url(…)` makes the page fetch from elsewhere, a selector
restyles or hides parts of the UI, `expression(…)` and `javascript:` are old script hooks, and
`</style` ends a style element. Backslash escapes are refused too, since they can spell any of
these in a form a pattern does not see. Values may use only functions known to compute a
colour, size or gradient, so a new way to load a resource (`image-set("…")`) is refused too.

`check(css)` raises InvalidInput naming the first offending part and its line. Declarations
without `:root` are a theme too; `as_stylesheet` puts them in one, so a browser applies them.
"""

import re

from cllm_app.errors import InvalidInput

# Functions that compute a value and can load nothing.
FUNCTIONS = frozenset("""
    var env calc min max clamp abs sign round mod rem sin cos tan asin acos atan atan2 pow sqrt
    hypot log exp rgb rgba hsl hsla hwb lab lch oklab oklch color color-mix light-dark
    linear-gradient radial-gradient conic-gradient repeating-linear-gradient
    repeating-radial-gradient repeating-conic-gradient cubic-bezier steps linear
    translate translatex translatey translatez translate3d scale scalex scaley scale3d rotate
    rotatex rotatey rotatez rotate3d skew skewx skewy matrix matrix3d perspective
    blur brightness contrast drop-shadow grayscale hue-rotate invert opacity saturate sepia
    minmax repeat fit-content
""".split())

# Refused wherever they stand, even in a comment or a string: their mere presence is the risk
# (a comment cannot hide them from a careless later use of the text either).
_ANYWHERE = (
    (re.compile(r"url\s*\(", re.I), "url(…) is not allowed: a theme cannot load files or pages"),
    (re.compile(r"expression\s*\(", re.I), "expression(…) is not allowed: a theme cannot run script"),
    (re.compile(r"javascript\s*:", re.I), "'javascript:' is not allowed: a theme cannot run script"),
)
_NAME = re.compile(r"--[A-Za-z0-9_-]+")
# CSS reads any non-ASCII character as part of a word, so a word may hold them (and then
# cannot be an allowed function's name).
_WORD = re.compile(r"[A-Za-z_\-\u0080-\U0010FFFF][A-Za-z0-9_\-\u0080-\U0010FFFF]*")
_IMPORTANT = re.compile(r"!\s*important\b", re.I)
_SPACE = " \t\r\n\f"  # CSS's whitespace (not str.isspace's, which has more)
_VALUE_CHARS = set("0123456789.,%#+-*/" + _SPACE)


class _Refused(Exception):
    def __init__(self, pos: int, message: str):
        self.pos = pos
        self.message = message


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _snippet(text: str, pos: int, stop: str = ";{}\n") -> str:
    end = pos
    while end < len(text) and text[end] not in stop and end - pos < 40:
        end += 1
    return text[pos:end].strip() or text[pos:pos + 1]


def check(css: str) -> bool:
    """Refuse `css` unless it is custom-property declarations only (see the module's docstring).
    Returns whether they stand in a `:root { … }` block."""
    try:
        return _check(css)
    except _Refused as e:
        raise InvalidInput(f"line {_line(css, e.pos)}: {e.message}", code="invalid_theme") from None


_DECLARATION = re.compile(r"(--[A-Za-z0-9_-]+)\s*:\s*([^;{}]*)")


def declared(css: str) -> dict[str, str]:
    """The variables a checked theme sets, and their values (comments left out)."""
    return {m.group(1): m.group(2).strip() for m in _DECLARATION.finditer(_blank_comments(css.removeprefix("\ufeff")))}


def as_stylesheet(css: str) -> str:
    """A checked theme as the page loads it: its declarations in `:root`."""
    css = css.removeprefix("\ufeff")
    return css if check(css) else f":root {{\n{css}\n}}\n"


def _check(css: str) -> bool:
    if css.startswith("\ufeff"):  # a byte-order mark, as some editors write: not part of the CSS
        css = " " + css[1:]
    for i, ch in enumerate(css):
        if ch == "\\":
            raise _Refused(i, "a backslash is not allowed: escapes could hide what a theme may not hold")
        if ch == "<":
            raise _Refused(i, f"'{_snippet(css, i, ' >;{}')}' is not allowed: a theme is CSS, not markup")
        if (ord(ch) < 32 and ch not in "\t\n\r\f") or ord(ch) == 127:
            raise _Refused(i, f"the control character U+{ord(ch):04X} is not allowed")
    for pattern, message in _ANYWHERE:
        found = pattern.search(css)
        if found:
            raise _Refused(found.start(), message)
    return _Parser(_blank_comments(css)).sheet()


def _blank_comments(css: str) -> str:
    """Comments become spaces (newlines kept, so lines still count); strings are left alone."""
    out = []
    i, n = 0, len(css)
    quote = None
    while i < n:
        ch = css[i]
        if quote:
            out.append(ch)
            if ch == quote or ch == "\n":
                quote = None
            i += 1
        elif ch in "\"'":
            quote = ch
            out.append(ch)
            i += 1
        elif css.startswith("/*", i):
            end = css.find("*/", i + 2)
            if end < 0:
                raise _Refused(i, "a comment that is never closed ('/*' without '*/')")
            out.append("".join(c if c == "\n" else " " for c in css[i:end + 2]))
            i = end + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def sheet(self) -> bool:
        self.ws()
        if self.text.startswith(":root", self.pos) and not _WORD.match(self.text, self.pos + 5):
            self.pos += 5
            self.ws()
            if self.peek() != "{":
                raise _Refused(self.pos, f"':root' must be followed by '{{', not '{_snippet(self.text, self.pos)}'")
            self.pos += 1
            self.declarations(in_block=True)
            if self.peek() != "}":
                raise _Refused(self.pos, "':root {' is never closed (a '}' is missing)")
            self.pos += 1
            self.ws()
            if not self.at_end():
                raise _Refused(self.pos, self.not_a_declaration("after the ':root { … }' block"))
            return True
        self.declarations(in_block=False)
        if not self.at_end():
            raise _Refused(self.pos, "a '}' that closes nothing")
        return False

    def not_a_declaration(self, where: str = "") -> str:
        text, pos = self.text, self.pos
        where = f" {where}" if where else ""
        if text[pos] == "@":
            word = _WORD.match(text, pos + 1)
            return f"the at-rule '@{word.group(0) if word else ''}'{where} is not allowed: a theme holds variables only"
        if text[pos] == "}":
            return f"a '}}'{where} that closes nothing"
        if text[pos] == "{":
            return f"a '{{'{where} that belongs to no ':root'"
        # What is this: a selector (something followed by '{') or an ordinary property?
        brace = text.find("{", pos)
        semi = text.find(";", pos)
        if brace >= 0 and (semi < 0 or brace < semi):
            selector = " ".join(text[pos:brace].split())[:40]
            return (f"the selector '{selector}'{where} is not allowed: a theme sets variables in ':root' only")
        return (f"'{_snippet(text, pos)}'{where} is not a custom property: a theme holds only "
                "'--name: value;' declarations")

    def declarations(self, in_block: bool) -> None:
        while True:
            self.ws()
            ch = self.peek()
            if ch == "" or (in_block and ch == "}"):
                return
            if ch == ";":
                self.pos += 1
                continue
            if ch == "}":
                return
            name = _NAME.match(self.text, self.pos)
            if not name:
                raise _Refused(self.pos, self.not_a_declaration())
            self.pos = name.end()
            self.ws()
            if self.peek() != ":":
                raise _Refused(self.pos, f"'{name.group(0)}' must be followed by ':' and a value")
            self.pos += 1
            self.value(name.group(0))

    def value(self, name: str) -> None:
        """Up to the ';' (or the block's '}'): words, numbers, strings, allowed functions."""
        text = self.text
        depth = 0
        opened = []
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in ";}":
                if depth:
                    raise _Refused(opened[-1], f"a '(' in the value of {name} is never closed")
                return
            if ch in "\"'":
                end = self.pos + 1
                while end < len(text) and text[end] not in (ch, "\n"):
                    end += 1
                if end >= len(text) or text[end] != ch:
                    raise _Refused(self.pos, f"a string in the value of {name} is never closed ({ch} is missing)")
                self.pos = end + 1
            elif ch == "(":
                raise _Refused(self.pos, f"a '(' in the value of {name} that follows no function name")
            elif ch == ")":
                if depth == 0:
                    raise _Refused(self.pos, f"a ')' in the value of {name} that closes nothing")
                depth -= 1
                opened.pop()
                self.pos += 1
            elif ch == "!":
                important = _IMPORTANT.match(text, self.pos)
                if not important:
                    raise _Refused(self.pos, f"'!' in the value of {name} (only '!important' is allowed)")
                self.pos = important.end()
            elif word := _WORD.match(text, self.pos):
                self.pos = word.end()
                if self.peek() == "(":
                    function = word.group(0).lower()
                    if function not in FUNCTIONS:
                        raise _Refused(word.start(), f"the function '{word.group(0)}(' in the value of {name} is not "
                                                     "allowed: only colour, size and gradient functions (calc, var, "
                                                     "rgb, linear-gradient, …)")
                    depth += 1
                    opened.append(word.start())
                    self.pos += 1
            elif ch in _VALUE_CHARS:
                self.pos += 1
            else:
                what = "a '{'" if ch == "{" else f"'{ch}'"
                raise _Refused(self.pos, f"{what} in the value of {name} is not allowed")
        if depth:
            raise _Refused(opened[-1], f"a '(' in the value of {name} is never closed")
