"""The PyTorch engine under the one training loop: its first 20 losses equal the built-in
engine's (to 1e-4), a model switches engines between runs with its AdamW moments and its
plan, and a stopped run resumes bit for bit (issue 13)."""

import numpy as np
import pytest

from cllm_app.engine.checkpoint import load_latest
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.kernel_choice import model_kernels
from cllm_app.engine.torch_numerics import TorchNumerics, check_split
from cllm_app.engine.trainer import Document, Trainer, TrainSettings
from cllm_app.engine.weights import init_weights

CFG = GPTConfig(vocab_size=257, n_layer=2, n_head=2, n_embd=32, block_size=32)
EOT = 256


def _docs(n: int = 8) -> list[Document]:
    rng = np.random.default_rng(3)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"river", b"stone", b"light", b"ember"]
    out = []
    for i in range(n):
        text = b" ".join(words[j] for j in rng.integers(0, len(words), 300))
        out.append(Document(doc_id=i + 1, key=f"d{i}", tokens=np.frombuffer(text, np.uint8)))
    return out


def _settings(**kw) -> TrainSettings:
    base = dict(batch_size=4, sequence_length=32, learning_rate=3e-3, target_epochs=3, warmup_steps=5,
                eval_interval=7, checkpoint_interval=1000, seed=11, grad_accum=2)
    return TrainSettings(**{**base, **kw})


def _trainer(folder, engine: str, settings=None, weights=None):
    s = settings or _settings()
    numerics = TorchNumerics(CFG, s, device="cpu") if engine == "torch" else None
    docs = _docs()
    return Trainer(CFG, s, model_kernels(), lambda: docs, folder, weights or init_weights(CFG, seed=5), EOT,
                   numerics=numerics)


def _losses(trainer, **kw) -> list[float]:
    out = []
    trainer.run(on_step=lambda r: out.append(r.train_loss), **kw)
    return out


def test_the_first_20_losses_equal_the_built_in_engines(tmp_path):
    ours = _losses(_trainer(tmp_path / "a", "builtin"), max_steps=20)
    torchs = _losses(_trainer(tmp_path / "b", "torch"), max_steps=20)
    assert len(ours) == len(torchs) == 20
    np.testing.assert_allclose(torchs, ours, rtol=1e-4)
    assert ours[-1] < ours[0] - 0.5  # it learns, so the comparison is of something moving


def test_a_model_switches_engines_between_runs(tmp_path):
    """Built-in, then PyTorch, then built-in again, on one checkpoint folder: the same losses as
    one built-in run, the moments carried over, and the engine named in each checkpoint."""
    straight = _losses(_trainer(tmp_path / "one", "builtin"), max_steps=18)
    folder = tmp_path / "switched"
    first = _trainer(folder, "builtin")
    losses = _losses(first, max_steps=6)
    moments = {k: v.copy() for k, v in first.numerics.tensors().items() if k.startswith("m.")}
    second = _trainer(folder, "torch")
    assert second.resumed_from == 6 and second.resumed_engine == "builtin"
    carried = second.numerics.tensors()
    for k, v in moments.items():
        np.testing.assert_array_equal(carried[k], v)
    losses += _losses(second, max_steps=6)
    assert load_latest(folder).meta["engine"] == "torch"
    third = _trainer(folder, "builtin")
    assert third.resumed_from == 12 and third.resumed_engine == "torch"
    losses += _losses(third, max_steps=6)
    np.testing.assert_allclose(losses, straight, rtol=1e-4)
    assert third.plan.segments == first.plan.segments  # one plan, continued, not restarted


def test_a_stopped_torch_run_resumes_bit_for_bit(tmp_path):
    whole = _trainer(tmp_path / "whole", "torch")
    expected = _losses(whole)
    assert whole.epoch == 3
    folder = tmp_path / "parts"
    calls = [0]

    def stop_after_9():
        calls[0] += 1
        return calls[0] > 9

    part = _trainer(folder, "torch")
    got = _losses(part, should_stop=stop_after_9)
    assert len(got) == 9
    resumed = _trainer(folder, "torch")
    assert resumed.resumed_from == 9
    got += _losses(resumed)
    assert got == expected  # bit for bit
    np.testing.assert_array_equal(resumed.weights()["wte.weight"], whole.weights()["wte.weight"])


def test_batch_size_must_split_over_the_processes():
    check_split(8, 2)
    with pytest.raises(ValueError, match="batch_size 4 does not split evenly over 3 processes"):
        check_split(4, 3)
