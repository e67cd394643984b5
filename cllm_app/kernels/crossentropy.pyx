# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Softmax cross-entropy over rows of logits, forward and backward, in the style of llm.c.

- ``crossentropy_forward`` overwrites ``losses`` (one per row) and returns
  their mean.
- ``crossentropy_backward`` OVERWRITES ``dlogits`` (not accumulate: the
  model passes the logits array itself as dlogits, and the logits are not
  needed after this). Each row's max and sum of exponentials are computed
  first, then the row is overwritten, so dlogits may be logits.

Rows are split over OpenMP threads with a static schedule; each row is done
by one thread in a fixed order, and the mean adds the per-row losses (kept in
double) in row order, so results are bit-identical across runs and do not
depend on the thread count. exp is the vectorizable one from _common.pxd.

``reference.py`` holds numpy versions with the same signatures.
"""
from cython.parallel cimport prange
from libc.math cimport log
from libc.stdint cimport int32_t
from libc.stdlib cimport free, malloc

cimport numpy as cnp

from cllm_app.kernels._common cimport (
    check,
    check_2d,
    check_same_or_apart,
    fast_exp,
    float_restrict,
    threads_for,
)

cnp.import_array()

cdef enum:
    LANES = 16
    # Sums of exponentials run in 16 float lanes over blocks of this many
    # elements (32 terms per lane, each at most 1) and add the blocks in
    # double, so rounding does not grow with the vocabulary size.
    BLOCK = 512


# x: (n,) -> max of x (NaN is skipped here; it still reaches the sum below)
cdef inline float _row_max(const float* x, Py_ssize_t n) noexcept nogil:
    cdef float m[LANES]
    cdef Py_ssize_t j = 0, k, n16 = n - n % LANES
    cdef float best = x[0]
    for k in range(LANES):
        m[k] = best
    while j < n16:
        for k in range(LANES):
            m[k] = x[j + k] if x[j + k] > m[k] else m[k]
        j += LANES
    while j < n:
        m[0] = x[j] if x[j] > m[0] else m[0]
        j += 1
    for k in range(LANES):
        best = m[k] if m[k] > best else best
    return best


# x: (n,), mx -> sum of exp(x - mx), n <= BLOCK
cdef inline double _block_sumexp(const float* x, float mx, Py_ssize_t n) noexcept nogil:
    cdef float a[LANES]
    cdef Py_ssize_t j = 0, k, n16 = n - n % LANES
    for k in range(LANES):
        a[k] = 0.0
    while j < n16:
        for k in range(LANES):
            a[k] += fast_exp(x[j + k] - mx)
        j += LANES
    while j < n:
        a[0] += fast_exp(x[j] - mx)
        j += 1
    cdef double total = 0.0
    for k in range(LANES):
        total = total + a[k]
    return total


# x: (n,), mx -> sum of exp(x - mx)
cdef inline double _row_sumexp(const float* x, float mx, Py_ssize_t n) noexcept nogil:
    cdef double total = 0.0
    cdef Py_ssize_t j = 0
    while j < n:
        total = total + _block_sumexp(x + j, mx, BLOCK if n - j > BLOCK else n - j)
        j += BLOCK
    return total


# logits row x: (V,), target t -> -log softmax(x)[t], in double
cdef inline double _row_loss(const float* x, int32_t t, Py_ssize_t V) noexcept nogil:
    cdef float mx = _row_max(x, V)
    return log(_row_sumexp(x, mx, V)) + mx - x[t]


# logits row x: (V,) -> dlogits row y: (V,) = (softmax(x) - onehot(t)) * scale.
# restrict: y overlaps x nowhere (the in-place case has its own function).
cdef inline void _row_grad(float_restrict y, const float* x, int32_t t, float scale,
                           Py_ssize_t V) noexcept nogil:
    cdef float mx = _row_max(x, V)
    cdef float f = <float>(scale / _row_sumexp(x, mx, V))
    cdef Py_ssize_t j
    for j in range(V):
        y[j] = fast_exp(x[j] - mx) * f
    y[t] = y[t] - scale


# The same with y == x: the max and the sum are taken before the row is overwritten.
cdef inline void _row_grad_inplace(float* x, int32_t t, float scale, Py_ssize_t V) noexcept nogil:
    cdef float mx = _row_max(x, V)
    cdef float f = <float>(scale / _row_sumexp(x, mx, V))
    cdef Py_ssize_t j
    for j in range(V):
        x[j] = fast_exp(x[j] - mx) * f
    x[t] = x[t] - scale


cdef int _check_args(str fn, object logits, object targets, Py_ssize_t* N,
                     Py_ssize_t* V) except -1:
    check_2d(fn, "logits", logits, N, V)
    if V[0] < 1:
        raise ValueError(f"{fn}: logits must have at least one column")
    check(fn, "logits", logits, (N[0], V[0]), cnp.NPY_FLOAT32, False)
    check(fn, "targets", targets, (N[0],), cnp.NPY_INT32, False)
    cdef const int32_t* t = <const int32_t*>cnp.PyArray_DATA(targets)
    cdef Py_ssize_t i, bad = -1, n = N[0], v = V[0]
    with nogil:
        for i in range(n):
            if t[i] < 0 or t[i] >= v:
                bad = i
                break
    if bad >= 0:
        raise ValueError(f"{fn}: target {t[bad]} at row {bad} is outside [0, {v})")
    return 0


# losses: (N,) is written; logits: (N, V), targets: (N,) int32 are read
def crossentropy_forward(losses, logits, targets) -> float:
    """losses[i] = -log softmax(logits[i])[targets[i]]; returns their mean (summed in double).

    Raises ValueError on a wrong shape, dtype or layout, or on a target
    outside [0, V), before any work. Returns nan for zero rows.
    """
    fn = "crossentropy_forward"
    cdef Py_ssize_t N, V
    _check_args(fn, logits, targets, &N, &V)
    check(fn, "losses", losses, (N,), cnp.NPY_FLOAT32, True)
    check_same_or_apart(fn, "losses", losses, "logits", logits)
    if N == 0:
        return float("nan")
    cdef float* out = <float*>cnp.PyArray_DATA(losses)
    cdef const float* x = <const float*>cnp.PyArray_DATA(logits)
    cdef const int32_t* t = <const int32_t*>cnp.PyArray_DATA(targets)
    cdef double* row = <double*>malloc(N * sizeof(double))
    if row == NULL:
        raise MemoryError(f"{fn}: could not allocate {N} doubles")
    cdef Py_ssize_t i
    cdef double total = 0.0
    with nogil:
        for i in prange(N, schedule="static", num_threads=threads_for(N * V)):
            row[i] = _row_loss(x + i * V, t[i], V)
        for i in range(N):
            out[i] = <float>row[i]
            total = total + row[i]
    free(row)
    return total / N


# dlogits: (N, V) is written (it may be logits); logits: (N, V), targets: (N,) int32 are read
def crossentropy_backward(dlogits, logits, targets, scale):
    """dlogits = (softmax(logits) - onehot(targets)) * scale, row by row.

    Overwrites dlogits, which may be the logits array itself (then the
    logits are gone afterwards). scale is usually 1 / N for the gradient of
    the mean loss. Raises ValueError like crossentropy_forward, or if
    dlogits overlaps logits without being that array.
    """
    fn = "crossentropy_backward"
    cdef Py_ssize_t N, V
    _check_args(fn, logits, targets, &N, &V)
    check(fn, "dlogits", dlogits, (N, V), cnp.NPY_FLOAT32, True)
    check_same_or_apart(fn, "dlogits", dlogits, "logits", logits)
    cdef float s = scale
    if N == 0:
        return
    cdef float* y = <float*>cnp.PyArray_DATA(dlogits)
    cdef const float* x = <const float*>cnp.PyArray_DATA(logits)
    cdef const int32_t* t = <const int32_t*>cnp.PyArray_DATA(targets)
    cdef bint inplace = <const float*>y == x
    cdef Py_ssize_t i
    with nogil:
        for i in prange(N, schedule="static", num_threads=threads_for(N * V)):
            if inplace:
                _row_grad_inplace(y + i * V, t[i], s, V)
            else:
                _row_grad(y + i * V, x + i * V, t[i], s, V)
