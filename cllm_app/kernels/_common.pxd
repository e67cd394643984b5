# cython: language_level=3
"""Helpers every kernel .pyx cimports: argument checks, a vectorizable exp, thread counts.

Everything here is ``cdef inline``, so it is compiled into each kernel module
that cimports it and nothing is imported at run time. That matters because the
same .pyx is built into several modules (baseline, x86_64_v3, ...; see
setup.py): each gets its own copy, compiled with its own instruction set.
"""
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, uintptr_t

cimport numpy as cnp
cimport openmp

cdef extern from *:
    """
    #include <string.h>
    #include <stdint.h>
    /* Reinterpret the bits of an int32 as a float. memcpy is the portable
       spelling; gcc and clang turn it into nothing, also inside vectorized
       loops. */
    static inline float cllm_bits_as_float(int32_t i) {
        float f;
        memcpy(&f, &i, sizeof f);
        return f;
    }
    """
    float bits_as_float "cllm_bits_as_float"(int32_t i) noexcept nogil
    # C99 restrict, in the spelling gcc, clang and MSVC all accept.
    ctypedef float* float_restrict "float * __restrict"


cdef enum:
    # Below this many elements of work, waking a second thread costs more than it saves.
    MIN_PARALLEL = 32768


# ---------------------------------------------------------------------------
# exp for float32 that gcc can vectorize. libm's expf is a function call per
# element (glibc's vector versions are only used under -ffast-math, which the
# kernels must not use), and softmax, attention and GELU spend most of their
# time in exp. This is the Cephes expf algorithm: x = n*ln2 + r with
# |r| <= ln2/2 (Cody-Waite split of ln2, so r is exact), a degree-6 polynomial
# for e^r, and 2^n built from its bits. Error about 1 ulp over the whole range.
#
# Range: x < -87.336 (where e^x would be a float32 denormal; also -inf) gives
# 0, x > 88.029 (where 2^n would overflow; also +inf) gives inf, and NaN stays
# NaN. The comparisons are written so NaN falls through every one of them.
# ---------------------------------------------------------------------------

cdef inline float fast_exp(float x) noexcept nogil:
    # Every constant is cast to float: a bare literal is a C double, and
    # double arithmetic would both slow the vector loop and break the
    # rounding trick below.
    cdef float lo = <float>-87.33654, hi = <float>88.02969
    cdef float xc = lo if x < lo else x
    xc = hi if xc > hi else xc
    # Round x/ln2 to the nearest integer: adding and subtracting 1.5 * 2^23
    # does it in float arithmetic (exact for |t| < 2^22), which vectorizes
    # where rintf may not.
    cdef float t = xc * <float>1.44269504088896341
    cdef float n = (t + <float>12582912.0) - <float>12582912.0
    cdef float r = xc - n * <float>0.693359375
    r = r - n * <float>-2.12194440e-4
    cdef float p = <float>1.9875691500e-4
    p = p * r + <float>1.3981999507e-3
    p = p * r + <float>8.3334519073e-3
    p = p * r + <float>4.1665795894e-2
    p = p * r + <float>1.6666665459e-1
    p = p * r + <float>5.0000001201e-1
    p = p * r * r + r + <float>1.0
    cdef float y = p * bits_as_float((<int32_t>n + 127) << 23)
    y = <float>0.0 if x < lo else y
    return INFINITY if x > hi else y


# ---------------------------------------------------------------------------
# Python boundary. Every check happens before any nogil code runs, so a bad
# call raises ValueError instead of reading or writing out of bounds. They use
# numpy's C API: attribute lookups like a.flags cost about a microsecond each.
# ---------------------------------------------------------------------------

cdef inline str _shape_str(tuple shape):
    return "(" + ", ".join([str(s) for s in shape]) + ("," if len(shape) == 1 else "") + ")"


cdef inline int check(str fn, str name, object a, tuple shape, int typenum,
                      bint writable) except -1:
    """a must be a C-contiguous, native-endian array of that dtype and shape.

    typenum is cnp.NPY_FLOAT32 or cnp.NPY_INT32; a shape entry of -1 accepts
    any length on that axis.
    """
    if not cnp.PyArray_Check(a):
        raise ValueError(f"{fn}: {name} must be a numpy array, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_ISNOTSWAPPED(arr):
        want = "float32" if typenum == cnp.NPY_FLOAT32 else "int32"
        raise ValueError(f"{fn}: {name} must be {want}, got {a.dtype}")
    cdef int ndim = len(shape)
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(arr)
    cdef int k
    cdef bint ok = cnp.PyArray_NDIM(arr) == ndim
    if ok:
        for k in range(ndim):
            if shape[k] >= 0 and dims[k] != <cnp.npy_intp>shape[k]:
                ok = False
    if not ok:
        raise ValueError(f"{fn}: {name} has shape {a.shape}, expected {_shape_str(shape)}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{fn}: {name} must be C-contiguous")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{fn}: {name} is read-only, it must be writable")
    return 0


cdef inline int check_2d(str fn, str name, object a, Py_ssize_t* rows,
                         Py_ssize_t* cols) except -1:
    """a must be a 2-D numpy array; reports its shape (the caller checks the rest)."""
    if not cnp.PyArray_Check(a) or cnp.PyArray_NDIM(<cnp.ndarray>a) != 2:
        raise ValueError(f"{fn}: {name} must be a 2-D numpy array")
    rows[0] = cnp.PyArray_DIMS(<cnp.ndarray>a)[0]
    cols[0] = cnp.PyArray_DIMS(<cnp.ndarray>a)[1]
    return 0


cdef inline void* data(object a) noexcept:
    """The data pointer of an array that check() accepted."""
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline Py_ssize_t nbytes(object a) noexcept:
    return cnp.PyArray_NBYTES(<cnp.ndarray>a)


cdef inline int check_apart(str fn, str out_name, object out, str in_name,
                            object inp) except -1:
    """out must not share memory with inp (for outputs the kernel writes while reading inp)."""
    cdef uintptr_t o = <uintptr_t>data(out), i = <uintptr_t>data(inp)
    cdef uintptr_t no = <uintptr_t>nbytes(out), ni = <uintptr_t>nbytes(inp)
    if no and ni and o < i + ni and i < o + no:
        raise ValueError(f"{fn}: {out_name} must not share memory with {in_name}")
    return 0


cdef inline int check_same_or_apart(str fn, str out_name, object out, str in_name,
                                    object inp) except -1:
    """out may be the very same memory as inp (element-wise in place), but not overlap it partly."""
    if data(out) == data(inp) and nbytes(out) == nbytes(inp):
        return 0
    return check_apart(fn, out_name, out, in_name, inp)


cdef inline int threads_for(Py_ssize_t work) noexcept nogil:
    """OpenMP threads for a loop over this many elements of work."""
    if work < MIN_PARALLEL:
        return 1
    return openmp.omp_get_max_threads()
