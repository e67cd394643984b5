# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Matrix products of the model (linear layers and the tied output head), in the style of llm.c.

- ``matmul_forward``: out = inp @ weight + bias (+ residual) (overwrites out).
- ``matmul_backward``: ADDS into dweight and dbias, and into dinp unless
  accumulate_dinp is False (then dinp is overwritten, so a scratch buffer
  needs no zeroing first).
- ``matmul_forward_tied``: out = inp @ wte.T, the output head tied to the
  token embedding (overwrites out).
- ``matmul_backward_tied``: ADDS into dwte, and into dinp unless
  accumulate_dinp is False.

The products are BLAS sgemm calls (scipy's OpenBLAS, through
scipy.linalg.cython_blas, without the GIL), one per OpenMP thread on its band
of the output (see "Threads" below). BLAS is column-major: a C-order
(rows, cols) array is, to Fortran, its transpose, so the row-major product
X = A @ B is computed as the column-major X^T = B^T A^T by passing the
operands in swapped order. Gradients accumulate for free: sgemm with
beta = 1 adds into its output. The forward bias (plus the residual stream,
when given) is written into out first and the product added onto it
(beta = 1), which costs no more than BLAS's own zeroing pass for beta = 0:
the residual add of a transformer block comes for free.

The bias gradient is a column sum over all N rows, done in an OpenMP loop:
threads split the columns, each sums its columns over the rows in order
(float over blocks of 32 rows, then double), so it does not depend on the
thread count. Products are split over threads by rows or columns of the
output, never along the summed dimension, so they are deterministic for a
given thread count too.

Outputs must not share memory with inputs (BLAS would read what it wrote).
``reference.py`` holds numpy versions with the same signatures.
"""
from cython.parallel cimport parallel, prange, threadid
from libc.limits cimport INT_MAX

cimport numpy as cnp
cimport openmp
from scipy.linalg.cython_blas cimport sgemm

from cllm_app.kernels._common cimport check, check_2d, check_apart, threads_for

cnp.import_array()

cdef enum:
    BAND = 64          # columns per unit of parallel work in the bias gradient
    ROWS_PER_FLUSH = 32


# Row-major C (M, N) = op(A) @ op(B) + beta * C, where A is a row-major
# (M, K) array with rows lda apart, or (K, M) if trans_a, and B is (K, N), or
# (N, K) if trans_b, with rows ldb apart; C's rows are ldc apart.
cdef inline void _sgemm(bint trans_a, bint trans_b, int M, int N, int K, const float* A, int lda,
                        const float* B, int ldb, float beta, float* C, int ldc) noexcept nogil:
    # Column-major, C^T (N, M) = op(B)^T @ op(A)^T: B goes first.
    cdef char ta = b"T" if trans_b else b"N"
    cdef char tb = b"T" if trans_a else b"N"
    cdef float alpha = 1.0
    sgemm(&ta, &tb, &N, &M, &K, &alpha, <float*>B, &ldb, <float*>A, &lda, &beta, C, &ldc)


# C[i0:i1, j0:j1] (rows N apart) = bias[j] and/or + res[i, j]; nothing if both are NULL.
cdef inline void _fill(float* C, const float* bias, const float* res, Py_ssize_t N,
                       Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t i, j
    if bias != NULL and res != NULL:
        for i in range(i0, i1):
            for j in range(j0, j1):
                C[i * N + j] = bias[j] + res[i * N + j]
    elif bias != NULL:
        for i in range(i0, i1):
            for j in range(j0, j1):
                C[i * N + j] = bias[j]
    elif res != NULL:
        for i in range(i0, i1):
            for j in range(j0, j1):
                C[i * N + j] = res[i * N + j]


# Thread t's share of C (M, N) = op(A) @ op(B) + beta * C (shapes as in
# _sgemm, with packed rows): a band of C's rows or columns, whichever
# dimension is longer, split in nt bands of whole 16-float lines. The summed
# dimension K is never split, so every element is one BLAS dot product over
# all of K. If bias or res is not NULL the band is first filled with bias (one
# value per column) plus res (an (M, N) array like C), and beta must be 1.
cdef inline void _sgemm_band(int t, int nt, bint trans_a, bint trans_b, int M, int N, int K,
                             const float* A, const float* B, float beta, float* C,
                             const float* bias, const float* res) noexcept nogil:
    cdef int lda = M if trans_a else K
    cdef int ldb = K if trans_b else N
    cdef bint by_rows = M >= N
    cdef int total = M if by_rows else N
    cdef int band = (total + nt - 1) // nt
    band = (band + 15) // 16 * 16
    cdef int lo = t * band
    cdef int hi = lo + band if lo + band < total else total
    cdef Py_ssize_t i, j
    if lo >= hi:
        return
    if by_rows:
        _fill(C, bias, res, N, lo, hi, 0, N)
        _sgemm(trans_a, trans_b, hi - lo, N, K, A + (lo if trans_a else <Py_ssize_t>lo * K), lda,
               B, ldb, beta, C + <Py_ssize_t>lo * N, N)
    else:
        _fill(C, bias, res, N, 0, M, lo, hi)
        _sgemm(trans_a, trans_b, M, hi - lo, K, A, lda,
               B + (<Py_ssize_t>lo * K if trans_b else lo), ldb, beta, C + lo, N)


# ---------------------------------------------------------------------------
# Threads. The kernels' OpenMP threads run the products, each calling
# single-threaded sgemm on its band, so one pool of threads serves every
# kernel. Letting OpenBLAS run its own pthreads pool next to OpenMP's made
# both slow on a 2-core machine: each pool's threads busy-wait for a while
# after their work, a waiting pool's threads then lose their core to the
# other's for a whole scheduler tick, and a 1 ms product took 8 to 24 ms.
# So at import scipy's OpenBLAS is set to one thread (process-wide: scipy's
# own linear algebra in this process runs single-threaded too; numpy has its
# own OpenBLAS and is not touched). If that library cannot be found (a scipy
# not built as the PyPI wheels are), the products run on one OpenMP thread
# and OpenBLAS keeps its own threads.
# ---------------------------------------------------------------------------


def _pin_scipy_openblas():
    """Set scipy's bundled OpenBLAS to one thread; True if it was found and set."""
    import ctypes
    import glob
    import os

    import scipy

    base = os.path.dirname(scipy.__file__)
    patterns = [os.path.join(base, os.pardir, "scipy.libs", "*openblas*"),  # Linux, Windows wheels
                os.path.join(base, ".dylibs", "*openblas*")]                  # macOS wheels
    for path in sorted(p for pattern in patterns for p in glob.glob(pattern)):
        try:
            lib = ctypes.CDLL(path)  # already loaded by cython_blas: the same handle
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter.argtypes = [ctypes.c_int]
                setter.restype = None
                setter(1)
                return True
    return False


