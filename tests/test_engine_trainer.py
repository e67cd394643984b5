"""The training loop: exact resume, epochs, schedule, accumulation, divergence, layer growth."""

import math
import shutil

import numpy as np
import pytest

from cllm_app.engine.checkpoint import load_latest, save_checkpoint
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.trainer import (
    Document,
    EpochStream,
    Plan,
    Trainer,
    TrainingError,
    TrainSettings,
    split_documents,
)
from cllm_app.engine.weights import grow_layers, init_weights
from cllm_app.kernels import ops

CFG = GPTConfig(vocab_size=257, n_layer=2, n_head=2, n_embd=16, block_size=16)
EOT = 256


def _docs(n: int = 6, size: int = 700, seed: int = 0) -> list[Document]:
    rng = np.random.default_rng(seed)
    text = "the quick brown fox jumps over the lazy dog. " * 40
    out = []
    for i in range(n):
        start = int(rng.integers(0, len(text) - size // 2))
        chunk = (text * 2)[start : start + size].encode()
        out.append(Document(doc_id=i + 1, key=f"doc-{i}", tokens=np.frombuffer(chunk, np.uint8)))
    return out


def _settings(**kw) -> TrainSettings:
    base = dict(batch_size=2, sequence_length=16, learning_rate=3e-3, target_epochs=2, warmup_steps=3,
                eval_interval=4, checkpoint_interval=5, seed=7)
    return TrainSettings(**{**base, **kw})


def _trainer(tmp_path, docs=None, settings=None, cfg=CFG, weights=None):
    docs = _docs() if docs is None else docs
    return Trainer(cfg, settings or _settings(), ops, lambda: docs, tmp_path / "ck", weights or init_weights(cfg), EOT)


def _collect(trainer, **kw):
    losses = []
    outcome = trainer.run(on_step=lambda r: losses.append((r.step, r.train_loss)), **kw)
    return outcome, losses


def test_trains_to_target_epochs_and_loss_falls(tmp_path):
    t = _trainer(tmp_path)
    outcome, losses = _collect(t)
    assert outcome == "done" and t.epoch == 2
    assert len(losses) == 2 * t.steps_per_epoch
    assert losses[-1][1] < losses[0][1] - 0.5
    assert load_latest(tmp_path / "ck").step == t.step


def test_resume_continues_bit_for_bit(tmp_path):
    """A run cut at any step and resumed from its checkpoint gives the same losses as one run."""
    _, whole = _collect(_trainer(tmp_path / "a"))
    for cut in (1, 5, 7, 13):
        first = _trainer(tmp_path / f"b{cut}")
        outcome, part1 = _collect(first, max_steps=cut)
        assert outcome == "paused"
        again = _trainer(tmp_path / f"b{cut}")
        assert again.resumed_from == cut
        _, part2 = _collect(again)
        assert part1 + part2 == whole, f"cut at {cut}"


def test_stop_request_checkpoints_and_returns(tmp_path):
    t = _trainer(tmp_path)
    calls = {"n": 0}

    def stop_after_three():
        calls["n"] += 1
        return calls["n"] > 3

    outcome, losses = _collect(t, should_stop=stop_after_three)
    assert outcome == "stopped" and len(losses) == 3
    assert load_latest(tmp_path / "ck").step == 3


def test_gradient_accumulation_equals_a_larger_batch(tmp_path):
    big = _trainer(tmp_path / "big", settings=_settings(batch_size=4, target_epochs=1))
    acc = _trainer(tmp_path / "acc", settings=_settings(batch_size=2, grad_accum=2, target_epochs=1))
    _collect(big, max_steps=1)
    _collect(acc, max_steps=1)
    np.testing.assert_allclose(acc.numerics.model.params.flat, big.numerics.model.params.flat, rtol=1e-5, atol=1e-6)


def test_too_little_data_is_a_plain_refusal(tmp_path):
    with pytest.raises(TrainingError, match="add more data"):
        _trainer(tmp_path, docs=_docs(n=2, size=10))


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    t = _trainer(tmp_path, settings=_settings(learning_rate=1.0, warmup_steps=1, checkpoint_interval=1, target_epochs=50))
    with pytest.raises(TrainingError, match="diverged"):
        t.run()
    good = load_latest(tmp_path / "ck")
    assert good is not None and good.step == t.step  # every completed step was checkpointed; the bad one was not
    assert all(np.isfinite(v).all() for v in good.tensors.values())


def test_items_added_during_an_epoch_join_the_next_one(tmp_path):
    docs = _docs(n=4)
    t = Trainer(CFG, _settings(target_epochs=2), ops, lambda: list(docs), tmp_path / "ck", init_weights(CFG), EOT)
    first_epoch_ids = list(t.epoch_doc_ids)
    seen = []
    docs.append(Document(doc_id=99, key="late", tokens=np.frombuffer(b"a late arrival " * 60, np.uint8)))
    t.run(on_epoch=lambda tr: seen.append(list(tr.epoch_doc_ids)))
    assert 99 not in first_epoch_ids and seen[0] == first_epoch_ids
    assert 99 in seen[1]


def test_the_documents_split_is_by_whole_document_and_stable():
    docs = _docs(n=20)
    train, val = split_documents(docs, "documents")
    assert val and train and not {d.doc_id for d in train} & {d.doc_id for d in val}
    train2, val2 = split_documents(list(reversed(docs)) + [Document(100, "new", np.zeros(5, np.uint8))], "documents")
    assert {d.doc_id for d in val} <= {d.doc_id for d in val2}


def test_the_tail_split_holds_out_the_end_of_every_document_even_a_single_one():
    docs = _docs(n=3, size=700)
    train, val = split_documents(docs, "tail", 0.1)
    for d, head, tail in zip(docs, train, val, strict=True):
        assert head.doc_id == tail.doc_id == d.doc_id
        assert (head.tokens.size, tail.tokens.size) == (630, 70)
        assert np.array_equal(np.concatenate([head.tokens, tail.tokens]), d.tokens)
    [head], [tail] = split_documents(docs[:1], "auto", 0.1)
    assert head.tokens.size == 630 and tail.tokens.size == 70


def test_a_marked_item_is_validation_whole_in_every_mode_and_never_trains():
    docs = _docs(n=4)
    docs[2].holdout = True
    for mode in ("tail", "documents", "marked", "auto"):
        train, val = split_documents(docs, mode, 0.1)
        assert 3 not in {d.doc_id for d in train}
        assert any(d.doc_id == 3 and d.tokens.size == docs[2].tokens.size for d in val)
    train, val = split_documents(docs, "marked", 0.1)
    assert [d.doc_id for d in val] == [3] and [d.doc_id for d in train] == [1, 2, 4]


def test_the_trainer_marks_only_the_documents_it_trained_on_as_used(tmp_path):
    docs = _docs(n=4)
    docs[0].holdout = True
    seen = []
    t = Trainer(CFG, _settings(target_epochs=1, validation_split="marked"), ops, lambda: list(docs),
                tmp_path / "ck", init_weights(CFG), EOT)
    t.run(on_epoch=lambda tr: seen.append(tr.trained_doc_ids))
    assert seen == [[2, 3, 4]]


def test_auto_is_decided_once_and_kept_across_a_resume_as_items_come(tmp_path):
    docs = _docs(n=3)
    t = Trainer(CFG, _settings(target_epochs=1), ops, lambda: list(docs), tmp_path / "ck", init_weights(CFG), EOT)
    assert t.split_mode == "tail"
    t.run(max_steps=2)
    docs.extend(Document(100 + i, f"more-{i}", np.frombuffer(b"more text here " * 50, np.uint8)) for i in range(30))
    again = Trainer(CFG, _settings(target_epochs=2), ops, lambda: list(docs), tmp_path / "ck", init_weights(CFG), EOT)
    assert again.split_mode == "tail"  # 33 documents would make a fresh auto split by documents


def test_plan_warms_up_decays_and_extends_without_a_jump():
    plan = Plan(warmup_steps=10, peak_lr=1.0, min_lr=0.1)
    plan.extend_to(0, 100)
    assert plan.lr(0) == pytest.approx(0.1) and plan.lr(9) == pytest.approx(1.0)
    assert plan.lr(10) == pytest.approx(1.0) and plan.lr(100) == pytest.approx(0.1)
    mid = plan.lr(60)
    plan.extend_to(60, 200)  # the target was raised at step 60
    assert plan.lr(60) == pytest.approx(mid)
    assert plan.lr(200) == pytest.approx(0.1)
    assert all(plan.lr(s) >= plan.lr(s + 1) - 1e-12 for s in range(60, 200))


def test_a_new_cycle_warms_up_from_the_floor_to_the_peak_then_decays_again():
    plan = Plan(warmup_steps=10, peak_lr=1.0, min_lr=0.1)
    plan.extend_to(0, 100)
    assert plan.lr(100) == pytest.approx(0.1)  # the target reached: at the floor
    plan.extend_to(100, 300)
    assert plan.lr(150) == pytest.approx(0.1)  # raised: the added steps stay at the floor
    assert plan.new_cycle(100, 300) and not plan.new_cycle(100, 300)  # once: a resumed job asks again
    assert plan.lr(100) == pytest.approx(0.1 + 0.9 / 10)  # from the floor...
    assert plan.lr(109) == pytest.approx(1.0) and plan.lr(110) == pytest.approx(1.0)  # ...up to the peak
    assert plan.lr(300) == pytest.approx(0.1)
    assert all(plan.lr(s) >= plan.lr(s + 1) - 1e-12 for s in range(110, 300))
    assert plan.lr(99) == pytest.approx(Plan(10, 1.0, 0.1, [{"start": 10, "end": 100, "lr_start": 1.0}]).lr(99))


def test_a_new_cycle_survives_a_resume_and_trains_at_the_peak_again(tmp_path):
    docs = _docs(n=4)
    t = Trainer(CFG, _settings(target_epochs=1, warmup_steps=2), ops, lambda: list(docs), tmp_path / "ck",
                init_weights(CFG), EOT)
    rates = []
    t.run(on_step=lambda r: rates.append(r.learning_rate))
    floor = rates[-1]
    again = Trainer(CFG, _settings(target_epochs=3, warmup_steps=2), ops, lambda: list(docs), tmp_path / "ck",
                    init_weights(CFG), EOT)
    assert again.new_cycle()
    later = []
    again.run(on_step=lambda r: later.append(r.learning_rate), max_steps=3)
    resumed = Trainer(CFG, _settings(target_epochs=3, warmup_steps=2), ops, lambda: list(docs), tmp_path / "ck",
                      init_weights(CFG), EOT)
    assert not resumed.new_cycle()  # the checkpoint keeps the cycle
    resumed.run(on_step=lambda r: later.append(r.learning_rate))
    assert later[0] > floor and max(later) == pytest.approx(3e-3) and later[-1] == pytest.approx(floor, rel=0.05)


def test_layers_grown_after_training_keep_the_old_optimizer_state(tmp_path):
    t = _trainer(tmp_path, settings=_settings(target_epochs=1))
    _collect(t, max_steps=6)
    old_m = {k: v.copy() for k, v in t.numerics.m.views.items()}
    grown_cfg = GPTConfig(**{**CFG.to_dict(), "n_layer": 3})
    grown = grow_layers(t.weights(), CFG, 3)
    t2 = Trainer(grown_cfg, _settings(target_epochs=1), ops, lambda: _docs(), tmp_path / "ck", grown, EOT)
    assert t2.resumed_from == 6
    for k, v in old_m.items():
        np.testing.assert_array_equal(t2.numerics.m.views[k], v)
    assert not t2.numerics.m.views["h.2.attn.c_attn.weight"].any()
    x = np.frombuffer(b"the quick brown fox jumps", np.uint8).astype(np.int32)[None, :16]
    before = t.numerics.loss(x, x)
    assert math.isclose(t2.numerics.loss(x, x), before, rel_tol=1e-6)
    outcome, _ = _collect(t2)
    assert outcome == "done"


# ---- the order of an epoch's windows ------------------------------------------------------------


def _random_docs(sizes) -> list[Document]:
    """Documents of random bytes, so no two windows read alike."""
    rng = np.random.default_rng(5)
    return [Document(doc_id=i + 1, key=f"r-{i}", tokens=rng.integers(0, 256, n).astype(np.uint8))
            for i, n in enumerate(sizes)]


def _stream_windows(docs, epoch, seed, T):
    """The epoch's token stream cut into windows of T+1, consecutively: what "stream" order reads."""
    order = np.random.default_rng([seed, epoch]).permutation(len(docs))
    stream = np.concatenate([np.append(docs[i].tokens, EOT) for i in order]).astype(np.int32)
    n = (stream.size - 1) // T
    return [stream[w * T : w * T + T + 1] for w in range(n)]


def test_stream_order_reads_the_epoch_consecutively_as_before():
    docs = _random_docs([300, 5, 120, 1, 260])
    es = EpochStream(docs, epoch=3, seed=7, B=4, T=16, eot=EOT, order="stream")
    windows = _stream_windows(docs, 3, 7, 16)
    assert es.n_batches == len(windows) // 4
    for b, (x, y) in enumerate(es):
        rows = windows[b * 4 : b * 4 + 4]
        np.testing.assert_array_equal(x, np.stack([w[:-1] for w in rows]))
        np.testing.assert_array_equal(y, np.stack([w[1:] for w in rows]))


def test_windows_order_uses_each_window_once_in_a_seeded_shuffle_from_all_over_the_text():
    docs = _random_docs([300, 5, 120, 1, 260])
    windows = {w.tobytes() for w in _stream_windows(docs, 2, 7, 16)}
    es = EpochStream(docs, epoch=2, seed=7, B=4, T=16, eot=EOT)
    seen = [np.concatenate([x[r], y[r, -1:]]).tobytes() for x, y in es for r in range(4)]
    assert len(seen) == len(set(seen)) == es.n_batches * 4 > len(windows) - 4
    assert set(seen) <= windows  # every row is a real window of the stream, with its <|endoftext|>s
    assert list(es.windows) != sorted(es.windows)  # not consecutive
    again = EpochStream(docs, epoch=2, seed=7, B=4, T=16, eot=EOT)
    assert list(again.windows) == list(es.windows)
    assert list(EpochStream(docs, epoch=3, seed=7, B=4, T=16, eot=EOT).windows) != list(es.windows)


def test_batches_from_a_start_are_the_rest_of_the_epoch():
    es = EpochStream(_random_docs([200, 30, 190]), epoch=0, seed=1, B=2, T=16, eot=EOT)
    whole = list(es)
    rest = list(es.batches(5))
    assert len(rest) == len(whole) - 5
    for (a, b), (c, d) in zip(rest, whole[5:], strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_a_checkpoint_from_before_the_shuffle_finishes_its_epoch_in_stream_order(tmp_path):
    first = _trainer(tmp_path)
    _collect(first, max_steps=3)
    ck = load_latest(tmp_path / "ck")
    assert ck.meta["batch_order"] == "windows"
    meta = {k: v for k, v in ck.meta.items() if k not in ("batch_order", "step")}
    for old in (tmp_path / "ck").iterdir():
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    save_checkpoint(tmp_path / "ck", ck.step, ck.tensors, meta)  # as an older version wrote it
    resumed = _trainer(tmp_path)
    assert resumed.batch_in_epoch > 0 and resumed.batch_order == "stream"
    outcome, _ = _collect(resumed)
    assert outcome == "done" and resumed.batch_order == "windows"
