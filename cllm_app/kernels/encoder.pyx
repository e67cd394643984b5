# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Token + position embedding, forward and backward, in the style of llm.c.

- ``encoder_forward`` overwrites ``out``.
- ``encoder_backward`` ADDS into ``dwte`` and ``dwpe``.

Token ids repeat within a batch, so rows of ``dwte`` receive several rows of
``dout``. Instead of atomics or per-thread copies of ``dwte``, the threads
split the C columns: each thread owns a band of columns of every row of
``dwte`` and ``dwpe`` and walks all N rows of ``dout`` in order. No two
threads ever write the same float, and every float is summed in the same
order whatever the thread count, so results are bit-identical across runs and
across thread counts.

``reference.py`` holds numpy versions with the same signatures.
"""
from cython.parallel cimport prange
from libc.stdint cimport int32_t

cimport numpy as cnp

from cllm_app.kernels._common cimport check, check_apart, check_2d, threads_for

cnp.import_array()

cdef enum:
    # Columns per unit of parallel work in the backward: one 64-byte line.
    BAND = 16


cdef int _check_ids(str fn, const int32_t* ids, Py_ssize_t n, Py_ssize_t vocab) except -1:
    cdef Py_ssize_t i, bad = -1
    with nogil:
        for i in range(n):
            if ids[i] < 0 or ids[i] >= vocab:
                bad = i
                break
    if bad >= 0:
        raise ValueError(f"{fn}: token id {ids[bad]} at flat position {bad} is outside "
                         f"[0, {vocab})")
    return 0


cdef int _shapes(str fn, object inp, object wte, object wpe, Py_ssize_t* B, Py_ssize_t* T,
                 Py_ssize_t* V, Py_ssize_t* C, Py_ssize_t* maxT) except -1:
    cdef Py_ssize_t wpe_cols
    check_2d(fn, "inp", inp, B, T)
    check_2d(fn, "wte", wte, V, C)
    check_2d(fn, "wpe", wpe, maxT, &wpe_cols)  # its width is checked against C by the caller
    if C[0] < 1:
        raise ValueError(f"{fn}: wte must have at least one column")
    if T[0] > maxT[0]:
        raise ValueError(f"{fn}: sequence length {T[0]} is longer than wpe's {maxT[0]} rows")
    return 0


# out: (B*T, C) is written; inp: (B, T) int32, wte: (V, C), wpe: (maxT, C) are read
def encoder_forward(out, inp, wte, wpe):
    """out[b*T + t] = wte[inp[b, t]] + wpe[t].

    Raises ValueError on a wrong shape, dtype or layout, on a token id outside
    [0, V) (before writing anything), or if out shares memory with an input.
    """
    fn = "encoder_forward"
    cdef Py_ssize_t B, T, V, C, maxT
    _shapes(fn, inp, wte, wpe, &B, &T, &V, &C, &maxT)
    check(fn, "inp", inp, (B, T), cnp.NPY_INT32, False)
    check(fn, "wte", wte, (V, C), cnp.NPY_FLOAT32, False)
    check(fn, "wpe", wpe, (maxT, C), cnp.NPY_FLOAT32, False)
    check(fn, "out", out, (B * T, C), cnp.NPY_FLOAT32, True)
    check_apart(fn, "out", out, "wte", wte)
    check_apart(fn, "out", out, "wpe", wpe)
    cdef Py_ssize_t n = B * T
    if n == 0:
        return
    cdef const int32_t[:, ::1] ids = inp
    _check_ids(fn, &ids[0, 0], n, V)

    cdef float[:, ::1] out_v = out
    cdef const float[:, ::1] wte_v = wte
    cdef const float[:, ::1] wpe_v = wpe
    cdef Py_ssize_t i, j
    cdef float* o
    cdef const float* e
    cdef const float* p
    with nogil:
        for i in prange(n, schedule="static", num_threads=threads_for(n * C)):
            o = &out_v[i, 0]
            e = &wte_v[ids[i // T, i % T], 0]
            p = &wpe_v[i % T, 0]
            for j in range(C):
                o[j] = e[j] + p[j]


# dwte: (V, C), dwpe: (maxT, C) are accumulated into;
# dout: (B*T, C), inp: (B, T) int32 are read
def encoder_backward(dwte, dwpe, dout, inp):
    """Add dout's rows into dwte at their token ids and into dwpe at their positions.

    Deterministic and race-free (see the module docstring). Raises ValueError
    like encoder_forward, or if dwte and dwpe overlap each other or dout.
    """
    fn = "encoder_backward"
    cdef Py_ssize_t B, T, V, C, maxT
    _shapes(fn, inp, dwte, dwpe, &B, &T, &V, &C, &maxT)
    check(fn, "inp", inp, (B, T), cnp.NPY_INT32, False)
    check(fn, "dwte", dwte, (V, C), cnp.NPY_FLOAT32, True)
    check(fn, "dwpe", dwpe, (maxT, C), cnp.NPY_FLOAT32, True)
    check(fn, "dout", dout, (B * T, C), cnp.NPY_FLOAT32, False)
    check_apart(fn, "dwte", dwte, "dwpe", dwpe)
    check_apart(fn, "dwte", dwte, "dout", dout)
    check_apart(fn, "dwpe", dwpe, "dout", dout)
    cdef Py_ssize_t n = B * T
    if n == 0:
        return
    cdef const int32_t[:, ::1] ids = inp
    _check_ids(fn, &ids[0, 0], n, V)

    cdef float* dwte_p = <float*>cnp.PyArray_DATA(dwte)
    cdef float* dwpe_p = <float*>cnp.PyArray_DATA(dwpe)
    cdef const float* dout_p = <const float*>cnp.PyArray_DATA(dout)
    cdef const int32_t* id_p = &ids[0, 0]
    cdef Py_ssize_t bands = (C + BAND - 1) // BAND
    cdef Py_ssize_t band, i, j, j0, j1, t
    cdef float* tw
    cdef float* pw
    cdef const float* g
    with nogil:
        for band in prange(bands, schedule="static", num_threads=threads_for(n * C)):
            j0 = band * BAND
            j1 = j0 + BAND if j0 + BAND < C else C
            for i in range(n):
                t = i % T
                g = dout_p + i * C
                tw = dwte_p + id_p[i] * C
                pw = dwpe_p + t * C
                for j in range(j0, j1):
                    tw[j] += g[j]
                    pw[j] += g[j]
