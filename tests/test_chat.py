"""The chat service: the template and its truncation, stop strings, conversations in the store,
the model cache following the weights, and talking to a model while it trains."""

import io
import os
import threading
import time

import numpy as np
import pytest

from cllm_app.engine.generate import Generator, Sampling
from cllm_app.engine.tokenizer import ByteTokenizer
from cllm_app.engine.weights import load_weights, save_weights
from cllm_app.errors import InvalidInput, NotFound
from cllm_app.services.chat import CHAT_STOP, build_prompt
from cllm_app.services.generator_process import read_generator
from cllm_app.services.streams import TextStream, TooBusy, _held_back, check_stop
from cllm_app.store import Conversation, Message
from tests.conftest import wait_until

SHAPE = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 64}
TOK = ByteTokenizer()


def _text(ids):
    return TOK.decode(ids)


def test_template_puts_turns_in_order_and_cues_the_assistant():
    turns = [("user", "Hi"), ("assistant", "Hello."), ("user", "How are you?")]
    ids = build_prompt(TOK, turns, block_size=256, max_new_tokens=50)
    assert _text(ids) == "User: Hi\nAssistant: Hello.\nUser: How are you?\nAssistant: "


def test_template_keeps_a_system_turn_first():
    ids = build_prompt(TOK, [("system", "Be brief."), ("user", "Hi")], 256, 50)
    assert _text(ids) == "System: Be brief.\nUser: Hi\nAssistant: "


def test_truncation_drops_whole_turns_from_the_oldest():
    turns = [("user", "a" * 30), ("assistant", "b" * 30), ("user", "c" * 10)]
    # block 64, reply room min(50, 16) = 16, minus the eot: 47 tokens for the prompt
    text = _text(build_prompt(TOK, turns, block_size=64, max_new_tokens=50))
    assert text == "User: " + "c" * 10 + "\nAssistant: "
    assert len(text) <= 64 - 16 - 1


def test_one_turn_longer_than_the_context_keeps_its_end():
    text = _text(build_prompt(TOK, [("user", "x" * 200 + "END")], block_size=64, max_new_tokens=8))
    assert text.endswith("xEND\nAssistant: ") and len(text) == 64 - 8 - 1


def test_stop_strings_are_checked_and_held_back():
    assert check_stop(None) == [] and check_stop("\n") == ["\n"]
    for bad in ("", ["a"] * 5, [1], {"a": 1}, ["x" * 201]):
        with pytest.raises(InvalidInput):
            check_stop(bad)
    assert _held_back("hello\nUs", ["\nUser:"]) == 3
    assert _held_back("hello", ["\nUser:"]) == 0


class Scripted(Generator):
    """A generator that says a fixed text, to test what the stream does with it."""

    def __init__(self, text: str):
        self.tok = TOK
        self.script = list(TOK.encode(text))

    def tokens(self, prompt_ids, s, should_stop=lambda: False):
        for i, t in enumerate(self.script):
            if i >= s.max_new_tokens or should_stop():
                return
            yield int(t)


def test_a_stream_ends_at_a_stop_string_which_never_reaches_the_client():
    stream = TextStream(Scripted(" Fine, thanks.\nUser: and you?"), [1, 2], Sampling(max_new_tokens=100), CHAT_STOP,
                        strip_leading=True)
    pieces = list(stream)
    assert "".join(pieces) == stream.text == "Fine, thanks."
    assert all("User" not in p for p in pieces)
    st = stream.stats.as_dict()
    assert st["finish_reason"] == "stop" and st["prompt_tokens"] == 2
    assert st["completion_tokens"] == len(" Fine, thanks.\nUser:")


def test_a_stream_reports_length_and_cancel():
    s = TextStream(Scripted("abcdefgh"), [1], Sampling(max_new_tokens=3))
    assert "".join(s) == "abc" and s.stats.finish_reason == "length"
    stop = threading.Event()
    s = TextStream(Scripted("abcdefgh"), [1], Sampling(max_new_tokens=100), should_stop=stop.is_set)
    out = []
    for piece in s:
        out.append(piece)
        if len(out) == 2:
            stop.set()
    assert "".join(out) == "ab" and s.stats.finish_reason == "cancelled"


def test_a_first_message_after_many_spaces_still_names_the_conversation(studio):
    studio.models.create("talker", **SHAPE)
    c = studio.chat.create("talker")
    reply = studio.chat.start_reply(c["id"], " " * 80 + "Hello", {"max_new_tokens": 2, "seed": 1})
    "".join(reply.pieces())
    assert studio.chat.show(c["id"])["title"] == "Hello"


