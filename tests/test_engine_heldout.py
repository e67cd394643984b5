"""The validation split's plan and the held-out measure (engine/heldout.py), checked by hand."""

import math

import numpy as np
import pytest

from cllm_app.engine import heldout
from cllm_app.engine.heldout import Item


def test_the_plan_in_each_mode():
    items = [Item(1, "a", 100), Item(2, "b", 9), Item(3, "c", 1), Item(4, "d", 50, holdout=True)]
    assert heldout.plan(items, "tail", 0.1) == {1: 90, 2: 8, 3: 1, 4: 0}  # one token at least; a 1-token item trains
    assert heldout.plan(items, "marked", 0.1) == {1: 100, 2: 9, 3: 1, 4: 0}
    assert heldout.plan(items, "tail", 0.0) == {1: 100, 2: 9, 3: 1, 4: 0}
    whole = heldout.plan(items, "documents", 0.1)
    assert sorted(whole.values()).count(0) == 2 and whole[4] == 0  # the marked one and one more, whole
    assert heldout.plan([Item(1, "a", 10)], "documents", 0.1) == {1: 9}  # one document: its tail


def test_auto_is_tails_for_few_documents_and_whole_documents_for_many():
    assert heldout.resolve("auto", heldout.AUTO_DOCUMENTS - 1) == "tail"
    assert heldout.resolve("auto", heldout.AUTO_DOCUMENTS) == "documents"
    assert heldout.resolve("marked", 1000) == "marked"
    assert "last 10%" in heldout.describe("auto", 0.1, 3)
    assert "whole documents" in heldout.describe("auto", 0.1, 50)


def _uniform_loss(calls):
    def loss(x, y):
        calls.append(x.shape)
        assert x.shape == y.shape and np.array_equal(x[:, 1:], y[:, :-1])
        return float(np.mean(y))  # a loss that depends on the targets, to check the weighting
    return loss


def test_every_token_is_predicted_once_and_the_mean_is_over_tokens():
    pieces = [np.arange(1, 11), np.arange(20, 25)]  # stream: eot 1..10 eot 20..24, 17 tokens, 16 predicted
    calls = []
    held = heldout.measure(_uniform_loss(calls), pieces, 0, B=2, T=4)
    assert calls == [(2, 4), (2, 4)]  # 16 predicted tokens: four whole windows
    targets = np.concatenate([np.arange(1, 11), [0], np.arange(20, 25)])
    assert held.loss == pytest.approx(targets.mean()) and held.tokens == held.tokens_available == 16
    assert held.whole and held.stderr == 0.0


def test_a_short_last_window_is_weighted_by_its_tokens():
    pieces = [np.arange(1, 8)]  # eot 1..7: 7 predicted tokens, windows of 4 and 3
    calls = []
    held = heldout.measure(_uniform_loss(calls), pieces, 0, B=4, T=4)
    assert calls == [(1, 4), (1, 3)]
    assert held.loss == pytest.approx(np.arange(1, 8).mean()) and held.tokens == 7


def test_a_large_split_is_a_fixed_even_sample_with_a_standard_error():
    rng = np.random.default_rng(0)
    pieces = [rng.integers(0, 50, 100_000)]
    held = heldout.measure(_uniform_loss([]), pieces, 0, B=8, T=64, sample_tokens=4096)
    again = heldout.measure(_uniform_loss([]), pieces, 0, B=8, T=64, sample_tokens=4096)
    assert held == again and held.tokens == 4096 and held.tokens_available == 100_000 and not held.whole
    whole = heldout.measure(_uniform_loss([]), pieces, 0, B=8, T=64, sample_tokens=10**9)
    assert 0 < held.stderr < 1.0
    assert abs(held.loss - whole.loss) < 4 * held.stderr  # the sample's mean is near the whole split's


def test_nothing_to_predict_is_none():
    assert heldout.measure(_uniform_loss([]), [], 0, B=2, T=4) is None
    assert not math.isnan(heldout.measure(_uniform_loss([]), [np.array([5])], 0, B=2, T=4).loss)
