# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""GELU (GPT-2's tanh approximation) and the residual add, over arrays of any shape.

- ``gelu_forward`` overwrites ``out``; given ``dgelu``, it also writes
  gelu'(inp) there (dgelu may be inp itself), so that the backward is one
  multiplication instead of a second pass of exp and division.
- ``gelu_backward`` ADDS gelu'(inp) * dout into ``dinp``, or overwrites it
  when accumulate is False (then dinp may be dout itself: the MLP's backward
  scales its gradient in place, with no zeroed buffer).
- ``gelu_backward_saved`` does the same from the gelu'(inp) that
  gelu_forward saved: dinp (+)= dgelu * dout.
- ``residual_forward`` overwrites ``out`` with a + b; out may be a or b.

The arrays are treated as flat: shapes may differ as long as the element
counts agree. An output may be the very same array as an input (element-wise
in place is safe) but must not overlap one partly.

GELU uses 0.5 * (1 + tanh(u)) = sigmoid(2u), and with e = exp(-2|u|) <= 1
(nothing overflows or cancels) and a = 1 / (1 + e):
    s = sigmoid(2u) = a for u >= 0, e * a below,   gelu(x) = x s
    gelu'(x) = s + 2 x s (1 - s) u' = s + 2 x e a^2 u',
    u = sqrt(2/pi) (x + 0.044715 x^3),  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
One exp and one division per element for both.

The loops (in ``_gelu.pxd``, which the linear layers' GEMM also uses to
apply GELU as it stores) are C with GCC/Clang vector extensions, 8 floats at a time: gcc
vectorizes plain Cython loops only behind a run-time check that the output
does not overlap an input, and fell back to scalar code (2x slower) in exactly
the in-place calls the model makes. An array's tail goes through the same
vector code on a padded copy, so every element is computed the same way
wherever it lies, and results do not depend on the thread count. Other
compilers get plain loops with libm's expf.

``reference.py`` holds numpy versions with the same signatures.
"""
from cython.parallel cimport prange

cimport numpy as cnp

from cllm_app.kernels._common cimport check_apart, check_same_or_apart, threads_for
from cllm_app.kernels._gelu cimport gelu_bwd as _gelu_bwd, gelu_fwd as _gelu_fwd, mul as _mul

cnp.import_array()

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


cdef inline void _add_chunk(float* y, const float* a, const float* b, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = a[i] + b[i]


# out: (any) is written, and dgelu if given; inp: (same size) is read
def gelu_forward(out, inp, dgelu=None):
    """out = gelu(inp), GPT-2's tanh approximation, element-wise; dgelu = gelu'(inp) if given.

    All are C-contiguous float32 arrays with the same number of elements;
    out may be inp, and dgelu may be inp (the backward then needs only
    dgelu: see gelu_backward_saved), but out and dgelu must be apart.
    Raises ValueError otherwise.
    """
    fn = "gelu_forward"
    cdef Py_ssize_t n = _flat(fn, "inp", inp, -1, False)
    _flat(fn, "out", out, n, True)
    check_same_or_apart(fn, "out", out, "inp", inp)
    cdef float* g = NULL
    if dgelu is not None:
        _flat(fn, "dgelu", dgelu, n, True)
        check_same_or_apart(fn, "dgelu", dgelu, "inp", inp)
        check_apart(fn, "dgelu", dgelu, "out", out)
        g = <float*>cnp.PyArray_DATA(dgelu)
    cdef float* y = <float*>cnp.PyArray_DATA(out)
    cdef const float* x = <const float*>cnp.PyArray_DATA(inp)
    cdef Py_ssize_t chunks = (n + CHUNK - 1) // CHUNK, c, lo
    with nogil:
        for c in prange(chunks, schedule="static", num_threads=threads_for(4 * n)):
            lo = c * CHUNK
            _gelu_fwd(y + lo, g + lo if g != NULL else NULL, x + lo,
                      CHUNK if n - lo > CHUNK else n - lo)


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
    cdef Py_ssize_t chunks = (n + CHUNK - 1) // CHUNK, c, lo
    with nogil:
        for c in prange(chunks, schedule="static", num_threads=threads_for(4 * n)):
            lo = c * CHUNK
            _gelu_bwd(dx + lo, x + lo, dy + lo, CHUNK if n - lo > CHUNK else n - lo, accumulate)


# dinp: (any) is accumulated into; dgelu, dout: (same size) are read
def gelu_backward_saved(dinp, dgelu, dout, bint accumulate=True):
    """dinp += dgelu * dout (dinp = ... if not accumulate), dgelu being what gelu_forward saved.

    The same gradient as gelu_backward, from gelu'(inp) instead of inp. All
    three are C-contiguous float32 arrays with the same number of elements;
    dinp may be the same array as dgelu or dout but must not overlap either
    partly. Raises ValueError otherwise.
    """
    fn = "gelu_backward_saved"
    cdef Py_ssize_t n = _flat(fn, "dgelu", dgelu, -1, False)
    _flat(fn, "dout", dout, n, False)
    _flat(fn, "dinp", dinp, n, True)
    check_same_or_apart(fn, "dinp", dinp, "dgelu", dgelu)
    check_same_or_apart(fn, "dinp", dinp, "dout", dout)
    cdef float* dx = <float*>cnp.PyArray_DATA(dinp)
    cdef const float* g = <const float*>cnp.PyArray_DATA(dgelu)
    cdef const float* dy = <const float*>cnp.PyArray_DATA(dout)
    cdef Py_ssize_t chunks = (n + CHUNK - 1) // CHUNK, c, lo
    with nogil:
        for c in prange(chunks, schedule="static", num_threads=threads_for(n)):
            lo = c * CHUNK
            _mul(dx + lo, g + lo, dy + lo, CHUNK if n - lo > CHUNK else n - lo, accumulate)


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
