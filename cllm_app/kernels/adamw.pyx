# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""AdamW update and the squared gradient norm, over 1-D float32 arrays.

- ``adamw_update`` updates ``params``, ``m`` and ``v`` in place, in one pass
  over memory (PyTorch's loop makes several). The arithmetic follows
  torch.optim.AdamW's order: decoupled decay params *= 1 - lr * wd, then
  m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2 and
  params -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps),
  with g = grads * grad_scale.
- ``grad_norm_squared`` returns sum(grads^2), squared and added in double.

The arrays are usually slices of the model's flat buffers (all the matrices,
then all the vectors). Element-wise work is split over OpenMP threads in
fixed chunks; the norm adds fixed blocks in double and then the blocks in
order, so both are bit-identical across runs and thread counts.

``reference.py`` holds numpy versions with the same signatures.
"""
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf
from libc.stdlib cimport free, malloc

cimport numpy as cnp

from cllm_app.kernels._common cimport check, check_apart, float_restrict, threads_for

cnp.import_array()

cdef enum:
    CHUNK = 8192       # elements per unit of parallel work
    LANES = 16         # double lanes of the norm: four AVX registers, four FMA chains
    NORM_BLOCK = 4096  # elements per block of the norm, a unit of parallel work


# One chunk of the update; the four arrays are distinct (checked by the caller).
# The order of operations is PyTorch's single-tensor AdamW: m moves toward g by
# (1 - b1) (its lerp_), v = v * b2 + (1 - b2) g^2 (mul_, addcmul_), the
# denominator divides by sqrt(1 - b2^step), and the step is an addcdiv_.
cdef inline void _adamw_chunk(float_restrict p, const float* g, float_restrict m,
                              float_restrict v, Py_ssize_t n, float decay,
                              float one_minus_b1, float b2, float one_minus_b2,
                              float step_size, float sqrt_bc2, float eps,
                              float grad_scale) noexcept nogil:
    cdef Py_ssize_t i
    cdef float gi, mi, vi
    for i in range(n):
        gi = g[i] * grad_scale
        mi = m[i] + one_minus_b1 * (gi - m[i])
        vi = v[i] * b2 + one_minus_b2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] = p[i] * decay - step_size * (mi / (sqrtf(vi) / sqrt_bc2 + eps))


# g: (n,), n <= NORM_BLOCK -> sum of g^2 in double. A float's square is exact
# in double, so only the double additions round (16 lanes, then a fixed tree).
cdef inline double _block_sumsq(const float* g, Py_ssize_t n) noexcept nogil:
    cdef double a[LANES]
    cdef double x
    cdef Py_ssize_t j = 0, k, n8 = n - n % LANES
    for k in range(LANES):
        a[k] = 0.0
    while j < n8:
        for k in range(LANES):
            x = g[j + k]
            a[k] += x * x
        j += LANES
    while j < n:
        x = g[j]
        a[0] += x * x
        j += 1
    return ((((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])))
            + (((a[8] + a[9]) + (a[10] + a[11])) + ((a[12] + a[13]) + (a[14] + a[15]))))


cdef Py_ssize_t _length(str fn, str name, object a, Py_ssize_t n, bint writable) except -1:
    if not cnp.PyArray_Check(a) or cnp.PyArray_NDIM(<cnp.ndarray>a) != 1:
        raise ValueError(f"{fn}: {name} must be a 1-D numpy array")
    if n < 0:
        n = cnp.PyArray_DIMS(<cnp.ndarray>a)[0]
    check(fn, name, a, (n,), cnp.NPY_FLOAT32, writable)
    return n


# params: (P,), m: (P,), v: (P,) are updated in place; grads: (P,) is read
def adamw_update(params, grads, m, v, double lr, double beta1, double beta2, double eps,
                 double weight_decay, long step, double grad_scale):
    """One AdamW step on params with moments m and v, as torch.optim.AdamW does it.

    step counts from 1 (the bias corrections use it). grads is multiplied by
    grad_scale first (e.g. 1 / accumulation steps, or a clipping factor).
    The four arrays are distinct 1-D C-contiguous float32 arrays of one
    length. Raises ValueError otherwise.
    """
    fn = "adamw_update"
    cdef Py_ssize_t n = _length(fn, "params", params, -1, True)
    _length(fn, "grads", grads, n, False)
    _length(fn, "m", m, n, True)
    _length(fn, "v", v, n, True)
    check_apart(fn, "params", params, "grads", grads)
    check_apart(fn, "params", params, "m", m)
    check_apart(fn, "params", params, "v", v)
    check_apart(fn, "m", m, "grads", grads)
    check_apart(fn, "m", m, "v", v)
    check_apart(fn, "v", v, "grads", grads)
    if step < 1:
        raise ValueError(f"{fn}: step counts from 1, got {step}")
    # The per-step constants in double, rounded once, like PyTorch's Python scalars.
    cdef float decay = <float>(1.0 - lr * weight_decay)
    cdef float step_size = <float>(lr / (1.0 - beta1 ** step))
    cdef float sqrt_bc2 = <float>sqrt(1.0 - beta2 ** step)
    cdef float omb1 = <float>(1.0 - beta1)
    cdef float omb2 = <float>(1.0 - beta2)
    cdef float b2 = <float>beta2, e = <float>eps, gs = <float>grad_scale
    cdef float* p = <float*>cnp.PyArray_DATA(params)
    cdef const float* g = <const float*>cnp.PyArray_DATA(grads)
    cdef float* mp = <float*>cnp.PyArray_DATA(m)
    cdef float* vp = <float*>cnp.PyArray_DATA(v)
    cdef Py_ssize_t chunks = (n + CHUNK - 1) // CHUNK, c, lo
    with nogil:
        for c in prange(chunks, schedule="static", num_threads=threads_for(4 * n)):
            lo = c * CHUNK
            _adamw_chunk(p + lo, g + lo, mp + lo, vp + lo, CHUNK if n - lo > CHUNK else n - lo,
                         decay, omb1, b2, omb2, step_size, sqrt_bc2, e, gs)


# grads: (P,) is read
def grad_norm_squared(grads) -> float:
    """sum(grads ** 2), accumulated in double; bit-identical across runs and thread counts."""
    fn = "grad_norm_squared"
    cdef Py_ssize_t n = _length(fn, "grads", grads, -1, False)
    if n == 0:
        return 0.0
    cdef const float* g = <const float*>cnp.PyArray_DATA(grads)
    cdef Py_ssize_t blocks = (n + NORM_BLOCK - 1) // NORM_BLOCK, c, lo
    cdef double* part = <double*>malloc(blocks * sizeof(double))
    if part == NULL:
        raise MemoryError(f"{fn}: could not allocate {blocks} doubles")
    cdef double total = 0.0
    with nogil:
        for c in prange(blocks, schedule="static", num_threads=threads_for(n)):
            lo = c * NORM_BLOCK
            part[c] = _block_sumsq(g + lo, NORM_BLOCK if n - lo > NORM_BLOCK else n - lo)
        for c in range(blocks):
            total = total + part[c]
    free(part)
    return total
