"""The JSON API through Flask's test client: every route, every refusal as JSON with a 4xx."""

import pytest
from openapi_spec_validator import validate

from cllm_app.api.openapi import ROUTES, api_routes
from tests.conftest import HOST, SECRET


def _err(response, status, code=None):
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_create_list_show(client):
    r = client.post("/api/models", json={"model_name": "api one", "n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16})
    assert r.status_code == 201
    assert r.get_json()["model_name"] == "api one"
    client.post("/api/models", json={})
    names = [m["model_name"] for m in client.get("/api/models").get_json()["models"]]
    assert names == ["api one", "model_1"]
    assert client.get("/api/models?sort=created&order=desc").get_json()["models"][0]["model_name"] == "model_1"
    shown = client.get("/api/models/api%20one").get_json()
    assert shown["n_layer"] == 2 and "lineage" in shown
    assert client.get("/api/model-names/default").get_json() == {"model_name": "model_2"}


def test_name_check_for_live_validation(client):
    client.post("/api/models", json={"model_name": "Taken"})
    assert client.get("/api/model-names/check?model_name=fine").get_json()["ok"] is True
    bad = client.get("/api/model-names/check?model_name=a/b").get_json()
    assert bad["ok"] is False and "1 to 64 characters" in bad["message"]
    assert client.get("/api/model-names/check?model_name=taken").get_json()["code"] == "name_taken"
    same = client.get("/api/model-names/check?model_name=TAKEN&current=Taken").get_json()
    assert same["ok"] is True


def test_rename_duplicate_delete_restore(client):
    client.post("/api/models", json={"model_name": "a"})
    assert client.post("/api/models/a/rename", json={"model_name": "b"}).get_json()["model_name"] == "b"
    _err(client.get("/api/models/a"), 404, "model_not_found")
    dup = client.post("/api/models/b/duplicate", json={})
    assert dup.status_code == 201 and dup.get_json()["model_name"] == "b-copy"
    _err(client.delete("/api/models/b"), 400, "confirmation_required")
    _err(client.delete("/api/models/b", json={"confirm": "yes"}), 400, "confirmation_required")
    trash = client.delete("/api/models/b", json={"confirm": True}).get_json()["trash"]
    assert [t["id"] for t in client.get("/api/trash").get_json()["trash"]] == [trash["id"]]
    assert client.post(f"/api/trash/{trash['id']}/restore", json={}).get_json()["model_name"] == "b"
    _err(client.post(f"/api/trash/{trash['id']}/restore", json={}), 404, "not_in_trash")
    client.delete("/api/models/b-copy", json={"confirm": True})
    _err(client.delete("/api/trash", json={}), 400, "confirmation_required")
    assert client.delete("/api/trash", json={"confirm": True}).get_json() == {"removed": 1}


def test_patch_settings_and_layers(client):
    client.post("/api/models", json={"model_name": "p", "n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16})
    m = client.patch("/api/models/p", json={"batch_size": 4, "learning_rate": 0.001, "n_layer": 3}).get_json()
    assert (m["batch_size"], m["learning_rate"], m["n_layer"]) == (4, 0.001, 3)
    _err(client.patch("/api/models/p", json={"n_layer": 1}), 400, "layer_reduction")
    _err(client.patch("/api/models/p", json={"sequence_length": 64}), 400, "invalid_sequence_length")


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/api/models", {"model_name": ""}),
        ("post", "/api/models", {"model_name": "x" * 65}),
        ("post", "/api/models", {"model_name": None, "n_layer": "many"}),
        ("post", "/api/models", {"n_layer": -1}),
        ("post", "/api/models", {"n_layer": 10**30}),
        ("post", "/api/models", {"learning_rate": "fast"}),
        ("post", "/api/models", {"unknown": 1}),
        ("post", "/api/models", [1, 2, 3]),
        ("post", "/api/models", "a string"),
        ("post", "/api/models", 12),
        ("patch", "/api/models/m", {"target_epochs": -5}),
        ("patch", "/api/models/m", {"n_head": 0}),
        ("patch", "/api/models/m", {"seed": 2**40}),
        ("post", "/api/models/m/rename", {}),
        ("post", "/api/models/m/rename", {"model_name": 5}),
        ("post", "/api/models/m/rename", {"model_name": "m", "extra": 1}),
        ("post", "/api/models/m/duplicate", {"model_name": ".x"}),
        ("post", "/api/trash/999/restore", {}),
        ("put", "/api/themes/current", {"name": "../../etc/passwd"}),
        ("post", "/api/themes", {"name": "../evil", "css": "a{}"}),
        ("post", "/api/themes", {"name": "ok", "css": ""}),
        ("post", "/api/themes", {"name": "dark", "css": ":root{}"}),
        ("put", "/api/settings", {"selected_model": "nobody"}),
        ("get", "/api/models?sort=colour", None),
    ],
)
def test_bad_input_is_a_4xx_json_error_never_a_500(client, method, path, body):
    client.post("/api/models", json={"model_name": "m", "n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16})
    kwargs = {"json": body} if body is not None else {}
    r = getattr(client, method)(path, **kwargs)
    assert 400 <= r.status_code < 500, r.get_json()
    _err(r, r.status_code)


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00", b"[", b'{"model_name": "a"'])
def test_broken_json_bodies(client, raw):
    r = client.post("/api/models", data=raw, content_type="application/json")
    _err(r, 400, "invalid_json")


def test_unknown_route_and_method_are_json(client):
    _err(client.get("/api/nothing"), 404)
    _err(client.put("/api/models"), 405)


def test_too_large_body_is_refused(client):
    r = client.post("/api/themes", json={"name": "big", "css": "a" * (9 * 1024 * 1024)})
    _err(r, 413)


def test_themes_list_switch_add_and_serve(client):
    listing = client.get("/api/themes").get_json()
    assert {t["name"] for t in listing["themes"]} == {"light", "dark"} and listing["current"] == "light"
    assert client.put("/api/themes/current", json={"name": "dark"}).get_json()["current"] == "dark"
    assert client.get("/api/settings").get_json()["theme"] == "dark"
    r = client.post("/api/themes", json={"name": "sunset", "css": ":root { --bg: #ffddaa; }"})
    assert r.status_code == 201 and "sunset" in [t["name"] for t in r.get_json()["themes"]]
    css = client.get("/themes/sunset.css")
    assert css.status_code == 200 and css.mimetype == "text/css" and b"#ffddaa" in css.data
    assert client.get("/themes/nope.css").status_code == 404


def test_selection_is_kept_by_id_across_renames(client):
    client.post("/api/models", json={"model_name": "sel"})
    assert client.put("/api/settings", json={"selected_model": "sel"}).get_json()["selected_model"] == "sel"
    client.post("/api/models/sel/rename", json={"model_name": "chosen"})
    assert client.get("/api/settings").get_json()["selected_model"] == "chosen"
    client.delete("/api/models/chosen", json={"confirm": True})
    assert client.get("/api/settings").get_json()["selected_model"] is None


def test_ui_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and b"CLLM Studio" in page.data
    js = client.get("/static/js/app.js")
    assert js.status_code == 200 and js.mimetype == "text/javascript"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_openapi_describes_every_route_and_is_valid(client):
    spec = client.get("/api/openapi.json").get_json()
    validate(spec)
    app = client.application
    for method, path, _view in api_routes(app):
        assert (method, path) in ROUTES
        assert method.lower() in spec["paths"][path]
    assert set(ROUTES) == {(m, p) for m, p, _ in api_routes(app)}


# ---- the guard: token, Origin and Host -----------------------------------------------------


def test_missing_or_wrong_token_is_403(client):
    _err(client.get("/api/models", headers={"X-CLLM-Token": ""}), 403)
    _err(client.get("/api/models", headers={"X-CLLM-Token": "wrong"}), 403)
    # in the URL only for event streams (tests/test_api_security.py)
    _err(client.get(f"/api/models?token={SECRET}", headers={"X-CLLM-Token": ""}), 403)


def test_foreign_origin_is_403(client):
    _err(client.get("/api/models", headers={"Origin": "http://evil.example"}), 403)
    _err(client.get("/api/models", headers={"Origin": "http://127.0.0.1:9999"}), 403)
    _err(client.post("/api/models", json={}, headers={"Origin": "null"}), 403)
    assert client.get("/api/models", headers={"Origin": f"http://{HOST}"}).status_code == 200


def test_wrong_host_is_403_even_for_the_page(client):
    for host in ("evil.example", "localhost:5555", "127.0.0.1:5556", "attacker.test:5555"):
        _err(client.get("/api/models", headers={"Host": host}), 403)
        assert client.get("/", headers={"Host": host}).status_code == 403


def test_current_theme_css_follows_the_choice(client):
    assert b"--bg: #f6f7f9" in client.get("/themes/current.css").data
    client.put("/api/themes/current", json={"name": "dark"})
    assert b"--bg: #14171d" in client.get("/themes/current.css").data
    assert client.post("/api/themes", json={"name": "current", "css": ":root{}"}).status_code == 400
