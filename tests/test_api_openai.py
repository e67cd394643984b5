"""The OpenAI-compatible API, driven by the official `openai` client against a real server."""

import httpx
import openai
import pytest

from cllm_app.server import Server

SHAPE = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 128}


@pytest.fixture
def server(studio):
    studio.models.create("tiny one", **SHAPE)
    studio.models.create("other", **SHAPE)
    s = Server(studio).start()
    yield s
    s.stop()


@pytest.fixture
def key(server):
    """The OpenAI key as the LLM tab shows it."""
    r = httpx.get(server.origin + "/api/openai/key", headers={"X-CLLM-Token": server.secret})
    assert r.status_code == 200 and r.json()["base_url"] == server.origin + "/v1"
    return r.json()["api_key"]


@pytest.fixture
def client(server, key):
    return openai.OpenAI(base_url=server.origin + "/v1", api_key=key, max_retries=0, timeout=30)


def test_models_list(client):
    models = client.models.list()
    assert sorted(m.id for m in models.data) == ["other", "tiny one"]
    assert all(m.object == "model" and m.owned_by == "cllm-studio" and m.created > 1_600_000_000 for m in models.data)
    assert client.models.retrieve("tiny one").id == "tiny one"


def test_completion(client):
    c = client.completions.create(model="tiny one", prompt="Once upon", max_tokens=10, temperature=0, seed=1)
    assert c.object == "text_completion" and c.model == "tiny one" and len(c.choices) == 1
    assert c.choices[0].finish_reason in ("length", "stop")
    assert c.usage.prompt_tokens == len("Once upon".encode()) and 1 <= c.usage.completion_tokens <= 10
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
    again = client.completions.create(model="tiny one", prompt="Once upon", max_tokens=10, temperature=0, seed=1)
    assert again.choices[0].text == c.choices[0].text  # greedy is repeatable


def test_completion_default_length_is_openais(client):
    c = client.completions.create(model="tiny one", prompt="x", seed=3)
    assert c.usage.completion_tokens <= 16


def test_completion_streaming_matches_the_whole_answer(client):
    whole = client.completions.create(model="tiny one", prompt="Hello", max_tokens=20, temperature=0)
    chunks = list(client.completions.create(model="tiny one", prompt="Hello", max_tokens=20, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert text == whole.choices[0].text
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_chat(client):
    r = client.chat.completions.create(
        model="tiny one",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
        max_tokens=12, temperature=0.7, top_p=0.9, seed=5,
    )
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str) and r.usage.completion_tokens <= 12
    assert r.usage.prompt_tokens == len("System: Be brief.\nUser: Hi there\nAssistant: ")


def test_chat_streaming(client):
    kwargs = {"model": "other", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
              "max_tokens": 15, "temperature": 0}
    whole = client.chat.completions.create(**kwargs)
    stream = client.chat.completions.create(**kwargs, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_stop_strings(client):
    whole = client.completions.create(model="tiny one", prompt="abc", max_tokens=40, temperature=0).choices[0].text
    assert len(whole) > 3
    stop = whole[2:4]
    cut = client.completions.create(model="tiny one", prompt="abc", max_tokens=40, temperature=0, stop=[stop])
    assert cut.choices[0].text == whole[: whole.index(stop)] and cut.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    "call, status, code",
    [
        (lambda c: c.completions.create(model="nobody", prompt="x"), 404, "model_not_found"),
        (lambda c: c.completions.create(model="tiny one", prompt="x", n=2), 400, "unsupported_parameter"),
        (lambda c: c.completions.create(model="tiny one", prompt="x", logprobs=2), 400, "unsupported_parameter"),
        (lambda c: c.completions.create(model="tiny one", prompt=["a", "b"]), 400, "invalid_prompt"),
        (lambda c: c.completions.create(model="tiny one", prompt="x", temperature=3), 400, "invalid_temperature"),
        (lambda c: c.completions.create(model="tiny one", prompt="x", top_p=0), 400, "invalid_top_p"),
        (lambda c: c.completions.create(model="tiny one", prompt="x", max_tokens=0), 400, "invalid_max_tokens"),
        (lambda c: c.completions.create(model="tiny one", prompt="x", frequency_penalty=5), 400,
         "invalid_frequency_penalty"),
        (lambda c: c.chat.completions.create(model="tiny one", messages=[]), 400, "invalid_messages"),
        (lambda c: c.chat.completions.create(model="tiny one", messages=[{"role": "tool", "content": "x"}]), 400,
         "invalid_messages"),
        (lambda c: c.chat.completions.create(model="tiny one", messages=[{"role": "user", "content": "x"}], n=3),
         400, "unsupported_parameter"),
        (lambda c: c.models.retrieve("nobody"), 404, "model_not_found"),
    ],
)
def test_refusals_in_openais_shape(client, call, status, code):
    with pytest.raises(openai.APIStatusError) as caught:
        call(client)
    e = caught.value
    assert e.status_code == status
    assert e.body["code"] == code and e.body["message"] and e.body["type"]


def test_penalties_are_accepted_and_ignored(client):
    r = client.completions.create(model="tiny one", prompt="x", max_tokens=5, temperature=0,
                                  frequency_penalty=0.5, presence_penalty=0.5)
    plain = client.completions.create(model="tiny one", prompt="x", max_tokens=5, temperature=0)
    assert r.choices[0].text == plain.choices[0].text


def test_wrong_key_is_refused(server, key):
    for wrong in ("guess", server.secret):  # the launch secret is the window's, not OpenAI clients'
        bad = openai.OpenAI(base_url=server.origin + "/v1", api_key=wrong, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.models.list()
        assert caught.value.body["type"] == "authentication_error" and caught.value.body["code"] == "invalid_api_key"
    # the Bearer form is for /v1 only, and the OpenAI key does not open the app's own API
    for headers in ({"Authorization": f"Bearer {server.secret}"}, {"Authorization": f"Bearer {key}"},
                    {"X-CLLM-Token": key}):
        assert httpx.get(server.origin + "/api/models", headers=headers).status_code == 403


def test_a_new_key_works_and_the_old_one_stops(server, key, client):
    assert client.models.list().data
    r = httpx.post(server.origin + "/api/openai/key/regenerate", headers={"X-CLLM-Token": server.secret})
    new = r.json()["api_key"]
    assert new != key
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    fresh = openai.OpenAI(base_url=server.origin + "/v1", api_key=new, max_retries=0, timeout=30)
    r = fresh.chat.completions.create(model="tiny one", messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    assert r.choices[0].message.role == "assistant"
