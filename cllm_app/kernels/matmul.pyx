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

Every product is one call of the GEMM in ``_gemm.pxd`` (packed micro-panels,
a 6 x 16 register-tile micro-kernel, dynamic blocks over the threads; why our
own and not BLAS is told there). A transposed operand is only other strides
to the packing, so the four kernels need one GEMM, and the forward's bias
and residual are added as each tile is stored, not in a pass of their own.

Each element of a product is summed in a fixed order whichever thread
computes it, so results are bit-identical across runs and across thread
counts. The bias gradient is had as dout is packed for dweight's product:
each column summed over the rows in order (float over blocks of 32 rows,
then double), whichever thread packs it.

Outputs must not share memory with inputs (the kernels would read what they
wrote). ``reference.py`` holds numpy versions with the same signatures.
"""
from cython.parallel cimport parallel, threadid
from libc.limits cimport INT_MAX

cimport numpy as cnp
cimport openmp

from cllm_app.kernels._common cimport check, check_2d, check_apart
from cllm_app.kernels._gemm cimport gemm as _gemm
from cllm_app.kernels._gemm cimport gemm_buffer as _gemm_buffer
from cllm_app.kernels._gemm cimport gemm_scratch as _gemm_scratch
from cllm_app.kernels._gemm cimport post_fn
from cllm_app.kernels._gelu cimport gelu_fwd, mul

cnp.import_array()


# Post-operations the GEMM applies to each block of C once its sums are
# complete, while the block is still in cache: the pass over the whole
# array they replace would read it back from memory.

# C = gelu(C); ctx (an array shaped like C) = gelu'(C)
cdef void _gelu_post(void* ctx, float* C, Py_ssize_t ldc, int rows, int cols,
                     Py_ssize_t at) noexcept nogil:
    cdef float* g = <float*>ctx + at
    cdef Py_ssize_t i
    for i in range(rows):
        gelu_fwd(C + i * ldc, g + i * ldc, C + i * ldc, cols)


# C = ctx * C, element-wise (ctx an array shaped like C)
cdef void _scale_post(void* ctx, float* C, Py_ssize_t ldc, int rows, int cols,
                      Py_ssize_t at) noexcept nogil:
    cdef const float* m = <const float*>ctx + at
    cdef Py_ssize_t i
    for i in range(rows):
        mul(C + i * ldc, m + i * ldc, C + i * ldc, cols, False)


cdef inline int _threads_for_gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    # One thread below ~1M multiply-adds, where a second one costs more than it saves.
    if m * n * k < (1 << 20):
        return 1
    return openmp.omp_get_max_threads()


cdef float* _scratch(str fn, int m1, int n1, int k1, int m2, int n2, int k2, int nt) except NULL:
    """Scratch for products of (M, N, K) = (m1, n1, k1) and (m2, n2, k2) (m2 = 0: just one)."""
    cdef size_t need = _gemm_scratch(m1, n1, k1, nt)
    if m2 > 0 and _gemm_scratch(m2, n2, k2, nt) > need:
        need = _gemm_scratch(m2, n2, k2, nt)
    cdef float* buf = _gemm_buffer(need)
    if buf == NULL:
        raise MemoryError(f"{fn}: could not allocate {need * sizeof(float)} bytes of scratch")
    return buf


cdef int _fits(str fn, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) except -1:
    if a > INT_MAX or b > INT_MAX or c > INT_MAX:
        raise ValueError(f"{fn}: dimensions ({a}, {b}, {c}) are too large for 32-bit indexing")
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


# out: (N, OC) is written, and dgelu if given; inp: (N, C), weight: (C, OC),
# bias: (OC,) or None, residual: (N, OC) or None are read
def matmul_forward(out, inp, weight, bias, residual=None, dgelu=None):
    """out = inp @ weight + bias + residual (bias and residual may be None).

    Given dgelu (an (N, OC) array), GELU is applied as the product is stored:
    out = gelu(that) and dgelu = gelu'(that), the very bits gelu_forward(out,
    out, dgelu) would give, without a second pass over memory.
    Raises ValueError on a wrong shape, dtype or layout, or if out or dgelu
    shares memory with an input or the other.
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
    cdef post_fn post = NULL
    cdef void* ctx = NULL
    if dgelu is not None:
        check(fn, "dgelu", dgelu, (n, oc), cnp.NPY_FLOAT32, True)
        for name, a in (("out", out), ("inp", inp), ("weight", weight), ("bias", bias),
                        ("residual", residual)):
            if a is not None:
                check_apart(fn, "dgelu", dgelu, name, a)
        post = _gelu_post
        ctx = cnp.PyArray_DATA(dgelu)
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
    cdef float* scratch = _scratch(fn, <int>n, <int>oc, <int>c, 0, 0, 0, nt)
    with nogil, parallel(num_threads=nt):
        t = threadid()
        _gemm(t, nt, <int>n, <int>oc, <int>c, x, c, 1, w, oc, 1, False, y, oc, b, r, scratch, post, ctx, NULL)


