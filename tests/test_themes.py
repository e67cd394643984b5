"""A theme is custom-property declarations only: every other kind of CSS is refused with a
message that names it, on every way in (API, desktop import, files dropped in themes/)."""

import pytest

from cllm_app.errors import InvalidInput
from cllm_app.services import theme_css
from cllm_app.services.themes import BUILTIN, builtin_css

HOSTILE = [
    # (css, a part of the message that names what is wrong)
    ("@import url(http://evil.example/x.css);", "url("),
    ('@import "http://evil.example/x.css";', "@import"),
    ("@font-face { --x: 1 }", "@font-face"),
    (":root { --bg: #fff; }\n@media print { :root { --bg: #000 } }", "@media"),
    ("body{background:url(http://evil.example/x.png)}", "url("),
    ("body { background: red }", "selector 'body'"),
    (":root, body { --bg: red }", "':root' must be followed by '{'"),
    (":root { --bg: red } .x { --a: 1 }", "selector '.x'"),
    (":root { --bg: red } :root { --a: 1 }", "selector ':root'"),
    (":root { color: red }", "'color: red' is not a custom property"),
    (":root { --bg: url(javascript:alert(1)) }", "url("),
    (":root { --bg: URL ( 'x.png' ) }", "url("),
    ("--bg: expression(alert(1));", "expression("),
    ('--font: "javascript:alert(1)";', "javascript:"),
    ("--a: red; </style><script>alert(1)</script>", "'</style"),
    ("/* </style> */ --a: red;", "'</style"),
    (":root { --bg: \\75 rl(x.png) }", "backslash"),
    ("--a: u\\rl(x);", "backslash"),
    ('--bg: image-set("http://evil.example/x.png" 1x);', "'image-set('"),
    ('--bg: -webkit-image-set("x.png" 1x);', "'-webkit-image-set('"),
    ("--bg: u/**/rl(x.png);", "'rl('"),
    (":root { --bg: red", "never closed"),
    (":root { --bg: red } }", "closes nothing"),
    ("--a: red; }", "closes nothing"),
    ("--a: { color: red };", "'{' in the value of --a"),
    ("{ --a: red }", "'{'"),
    ('--font: "Segoe UI;', "never closed"),
    ("--font: 'Segoe UI\n';", "never closed"),
    ("--a: calc(1px + 2px;", "never closed"),
    ("--a: 1px);", "closes nothing"),
    ("--a: red /* never closed", "never closed"),
    ("--a: red !default;", "'!'"),
    ("--a: red;\x00", "control character"),
    ("--a: a:b;", "':' in the value of --a"),
]


@pytest.mark.parametrize("css, named", HOSTILE)
def test_hostile_css_is_refused_naming_the_part(css, named):
    with pytest.raises(InvalidInput) as caught:
        theme_css.check(css)
    assert caught.value.code == "invalid_theme"
    assert named in caught.value.message and caught.value.message.startswith("line ")


def test_the_message_gives_the_line():
    with pytest.raises(InvalidInput) as caught:
        theme_css.check(":root {\n  --a: red;\n  --b: url(x.png);\n}")
    assert caught.value.message.startswith("line 3: url(")


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_themes_pass(name):
    assert theme_css.check(builtin_css(name).decode()) is True


@pytest.mark.parametrize("css", [
    ":root { --bg: #ffddaa; }",
    ":root{--bg:#fed}",
    "--bg: #fed;\n--panel: rgb(1 2 3 / 50%);",  # no :root: it is put in one when served
    "\ufeff:root { --bg: #fed; }",  # a byte-order mark, as Notepad writes
    """/* A theme of my own */
:root {
  --font-ui: "Segoe UI", 'Helvetica Neue', system-ui, -apple-system, sans-serif;
  --shadow: 0 1px 3px #0000001a, inset 0 0 0 1px hsl(210deg 20% 50% / .2);
  --accent: color-mix(in oklab, var(--bg, #fff) 40%, #2f6fde);
  --gap: calc(var(--pad) * 1.5 + -2px);
  --header: linear-gradient(to right, #fff 0%, rgba(0, 0, 0, 0.1) 100%) !important;
  --font: メイリオ, sans-serif;
  --empty:;
}
""",
])
def test_ordinary_themes_pass(css):
    theme_css.check(css)


