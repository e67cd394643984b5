"""Replies are generated in a process of their own (services/generator_process.py): the same
text as the model generates here, a process that dies is started again, and a reply left mid-way
leaves its channel clean."""

import os
import signal

import pytest

from cllm_app.engine.generate import Sampling
from cllm_app.errors import DamagedFile
from cllm_app.services.generator_process import GENERATOR_NICENESS, GeneratorStopped, read_generator
from tests.endless import never_says_eot

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32}
GREEDY = {"max_new_tokens": 24, "temperature": 0, "repetition_penalty": 1.0}


def said(studio, model: str, prompt: str, sampling: dict) -> str:
    return "".join(studio.chat.start_completion(model, prompt, sampling).pieces())


def test_replies_come_from_another_process_and_say_what_the_model_says_here(studio):
    studio.models.create("m", **TINY)
    sampled = {"max_new_tokens": 30, "temperature": 0.9, "top_k": 20, "seed": 7}
    text = said(studio, "m", "Once upon", sampled)
    process = studio.streams.process
    assert process.pid is not None and process.pid != os.getpid() and process.starts == 1
    row = studio.models.get("m")
    here = read_generator(studio.models.folder(row), row.tokenizer, row.sequence_length)
    assert text == "".join(here.text("Once upon", Sampling(**sampled)))
    assert said(studio, "m", "Once upon", sampled) == text  # the process keeps the model; same seed, same text
    assert process.starts == 1
    # It writes below the window's priority (and above background jobs'), on every thread.
    nice = set()
    for tid in os.listdir(f"/proc/{process.pid}/task"):
        with open(f"/proc/{process.pid}/task/{tid}/stat") as f:
            nice.add(int(f.read().rsplit(")", 1)[1].split()[16]))
    assert nice == {min(19, os.getpriority(os.PRIO_PROCESS, 0) + GENERATOR_NICENESS)}


def test_a_generator_process_that_was_killed_is_started_again_at_the_next_reply(studio, monkeypatch):
    studio.models.create("m", **TINY)
    first = said(studio, "m", "Hello", GREEDY)
    process = studio.streams.process
    os.kill(process.pid, signal.SIGKILL)
    process._proc.wait()
    assert said(studio, "m", "Hello", GREEDY) == first
    assert process.starts == 2
    # Killed and not yet seen to be dead when the next reply asks: that reply finds out when it
    # writes to the process, before its first token, and starts it again instead of failing.
    monkeypatch.setattr(process, "_running", lambda: process._proc is not None)
    os.kill(process.pid, signal.SIGKILL)
    process._proc.wait()
    assert said(studio, "m", "Hello", GREEDY) == first
    assert process.starts == 3


def test_a_process_killed_mid_reply_ends_that_reply_with_a_plain_error_and_the_next_one_works(studio):
    studio.models.create("m", **TINY)
    never_says_eot(studio.models.folder(studio.models.get("m")) / "model.safetensors")
    reply = studio.chat.start_completion("m", "Go on", {"max_new_tokens": 100_000, "seed": 1})
    pieces = reply.pieces()
    next(pieces)  # the reply is running: the process is generating
    os.kill(studio.streams.process.pid, signal.SIGKILL)
    with pytest.raises(GeneratorStopped, match="stopped while writing a reply; try again"):
        for _ in pieces:
            pass
    assert studio.streams.active() == 0  # its slot is free again
    assert len(said(studio, "m", "Go on", {"max_new_tokens": 5, "seed": 1})) > 0
    assert studio.streams.process.starts == 2


def test_replies_left_mid_way_leave_their_channels_clean(studio):
    studio.models.create("m", **TINY)
    never_says_eot(studio.models.folder(studio.models.get("m")) / "model.safetensors")
    for _ in range(5):  # more than there are channels: each one is handed back clean
        pieces = studio.chat.start_completion("m", "Go on", {"max_new_tokens": 100_000, "seed": 1}).pieces()
        next(pieces)
        pieces.close()  # the client went away
    assert said(studio, "m", "Go on", {**GREEDY, "max_new_tokens": 8}) != ""
    assert studio.streams.process.starts == 1 and studio.streams.active() == 0


def test_a_damaged_weights_file_is_refused_before_the_reply_and_the_process_lives_on(studio):
    studio.models.create("good", **TINY)
    studio.models.create("bad", **TINY)
    said(studio, "good", "Hi", GREEDY)
    weights = studio.models.folder(studio.models.get("bad")) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(DamagedFile) as refused:
        studio.chat.start_completion("bad", "Hi", GREEDY)
    assert refused.value.code == "weights_damaged" and str(weights) in refused.value.message
    assert studio.streams.active() == 0
    assert said(studio, "good", "Hi", GREEDY) != "" and studio.streams.process.starts == 1


def test_closing_the_studio_ends_the_process(studio):
    studio.models.create("m", **TINY)
    said(studio, "m", "Hi", GREEDY)
    proc = studio.streams.process._proc
    studio.close()
    assert proc.poll() is not None


def test_replies_one_after_another_are_written_on_the_same_channel(studio):
    # Each channel has its own thread in the process, and each thread its own OpenMP team:
    # taking turns, the idle team's spinning threads slowed the other's decoding by a third.
    studio.models.create("m", **TINY)
    said(studio, "m", "Hi", GREEDY)
    process = studio.streams.process
    used = []
    take = process._free.get

    def noting(*args, **kwargs):
        item = take(*args, **kwargs)
        used.append(item[1])
        return item

    process._free.get = noting
    for _ in range(4):
        said(studio, "m", "Hi", GREEDY)
    assert len(used) == 4 and all(conn is used[0] for conn in used)
