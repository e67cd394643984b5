# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""LayerNorm forward and backward over float32 rows, in the style of llm.c.

Both functions take C-contiguous float32 numpy arrays; callers flatten
(batch, time) into the N rows. Nothing is returned: results are written into
the arrays passed in.

- ``layernorm_forward`` overwrites ``out``, ``mean`` and ``rstd``.
- ``layernorm_backward`` ADDS into ``dinp``, ``dweight`` and ``dbias`` (like
  llm.c, so gradients from several uses of a tensor can share one buffer);
  zero them first if you want the gradient of this call alone, or pass
  accumulate_dinp=False to overwrite dinp. ``dinp`` must
  not share memory with an input.

Rows are split over OpenMP threads with a static schedule. The weight and bias
gradients are summed over rows into one private buffer per thread and those
buffers are added in thread order, so results do not depend on timing and are
bit-identical from run to run for a given thread count.

``reference.py`` holds numpy versions with the same signatures.
"""
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport sqrt
from libc.stdint cimport uintptr_t
from libc.stdlib cimport calloc, free

cimport numpy as cnp

from cllm_app.kernels._common cimport check, check_apart
cimport openmp

cnp.import_array()

cdef extern from *:
    # C99 restrict, in the spelling gcc, clang and MSVC all accept.
    ctypedef float* float_restrict "float * __restrict"

cdef double EPS = 1e-5

cdef enum:
    # Row sums run in float lanes over blocks of this many elements (32 per
    # lane) and add the blocks up in double; see the helpers below.
    BLOCK = 512
    # Rows a thread sums into its float dweight/dbias buffers before adding
    # them into its double ones, for the same reason across rows.
    ROWS_PER_FLUSH = 32
    # Below this many elements, waking a second thread costs more than it saves.
    MIN_PARALLEL = 16384
    # Per-thread buffers start on a 64-byte cache line and span whole lines
    # (16 floats): every row writes a thread's buffers, and two threads
    # sharing a line would bounce it between cores at every row.
    LINE = 64
    PAD = 16


# ---------------------------------------------------------------------------
# Per-row helpers. They take raw pointers so the prange bodies stay free of
# Cython's reduction inference, and so gcc sees plain C loops it can vectorize.
#
# Row sums. Without -ffast-math gcc may not reorder a sum, so a single running
# total is a chain of dependent adds, one element every few cycles. The _lanes
# functions keep 16 independent float accumulators instead, which gcc maps
# onto four SSE registers: enough independent chains to hide the add latency.
# They are kept in exactly this simple shape (one accumulation pattern, one
# loop) because that is what gcc vectorizes; interleaving two sets of lanes in
# one loop, or nesting the block loop inside, came out as shuffles and scalar
# code two to three times slower. Double lanes were about twice as slow as
# float ones (measured on a Zen 3 EPYC): the build targets plain SSE2, whose
# registers hold two doubles, and every element needs a conversion.
#
# Accuracy: each float lane adds at most BLOCK/16 = 32 terms, the lanes are
# combined in double, and the callers add blocks of BLOCK elements in double,
# so rounding does not grow with the row length. The result is within a few
# 1e-7 of a float64 sum, relative to the sum of |terms|: below the float32
# resolution of the inputs themselves.
# ---------------------------------------------------------------------------

# x: (n,) -> sum of x
cdef inline double _lanes_sum(const float* x, Py_ssize_t n) noexcept nogil:
    cdef float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0, a5 = 0.0, a6 = 0.0, a7 = 0.0
    cdef float a8 = 0.0, a9 = 0.0, a10 = 0.0, a11 = 0.0, a12 = 0.0, a13 = 0.0, a14 = 0.0, a15 = 0.0
    cdef Py_ssize_t j = 0, n16 = n - n % 16
    while j < n16:
        a0 += x[j]
        a1 += x[j + 1]
        a2 += x[j + 2]
        a3 += x[j + 3]
        a4 += x[j + 4]
        a5 += x[j + 5]
        a6 += x[j + 6]
        a7 += x[j + 7]
        a8 += x[j + 8]
        a9 += x[j + 9]
        a10 += x[j + 10]
        a11 += x[j + 11]
        a12 += x[j + 12]
        a13 += x[j + 13]
        a14 += x[j + 14]
        a15 += x[j + 15]
        j += 16
    while j < n:
        a0 += x[j]
        j += 1
    return ((((<double>a0 + a1) + (<double>a2 + a3)) + ((<double>a4 + a5) + (<double>a6 + a7)))
            + (((<double>a8 + a9) + (<double>a10 + a11))
               + ((<double>a12 + a13) + (<double>a14 + a15))))


# x: (n,), m -> sum of (x - m)^2
cdef inline double _lanes_sq_dev(const float* x, float m, Py_ssize_t n) noexcept nogil:
    cdef float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0, a5 = 0.0, a6 = 0.0, a7 = 0.0
    cdef float a8 = 0.0, a9 = 0.0, a10 = 0.0, a11 = 0.0, a12 = 0.0, a13 = 0.0, a14 = 0.0, a15 = 0.0
    cdef Py_ssize_t j = 0, n16 = n - n % 16
    while j < n16:
        a0 += (x[j] - m) * (x[j] - m)
        a1 += (x[j + 1] - m) * (x[j + 1] - m)
        a2 += (x[j + 2] - m) * (x[j + 2] - m)
        a3 += (x[j + 3] - m) * (x[j + 3] - m)
        a4 += (x[j + 4] - m) * (x[j + 4] - m)
        a5 += (x[j + 5] - m) * (x[j + 5] - m)
        a6 += (x[j + 6] - m) * (x[j + 6] - m)
        a7 += (x[j + 7] - m) * (x[j + 7] - m)
        a8 += (x[j + 8] - m) * (x[j + 8] - m)
        a9 += (x[j + 9] - m) * (x[j + 9] - m)
        a10 += (x[j + 10] - m) * (x[j + 10] - m)
        a11 += (x[j + 11] - m) * (x[j + 11] - m)
        a12 += (x[j + 12] - m) * (x[j + 12] - m)
        a13 += (x[j + 13] - m) * (x[j + 13] - m)
        a14 += (x[j + 14] - m) * (x[j + 14] - m)
        a15 += (x[j + 15] - m) * (x[j + 15] - m)
        j += 16
    while j < n:
        a0 += (x[j] - m) * (x[j] - m)
        j += 1
    return ((((<double>a0 + a1) + (<double>a2 + a3)) + ((<double>a4 + a5) + (<double>a6 + a7)))
            + (((<double>a8 + a9) + (<double>a10 + a11))
               + ((<double>a12 + a13) + (<double>a14 + a15))))


# dy: (n,), w: (n,) -> sum of w * dy
cdef inline double _lanes_g(const float* dy, const float* w, Py_ssize_t n) noexcept nogil:
    cdef float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0, a5 = 0.0, a6 = 0.0, a7 = 0.0
    cdef float a8 = 0.0, a9 = 0.0, a10 = 0.0, a11 = 0.0, a12 = 0.0, a13 = 0.0, a14 = 0.0, a15 = 0.0
    cdef Py_ssize_t j = 0, n16 = n - n % 16
    while j < n16:
        a0 += w[j] * dy[j]
        a1 += w[j + 1] * dy[j + 1]
        a2 += w[j + 2] * dy[j + 2]
        a3 += w[j + 3] * dy[j + 3]
        a4 += w[j + 4] * dy[j + 4]
        a5 += w[j + 5] * dy[j + 5]
        a6 += w[j + 6] * dy[j + 6]
        a7 += w[j + 7] * dy[j + 7]
        a8 += w[j + 8] * dy[j + 8]
        a9 += w[j + 9] * dy[j + 9]
        a10 += w[j + 10] * dy[j + 10]
        a11 += w[j + 11] * dy[j + 11]
        a12 += w[j + 12] * dy[j + 12]
        a13 += w[j + 13] * dy[j + 13]
        a14 += w[j + 14] * dy[j + 14]
        a15 += w[j + 15] * dy[j + 15]
        j += 16
    while j < n:
        a0 += w[j] * dy[j]
        j += 1
    return ((((<double>a0 + a1) + (<double>a2 + a3)) + ((<double>a4 + a5) + (<double>a6 + a7)))
            + (((<double>a8 + a9) + (<double>a10 + a11))
               + ((<double>a12 + a13) + (<double>a14 + a15))))


# dy: (n,), x: (n,), w: (n,), m -> sum of w * dy * (x - m)
cdef inline double _lanes_g_xm(const float* dy, const float* x, const float* w,
                               float m, Py_ssize_t n) noexcept nogil:
    cdef float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0, a5 = 0.0, a6 = 0.0, a7 = 0.0
    cdef float a8 = 0.0, a9 = 0.0, a10 = 0.0, a11 = 0.0, a12 = 0.0, a13 = 0.0, a14 = 0.0, a15 = 0.0
    cdef Py_ssize_t j = 0, n16 = n - n % 16
    while j < n16:
        a0 += w[j] * dy[j] * (x[j] - m)
        a1 += w[j + 1] * dy[j + 1] * (x[j + 1] - m)
        a2 += w[j + 2] * dy[j + 2] * (x[j + 2] - m)
        a3 += w[j + 3] * dy[j + 3] * (x[j + 3] - m)
        a4 += w[j + 4] * dy[j + 4] * (x[j + 4] - m)
        a5 += w[j + 5] * dy[j + 5] * (x[j + 5] - m)
        a6 += w[j + 6] * dy[j + 6] * (x[j + 6] - m)
        a7 += w[j + 7] * dy[j + 7] * (x[j + 7] - m)
        a8 += w[j + 8] * dy[j + 8] * (x[j + 8] - m)
        a9 += w[j + 9] * dy[j + 9] * (x[j + 9] - m)
        a10 += w[j + 10] * dy[j + 10] * (x[j + 10] - m)
        a11 += w[j + 11] * dy[j + 11] * (x[j + 11] - m)
        a12 += w[j + 12] * dy[j + 12] * (x[j + 12] - m)
        a13 += w[j + 13] * dy[j + 13] * (x[j + 13] - m)
        a14 += w[j + 14] * dy[j + 14] * (x[j + 14] - m)
        a15 += w[j + 15] * dy[j + 15] * (x[j + 15] - m)
        j += 16
    while j < n:
        a0 += w[j] * dy[j] * (x[j] - m)
        j += 1
    return ((((<double>a0 + a1) + (<double>a2 + a3)) + ((<double>a4 + a5) + (<double>a6 + a7)))
            + (((<double>a8 + a9) + (<double>a10 + a11))
               + ((<double>a12 + a13) + (<double>a14 + a15))))


# inp row x: (C,), weight w: (C,), bias b: (C,) -> out row y: (C,), and the
# row's mean and rstd
cdef inline void _row_forward(float* y, float* mean_i, float* rstd_i,
                              const float* x, const float* w, const float* b,
                              Py_ssize_t C) noexcept nogil:
    cdef double total = 0.0
    cdef Py_ssize_t j = 0
    while j < C:
        total = total + _lanes_sum(x + j, BLOCK if C - j > BLOCK else C - j)
        j += BLOCK
    cdef float m = <float>(total / C)
    # A second pass for the variance rather than E[x^2] - mean^2, which
    # cancels when |mean| is large next to the spread. The row is in L1 now.
    total = 0.0
    j = 0
    while j < C:
        total = total + _lanes_sq_dev(x + j, m, BLOCK if C - j > BLOCK else C - j)
        j += BLOCK
    cdef float rs = <float>(1.0 / sqrt(total / C + EPS))
    for j in range(C):
        y[j] = (x[j] - m) * rs * w[j] + b[j]
    mean_i[0] = m
    rstd_i[0] = rs


# Gradient of one row. dout row dy: (C,), inp row x: (C,), weight w: (C,),
# the row's mean m and rstd rs -> dinp row dx: (C,) accumulated into (written
# if not acc), and the
# row's terms of dweight and dbias added into the thread's float dw, db: (C,).
# The outputs are restrict: the caller guarantees they overlap no input.
cdef inline void _row_backward(float_restrict dx, float_restrict dw, float_restrict db,
                               const float* dy, const float* x, const float* w,
                               float m, float rs, Py_ssize_t C, bint acc) noexcept nogil:
    # dx = rs * (g - mean(g) - xhat * mean(g * xhat)), g = w * dy, xhat = (x - m) * rs
    cdef double g_sum = 0.0, gx_sum = 0.0
    cdef Py_ssize_t j = 0, n
    while j < C:
        n = BLOCK if C - j > BLOCK else C - j
        g_sum = g_sum + _lanes_g(dy + j, w + j, n)
        gx_sum = gx_sum + _lanes_g_xm(dy + j, x + j, w + j, m, n)
        j += BLOCK
    cdef float g_mean = <float>(g_sum / C)
    cdef float gx_mean = <float>(gx_sum * rs / C)
    # One pass for all three outputs. Without restrict gcc would have to check
    # at run time that none of them overlaps an input, needs more such checks
    # than it allows, and leaves the loop scalar.
    cdef float xhat
    if acc:
        for j in range(C):
            xhat = (x[j] - m) * rs
            db[j] += dy[j]
            dw[j] += xhat * dy[j]
            dx[j] += (w[j] * dy[j] - g_mean - xhat * gx_mean) * rs
    else:
        for j in range(C):
            xhat = (x[j] - m) * rs
            db[j] += dy[j]
            dw[j] += xhat * dy[j]
            dx[j] = (w[j] * dy[j] - g_mean - xhat * gx_mean) * rs


# part: (C,) float -> added into acc: (C,) double, then zeroed
cdef inline void _flush(double* acc, float* part, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(C):
        acc[j] += part[j]
        part[j] = 0.0


# ---------------------------------------------------------------------------
# Python boundary: every check happens here, before any nogil code runs, so a
# bad call raises ValueError instead of reading or writing out of bounds. The
# checks use numpy's C API: a call on small shapes is dominated by this
# overhead, and attribute lookups like a.flags cost about a microsecond each.
# ---------------------------------------------------------------------------

cdef inline int _check(str fn, str name, object a, Py_ssize_t rows, Py_ssize_t cols,
                       bint writable) except -1:
    """a must be a float32 array of shape (rows, cols), or (rows,) if cols < 0: _common.check."""
    if cols < 0:
        return check(fn, name, a, (rows,), cnp.NPY_FLOAT32, writable)
    return check(fn, name, a, (rows, cols), cnp.NPY_FLOAT32, writable)


cdef int _rows_cols(str fn, object inp, Py_ssize_t* rows, Py_ssize_t* cols) except -1:
    if not cnp.PyArray_Check(inp) or cnp.PyArray_NDIM(<cnp.ndarray>inp) != 2:
        raise ValueError(f"{fn}: inp must be a 2-D numpy array of shape (N, C)")
    rows[0] = cnp.PyArray_DIMS(<cnp.ndarray>inp)[0]
    cols[0] = cnp.PyArray_DIMS(<cnp.ndarray>inp)[1]
    if cols[0] < 1:
        raise ValueError(f"{fn}: inp must have at least one column")
    return 0


cdef int _threads_for(Py_ssize_t n, Py_ssize_t c) noexcept:
    if n * c < MIN_PARALLEL:
        return 1
    return openmp.omp_get_max_threads()


# out: (N, C), mean: (N,), rstd: (N,) are written;
# inp: (N, C), weight: (C,), bias: (C,) are read
def layernorm_forward(out, mean, rstd, inp, weight, bias):
    """Normalize each row of inp, then scale by weight and shift by bias.

    Writes out[i] = (inp[i] - mean[i]) * rstd[i] * weight + bias, with
    rstd[i] = 1 / sqrt(var[i] + 1e-5) (biased variance, as in PyTorch), and
    saves mean and rstd for the backward pass. All arrays are C-contiguous
    float32 numpy arrays. Raises ValueError on a wrong shape, dtype or layout.
    """
    fn = "layernorm_forward"
    cdef Py_ssize_t n, c, i
    _rows_cols(fn, inp, &n, &c)
    _check(fn, "inp", inp, n, c, False)
    _check(fn, "weight", weight, c, -1, False)
    _check(fn, "bias", bias, c, -1, False)
    _check(fn, "out", out, n, c, True)
    _check(fn, "mean", mean, n, -1, True)
    _check(fn, "rstd", rstd, n, -1, True)
    if n == 0:
        return

    cdef float[:, ::1] out_v = out
    cdef float[::1] mean_v = mean
    cdef float[::1] rstd_v = rstd
    cdef const float[:, ::1] inp_v = inp
    cdef const float[::1] w_v = weight
    cdef const float[::1] b_v = bias
    cdef int nthreads = _threads_for(n, c)

    with nogil:
        for i in prange(n, schedule="static", num_threads=nthreads):
            _row_forward(&out_v[i, 0], &mean_v[i], &rstd_v[i],
                         &inp_v[i, 0], &w_v[0], &b_v[0], c)


# dinp: (N, C), dweight: (C,), dbias: (C,) are accumulated into;
# dout: (N, C), inp: (N, C), weight: (C,), mean: (N,), rstd: (N,) are read
def layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd,
                       bint accumulate_dinp=True):
    """Add the gradients of layernorm_forward into dinp, dweight and dbias (write dinp if not accumulate_dinp).

    dout is the gradient of the loss with respect to out; mean and rstd are
    the ones layernorm_forward saved. The three gradient arrays are
    ACCUMULATED into (+=), not overwritten: zero them first for a fresh
    gradient; with accumulate_dinp False, dinp is overwritten instead (the
    model's first use of its residual gradient, which then needs no zeroing),
    while dweight and dbias are still added into. All arrays are C-contiguous float32 numpy arrays, and dinp must
    not share memory with dout, inp or weight (no in-place gradient).
    Raises ValueError on a wrong shape, dtype or layout, or on such overlap.
    """
    fn = "layernorm_backward"
    cdef Py_ssize_t n, c, i, j, t
    _rows_cols(fn, inp, &n, &c)
    _check(fn, "inp", inp, n, c, False)
    _check(fn, "dout", dout, n, c, False)
    _check(fn, "weight", weight, c, -1, False)
    _check(fn, "mean", mean, n, -1, False)
    _check(fn, "rstd", rstd, n, -1, False)
    _check(fn, "dinp", dinp, n, c, True)
    _check(fn, "dweight", dweight, c, -1, True)
    _check(fn, "dbias", dbias, c, -1, True)
    if n == 0:
        return

    cdef float[:, ::1] dinp_v = dinp
    cdef float[::1] dw_v = dweight
    cdef float[::1] db_v = dbias
    cdef const float[:, ::1] dout_v = dout
    cdef const float[:, ::1] inp_v = inp
    cdef const float[::1] w_v = weight
    cdef const float[::1] mean_v = mean
    cdef const float[::1] rstd_v = rstd
    check_apart(fn, "dinp", dinp, "dout", dout)
    check_apart(fn, "dinp", dinp, "inp", inp)
    check_apart(fn, "dinp", dinp, "weight", weight)
    cdef int nthreads = _threads_for(n, c)

    # dweight and dbias are sums over all N rows. Each thread adds its rows
    # into private float buffers (element-wise across columns, so the adds
    # vectorize) and every ROWS_PER_FLUSH rows moves them into private double
    # buffers, so a column sum stays accurate over many rows even when it
    # nearly cancels. Per thread: float dw, db, then double dw, db.
    cdef Py_ssize_t stride = (c + PAD - 1) // PAD * PAD
    cdef size_t floats = <size_t>(2 * nthreads * stride)
    cdef void* mem = calloc(floats * (sizeof(float) + sizeof(double)) + LINE, 1)
    if mem == NULL:
        raise MemoryError("layernorm_backward: could not allocate the per-thread buffers")
    cdef float* part = <float*>((<uintptr_t>mem + LINE - 1) & ~(<uintptr_t>(LINE - 1)))
    cdef double* acc = <double*>(part + floats)
    # Set before the parallel block only because Cython makes them firstprivate.
    cdef float* dw_f = NULL
    cdef float* db_f = NULL
    cdef double* dw_d = NULL
    cdef double* db_d = NULL
    cdef double sw, sb
    t = 0
    try:
        with nogil, parallel(num_threads=nthreads):
            t = threadid()
            dw_f = part + 2 * t * stride
            db_f = dw_f + stride
            dw_d = acc + 2 * t * stride
            db_d = dw_d + stride
            for i in prange(n, schedule="static"):
                _row_backward(&dinp_v[i, 0], dw_f, db_f,
                              &dout_v[i, 0], &inp_v[i, 0], &w_v[0],
                              mean_v[i], rstd_v[i], c, accumulate_dinp)
                if i % ROWS_PER_FLUSH == ROWS_PER_FLUSH - 1:
                    _flush(dw_d, dw_f, c)
                    _flush(db_d, db_f, c)
            _flush(dw_d, dw_f, c)
            _flush(db_d, db_f, c)

        # Fixed thread order, so the same partials always sum to the same bits.
        with nogil:
            for j in range(c):
                sw = 0.0
                sb = 0.0
                for t in range(nthreads):
                    sw = sw + acc[2 * t * stride + j]
                    sb = sb + acc[2 * t * stride + stride + j]
                dw_v[j] += <float>sw
                db_v[j] += <float>sb
    finally:
        free(mem)
