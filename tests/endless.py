"""Models and replies that cannot end by themselves, for tests of Stop: a test of stopping
must be sure that something is still running when its Stop arrives, however fast the CPU."""

from pathlib import Path

from cllm_app.engine.weights import load_weights, save_weights


def never_says_eot(weights: Path) -> None:
    """Make a model unable to say <|endoftext|>: the eot logit becomes a constant -100
    (ln_f's first channel is the constant 1, and eot's output row reads only that channel).
    A window that has the model loaded reads the new weights at its next request."""
    w = load_weights(weights)
    w["ln_f.weight"][0], w["ln_f.bias"][0] = 0.0, 1.0
    w["wte.weight"][256] = 0.0
    w["wte.weight"][256, 0] = -100.0
    save_weights(weights, w)