def test_declarations_without_root_are_served_inside_root_over_the_base(client):
    """`cllmStudio.themes.add('bare', '--bg: #123456;')` is a theme: its one variable, in a
    :root, after every variable of its base, so the rest of the look stays."""
    assert client.post("/api/themes", json={"name": "bare", "css": "--bg: #123456;"}).status_code == 201
    served = client.get("/themes/bare.css").get_data(as_text=True)
    light = builtin_css("light").decode()
    assert served.startswith(light) and served.endswith(":root {\n--bg: #123456;\n}\n")
    assert theme_css.declared(served)["--bg"] == "#123456"  # the override wins: it comes last
    assert set(theme_css.declared(light)) <= set(theme_css.declared(served))


def test_a_theme_names_its_base(client):
    css = "--theme-base: dark;\n--accent: #c00;"
    assert client.post("/api/themes", json={"name": "night", "css": css}).status_code == 201
    served = client.get("/themes/night.css").get_data(as_text=True)
    assert served.startswith(builtin_css("dark").decode()) and served.rstrip().endswith("}")
    assert theme_css.declared(served)["--accent"] == "#c00"
    client.put("/api/themes/current", json={"name": "night"})
    assert client.get("/themes/current.css").get_data(as_text=True) == served


@pytest.mark.parametrize("css, named", [
    ("--accnt: #c00;", "--accnt"),
    (":root { --accent: #c00; --bogus-a: 1px; --bogus-b: 2px }", "--bogus-a, --bogus-b"),
    ("--accent: ;", "--accent has no value"),
    ("--theme-base: sepia;", "--theme-base must be light or dark, not 'sepia'"),
])
def test_unknown_or_invalid_declarations_are_refused_by_name(client, home, css, named):
    r = client.post("/api/themes", json={"name": "mine", "css": css})
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["code"] == "invalid_theme" and named in error["message"], error
    assert not (home / "themes" / "mine.css").exists()


def test_every_variable_the_stylesheets_read_may_be_set():
    from cllm_app.services.themes import known_variables

    known = known_variables()
    assert {"--accent", "--bg", "--chart-train", "--border-width"} <= known
    assert not any(n.startswith("--_") for n in known)


@pytest.mark.parametrize("css, named", HOSTILE[:6])
def test_the_api_refuses_and_saves_nothing(client, home, css, named):
    r = client.post("/api/themes", json={"name": "evil", "css": css})
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["code"] == "invalid_theme" and named in error["message"]
    assert not (home / "themes" / "evil.css").exists()


def test_the_desktop_import_refuses(studio, tmp_path, home):
    # Bridge.import_theme hands the chosen file to add_file.
    bad = tmp_path / "evil.css"
    bad.write_text("@import url(http://evil.example/x.css);")
    with pytest.raises(InvalidInput) as caught:
        studio.themes.add_file(bad)
    assert "url(" in caught.value.message
    assert not (home / "themes" / "evil.css").exists()


def test_a_bad_file_in_the_folder_is_skipped_and_the_app_still_loads(client, home, caplog):
    (home / "themes" / "evil.css").write_text("body { background: url(http://evil.example/x.png) }")
    (home / "themes" / "fine.css").write_text(":root { --bg: #010203; }")
    (home / "themes" / "binary.css").write_bytes(b"\xff\xfe\x00")
    listing = client.get("/api/themes").get_json()
    assert [t["name"] for t in listing["themes"]] == ["dark", "fine", "light"]
    skipped = {s["name"]: s["message"] for s in listing["skipped"]}
    assert set(skipped) == {"binary", "evil"}
    assert "url(" in skipped["evil"] and "UTF-8" in skipped["binary"]
    assert "evil.css skipped" in caplog.text
    assert client.get("/themes/evil.css").status_code == 404
    assert client.put("/api/themes/current", json={"name": "evil"}).status_code == 404
    assert client.get("/").status_code == 200 and client.get("/themes/current.css").status_code == 200


def test_a_file_that_turns_bad_after_it_was_chosen_is_not_served(client, home):
    path = home / "themes" / "fine.css"
    path.write_text(":root { --bg: #010203; }")
    client.put("/api/themes/current", json={"name": "fine"})
    assert b"#010203" in client.get("/themes/current.css").data
    path.write_text(":root { --bg: #010203; } @import url(http://evil.example/x.css);")
    assert client.get("/api/themes").get_json()["current"] == "light"
    served = client.get("/themes/current.css").data
    assert b"@import" not in served and b"--bg: #f6f7f9" in served
    assert client.get("/themes/fine.css").status_code == 404


def test_a_broken_builtin_file_falls_back_to_the_packaged_one(client, home):
    (home / "themes" / "light.css").write_text("@import url(http://evil.example/x.css);")
    assert client.get("/themes/light.css").data == builtin_css("light")
    listing = client.get("/api/themes").get_json()
    assert "light" in [t["name"] for t in listing["themes"]] and listing["skipped"][0]["name"] == "light"