# dinp: (N, C), dweight: (C, OC), dbias: (OC,) or None are accumulated into;
# dout: (N, OC), inp: (N, C), weight: (C, OC) are read
def matmul_backward(dinp, dweight, dbias, dout, inp, weight, bint accumulate_dinp=True,
                    dinp_scale=None):
    """dinp += dout @ weight.T; dweight += inp.T @ dout; dbias += dout summed over rows.

    With accumulate_dinp False, dinp = dout @ weight.T (overwritten, not added
    into). Given dinp_scale (an (N, C) array; only with accumulate_dinp
    False), dinp = dinp_scale * (dout @ weight.T), multiplied as it is stored:
    the GELU below a layer (dinp_scale = the gelu' that matmul_forward saved)
    without a pass of its own. dbias may be None (a layer without bias). No
    output may share memory with an input or another output. Raises
    ValueError otherwise, or on a wrong shape, dtype or layout.
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
    cdef post_fn post = NULL
    cdef void* ctx = NULL
    if dinp_scale is not None:
        if accumulate_dinp:
            raise ValueError(f"{fn}: dinp_scale needs accumulate_dinp=False")
        check(fn, "dinp_scale", dinp_scale, (n, c), cnp.NPY_FLOAT32, False)
        check_apart(fn, "dinp", dinp, "dinp_scale", dinp_scale)
        post = _scale_post
        ctx = cnp.PyArray_DATA(dinp_scale)
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
    cdef int nt = _threads_for_gemm(n, oc, c), t
    cdef float* scratch = _scratch(fn, <int>n, <int>c, <int>oc, <int>c, <int>oc, <int>n, nt)
    with nogil, parallel(num_threads=nt):
        t = threadid()
        # dinp (N, C) (+)= dout (N, OC) @ weight.T
        _gemm(t, nt, <int>n, <int>c, <int>oc, dy, oc, 1, w, 1, oc, accumulate_dinp, dx, c,
              NULL, NULL, scratch, post, ctx, NULL)
        # dweight (C, OC) += inp.T @ dout
        # and dbias += dout's column sums, taken as dout is packed for it
        _gemm(t, nt, <int>c, <int>oc, <int>n, x, 1, c, dy, oc, 1, True, dw, oc, NULL, NULL, scratch,
              NULL, NULL, db)


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
    cdef float* scratch = _scratch(fn, <int>n, <int>v, <int>c, 0, 0, 0, nt)
    with nogil, parallel(num_threads=nt):
        t = threadid()
        _gemm(t, nt, <int>n, <int>v, <int>c, x, c, 1, w, 1, c, False, y, v, NULL, NULL, scratch, NULL, NULL, NULL)


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
    cdef int nt = _threads_for_gemm(n, v, c), t
    cdef float* scratch = _scratch(fn, <int>n, <int>c, <int>v, <int>v, <int>c, <int>n, nt)
    with nogil, parallel(num_threads=nt):
        t = threadid()
        # dinp (N, C) (+)= dout (N, V) @ wte (V, C)
        _gemm(t, nt, <int>n, <int>c, <int>v, dy, v, 1, w, c, 1, accumulate_dinp, dx, c,
              NULL, NULL, scratch, NULL, NULL, NULL)
        # dwte (V, C) += dout.T @ inp
        _gemm(t, nt, <int>v, <int>c, <int>n, dy, 1, v, x, c, 1, True, dw, c, NULL, NULL, scratch, NULL, NULL, NULL)
