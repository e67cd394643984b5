"""The recipe chooser: for the minutes a person will wait and the text in a model's queue, the
shape, tokenizer, batch size and learning rate expected to reach the lowest validation loss in
that time on this machine, and why.

How it decides:
  1. The tokenizer, from the queue's size: bytes below BPE_FROM_BYTES (too little text to learn
     merges from, and the model has time to see it many times), BPE above, its vocabulary
     growing with the text (VOCABS).
  2. For each shape of CANDIDATES, this machine's measured training speed (engine/
     throughput.py, kept per CPU and kernel build in the data root) gives the tokens the
     budget buys. A shape too slow to be worth timing is estimated from the last one timed by
     its FLOPs.
  3. The expected loss of each, L = E + A / N'^alpha + B / D'^beta (Hoffmann et al. 2022's
     fit, whose balance between parameters N and tokens D is the part used: about 20 tokens
     per parameter at the optimum), with repeated data discounted as Muennighoff et al. 2023
     found (D' and N' below), since a small queue is read many times in ten minutes.
  4. The lowest wins. Its context, batch and learning rate follow its width (WIDTH_RULES:
     the rates small GPTs are commonly trained at, higher for narrower models, as nanoGPT's
     character-level baby model and config A use; the rates are not swept here; the README's
     "The recipe chooser" says what was measured: 4x128 against 4x192, context 128 against 256).
A model that has trained keeps its shape and tokenizer: only its batch, context (up to its
block_size) and learning rate can change, and only those are proposed.
"""

from __future__ import annotations

import json
import math
import os
import platform

from peewee import fn

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.kernel_choice import model_kernels
from cllm_app.engine.throughput import tokens_per_second
from cllm_app.errors import InvalidInput
from cllm_app.services.validate import as_float
from cllm_app.store import QueueEntry

# (n_layer, n_head, n_embd), smallest first
CANDIDATES = ((2, 2, 64), (3, 4, 96), (4, 4, 128), (4, 6, 192), (6, 6, 192), (6, 8, 256), (6, 6, 384), (8, 8, 512))
BPE_FROM_BYTES = 512 * 1024
VOCABS = ((2 * 1024**2, 1024), (16 * 1024**2, 2048), (math.inf, 4096))  # (queue bytes below, vocab)
BYTES_PER_TOKEN = {257: 1.0, 1024: 2.6, 2048: 3.0, 4096: 3.4}  # English prose; measured after training
TOKENS_PER_STEP = 4096
# width: (context, learning rate)
WIDTH_RULES = {64: (128, 3e-3), 96: (128, 3e-3), 128: (128, 3e-3), 192: (128, 2e-3), 256: (256, 1.5e-3),
               384: (256, 1e-3), 512: (256, 8e-4)}
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
REPEAT_D, REPEAT_N, TOKENS_PER_PARAM = 15.4, 5.3, 20.0
OVERHEAD = 0.92  # evaluations, checkpoints and samples take this share of a run's time off the steps
TIMING_LIMIT = 0.5  # seconds per step: slower candidates are estimated, not timed
CACHE_FILE = "throughput.json"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def flops_per_token(cfg: GPTConfig, context: int) -> float:
    return 6.0 * (12 * cfg.n_layer * cfg.n_embd**2 + cfg.vocab_size * cfg.n_embd) + 12.0 * cfg.n_layer * cfg.n_embd * context


def expected_loss(params: float, tokens: float, unique_tokens: float) -> float:
    """Hoffmann et al.'s L(N, D), with repeated tokens and parameters beyond what the unique
    data supports each worth less (Muennighoff et al.'s D' and N')."""
    u = max(unique_tokens, 1.0)
    repeats = max(0.0, tokens / u - 1.0)
    d_eff = u + u * REPEAT_D * (1.0 - math.exp(-repeats / REPEAT_D)) if tokens > u else tokens
    u_n = u / TOKENS_PER_PARAM
    n_eff = params
    if params > u_n:
        r_n = params / u_n - 1.0
        n_eff = u_n + u_n * REPEAT_N * (1.0 - math.exp(-r_n / REPEAT_N))
    return E + A / max(n_eff, 1.0) ** ALPHA + B / max(d_eff, 1.0) ** BETA


