"""Big buffers on huge pages: one allocation cut into arrays.

A training step walks ~40 MB of activations, weights, gradients and AdamW
moments. On 4 KB pages that is ~10,000 pages, far past what the CPU's TLB
maps (2,048 entries on Zen 3), so the kernels stall on page walks; on 2 MB
pages it is ~20. Linux hands out huge pages for memory marked with
madvise(MADV_HUGEPAGE) (the default "madvise" setting of transparent huge
pages). numpy marks its own allocations only from 4 MB up, and most of the
model's arrays are 0.5 to 2 MB, so they are carved from one block that is
marked here. Elsewhere (other systems, or no MADV_HUGEPAGE) it is a plain
zeroed numpy array.
"""

import mmap

import numpy as np

HUGE_PAGE = 2 << 20
ALIGN = 64  # bytes: every carved array starts on a cache line


def zeros(n: int, dtype=np.float32) -> np.ndarray:
    """A flat zeroed array of n elements, on huge pages where the system has them."""
    itemsize = np.dtype(dtype).itemsize
    nbytes = max(n * itemsize, 1)
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is None or nbytes < HUGE_PAGE:
        return np.zeros(n, dtype)
    # Anonymous memory comes zeroed; one huge page more lets the array start
    # on a huge-page boundary, so all of it can be backed by huge pages.
    # Private: shared anonymous memory is shmem, which gets no huge pages.
    block = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE)
    try:
        block.madvise(advice)
    except OSError:
        pass  # transparent huge pages off: 4 KB pages, still correct
    raw = np.frombuffer(block, dtype=np.uint8)
    start = (-raw.ctypes.data) % HUGE_PAGE
    return raw[start : start + n * itemsize].view(dtype)


def carve(shapes: list[tuple[int, ...]], dtype=np.float32) -> list[np.ndarray]:
    """Zeroed arrays of these shapes, cut from one block (each on a cache line)."""
    step = ALIGN // np.dtype(dtype).itemsize
    sizes = [int(np.prod(s)) for s in shapes]
    offsets, total = [], 0
    for size in sizes:
        offsets.append(total)
        total += -(-size // step) * step
    block = zeros(total + step, dtype)
    first = (-block.ctypes.data % ALIGN) // np.dtype(dtype).itemsize
    return [block[first + o : first + o + n].reshape(s) for o, n, s in zip(offsets, sizes, shapes, strict=True)]