def test_a_character_split_over_tokens_comes_out_whole():
    s = TextStream(Scripted("né ü"), [1], Sampling(max_new_tokens=100))
    pieces = list(s)
    assert "".join(pieces) == "né ü" and "é" in pieces


def test_conversations_are_kept_renamed_and_deleted(studio):
    studio.models.create("talker", **SHAPE)
    chat = studio.chat
    c = chat.create("talker")
    assert c["title"] == "New conversation" and c["messages"] == []
    reply = chat.start_reply(c["id"], "Hello there, model", {"max_new_tokens": 8, "seed": 3})
    text = "".join(reply.pieces())
    result = reply.result()
    assert result["message"]["content"] == text and result["completion_tokens"] <= 8
    shown = chat.show(c["id"])
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
    assert shown["title"] == "Hello there, model"  # the first message names a new conversation
    assert shown["messages"][1]["sampling"]["seed"] == 3
    assert chat.rename(c["id"], "  My   chat ")["title"] == "My chat"
    with pytest.raises(InvalidInput):
        chat.rename(c["id"], "   ")
    with pytest.raises(InvalidInput):
        chat.start_reply(c["id"], "  ", {})
    assert [x["title"] for x in chat.list("talker")["conversations"]] == ["My chat"]
    chat.delete(c["id"])
    assert chat.list("talker")["conversations"] == [] and Message.select().count() == 0
    with pytest.raises(NotFound):
        chat.show(c["id"])


