# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""GELU (GPT-2's tanh approximation) and the residual add, over arrays of any shape.

- ``gelu_forward`` overwrites ``out``; ``gelu_backward`` ADDS into ``dinp``,
  or overwrites it when accumulate is False (then dinp may be dout itself:
  the MLP's backward scales its gradient in place, with no zeroed buffer).
- ``residual_forward`` overwrites ``out`` with a + b; out may be a or b.

The arrays are treated as flat: shapes may differ as long as the element
counts agree. An output may be the very same array as an input (element-wise
in place is safe) but must not overlap one partly.

GELU uses 0.5 * (1 + tanh(u)) = sigmoid(2u) = 1 / (1 + exp(-2u)), so
    gelu(x)  = x / (1 + exp(-2u)),  u = sqrt(2/pi) * (x + 0.044715 x^3)
    gelu'(x) = s + 2 x s (1 - s) u',  s = sigmoid(2u),  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
where the backward takes e = exp(-2|u|) <= 1, so nothing overflows or cancels. One exp per
element (the vectorizable one from _common.pxd), and the loops are plain
element-wise loops gcc vectorizes. Results do not depend on the thread count.

``reference.py`` holds numpy versions with the same signatures.
"""
from cython.parallel cimport prange

cimport numpy as cnp

from cllm_app.kernels._common cimport (
    check_same_or_apart,
    fast_exp,
    float_restrict,
    threads_for,
)

cnp.import_array()

# float constants: a bare literal is a C double and would turn the vector
# loops into double arithmetic.
cdef float SQRT_2_OVER_PI = 0.7978845608028654
cdef float GELU_C = 0.044715
cdef float GELU_3C = 3.0 * 0.044715
cdef float ZERO = 0.0
cdef float ONE = 1.0
cdef float TWO = 2.0
cdef float MINUS_TWO = -2.0

cdef enum:
    # Elements per unit of parallel work: whole cache lines, and few enough
    # chunks that scheduling costs nothing.
    CHUNK = 4096


cdef Py_ssize_t _flat(str fn, str name, object a, Py_ssize_t size, bint writable) except -1:
    """a must be a C-contiguous float32 array; returns its size, which must equal size >= 0."""
    if not cnp.PyArray_Check(a):
        raise ValueError(f"{fn}: {name} must be a numpy array, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise ValueError(f"{fn}: {name} must be float32, got {a.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{fn}: {name} must be C-contiguous")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{fn}: {name} is read-only, it must be writable")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(arr)
    if size >= 0 and n != size:
        raise ValueError(f"{fn}: {name} has {n} elements ({a.shape}), expected {size}")
    return n


# x: (n,) -> y: (n,); y may be x
cdef inline void _gelu_chunk(float* y, const float* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef float xi, u
    for i in range(n):
        xi = x[i]
        u = SQRT_2_OVER_PI * (xi + GELU_C * xi * xi * xi)
        y[i] = xi / (ONE + fast_exp(MINUS_TWO * u))


# gelu'(x) from e = exp(-2|u|), which lies in (0, 1] and cannot overflow:
# s = 1/(1+e) for u >= 0 and e/(1+e) below, and s (1 - s) = e / (1+e)^2 either way.
cdef inline float _gelu_grad(float xi) noexcept nogil:
    cdef float u = SQRT_2_OVER_PI * (xi + GELU_C * xi * xi * xi)
    cdef float au = u if u >= ZERO else -u
    cdef float e = fast_exp(MINUS_TWO * au)
    cdef float a = ONE / (ONE + e)
    cdef float s = a if u >= ZERO else e * a
    cdef float du = SQRT_2_OVER_PI * (ONE + GELU_3C * xi * xi)
    return s + TWO * xi * (e * a * a) * du


# x: (n,), dy: (n,) -> dx: (n,) accumulated into. restrict: the caller checked
# that dx overlaps neither input; the in-place case has its own function.
cdef inline void _gelu_bwd_chunk(float_restrict dx, const float* x, const float* dy,
                                 Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dx[i] += dy[i] * _gelu_grad(x[i])


# x: (n,), dy: (n,) -> dx: (n,) overwritten; dx may be the same memory as x or dy.
cdef inline void _gelu_bwd_chunk_write(float* dx, const float* x, const float* dy,
                                       Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef float g
    for i in range(n):
        g = _gelu_grad(x[i])
        dx[i] = dy[i] * g


# Same as _gelu_bwd_chunk when dx is the same memory as x or dy.
cdef inline void _gelu_bwd_chunk_inplace(float* dx, const float* x, const float* dy,
                                         Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef float g
    for i in range(n):
        g = _gelu_grad(x[i])
        dx[i] = dx[i] + dy[i] * g


cdef inline void _add_chunk(float* y, const float* a, const float* b, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = a[i] + b[i]


# out: (any) is written; inp: (same size) is read
def gelu_forward(out, inp):
    """out = gelu(inp), GPT-2's tanh approximation, element-wise.

    out and inp are C-contiguous float32 arrays with the same number of
    elements; out may be inp. Raises ValueError otherwise.
    """
    fn = "gelu_forward"
    cdef Py_ssize_t n = _flat(fn, "inp", inp, -1, False)
    _flat(fn, "out", out, n, True)
    check_same_or_apart(fn, "out", out, "inp", inp)
    cdef float* y = <float*>cnp.PyArray_DATA(out)
    cdef const float* x = <const float*>cnp.PyArray_DATA(inp)
    cdef Py_ssize_t chunks = (n + CHUNK - 1) // CHUNK, c, lo
    with nogil:
        for c in prange(chunks, schedule="static", num_threads=threads_for(4 * n)):
            lo = c * CHUNK
            _gelu_chunk(y + lo, x + lo, CHUNK if n - lo > CHUNK else n - lo)


# dinp: (any) is accumulated into; inp, dout: (same size) are read
def gelu_backward(dinp, inp, dout, bint accumulate=True):
    """dinp += gelu'(inp) * dout, element-wise; dinp = gelu'(inp) * dout if not accumulate.

    All three are C-contiguous float32 arrays with the same number of
    elements; dinp may be the same array as dout (or inp) but must not overlap
    either partly. Raises ValueError otherwise.
    """
    fn = "gelu_backward"
    cdef Py_ssize_t n = _flat(fn, "inp", inp, -1, False)
    _flat(fn, "dout", dout, n, False)
    _flat(fn, "dinp", dinp, n, True)
    check_same_or_apart(fn, "dinp", dinp, "inp", inp)
    check_same_or_apart(fn, "dinp", dinp, "dout", dout)
    cdef float* dx = <float*>cnp.PyArray_DATA(dinp)
    cdef const float* x = <const float*>cnp.PyArray_DATA(inp)
    cdef const float* dy = <const float*>cnp.PyArray_DATA(dout)
    cdef bint inplace = <const float*>dx == x or <const float*>dx == dy
    cdef Py_ssize_t chunks = (n + CHUNK - 1) // CHUNK, c, lo, m
    with nogil:
        for c in prange(chunks, schedule="static", num_threads=threads_for(4 * n)):
            lo = c * CHUNK
            m = CHUNK if n - lo > CHUNK else n - lo
            if not accumulate:
                _gelu_bwd_chunk_write(dx + lo, x + lo, dy + lo, m)
            elif inplace:
                _gelu_bwd_chunk_inplace(dx + lo, x + lo, dy + lo, m)
            else:
                _gelu_bwd_chunk(dx + lo, x + lo, dy + lo, m)


# out: (any) is written; a, b: (same size) are read; out may be a or b
def residual_forward(out, a, b):
    """out = a + b, element-wise; out may be the same array as a or b (in place).

    Raises ValueError on a dtype, size or layout mismatch, or if out overlaps
    a or b without being exactly that array.
    """
    fn = "residual_forward"
    cdef Py_ssize_t n = _flat(fn, "a", a, -1, False)
    _flat(fn, "b", b, n, False)
    _flat(fn, "out", out, n, True)
    check_same_or_apart(fn, "out", out, "a", a)
    check_same_or_apart(fn, "out", out, "b", b)
    cdef float* y = <float*>cnp.PyArray_DATA(out)
    cdef const float* pa = <const float*>cnp.PyArray_DATA(a)
    cdef const float* pb = <const float*>cnp.PyArray_DATA(b)
    cdef Py_ssize_t chunks = (n + CHUNK - 1) // CHUNK, c, lo
    with nogil:
        for c in prange(chunks, schedule="static", num_threads=threads_for(n)):
            lo = c * CHUNK
            _add_chunk(y + lo, pa + lo, pb + lo, CHUNK if n - lo > CHUNK else n - lo)
