"""The LLM tab in a real browser against the real app: chat with streaming, Stop, Regenerate,
rename and delete a conversation, reload and find it kept; the Completion view; presets."""

import re

from playwright.sync_api import Page, expect

from tests.e2e.e2e_support import eventually, open_tab
from tests.endless import never_says_eot

# Large enough that a reply of 100,000 tokens takes tens of seconds even on a fast CPU (a
# smaller model said them all in under two, and a Stop could come too late), and unable to
# say <|endoftext|>, so a long reply streams until Stop.
SHAPE = {"n_layer": 2, "n_head": 4, "n_embd": 256, "block_size": 256}


def _setup(app, page: Page, name: str = "talker") -> None:
    app.create(name, **SHAPE)
    never_says_eot(app.home / "models" / name / "model.safetensors")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "llm")
    expect(page.locator('#panel-llm [data-testid="model-select"]')).to_have_value(name)


def _set_sampling(page: Page, **values) -> None:
    for field, value in values.items():
        page.get_by_test_id(f"sampling-{field}").fill(str(value))


def test_chat_streams_stops_regenerates_and_is_kept(app, page: Page):
    _setup(app, page)
    expect(page.get_by_test_id("llm-note")).to_contain_text("has not trained yet")
    _set_sampling(page, temperature=0, max_new_tokens=100000, repetition_penalty=1.5)
    expect(page.get_by_test_id("sampling-preset")).to_have_value("Custom")

    page.get_by_test_id("chat-input").fill("Hello model")
    page.get_by_test_id("chat-send").click()
    user = page.locator('[data-testid="message"][data-role="user"]')
    expect(user).to_have_count(1)
    expect(user.get_by_test_id("message-text")).to_have_text("Hello model")
    reply = page.locator('[data-testid="message"][data-role="assistant"]').last
    # tokens stream in: the reply grows while the stream runs
    first = eventually(lambda: len(reply.get_by_test_id("message-text").text_content() or "") > 0 and
                       len(reply.get_by_test_id("message-text").text_content()))
    eventually(lambda: len(reply.get_by_test_id("message-text").text_content()) > first)
    expect(page.get_by_test_id("chat-send")).to_be_disabled()
    expect(page.get_by_test_id("stat-speed")).to_contain_text("tokens/s")
    page.get_by_test_id("chat-stop").click()
    meta = page.locator('[data-testid="message"][data-role="assistant"]').last.get_by_test_id("message-meta")
    expect(meta).to_contain_text("stopped")
    expect(page.get_by_test_id("stat-reason")).to_have_text("stopped")
    expect(page.get_by_test_id("chat-send")).to_be_enabled()

    conv = page.get_by_test_id("conversation-item")
    expect(conv).to_have_count(1)
    expect(conv.get_by_test_id("conversation-title")).to_have_text("Hello model")
    conv_id = int(conv.get_attribute("data-id"))
    _, saved = app.api("GET", f"/api/conversations/{conv_id}", expect_status=200)
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
    stopped_text = saved["messages"][1]["content"]
    assert stopped_text and saved["messages"][1]["finish_reason"] == "cancelled"
    expect(page.locator('[data-testid="message"][data-role="assistant"]').last.get_by_test_id("message-text")).to_have_text(stopped_text)

    # Regenerate replaces the reply with a new one (short this time)
    _set_sampling(page, max_new_tokens=20, temperature=1, seed=7)
    page.get_by_test_id("chat-regenerate").click()
    expect(page.get_by_test_id("stat-reason")).not_to_have_text("stopped")
    eventually(lambda: app.api("GET", f"/api/conversations/{conv_id}")[1]["messages"][-1]["sampling"]["seed"] == 7)
    _, saved = app.api("GET", f"/api/conversations/{conv_id}", expect_status=200)
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
    assert saved["messages"][1]["completion_tokens"] <= 20
    expect(page.locator('[data-testid="message"][data-role="assistant"]')).to_have_count(1)

    # rename
    conv.get_by_test_id("conversation-rename").click()
    page.get_by_test_id("dialog-input").fill("Greetings")
    page.get_by_test_id("dialog-confirm").click()
    expect(conv.get_by_test_id("conversation-title")).to_have_text("Greetings")
    expect(page.get_by_test_id("chat-title")).to_have_text("Greetings")

    # reload: the conversation, its messages and the sampling settings are kept
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "llm")
    expect(page.get_by_test_id("conversation-title")).to_have_text("Greetings")
    expect(page.locator('[data-testid="message"]')).to_have_count(2)
    expect(page.get_by_test_id("sampling-seed")).to_have_value("7")
    expect(page.get_by_test_id("sampling-preset")).to_have_value("Custom")

    # copy a message
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator('[data-testid="message"][data-role="user"]').get_by_test_id("message-copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == "Hello model"

    # delete
    page.get_by_test_id("conversation-delete").click()
    page.get_by_test_id("dialog-confirm").click()
    expect(page.get_by_test_id("conversation-item")).to_have_count(0)
    assert app.api("GET", "/api/models/talker/conversations")[1]["conversations"] == []
    app.api("GET", f"/api/conversations/{conv_id}", expect_status=404)


def test_empty_message_is_refused_in_plain_words(app, page: Page):
    _setup(app, page, "quiet")
    page.get_by_test_id("chat-input").fill("   ")
    page.get_by_test_id("chat-send").click()
    expect(page.get_by_test_id("chat-error")).to_have_text("Write something first: the message is empty.")
    assert app.api("GET", "/api/models/quiet/conversations")[1]["conversations"] == []


def test_completion_view_streams_stops_and_copies(app, page: Page):
    _setup(app, page, "writer")
    page.get_by_test_id("llm-mode-completion").click()
    expect(page.get_by_test_id("completion-view")).to_be_visible()
    expect(page.get_by_test_id("chat-view")).to_be_hidden()
    page.get_by_test_id("completion-generate").click()
    expect(page.get_by_test_id("completion-error")).to_have_text("Write a prompt first: the prompt is empty.")

    _set_sampling(page, temperature=0, max_new_tokens=12)
    page.get_by_test_id("completion-prompt").fill("Once upon a time")
    page.get_by_test_id("completion-generate").click()
    expect(page.get_by_test_id("stat-tokens")).to_contain_text("12 generated")
    expect(page.get_by_test_id("stat-reason")).to_have_text("reached max_new_tokens")
    output = page.get_by_test_id("completion-output")
    expect(output).to_contain_text("Once upon a time")
    generated = page.get_by_test_id("completion-generated").text_content()
    # the same as the API says for the same greedy settings
    r = app.session.post(app.origin + "/api/models/writer/complete", headers={"X-CLLM-Token": app.token}, timeout=30,
                         json={"prompt": "Once upon a time", "sampling": {"temperature": 0, "max_new_tokens": 12,
                                                                          "top_k": 40, "top_p": 0.95, "repetition_penalty": 1.1}})
    pieces = re.findall(r'event: token\ndata: (\{.*\})', r.text)
    import json

    assert "".join(json.loads(p)["text"] for p in pieces) == generated

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_test_id("completion-copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == output.text_content()

    # a long one, stopped
    _set_sampling(page, max_new_tokens=100000)  # greedy at 1.1 here: "eeee…", never an end
    page.get_by_test_id("completion-generate").click()
    eventually(lambda: len(page.get_by_test_id("completion-generated").text_content() or "") > 20)
    page.get_by_test_id("completion-stop").click()
    expect(page.get_by_test_id("stat-reason")).to_have_text("stopped")
    expect(page.get_by_test_id("completion-generate")).to_be_enabled()


def test_presets_fill_the_controls_and_are_remembered_per_model(app, page: Page):
    _setup(app, page, "tuned")
    preset = page.get_by_test_id("sampling-preset")
    expect(preset).to_have_value("Balanced")
    expect(page.get_by_test_id("sampling-temperature")).to_have_value("0.8")
    preset.select_option("Precise")
    expect(page.get_by_test_id("sampling-temperature")).to_have_value("0.2")
    expect(page.get_by_test_id("sampling-top_k")).to_have_value("10")
    preset.select_option("Creative")
    expect(page.get_by_test_id("sampling-temperature")).to_have_value("1.2")
    expect(page.get_by_test_id("sampling-max_new_tokens")).to_have_value("300")
    eventually(lambda: app.api("GET", "/api/models/tuned/sampling")[1]["preset"] == "Creative")
    page.get_by_test_id("sampling-top_p").fill("0.5")
    expect(preset).to_have_value("Custom")
    eventually(lambda: app.api("GET", "/api/models/tuned/sampling")[1]["sampling"]["top_p"] == 0.5)
    # a bad value is refused in plain words and not saved
    page.get_by_test_id("sampling-temperature").fill("9")
    expect(page.get_by_test_id("sampling-error")).to_contain_text("temperature must be a number")
    assert app.api("GET", "/api/models/tuned/sampling")[1]["sampling"]["temperature"] == 1.2
    page.get_by_test_id("sampling-temperature").fill("1.2")
    expect(page.get_by_test_id("sampling-error")).to_have_text("")
    # another model has its own settings
    app.create("other", **SHAPE)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "llm")
    page.locator('#panel-llm [data-testid="model-select"]').select_option("other")
    expect(preset).to_have_value("Balanced")
    page.locator('#panel-llm [data-testid="model-select"]').select_option("tuned")
    expect(preset).to_have_value("Custom")
    expect(page.get_by_test_id("sampling-top_p")).to_have_value("0.5")


def test_what_is_typed_before_the_saved_settings_arrive_is_kept(app, page: Page):
    """The model's saved settings load after the tab shows; a value typed before they arrive is
    newer, so it stays in the field and is what gets saved (CI once saw -1 turn back into 0.8)."""
    app.create("late", n_layer=1, n_head=2, n_embd=16, block_size=16)
    held = []

    def hold_the_load(route):
        if route.request.method == "GET":
            held.append(route)
        else:
            route.continue_()

    pattern = re.compile(r"/api/models/late/sampling$")
    page.route(pattern, hold_the_load)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "llm")
    for _ in range(200):  # the route handler runs while Playwright has the page's turn
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the saved settings were never asked for"
    page.get_by_test_id("sampling-temperature").fill("0.3")
    with page.expect_response(lambda r: r.url.endswith("/api/models/late/sampling")
                              and r.request.method == "GET") as arrived:
        held[0].continue_()
    page.unroute(pattern)  # the save that follows goes straight through
    arrived.value.finished()
    page.evaluate("() => new Promise((done) => setTimeout(() => setTimeout(done, 0), 0))")
    expect(page.get_by_test_id("sampling-temperature")).to_have_value("0.3")
    expect(page.get_by_test_id("sampling-preset")).to_have_value("Custom")
    eventually(lambda: app.api("GET", "/api/models/late/sampling")[1]["sampling"]["temperature"] == 0.3)


