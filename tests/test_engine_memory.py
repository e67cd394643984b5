"""engine/memory.py: the model's big buffers, carved from one block on huge pages."""

import re
from pathlib import Path

import numpy as np

from cllm_app.engine import memory
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.model import Activations, FlatTensors


def _huge_pages_kb() -> int:
    return sum(int(x) for x in re.findall(r"AnonHugePages:\s+(\d+)", Path("/proc/self/smaps").read_text()))


def test_zeros_are_zero_writable_and_on_huge_page_boundaries():
    for n in (0, 1, 1000, 3 << 20):
        a = memory.zeros(n)
        assert a.shape == (n,) and a.dtype == np.float32 and a.flags.writeable and a.flags.c_contiguous
        assert not a.any()
        a[:] = 2.0
        assert a.sum() == 2.0 * n
    big = memory.zeros(3 << 20, np.float64)
    assert big.ctypes.data % memory.HUGE_PAGE == 0 and big.dtype == np.float64


def test_big_blocks_get_huge_pages_where_the_system_gives_them():
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    before = _huge_pages_kb()
    block = memory.zeros(16 << 20)  # 64 MB
    block[:] = 1.0  # touch every page
    if thp.exists() and ("[madvise]" in thp.read_text() or "[always]" in thp.read_text()):
        assert _huge_pages_kb() - before >= 16 << 10  # at least a quarter of it on 2 MB pages
    assert block.sum() == 16 << 20


def test_carved_arrays_are_apart_aligned_and_zero():
    shapes = [(1024, 384), (1024,), (7,), (8, 4, 128), (3, 5)]
    arrays = memory.carve(shapes)
    for a, s in zip(arrays, shapes, strict=True):
        assert a.shape == s and not a.any() and a.ctypes.data % memory.ALIGN == 0
        a[...] = 1.0
    assert all(a.sum() == a.size for a in arrays)  # no two arrays overlap


def test_activations_and_parameters_use_it():
    cfg = GPTConfig(vocab_size=256, n_layer=2, n_head=4, n_embd=128, block_size=128)
    acts = Activations(cfg, 8, 128)
    bases = [acts.encoded, acts.logits, acts.datty, acts.layers[0].qkv, acts.layers[1].residual3]
    owner = {id(a.base if a.base is not None else a) for a in (b.base for b in bases)}
    assert len(owner) == 1  # one block
    assert acts.layers[1].att_lse.shape == (8, 4, 128)
    params = FlatTensors(cfg)
    assert not params.flat.any() and params.flat.flags.writeable