class Recipes:
    def __init__(self, models, queue):
        self.models, self.queue = models, queue
        self._cache_path = models.root.path / CACHE_FILE

    # ---- measured speed ------------------------------------------------------------------

    def _speeds(self) -> dict:
        try:
            return json.loads(self._cache_path.read_text())
        except (OSError, ValueError):
            return {}

    def speed(self, cfg: GPTConfig, batch: int, context: int, kernels) -> float:
        """Tokens per second of a training step of this shape here, measured once per CPU and
        kernel build and kept."""
        key = f"{_cpu()}|{getattr(kernels, 'VARIANT', 'reference')}|{cfg.n_layer}-{cfg.n_head}-{cfg.n_embd}-{cfg.vocab_size}|{batch}x{context}"
        known = self._speeds()
        if key not in known:
            known[key] = tokens_per_second(cfg, batch, context, kernels)
            tmp = self._cache_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
            os.replace(tmp, self._cache_path)
        return known[key]

    # ---- the proposal --------------------------------------------------------------------

    def propose(self, model_name: str, minutes, keep_shape: bool = False, kernels=None) -> dict:
        minutes = as_float("minutes", minutes, 0.05, 10_080.0)
        row = self.models.get(model_name)
        kernels = kernels or model_kernels()
        ready = (QueueEntry.model == row) & (QueueEntry.status == "ready")
        text_bytes = int(QueueEntry.select(fn.COALESCE(fn.SUM(QueueEntry.byte_count), 0)).where(ready).scalar())
        if text_bytes == 0:
            raise InvalidInput(f"the training-data queue of '{row.model_name}' is empty: a recipe is fitted to "
                               "its text, so add text first", code="empty_queue")
        fixed = row.has_trained or keep_shape
        seconds = minutes * 60 * OVERHEAD
        why = []
        if fixed:
            vocab = row.vocab_size
            shapes = [(row.n_layer, row.n_head, row.n_embd)]
            why.append("the model has trained: its shape and tokenizer stay, only batch, context and learning "
                       "rate are proposed" if row.has_trained else "the shape and tokenizer are kept, as asked")
        else:
            vocab = 257 if text_bytes < BPE_FROM_BYTES else next(v for limit, v in VOCABS if text_bytes < limit)
            shapes = list(CANDIDATES)
            why.append(f"{text_bytes / 1024**2:.1f} MB of text: " + (
                "byte tokens (too little text for a BPE vocabulary to pay off)" if vocab == 257
                else f"a BPE tokenizer of {vocab:,} tokens, so each token carries about "
                     f"{BYTES_PER_TOKEN[vocab]:g} bytes of text"))
        unique = text_bytes / BYTES_PER_TOKEN.get(vocab, 3.0) * (1 - row.validation_share)
        weighed, rate = [], None  # rate: the last timed shape's FLOP/s, for the ones not timed
        for n_layer, n_head, n_embd in shapes:
            context, lr = WIDTH_RULES.get(n_embd, (128, 1e-3))
            if fixed:
                context = min(context, row.block_size)
            cfg = GPTConfig(vocab_size=vocab, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                            block_size=row.block_size if fixed else context)
            batch = max(1, TOKENS_PER_STEP // context)
            flops = flops_per_token(cfg, context)
            if rate is not None and batch * context * flops / rate > TIMING_LIMIT:
                tps, timed = rate / flops, False
            else:
                tps, timed = self.speed(cfg, batch, context, kernels), True
                rate = tps * flops
            tokens = tps * seconds
            params = 12 * n_layer * n_embd**2
            weighed.append({
                "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "context": context, "batch_size": batch,
                "learning_rate": lr, "tokens_per_sec": round(tps, 1), "timed": timed, "tokens": int(tokens),
                "params": params, "expected_loss": round(expected_loss(params, tokens, unique), 4),
            })
        best = min(weighed, key=lambda c: c["expected_loss"])
        steps = max(1, int(best["tokens"] / (best["batch_size"] * best["context"])))
        epochs = best["tokens"] / max(unique, 1.0)
        if not fixed:
            others = sorted(weighed, key=lambda c: c["expected_loss"])[1:3]
            why.append(f"{best['n_layer']} layers of width {best['n_embd']} ({best['params'] / 1e6:.2f}M parameters) "
                       f"train at {best['tokens_per_sec']:,.0f} tokens/s here: {best['tokens'] / 1e6:.1f}M tokens in "
                       f"{minutes:g} minutes, {best['tokens'] / max(best['params'], 1):.0f} per parameter "
                       "(about 20 is the best balance) and " + f"{epochs:.1f} passes over the text")
            why.extend(f"{c['n_layer']}x{c['n_embd']} would see {c['tokens'] / 1e6:.1f}M tokens: expected loss "
                       f"{c['expected_loss']:.3f} against {best['expected_loss']:.3f}" for c in others)
        else:
            why.append(f"at {best['tokens_per_sec']:,.0f} tokens/s: {best['tokens'] / 1e6:.1f}M tokens in {minutes:g} "
                       f"minutes, {epochs:.1f} passes over the text")
        why.append(f"learning rate {best['learning_rate']:g} for width {best['n_embd']}, decayed to its floor as "
                   "the time runs out")
        settings = {
            "minutes": minutes,
            "batch_size": best["batch_size"],
            "sequence_length": best["context"],
            "learning_rate": best["learning_rate"],
            "warmup_steps": max(10, min(200, steps // 50)),
            "eval_interval": max(25, steps // 40),
            "checkpoint_interval": max(25, steps // 20),
        }
        return {
            "model_name": row.model_name,
            "minutes": minutes,
            "applies_shape": not fixed,
            "shape": None if fixed else {"n_layer": best["n_layer"], "n_head": best["n_head"], "n_embd": best["n_embd"],
                                         "block_size": best["context"]},
            "tokenizer": None if fixed else {"tokenizer": "byte" if vocab == 257 else "bpe", "vocab_size": vocab},
            "settings": settings,
            "expected": {"tokens_per_sec": best["tokens_per_sec"], "tokens": best["tokens"], "steps": steps,
                         "epochs": round(epochs, 2), "loss": best["expected_loss"]},
            "candidates": weighed,
            "why": why,
        }

    def apply(self, model_name: str, minutes, keep_shape: bool = False, kernels=None) -> dict:
        """Propose, then set it on the model: shape and tokenizer too where the model has not
        trained and keep_shape is not asked. Returns the proposal."""
        p = self.propose(model_name, minutes, keep_shape, kernels)
        if p["shape"] is not None:
            self.models.reshape_untrained(model_name, **p["shape"])
            tok = p["tokenizer"]
            if tok["tokenizer"] == "bpe":
                self.models.set_tokenizer(model_name, "bpe", tok["vocab_size"], tokenizer_from=model_name)
            elif self.models.get(model_name).tokenizer != "byte":
                self.models.set_tokenizer(model_name, "byte")
        settings = dict(p["settings"])
        settings["sequence_length"] = min(settings["sequence_length"], self.models.get(model_name).block_size)
        self.models.configure(model_name, **settings)
        return p