def test_openai_key_is_shown_copied_and_regenerated(app, page: Page):
    import requests

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.origin)
    open_tab(page, "llm")
    key_field = page.get_by_test_id("openai-key")
    expect(key_field).to_have_value(re.compile(r"^sk-cllm-"))
    expect(page.get_by_test_id("openai-base-url")).to_have_value(app.origin + "/v1")
    old = key_field.input_value()
    assert old == (app.home / "openai-key").read_text().strip() and old != app.token

    def v1_status(key):
        return requests.get(app.origin + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code

    assert v1_status(old) == 200
    page.get_by_test_id("openai-key-copy").click()
    expect(page.get_by_test_id("toast").filter(has_text="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == old

    page.get_by_test_id("openai-key-regenerate").click()
    page.get_by_test_id("dialog-cancel").click()  # asked first, and cancelling keeps the key
    expect(key_field).to_have_value(old)
    page.get_by_test_id("openai-key-regenerate").click()
    page.get_by_test_id("dialog-confirm").click()
    expect(key_field).not_to_have_value(old)
    new = key_field.input_value()
    assert new.startswith("sk-cllm-")
    assert v1_status(old) == 401 and v1_status(new) == 200
    page.reload()  # kept: the tab shows the new key again
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "llm")
    expect(page.get_by_test_id("openai-key")).to_have_value(new)