BLAS_SINGLE_THREADED = _pin_scipy_openblas()
cdef bint _split_products = BLAS_SINGLE_THREADED


cdef inline int _threads_for_gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    # One thread below ~2 MFLOP, where a second one costs more than it saves,
    # and when OpenBLAS threads by itself (see above).
    if m * n * k < (1 << 20) or not _split_products:
        return 1
    return openmp.omp_get_max_threads()


# dout: (N, OC) -> dbias: (OC,) accumulated into, columns [j0, j1)
cdef inline void _colsum_band(float* dbias, const float* dout, Py_ssize_t n, Py_ssize_t oc,
                              Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    cdef float part[BAND]
    cdef double acc[BAND]
    cdef Py_ssize_t w = j1 - j0, i, k, r
    cdef const float* row
    for k in range(w):
        acc[k] = 0.0
    i = 0
    while i < n:
        for k in range(w):
            part[k] = 0.0
        r = i
        while r < n and r < i + ROWS_PER_FLUSH:
            row = dout + r * oc + j0
            for k in range(w):
                part[k] += row[k]
            r += 1
        for k in range(w):
            acc[k] += part[k]
        i += ROWS_PER_FLUSH
    for k in range(w):
        dbias[j0 + k] = <float>(dbias[j0 + k] + acc[k])


cdef int _fits(str fn, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) except -1:
    if a > INT_MAX or b > INT_MAX or c > INT_MAX:
        raise ValueError(f"{fn}: dimensions ({a}, {b}, {c}) are too large for 32-bit BLAS")
    return 0


cdef int _weight_shape(str fn, object inp, object weight, Py_ssize_t* n, Py_ssize_t* c,
                       Py_ssize_t* oc) except -1:
    cdef Py_ssize_t wc
    check_2d(fn, "inp", inp, n, c)
    check_2d(fn, "weight", weight, &wc, oc)
    if c[0] < 1 or oc[0] < 1:
        raise ValueError(f"{fn}: inp and weight must have at least one column")
    _fits(fn, n[0], c[0], oc[0])
    return 0


# out: (N, OC) is written; inp: (N, C), weight: (C, OC), bias: (OC,) or None,
# residual: (N, OC) or None are read
def matmul_forward(out, inp, weight, bias, residual=None):
    """out = inp @ weight + bias + residual (bias and residual may be None).

    Raises ValueError on a wrong shape, dtype or layout, or if out shares
    memory with an input.
    """
    fn = "matmul_forward"
    cdef Py_ssize_t n, c, oc
    _weight_shape(fn, inp, weight, &n, &c, &oc)
    check(fn, "inp", inp, (n, c), cnp.NPY_FLOAT32, False)
    check(fn, "weight", weight, (c, oc), cnp.NPY_FLOAT32, False)
    check(fn, "out", out, (n, oc), cnp.NPY_FLOAT32, True)
    check_apart(fn, "out", out, "inp", inp)
    check_apart(fn, "out", out, "weight", weight)
    if bias is not None:
        check(fn, "bias", bias, (oc,), cnp.NPY_FLOAT32, False)
        check_apart(fn, "out", out, "bias", bias)
    if residual is not None:
        check(fn, "residual", residual, (n, oc), cnp.NPY_FLOAT32, False)
        check_apart(fn, "out", out, "residual", residual)
    if n == 0:
        return
    cdef float* y = <float*>cnp.PyArray_DATA(out)
    cdef const float* x = <const float*>cnp.PyArray_DATA(inp)
    cdef const float* w = <const float*>cnp.PyArray_DATA(weight)
    cdef const float* b = NULL
    cdef const float* r = NULL
    if bias is not None:
        b = <const float*>cnp.PyArray_DATA(bias)
    if residual is not None:
        r = <const float*>cnp.PyArray_DATA(residual)
    cdef int nt = _threads_for_gemm(n, oc, c), t
    with nogil, parallel(num_threads=nt):
        t = threadid()
        _sgemm_band(t, nt, False, False, <int>n, <int>oc, <int>c, x, w,
                    1.0 if b != NULL or r != NULL else 0.0, y, b, r)


# dinp: (N, C), dweight: (C, OC), dbias: (OC,) or None are accumulated into;
# dout: (N, OC), inp: (N, C), weight: (C, OC) are read
def matmul_backward(dinp, dweight, dbias, dout, inp, weight, bint accumulate_dinp=True):
    """dinp += dout @ weight.T; dweight += inp.T @ dout; dbias += dout summed over rows.

    With accumulate_dinp False, dinp = dout @ weight.T (overwritten, not added
    into). dbias may be None (a layer without bias). No output may share memory with
    an input or another output. Raises ValueError otherwise, or on a wrong
    shape, dtype or layout.
    """
    fn = "matmul_backward"
    cdef Py_ssize_t n, c, oc
    _weight_shape(fn, inp, weight, &n, &c, &oc)
    check(fn, "inp", inp, (n, c), cnp.NPY_FLOAT32, False)
    check(fn, "weight", weight, (c, oc), cnp.NPY_FLOAT32, False)
    check(fn, "dout", dout, (n, oc), cnp.NPY_FLOAT32, False)
    check(fn, "dinp", dinp, (n, c), cnp.NPY_FLOAT32, True)
    check(fn, "dweight", dweight, (c, oc), cnp.NPY_FLOAT32, True)
    outs = [("dinp", dinp), ("dweight", dweight)]
    if dbias is not None:
        check(fn, "dbias", dbias, (oc,), cnp.NPY_FLOAT32, True)
        outs.append(("dbias", dbias))
    for k, (oname, o) in enumerate(outs):
        for iname, a in (("dout", dout), ("inp", inp), ("weight", weight)):
            check_apart(fn, oname, o, iname, a)
        for oname2, o2 in outs[k + 1:]:
            check_apart(fn, oname, o, oname2, o2)
    if n == 0:
        return
    cdef float* dx = <float*>cnp.PyArray_DATA(dinp)
    cdef float* dw = <float*>cnp.PyArray_DATA(dweight)
    cdef float* db = NULL
    if dbias is not None:
        db = <float*>cnp.PyArray_DATA(dbias)
    cdef const float* dy = <const float*>cnp.PyArray_DATA(dout)
    cdef const float* x = <const float*>cnp.PyArray_DATA(inp)
    cdef const float* w = <const float*>cnp.PyArray_DATA(weight)
    cdef Py_ssize_t bands = (oc + BAND - 1) // BAND, band, j0
    cdef float beta = 1.0 if accumulate_dinp else 0.0
    cdef int nt = _threads_for_gemm(n, oc, c), t
    with nogil, parallel(num_threads=nt):
        t = threadid()
        # dinp (N, C) (+)= dout (N, OC) @ weight.T
        _sgemm_band(t, nt, False, True, <int>n, <int>c, <int>oc, dy, w, beta, dx, NULL, NULL)
        # dweight (C, OC) += inp.T @ dout
        _sgemm_band(t, nt, True, False, <int>c, <int>oc, <int>n, x, dy, 1.0, dw, NULL, NULL)
        if db != NULL:
            for band in prange(bands, schedule="static"):
                j0 = band * BAND
                _colsum_band(db, dy, n, oc, j0, j0 + BAND if j0 + BAND < oc else oc)


cdef int _tied_shape(str fn, object inp, object wte, Py_ssize_t* n, Py_ssize_t* c,
                     Py_ssize_t* v) except -1:
    cdef Py_ssize_t wc
    check_2d(fn, "inp", inp, n, c)
    check_2d(fn, "wte", wte, v, &wc)
    if c[0] < 1 or v[0] < 1:
        raise ValueError(f"{fn}: inp must have at least one column and wte one row")
    _fits(fn, n[0], c[0], v[0])
    return 0


# out: (N, V) is written; inp: (N, C), wte: (V, C) are read
def matmul_forward_tied(out, inp, wte):
    """out = inp @ wte.T: logits from the output head tied to the token embedding.

    Raises ValueError on a wrong shape, dtype or layout, or if out shares
    memory with an input.
    """
    fn = "matmul_forward_tied"
    cdef Py_ssize_t n, c, v
    _tied_shape(fn, inp, wte, &n, &c, &v)
    check(fn, "inp", inp, (n, c), cnp.NPY_FLOAT32, False)
    check(fn, "wte", wte, (v, c), cnp.NPY_FLOAT32, False)
    check(fn, "out", out, (n, v), cnp.NPY_FLOAT32, True)
    check_apart(fn, "out", out, "inp", inp)
    check_apart(fn, "out", out, "wte", wte)
    if n == 0:
        return
    cdef float* y = <float*>cnp.PyArray_DATA(out)
    cdef const float* x = <const float*>cnp.PyArray_DATA(inp)
    cdef const float* w = <const float*>cnp.PyArray_DATA(wte)
    cdef int nt = _threads_for_gemm(n, v, c), t
    with nogil, parallel(num_threads=nt):
        t = threadid()
        _sgemm_band(t, nt, False, True, <int>n, <int>v, <int>c, x, w, 0.0, y, NULL, NULL)


# dinp: (N, C), dwte: (V, C) are accumulated into; dout: (N, V), inp: (N, C), wte: (V, C) are read
def matmul_backward_tied(dinp, dwte, dout, inp, wte, bint accumulate_dinp=True):
    """dinp += dout @ wte; dwte += dout.T @ inp.

    With accumulate_dinp False, dinp = dout @ wte (overwritten, not added into).

    No output may share memory with an input or the other output. Raises
    ValueError otherwise, or on a wrong shape, dtype or layout.
    """
    fn = "matmul_backward_tied"
    cdef Py_ssize_t n, c, v
    _tied_shape(fn, inp, wte, &n, &c, &v)
    check(fn, "inp", inp, (n, c), cnp.NPY_FLOAT32, False)
    check(fn, "wte", wte, (v, c), cnp.NPY_FLOAT32, False)
    check(fn, "dout", dout, (n, v), cnp.NPY_FLOAT32, False)
    check(fn, "dinp", dinp, (n, c), cnp.NPY_FLOAT32, True)
    check(fn, "dwte", dwte, (v, c), cnp.NPY_FLOAT32, True)
    for oname, o in (("dinp", dinp), ("dwte", dwte)):
        for iname, a in (("dout", dout), ("inp", inp), ("wte", wte)):
            check_apart(fn, oname, o, iname, a)
    check_apart(fn, "dinp", dinp, "dwte", dwte)
    if n == 0:
        return
    cdef float* dx = <float*>cnp.PyArray_DATA(dinp)
    cdef float* dw = <float*>cnp.PyArray_DATA(dwte)
    cdef const float* dy = <const float*>cnp.PyArray_DATA(dout)
    cdef const float* x = <const float*>cnp.PyArray_DATA(inp)
    cdef const float* w = <const float*>cnp.PyArray_DATA(wte)
    cdef float beta = 1.0 if accumulate_dinp else 0.0
    cdef int nt = _threads_for_gemm(n, v, c), t
    with nogil, parallel(num_threads=nt):
        t = threadid()
        # dinp (N, C) (+)= dout (N, V) @ wte (V, C)
        _sgemm_band(t, nt, False, False, <int>n, <int>c, <int>v, dy, w, beta, dx, NULL, NULL)
        # dwte (V, C) += dout.T @ inp
        _sgemm_band(t, nt, True, False, <int>v, <int>c, <int>n, dy, x, 1.0, dw, NULL, NULL)