def test_regenerate_replaces_the_last_reply(studio):
    studio.models.create("re", **SHAPE)
    c = studio.chat.create("re")
    with pytest.raises(InvalidInput):
        studio.chat.start_reply(c["id"], None, {}, regenerate=True)
    assert studio.streams.active() == 0  # the refusal freed its slot
    first = studio.chat.start_reply(c["id"], "hi", {"max_new_tokens": 5, "seed": 1})
    "".join(first.pieces())
    again = studio.chat.start_reply(c["id"], None, {"max_new_tokens": 5, "seed": 2}, regenerate=True)
    "".join(again.pieces())
    msgs = studio.chat.show(c["id"])["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[1]["sampling"]["seed"] == 2 and msgs[1] == again.result()["message"]


def test_conversations_follow_renames_stay_in_the_trash_and_go_when_it_is_emptied(studio):
    studio.models.create("a", **SHAPE)
    c = studio.chat.create("a", "kept")
    studio.models.rename("a", "b")
    assert studio.chat.list("b")["conversations"][0]["title"] == "kept"
    studio.models.duplicate("b", "b2")
    assert studio.chat.list("b2")["conversations"] == []  # a copy starts with no conversations
    studio.models.delete("b", confirm=True)
    with pytest.raises(NotFound):
        studio.chat.show(c["id"])
    studio.models.restore("b")
    assert studio.chat.show(c["id"])["title"] == "kept"
    studio.models.delete("b", confirm=True)
    studio.models.empty_trash(confirm=True)
    assert Conversation.select().count() == 0


def test_sampling_settings_are_remembered_per_model(studio):
    studio.models.create("s", **SHAPE)
    assert studio.chat.sampling_settings("s")["preset"] == "Balanced"
    saved = studio.chat.save_sampling_settings("s", "Custom", {"temperature": 0.3, "top_k": 5, "seed": 9})
    assert saved["preset"] == "Custom" and saved["sampling"]["temperature"] == 0.3
    studio.models.rename("s", "t")
    assert studio.chat.sampling_settings("t")["sampling"]["seed"] == 9
    for preset, values in (("Nope", {}), ("Custom", {"temperature": -1}), ("Custom", {"colour": 1}), ("Custom", 5)):
        with pytest.raises(InvalidInput):
            studio.chat.save_sampling_settings("t", preset, values)


def test_completion_refusals(studio):
    studio.models.create("c", **SHAPE)
    for prompt in ("", None, 5):
        with pytest.raises(InvalidInput):
            studio.chat.start_completion("c", prompt, {})
    with pytest.raises(InvalidInput):
        studio.chat.start_completion("c", "hi", {"top_p": 0})
    with pytest.raises(NotFound):
        studio.chat.start_completion("nobody", "hi", {})
    assert studio.streams.active() == 0


def test_streams_are_limited_and_freed(studio):
    studio.models.create("busy", **SHAPE)
    replies = [studio.chat.start_completion("busy", "x", {"max_new_tokens": 3}) for _ in range(studio.streams.limit)]
    with pytest.raises(TooBusy):
        studio.chat.start_completion("busy", "x", {})
    assert studio.streams.stop(replies[0].stream_id) is True
    "".join(replies[0].pieces())
    assert replies[0].result()["finish_reason"] == "cancelled"
    assert studio.streams.stop(replies[0].stream_id) is False
    for r in replies[1:]:
        "".join(r.pieces())
    assert studio.streams.active() == 0


def test_the_cache_reloads_when_the_weights_change(studio):
    studio.models.create("w", **SHAPE)
    cache = studio.streams.cache
    greedy = {"temperature": 0, "max_new_tokens": 12}

    def say():
        r = studio.chat.start_completion("w", "The ", greedy)
        return "".join(r.pieces())

    first = say()
    assert say() == first and cache.loads == 1  # the second request reuses the loaded model
    folder = studio.models.folder(studio.models.get("w"))
    weights = load_weights(folder / "model.safetensors")
    rng = np.random.default_rng(5)
    save_weights(folder / "model.safetensors",
                 {k: v + rng.normal(0, 0.5, v.shape).astype(np.float32) for k, v in weights.items()})
    os.utime(folder / "model.safetensors", ns=(time.time_ns(), time.time_ns() + 10**9))
    second = say()
    assert cache.loads == 2 and second != first


def test_chat_generates_over_the_context_the_model_trains_on(studio):
    # Past its training context a model's positions were never trained: replies and prompts fit
    # inside sequence_length, and changing it reloads the model with the new window.
    studio.models.create("ctx", **SHAPE, sequence_length=16)
    _, loaded = studio.streams.load("ctx")
    assert loaded.generator.context == 16
    studio.models.configure("ctx", sequence_length=40)
    _, loaded = studio.streams.load("ctx")
    assert loaded.generator.context == 40 and studio.streams.cache.loads == 2


def test_talking_to_a_model_while_it_trains(studio):
    from cllm_app.jobs.runner import JobRunner

    studio.models.create("learner", n_layer=1, n_head=2, n_embd=32, block_size=32)
    text = ("The quiet river carried the morning light past the old garden. " * 40).encode()
    studio.queue.add_stream("learner", io.BytesIO(text), "river.txt")
    start = load_weights(studio.models.folder(studio.models.get("learner")) / "model.safetensors")
    job = studio.training.start("learner", {"batch_size": 4, "sequence_length": 32, "target_epochs": 40,
                                             "checkpoint_interval": 5, "eval_interval": 1000,
                                             "learning_rate": 0.003, "warmup_steps": 2})
    runner = JobRunner(studio).start()
    try:
        folder = studio.models.folder(studio.models.get("learner"))
        deadline = time.monotonic() + 120
        changed = False
        while time.monotonic() < deadline and not changed:
            changed = any(not np.array_equal(v, start[k]) for k, v in load_weights(folder / "model.safetensors").items())
            if not changed:
                time.sleep(0.1)
        assert changed, "the trainer never wrote a checkpoint"
        assert studio.jobs.get(job["id"])["state"] in ("running", "queued", "stopping", "done")
        c = studio.chat.create("learner")
        for _ in range(3):  # while checkpoints land, each reply reads whole weights
            r = studio.chat.start_reply(c["id"], "The quiet", {"max_new_tokens": 10, "seed": 1})
            "".join(r.pieces())
            assert r.result()["message"]["completion_tokens"] >= 1
        assert studio.streams.cache.loads >= 1
    finally:
        studio.jobs.stop(job["id"])
        runner.shutdown()
    # What it says comes from the trained weights on disk (read in the generator process), not
    # from the ones it started with: the same greedy text as those weights read here.
    wait_until(lambda: studio.jobs.get(job["id"])["state"] not in ("running", "queued", "stopping"),
               what="the training job ended")
    row = studio.models.get("learner")
    here = read_generator(folder, row.tokenizer, row.sequence_length)
    assert not all(np.array_equal(here.P[k], start[k]) for k in start)
    greedy = {"max_new_tokens": 12, "temperature": 0, "repetition_penalty": 1.0}
    said = "".join(studio.chat.start_completion("learner", "The quiet", greedy).pieces())
    assert said == "".join(here.text("The quiet", Sampling(**greedy)))
