# cython: language_level=3
"""GELU (GPT-2's tanh approximation) element-wise, in C, for gelu.pyx and for the GEMM's store.

``gelu_fwd`` writes gelu(x) and gelu'(x), ``gelu_bwd`` gelu'(x) * dy, ``mul``
a * b, each over n floats, 8 at a time; the math and why it is C are told in
gelu.pyx. A value's result does not depend on where in an array it lies (a
tail goes through the same vector code on a padded copy), so the linear
layer that applies GELU tile by tile as it stores gets the very bits of
gelu_forward over the whole array.
"""

cdef extern from *:
    """
    #include <string.h>
    #include <stdint.h>
    #include <math.h>
    #define CLLM_GELU_K 0.7978845608028654f    /* sqrt(2/pi) */
    #define CLLM_GELU_C 0.044715f
    #if defined(__GNUC__) || defined(__clang__)
    #ifndef CLLM_VEC8
    #define CLLM_VEC8  /* also defined by _gemm.pxd: whichever comes first */
    typedef float cllm_g8 __attribute__((vector_size(32)));
    static inline cllm_g8 cllm_gld(const float* p) { cllm_g8 v; memcpy(&v, p, sizeof v); return v; }
    static inline void cllm_gst(float* p, cllm_g8 v) { memcpy(p, &v, sizeof v); }
    #endif
    typedef int32_t cllm_g8i __attribute__((vector_size(32)));
    #define CLLM_G8(c) ((cllm_g8){c, c, c, c, c, c, c, c})
    #define CLLM_G8I(c) ((cllm_g8i){c, c, c, c, c, c, c, c})
    /* m ? a : b for a comparison mask m (C has no vector ?:) */
    static inline cllm_g8 cllm_gsel(cllm_g8i m, cllm_g8 a, cllm_g8 b) {
        return (cllm_g8)((m & (cllm_g8i)a) | (~m & (cllm_g8i)b));
    }
    /* _common.pxd's Cephes expf, for arguments <= 0 (or NaN) only: no
       overflow branch; below -87.34 gives 0, NaN stays NaN. */
    static inline cllm_g8 cllm_gexp_neg(cllm_g8 z) {
        const cllm_g8 lo = CLLM_G8(-87.33654f);
        const cllm_g8i under = z < lo;
        const cllm_g8 zc = cllm_gsel(under, lo, z);
        const cllm_g8 n = (zc * CLLM_G8(1.44269504088896341f) + CLLM_G8(12582912.0f))
                          - CLLM_G8(12582912.0f);
        cllm_g8 r = zc - n * CLLM_G8(0.693359375f);
        r = r - n * CLLM_G8(-2.12194440e-4f);
        cllm_g8 p = CLLM_G8(1.9875691500e-4f);
        p = p * r + CLLM_G8(1.3981999507e-3f);
        p = p * r + CLLM_G8(8.3334519073e-3f);
        p = p * r + CLLM_G8(4.1665795894e-2f);
        p = p * r + CLLM_G8(1.6666665459e-1f);
        p = p * r + CLLM_G8(5.0000001201e-1f);
        p = p * r * r + r + CLLM_G8(1.0f);
        const cllm_g8i bits = (__builtin_convertvector(n, cllm_g8i) + 127) << 23;
        return cllm_gsel(under, CLLM_G8(0.0f), p * (cllm_g8)bits);
    }
    /* gelu(x) into *y (if y), gelu'(x) into *g (if g) */
    static inline void cllm_gelu8(cllm_g8 x, cllm_g8* y, cllm_g8* g) {
        const cllm_g8 x2 = x * x;
        const cllm_g8 u = CLLM_G8(CLLM_GELU_K) * (x + CLLM_G8(CLLM_GELU_C) * x2 * x);
        const cllm_g8 au = (cllm_g8)((cllm_g8i)u & CLLM_G8I(0x7fffffff));  /* |u| */
        const cllm_g8 e = cllm_gexp_neg(CLLM_G8(-2.0f) * au);
        const cllm_g8 a = CLLM_G8(1.0f) / (CLLM_G8(1.0f) + e);
        const cllm_g8 ea = e * a;
        const cllm_g8 s = cllm_gsel(u >= CLLM_G8(0.0f), a, ea);
        if (y) *y = x * s;
        if (g) {
            const cllm_g8 du = CLLM_G8(CLLM_GELU_K)
                               + CLLM_G8(3.0f * CLLM_GELU_K * CLLM_GELU_C) * x2;
            *g = s + (CLLM_G8(2.0f) * x * du) * (ea * a);
        }
    }
    /* y[0:n] = gelu(x), g[0:n] = gelu'(x) if g is not NULL; y, g may be x */
    static void cllm_gelu_fwd(float* y, float* g, const float* x, Py_ssize_t n) {
        Py_ssize_t i = 0;
        cllm_g8 yv, gv;
        for (; i + 8 <= n; i += 8) {
            cllm_gelu8(cllm_gld(x + i), &yv, g ? &gv : NULL);
            cllm_gst(y + i, yv);
            if (g) cllm_gst(g + i, gv);
        }
        if (i < n) {
            float xb[8] = {0}, yb[8], gb[8];
            memcpy(xb, x + i, (n - i) * sizeof(float));
            cllm_gelu8(cllm_gld(xb), &yv, g ? &gv : NULL);
            cllm_gst(yb, yv);
            memcpy(y + i, yb, (n - i) * sizeof(float));
            if (g) {
                cllm_gst(gb, gv);
                memcpy(g + i, gb, (n - i) * sizeof(float));
            }
        }
    }
    /* dx[0:n] (+)= gelu'(x) * dy; dx may be x or dy */
    static void cllm_gelu_bwd(float* dx, const float* x, const float* dy, Py_ssize_t n, int acc) {
        Py_ssize_t i = 0;
        cllm_g8 gv;
        for (; i + 8 <= n; i += 8) {
            cllm_gelu8(cllm_gld(x + i), NULL, &gv);
            cllm_gst(dx + i, acc ? cllm_gld(dx + i) + cllm_gld(dy + i) * gv : cllm_gld(dy + i) * gv);
        }
        if (i < n) {
            float xb[8] = {0}, db[8] = {0}, ob[8] = {0};
            memcpy(xb, x + i, (n - i) * sizeof(float));
            memcpy(db, dy + i, (n - i) * sizeof(float));
            memcpy(ob, dx + i, (n - i) * sizeof(float));
            cllm_gelu8(cllm_gld(xb), NULL, &gv);
            cllm_gst(ob, acc ? cllm_gld(ob) + cllm_gld(db) * gv : cllm_gld(db) * gv);
            memcpy(dx + i, ob, (n - i) * sizeof(float));
        }
    }
    /* y[0:n] (+)= a * b; y may be a or b */
    static void cllm_gmul(float* y, const float* a, const float* b, Py_ssize_t n, int acc) {
        Py_ssize_t i = 0;
        for (; i + 8 <= n; i += 8) {
            const cllm_g8 p = cllm_gld(a + i) * cllm_gld(b + i);
            cllm_gst(y + i, acc ? cllm_gld(y + i) + p : p);
        }
        for (; i < n; i++) y[i] = acc ? y[i] + a[i] * b[i] : a[i] * b[i];
    }
    #else
    static void cllm_gmul(float* y, const float* a, const float* b, Py_ssize_t n, int acc) {
        for (Py_ssize_t i = 0; i < n; i++) y[i] = acc ? y[i] + a[i] * b[i] : a[i] * b[i];
    }
    static inline float cllm_gelu1(float x, float* g) {
        float x2 = x * x, u = CLLM_GELU_K * (x + CLLM_GELU_C * x2 * x);
        float e = expf(-2.0f * fabsf(u)), a = 1.0f / (1.0f + e), s = u >= 0.0f ? a : e * a;
        if (g) *g = s + (2.0f * x * (CLLM_GELU_K + 3.0f * CLLM_GELU_K * CLLM_GELU_C * x2)) * (e * a * a);
        return x * s;
    }
    static void cllm_gelu_fwd(float* y, float* g, const float* x, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) {
            float gi, yi = cllm_gelu1(x[i], &gi);
            y[i] = yi;
            if (g) g[i] = gi;
        }
    }
    static void cllm_gelu_bwd(float* dx, const float* x, const float* dy, Py_ssize_t n, int acc) {
        for (Py_ssize_t i = 0; i < n; i++) {
            float gi;
            cllm_gelu1(x[i], &gi);
            dx[i] = acc ? dx[i] + dy[i] * gi : dy[i] * gi;
        }
    }
    #endif
    """
    void gelu_fwd "cllm_gelu_fwd"(float* y, float* g, const float* x, Py_ssize_t n) noexcept nogil
    void gelu_bwd "cllm_gelu_bwd"(float* dx, const float* x, const float* dy, Py_ssize_t n,
                                  bint acc) noexcept nogil
    void mul "cllm_gmul"(float* y, const float* a, const float* b, Py_ssize_t n,
                         bint acc) noexcept nogil
