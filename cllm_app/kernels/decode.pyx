# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""One generation step of the GPT-2 model: the logits of the next token, with a KV cache.

``decode_step`` computes exactly what ``engine.generate.decode_step_reference``
computes (pre-LayerNorm blocks, tanh GELU, output head tied to ``wte``) for
one token at one position, straight from the model's flat float32 parameter
buffer (the layout of ``engine.model.param_shapes``), and writes that
position's keys and values into the caches. One Python call per token: all
layers run in one nogil C function.

Why the core is C and not Cython. Batch-1 decoding is a chain of
matrix-vector products (memory-bound: every weight is read once per token)
joined by small steps (LayerNorm, attention, GELU) that need every column of
the product before them. The fast shape for that is ONE OpenMP parallel
region per token whose threads meet at barriers between the stages; Cython's
prange opens a region per loop and cannot express a barrier. The C below is
written in the kernels' style (plain loops that gcc vectorizes, no
-ffast-math needed) and compiled twice in this one file:

- a portable build (whatever the module is compiled for: SSE2 on the
  baseline x86-64 build, AVX2 in the x86_64_v3 build), and
- on x86 with gcc or clang, the same code under
  ``__attribute__((target("avx2,fma")))``, chosen at run time when the CPU
  has AVX2 and FMA. ``engine.kernel_choice`` imports the baseline module, so
  without this the app would decode with SSE2 on every machine.

Work split (static; see dec_thread for the details):
- Each matrix product y = x @ W (W stored (in, out) row-major) is split by
  ROWS of W into 4 fixed blocks; a thread takes whole blocks and streams
  each front to back (a contiguous run of memory: column splits made each
  thread read pieces of every row, which the prefetchers served about a
  third slower from DRAM), eight rows at a time, into a partial sum per block.
  After a barrier each thread adds the blocks' partials for the columns it
  needs, in block order. c_proj is split by heads, like attention, so a
  thread goes from its heads' attention into their rows of c_proj without
  waiting.
- LayerNorm, the residual adds and the embedding are done by every thread
  on its own copy of the residual stream (a few hundred floats: cheaper
  than a barrier).
- The output head (wte is (V, C)) is a dot product per row, split by rows.
Per layer that is four barriers, one after each matrix product. The blocks
and heads, not the threads, fix the order of every sum, so the result is
the same bits for any thread count (1 to 4 threads share the products
evenly; more threads share attention and the head only).

Summation: dot products and LayerNorm sums run in 8 float lanes (16 for the
long rows) added together in a fixed order; column sums of the matrix
products are one float chain per output in row order (as a BLAS gemv).
The AVX2 build contracts a*b+c into FMA (gcc's default -ffp-contract=fast in
GNU C, not -ffast-math), so its results differ from the portable build's in
the last bits; each is bit-identical from run to run and across thread
counts.

Accuracy against the reference: float32 rounding of the sums, about 1e-6
relative to the values (tests/test_kernels_decode.py uses rtol 1e-4,
atol 1e-5). Weights stay float32: the kernel reads them where they are.

Attention exp and the GELU use a vectorizable Cephes expf (about 1 ulp);
the GELU is written 0.5*h*(1 + tanh(u)) = h / (1 + exp(-2u)), the same
function without the cancellation of 1 + tanh(u) for negative u.
"""
import operator
from time import perf_counter

cimport numpy as cnp

from cllm_app.kernels._common cimport check, check_apart
from libc.stdint cimport int64_t

cnp.import_array()

cdef extern from *:
    """
    #include <stddef.h>
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>
    #include <math.h>
    #ifdef _OPENMP
    #include <omp.h>
    #endif

    #if defined(__GNUC__)
    #  define DEC_INLINE static inline __attribute__((always_inline))
    #  define DEC_RESTRICT __restrict__
    #elif defined(_MSC_VER)
    #  define DEC_INLINE static __forceinline
    #  define DEC_RESTRICT __restrict
    #else
    #  define DEC_INLINE static inline
    #  define DEC_RESTRICT
    #endif

    #if defined(__GNUC__) && !defined(__clang__)
    #  define DEC_IVDEP _Pragma("GCC ivdep")
    #else
    #  define DEC_IVDEP
    #endif

    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    #  define DEC_HAVE_AVX2_BUILD 1
    #else
    #  define DEC_HAVE_AVX2_BUILD 0
    #endif

    /* Floats per cache line: every buffer a thread writes starts on a line
       and thread ranges are multiples of it, so no line is shared. */
    #define DEC_LINE 16

    /* Row blocks of each matrix product (see dec_thread): up to this many
       threads share the products evenly. */
    #define DEC_BLOCKS 4

    static int64_t dec_pad(int64_t n) { return (n + DEC_LINE - 1) / DEC_LINE * DEC_LINE; }

    typedef struct {
        float *logits;
        const float *params;
        float *kc, *vc;
        int64_t token, pos, V, maxT, C, L, NH;
        /* Shared: the partial sums of each row block (c_attn 3C, c_fc 4C,
           mlp.c_proj C) and of each head's rows of c_proj (C). Then, per
           thread, priv_stride floats apart: the residual stream x, its
           LayerNorm xn, the attention output y (C each), h (4C: q, k, v, then
           the GELU output) and the attention weights (maxT). */
        float *mem;
        int64_t priv_stride;
    } dec_args;

    /* [lo, hi) of n items for thread tid of nt, in blocks of `grain`. */
    DEC_INLINE void dec_range(int64_t n, int64_t grain, int tid, int nt, int64_t *lo, int64_t *hi) {
        int64_t blocks = (n + grain - 1) / grain;
        int64_t a = blocks * tid / nt * grain, b = blocks * (tid + 1) / nt * grain;
        *lo = a < n ? a : n;
        *hi = b < n ? b : n;
    }

    DEC_INLINE float dec_bits_as_float(int32_t i) {
        float f;
        memcpy(&f, &i, sizeof f);
        return f;
    }

    DEC_INLINE int32_t dec_float_bits(float f) {
        int32_t i;
        memcpy(&i, &f, sizeof i);
        return i;
    }

    /* mask ? a : b for a mask of all ones or all zeros, in integer operations: a
       float select is control flow to gcc unless -fno-trapping-math, and it would
       not vectorize the loops below. */
    DEC_INLINE float dec_select(int32_t mask, float a, float b) {
        return dec_bits_as_float((dec_float_bits(a) & mask) | (dec_float_bits(b) & ~mask));
    }

    /* Cephes expf, written so that gcc vectorizes loops that call it: about 1 ulp;
       below -87.34 gives 0, above 88.03 gives inf, NaN stays NaN. */
    DEC_INLINE float dec_exp(float x) {
        const float lo = -87.33654f, hi = 88.02969f;
        const int32_t below = -(int32_t)(x < lo), above = -(int32_t)(x > hi);
        const int32_t nan = -(int32_t)(x != x);
        /* clamped, and NaN replaced by 0 so that the int conversion below is defined */
        float xc = dec_select(nan, 0.0f, dec_select(below, lo, dec_select(above, hi, x)));
        float t = xc * 1.44269504088896341f;
        float n = (t + 12582912.0f) - 12582912.0f;   /* round to nearest: 1.5 * 2^23 */
        float r = xc - n * 0.693359375f;
        r = r - n * -2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * r * r + r + 1.0f;
        float e = p * dec_bits_as_float(((int32_t)n + 127) << 23);
        return dec_select(nan, x, dec_select(below, 0.0f, dec_select(above, INFINITY, e)));
    }

    /* tanh-approximated GELU: 0.5 v (1 + tanh(u)) = v / (1 + exp(-2u)). */
    DEC_INLINE float dec_gelu(float v) {
        float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
        return v / (1.0f + dec_exp(-2.0f * u));
    }

    /* Sum of x[0:n]: 16 float lanes, added up in double in a fixed order. */
    DEC_INLINE double dec_sum(const float *DEC_RESTRICT x, int64_t n) {
        float a[16] = {0};
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            for (int l = 0; l < 16; l++) a[l] += x[i + l];
        double s = 0.0;
        for (int l = 0; l < 16; l++) s += a[l];
        for (; i < n; i++) s += x[i];
        return s;
    }

    /* Sum of (x - mu)^2 over x[0:n], the same way. */

    DEC_INLINE double dec_sqdev(const float *DEC_RESTRICT x, int64_t n, float mu) {
        float a[16] = {0};
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            for (int l = 0; l < 16; l++) { float d = x[i + l] - mu; a[l] += d * d; }
        double s = 0.0;
        for (int l = 0; l < 16; l++) s += a[l];
        for (; i < n; i++) { float d = x[i] - mu; s += d * d; }
        return s;
    }

    /* Horizontal sum of 8 lanes as a fixed tree. */
    DEC_INLINE float dec_hsum8(const float *a) {
        return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
    }

    /* Dot product in 8 float lanes (short vectors: attention scores). */
    DEC_INLINE float dec_dot8(const float *DEC_RESTRICT a, const float *DEC_RESTRICT b, int64_t n) {
        float acc[8] = {0};
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
        float s = dec_hsum8(acc);
        for (; i < n; i++) s += a[i] * b[i];
        return s;
    }

    /* Dot product of long rows: 16 float lanes (two AVX registers, so two
       chains of adds in flight), added up in double in a fixed order. gcc
       vectorizes this single-row shape cleanly; a four-rows-at-once version
       came out as shuffles and ran several times slower. */
    DEC_INLINE float dec_dot16(const float *DEC_RESTRICT x, const float *DEC_RESTRICT w, int64_t n) {
        float a[16] = {0};
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            for (int l = 0; l < 16; l++) a[l] += x[i + l] * w[i + l];
        double s = 0.0;
        for (int l = 0; l < 16; l++) s += a[l];
        for (; i < n; i++) s += x[i] * w[i];
        return (float)s;
    }

    /* y[0:N] = sum over rows k of x[k] W[k, 0:N], for K rows of a matrix whose
       rows are ldw floats apart. Eight rows at a time (y stays in L1; eight
       rather than four was about 15% faster on config B's narrow matrices,
       the same on A's); one float chain per column, in row order. The rows
       are read front to back: a contiguous block of memory, which the
       hardware prefetchers stream best. */
    DEC_INLINE void dec_gemv_rows(float *DEC_RESTRICT y, const float *DEC_RESTRICT x,
                                  const float *DEC_RESTRICT W, int64_t ldw, int64_t K,
                                  int64_t N) {
        for (int64_t j = 0; j < N; j++) y[j] = 0.0f;
        int64_t k = 0;
        for (; k + 8 <= K; k += 8) {
            const float *DEC_RESTRICT w0 = W + k * ldw, *DEC_RESTRICT w1 = w0 + ldw,
                        *DEC_RESTRICT w2 = w1 + ldw, *DEC_RESTRICT w3 = w2 + ldw;
            const float *DEC_RESTRICT w4 = w3 + ldw, *DEC_RESTRICT w5 = w4 + ldw,
                        *DEC_RESTRICT w6 = w5 + ldw, *DEC_RESTRICT w7 = w6 + ldw;
            const float x0 = x[k], x1 = x[k + 1], x2 = x[k + 2], x3 = x[k + 3];
            const float x4 = x[k + 4], x5 = x[k + 5], x6 = x[k + 6], x7 = x[k + 7];
            DEC_IVDEP
            for (int64_t j = 0; j < N; j++)
                y[j] = y[j] + x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j]
                            + x4 * w4[j] + x5 * w5[j] + x6 * w6[j] + x7 * w7[j];
        }
        for (; k + 4 <= K; k += 4) {
            const float *DEC_RESTRICT w0 = W + k * ldw, *DEC_RESTRICT w1 = w0 + ldw,
                        *DEC_RESTRICT w2 = w1 + ldw, *DEC_RESTRICT w3 = w2 + ldw;
            const float x0 = x[k], x1 = x[k + 1], x2 = x[k + 2], x3 = x[k + 3];
            DEC_IVDEP
            for (int64_t j = 0; j < N; j++)
                y[j] = y[j] + x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j];
        }
        for (; k < K; k++) {
            const float *DEC_RESTRICT w0 = W + k * ldw;
            const float x0 = x[k];
            DEC_IVDEP
            for (int64_t j = 0; j < N; j++) y[j] = y[j] + x0 * w0[j];
        }
    }

    /* The sum of n partial sums part[i * stride + j], in order. */
    DEC_INLINE float dec_gather(const float *part, int64_t stride, int64_t n, int64_t j) {
        float s = part[j];
        for (int64_t i = 1; i < n; i++) s = s + part[i * stride + j];
        return s;
    }

    /* out = (x - mean) / sqrt(var + 1e-5) * w + b over C values. */
    DEC_INLINE void dec_layernorm(float *DEC_RESTRICT out, const float *DEC_RESTRICT x,
                                  const float *DEC_RESTRICT w, const float *DEC_RESTRICT b,
                                  int64_t C) {
        float mu = (float)(dec_sum(x, C) / (double)C);
        float var = (float)(dec_sqdev(x, C, mu) / (double)C);
        float s = sqrtf(var + 1e-5f);
        for (int64_t i = 0; i < C; i++) out[i] = (x[i] - mu) / s * w[i] + b[i];
    }

    /* Causal attention of one head at position T-1 over the cache rows 0..T-1. */
    DEC_INLINE void dec_attend(float *DEC_RESTRICT y, const float *DEC_RESTRICT q,
                               const float *DEC_RESTRICT Kh, const float *DEC_RESTRICT Vh,
                               int64_t T, int64_t hs, float *DEC_RESTRICT att) {
        const float root = sqrtf((float)hs);
        float m = -INFINITY;
        for (int64_t t = 0; t < T; t++) {
            float s = dec_dot8(q, Kh + t * hs, hs) / root;
            att[t] = s;
            m = s > m ? s : m;
        }
        for (int64_t t = 0; t < T; t++) att[t] = dec_exp(att[t] - m);
        float sum = (float)dec_sum(att, T);
        for (int64_t t = 0; t < T; t++) att[t] = att[t] / sum;
        for (int64_t d = 0; d < hs; d++) y[d] = 0.0f;
        for (int64_t t = 0; t < T; t++) {
            const float p = att[t];
            const float *DEC_RESTRICT v = Vh + t * hs;
            for (int64_t d = 0; d < hs; d++) y[d] = y[d] + p * v[d];
        }
    }

    #if defined(_OPENMP) && defined(_MSC_VER) && !defined(__clang__)
    #  define DEC_BARRIER() __pragma(omp barrier)
    #elif defined(_OPENMP)
    #  define DEC_BARRIER() _Pragma("omp barrier")
    #else
    #  define DEC_BARRIER()
    #endif

    /* Everything one thread does for one token; inlined into each build below.

       Matrix products are split by ROWS of the weight matrix (the inner
       dimension) into DEC_BLOCKS fixed blocks, whatever the thread count: a
       thread multiplies its blocks, streaming each front to back, into one
       partial sum per block over all output columns, and after a barrier
       every thread adds up the partials of the columns it needs, block by
       block in order. c_proj is split by heads instead (its rows are the
       heads' outputs), so each thread goes from its heads' attention straight
       into their rows of c_proj. The blocks and heads, not the threads, fix
       the order of every sum, so the result is the same bits for any thread
       count. Each thread keeps its own copy of the residual stream (all
       copies add the same partials in the same order), so LayerNorm needs no
       barrier. Four barriers a layer: after each product. */
    DEC_INLINE void dec_thread(const dec_args *a, int tid, int nt) {
        const int64_t C = a->C, NH = a->NH, hs = C / NH, V = a->V, maxT = a->maxT;
        const int64_t L = a->L, pos = a->pos, T = pos + 1, G = DEC_BLOCKS;
        const int64_t sq = dec_pad(3 * C), sc = dec_pad(C), sf = dec_pad(4 * C);
        const float *P = a->params;
        float *pq = a->mem, *pc = pq + G * sq, *pf = pc + NH * sc, *pm = pf + G * sf;
        float *x = pm + G * sc + tid * a->priv_stride, *xn = x + sc, *y = xn + sc;
        float *h = y + sc, *att = h + sf;

        const float *wte = P, *wpe = P + V * C;
        const int64_t mats = V * C + maxT * C;
        const int64_t vecs = mats + L * 12 * C * C;

        const int64_t glo = G * tid / nt, ghi = G * (tid + 1) / nt;     /* row blocks */
        const int64_t hlo = NH * tid / nt, hhi = NH * (tid + 1) / nt;   /* heads */
        int64_t mlo, mhi, unused;   /* this thread's rows of mlp.c_proj: its blocks */
        dec_range(4 * C, 4, (int)glo, (int)G, &mlo, &unused);
        dec_range(4 * C, 4, (int)ghi - 1, (int)G, &unused, &mhi);
        if (glo >= ghi) mlo = mhi = 0;

        for (int64_t i = 0; i < C; i++) x[i] = wte[a->token * C + i] + wpe[pos * C + i];

        for (int64_t l = 0; l < L; l++) {
            const float *Wqkv = P + mats + l * 12 * C * C;
            const float *Wproj = Wqkv + 3 * C * C;
            const float *Wfc = Wqkv + 4 * C * C;
            const float *Wmlp = Wqkv + 8 * C * C;
            const float *vl = P + vecs + l * 13 * C;
            const float *ln1w = vl, *ln1b = vl + C, *bqkv = vl + 2 * C, *bproj = vl + 5 * C;
            const float *ln2w = vl + 6 * C, *ln2b = vl + 7 * C, *bfc = vl + 8 * C, *bmlp = vl + 12 * C;
            int64_t lo, hi;

            /* q, k, v = ln_1(x) @ c_attn + bias */
            dec_layernorm(xn, x, ln1w, ln1b, C);
            for (int64_t g = glo; g < ghi; g++) {
                dec_range(C, 4, (int)g, (int)G, &lo, &hi);
                dec_gemv_rows(pq + g * sq, xn + lo, Wqkv + lo * 3 * C, 3 * C, hi - lo, 3 * C);
            }
            DEC_BARRIER();
            /* this thread's heads: their q, k, v (into h); k, v into the caches;
               attention; their rows of c_proj */
            for (int64_t part = 0; part < 3; part++)
                for (int64_t j = part * C + hlo * hs; j < part * C + hhi * hs; j++)
                    h[j] = dec_gather(pq, sq, G, j) + bqkv[j];
            for (int64_t hd = hlo; hd < hhi; hd++) {
                const int64_t base = ((l * NH + hd) * maxT) * hs;
                memcpy(a->kc + base + pos * hs, h + C + hd * hs, (size_t)hs * sizeof(float));
                memcpy(a->vc + base + pos * hs, h + 2 * C + hd * hs, (size_t)hs * sizeof(float));
                dec_attend(y + hd * hs, h + hd * hs, a->kc + base, a->vc + base, T, hs, att);
            }
            for (int64_t hd = hlo; hd < hhi; hd++)
                dec_gemv_rows(pc + hd * sc, y + hd * hs, Wproj + hd * hs * C, C, hs, C);
            DEC_BARRIER();
            /* x += y @ c_proj + bias */
            for (int64_t j = 0; j < C; j++) x[j] = (x[j] + dec_gather(pc, sc, NH, j)) + bproj[j];

            /* h = gelu(ln_2(x) @ c_fc + bias), for this thread's rows of mlp.c_proj */
            dec_layernorm(xn, x, ln2w, ln2b, C);
            for (int64_t g = glo; g < ghi; g++) {
                dec_range(C, 4, (int)g, (int)G, &lo, &hi);
                dec_gemv_rows(pf + g * sf, xn + lo, Wfc + lo * 4 * C, 4 * C, hi - lo, 4 * C);
            }
            DEC_BARRIER();
            for (int64_t j = mlo; j < mhi; j++) h[j] = dec_gelu(dec_gather(pf, sf, G, j) + bfc[j]);

            /* x += h @ mlp.c_proj + bias */
            for (int64_t g = glo; g < ghi; g++) {
                dec_range(4 * C, 4, (int)g, (int)G, &lo, &hi);
                dec_gemv_rows(pm + g * sc, h + lo, Wmlp + lo * C, C, hi - lo, C);
            }
            DEC_BARRIER();
            for (int64_t j = 0; j < C; j++) x[j] = (x[j] + dec_gather(pm, sc, G, j)) + bmlp[j];
        }

        /* logits = ln_f(x) @ wte.T, split by rows of wte */
        const float *lnfw = P + vecs + L * 13 * C, *lnfb = lnfw + C;
        dec_layernorm(xn, x, lnfw, lnfb, C);
        int64_t vlo, vhi;
        dec_range(V, DEC_LINE, tid, nt, &vlo, &vhi);
        for (int64_t r = vlo; r < vhi; r++) a->logits[r] = dec_dot16(xn, wte + r * C, C);
    }

    static void dec_run_portable(const dec_args *a, int nthreads) {
        if (nthreads <= 1) { dec_thread(a, 0, 1); return; }
    #ifdef _OPENMP
        #pragma omp parallel num_threads(nthreads)
        dec_thread(a, omp_get_thread_num(), omp_get_num_threads());
    #else
        dec_thread(a, 0, 1);
    #endif
    }

    #if DEC_HAVE_AVX2_BUILD
    /* A deliberate copy of dec_run_portable, the ISA variant: the target attribute makes gcc
       compile this body, and the always-inline code it calls, for AVX2 and FMA. A shared
       function would be compiled once, for the portable target. */
    __attribute__((target("avx2,fma")))
    static void dec_run_avx2(const dec_args *a, int nthreads) {
        if (nthreads <= 1) { dec_thread(a, 0, 1); return; }
    #ifdef _OPENMP
        #pragma omp parallel num_threads(nthreads)
        dec_thread(a, omp_get_thread_num(), omp_get_num_threads());
    #else
        dec_thread(a, 0, 1);
    #endif
    }

    static int dec_cpu_avx2(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    #else
    static void dec_run_avx2(const dec_args *a, int nthreads) { dec_run_portable(a, nthreads); }
    static int dec_cpu_avx2(void) { return 0; }
    #endif

    static int dec_max_threads(void) {
    #ifdef _OPENMP
        return omp_get_max_threads();
    #else
        return 1;
    #endif
    }

    /* Returns 0, or -1 if the scratch memory could not be allocated. */
    static int dec_step(float *logits, const float *params, float *kc, float *vc,
                        int64_t token, int64_t pos, int64_t V, int64_t maxT, int64_t C,
                        int64_t L, int64_t NH, int nthreads, int use_avx2) {
        dec_args a;
        const int64_t G = DEC_BLOCKS, sc = dec_pad(C);
        const int64_t shared = G * dec_pad(3 * C) + NH * sc + G * dec_pad(4 * C) + G * sc;
        a.priv_stride = 3 * sc + dec_pad(4 * C) + dec_pad(maxT);
        void *mem = malloc((size_t)(shared + nthreads * a.priv_stride) * sizeof(float) + 64);
        if (mem == NULL) return -1;
        a.mem = (float *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
        a.logits = logits; a.params = params; a.kc = kc; a.vc = vc;
        a.token = token; a.pos = pos; a.V = V; a.maxT = maxT; a.C = C; a.L = L; a.NH = NH;
        if (use_avx2) dec_run_avx2(&a, nthreads); else dec_run_portable(&a, nthreads);
        free(mem);
        return 0;
    }
    """
    int dec_step(float *logits, const float *params, float *kc, float *vc,
                 int64_t token, int64_t pos, int64_t V, int64_t maxT, int64_t C,
                 int64_t L, int64_t NH, int nthreads, int use_avx2) noexcept nogil
    int dec_cpu_avx2() noexcept nogil
    int dec_max_threads() noexcept nogil


cdef bint _HAVE_AVX2 = dec_cpu_avx2() != 0

# Below this many weight floats read per token (matrices and the output head:
# 256 KB), the automatic choice does not try more than one thread: waking a
# second thread and four barriers a layer cost more than it could save.
cdef double MIN_PARALLEL = 1 << 16


# ---------------------------------------------------------------------------
# The automatic thread count (threads=0). On an idle machine all threads are
# fastest (config B of bench_generate: 1.7x one thread). But the threads meet
# at a barrier four times a layer, and when another process takes a core (a
# training job of this same app, say) a barrier waits for a thread the OS has
# parked: measured with one busy process beside it, two threads ran 2.3x
# SLOWER than one. Since results do not depend on the thread count (see
# dec_thread), the choice can follow the machine: each model shape keeps a
# running time per call for one thread and for all, uses the faster, and
# times the other again now and then: after EXPLORE_MIN calls, then after
# twice as many each time the try loses (up to EXPLORE_MAX), since a try of
# two threads on a busy machine can cost a whole time slice. auto_threads_state()
# shows what it has learned.
# ---------------------------------------------------------------------------

cdef enum:
    EXPLORE_MIN = 32
    EXPLORE_MAX = 2048
    WARM = 0
    NORMAL = 1
    TRY = 2


cdef class _Timing:
    """Seconds per call with one thread and with all, for one model shape."""
    cdef readonly double one, many
    cdef readonly long calls
    cdef long explore_at    # the call that next tries the slower choice
    cdef long gap           # calls between tries: doubles while the try loses
    cdef int mode           # of the current call: WARM, NORMAL or TRY
    cdef int best_before    # the choice before a try

    cdef int choose(self, int nmax):
        cdef long c = self.calls
        cdef int nt
        self.calls += 1
        if c < 4:
            # Two calls of each: the first of a run is cold (page faults,
            # caches), and the lower of the two is kept.
            self.mode = WARM
            self.gap = EXPLORE_MIN
            self.explore_at = 4 + EXPLORE_MIN
            return nmax if c < 2 else 1
        nt = nmax if self.many <= self.one else 1
        if self.mode == TRY:   # the try has been timed: did it win?
            self.gap = EXPLORE_MIN if nt != self.best_before else min(2 * self.gap, <long>EXPLORE_MAX)
            self.explore_at = c + self.gap
        if c >= self.explore_at:
            self.mode = TRY
            self.best_before = nt
            return 1 if nt == nmax else nmax
        self.mode = NORMAL
        return nt

    cdef void record(self, int nt, double dt):
        cdef double est = self.one if nt == 1 else self.many
        if self.mode == WARM:
            est = dt if est == 0.0 else min(est, dt)
        elif self.mode == TRY:
            est = dt    # the freshest word on a choice not timed for a while
        else:
            # A running average; one call held up by the OS (many times the
            # usual) counts as twice the estimate, so that it alone cannot
            # flip the choice: a lasting change of load does in a few calls.
            est = est + 0.25 * (min(dt, 2.0 * est) - est)
        if nt == 1:
            self.one = est
        else:
            self.many = est


cdef dict _timings = {}


def max_threads():
    """The OpenMP thread count (OMP_NUM_THREADS, else the CPUs); 1 without OpenMP."""
    return dec_max_threads()


def auto_threads_state():
    """What threads=0 has learned, for diagnostics: {(V, maxT, C, L, NH, max threads,
    portable): (seconds per call with 1 thread, with max threads, calls)}."""
    return {key: (tm.one, tm.many, tm.calls) for key, tm in _timings.items()}


def isa():
    """Which build decode_step uses on this CPU: "avx2+fma" or "portable"."""
    return "avx2+fma" if _HAVE_AVX2 else "portable"


cdef Py_ssize_t _as_int(str name, object value) except? -1:
    """An int (or anything with __index__ but bool) as a Py_ssize_t, else ValueError."""
    if type(value) is int:
        try:
            return value
        except OverflowError:
            raise ValueError(f"decode_step: {name}={value} is out of range") from None
    if isinstance(value, bool):
        raise ValueError(f"decode_step: {name} must be an integer, got bool")
    try:
        value = int(operator.index(value))
    except TypeError:
        raise ValueError(f"decode_step: {name} must be an integer, got {type(value).__name__}") from None
    return _as_int(name, value)


def n_params(V, maxT, C, L):
    """Length of the flat parameter buffer for these sizes (engine.model.param_shapes)."""
    return V * C + maxT * C + L * (12 * C * C + 13 * C) + 2 * C


cdef inline cnp.npy_intp _dim(object a, int i) noexcept:
    return cnp.PyArray_DIMS(<cnp.ndarray>a)[i]


def decode_step(logits, params, kcache, vcache, token, pos, V, maxT, C, L, NH,
                threads=0, portable=False):
    """Next-token logits after `token` at position `pos`; writes that position's k, v.

    logits (V,) float32 is overwritten. params is the model's flat float32
    buffer (engine.model.FlatTensors.flat) for vocab V, context maxT, width C,
    L layers. kcache and vcache are float32 (L, NH, maxT, C // NH) (the
    KVCache layout); positions 0..pos-1 must hold the earlier tokens' keys and
    values, and position pos of every layer and head is written. All arrays
    must be C-contiguous.

    threads: n > 0 uses n threads; 0 (the default) chooses between one and
    the OpenMP thread count by timing both as it goes (see _Timing; models
    too small to gain from a second thread always use one). The result is
    the same bits for any thread count. portable=True runs the portable
    build even where the AVX2 one could run (for tests). Raises ValueError on
    any bad argument, before anything is read or written.
    """
    cdef Py_ssize_t tok = _as_int("token", token), p = _as_int("pos", pos)
    cdef Py_ssize_t nv = _as_int("V", V), nT = _as_int("maxT", maxT), nc = _as_int("C", C)
    cdef Py_ssize_t nl = _as_int("L", L), nh = _as_int("NH", NH), nth = _as_int("threads", threads)
    if nv < 1 or nT < 1 or nc < 1 or nl < 1 or nh < 1:
        raise ValueError(f"decode_step: V, maxT, C, L and NH must be at least 1, "
                         f"got {nv}, {nT}, {nc}, {nl}, {nh}")
    if nc % nh:
        raise ValueError(f"decode_step: C={nc} is not a multiple of NH={nh}")
    if not 0 <= tok < nv:
        raise ValueError(f"decode_step: token {tok} is outside the vocabulary [0, {nv})")
    if not 0 <= p < nT:
        raise ValueError(f"decode_step: pos {p} is outside the context [0, {nT})")
    if nth < 0:
        raise ValueError(f"decode_step: threads must be 0 (automatic) or more, got {nth}")

    cdef Py_ssize_t hs = nc // nh
    check("decode_step", "logits", logits, (nv,), cnp.NPY_FLOAT32, True)
    check("decode_step", "params", params, (-1,), cnp.NPY_FLOAT32, False)
    check("decode_step", "kcache", kcache, (nl, nh, nT, hs), cnp.NPY_FLOAT32, True)
    check("decode_step", "vcache", vcache, (nl, nh, nT, hs), cnp.NPY_FLOAT32, True)
    # In Python integers: no overflow whatever the sizes.
    want = n_params(nv, nT, nc, nl)
    if _dim(params, 0) != want:
        raise ValueError(
            f"decode_step: params holds {params.shape[0]} values, a model with V={nv}, "
            f"maxT={nT}, C={nc}, L={nl} has {want}")
    for out_name, out, in_name, inp in (
        ("logits", logits, "params", params), ("logits", logits, "kcache", kcache),
        ("logits", logits, "vcache", vcache), ("kcache", kcache, "vcache", vcache),
        ("kcache", kcache, "params", params), ("vcache", vcache, "params", params),
    ):
        check_apart("decode_step", out_name, out, in_name, inp)

    cdef int nt, nmax = dec_max_threads()
    cdef _Timing tm = None
    if nth > 0:
        nt = <int>min(nth, 1024)
    elif nmax <= 1 or <double>nl * 12 * nc * nc + <double>nv * nc < MIN_PARALLEL:
        nt = 1
    else:
        key = (nv, nT, nc, nl, nh, nmax, portable)
        tm = _timings.get(key)
        if tm is None:
            if len(_timings) > 64:
                _timings.clear()
            tm = _timings[key] = _Timing()
        nt = tm.choose(nmax)
    cdef int use_avx2 = _HAVE_AVX2 and not portable
    cdef float* lp = <float*>cnp.PyArray_DATA(<cnp.ndarray>logits)
    cdef const float* pp = <const float*>cnp.PyArray_DATA(<cnp.ndarray>params)
    cdef float* kp = <float*>cnp.PyArray_DATA(<cnp.ndarray>kcache)
    cdef float* vp = <float*>cnp.PyArray_DATA(<cnp.ndarray>vcache)
    cdef int64_t t64 = tok, p64 = p, V64 = nv, T64 = nT, C64 = nc, L64 = nl, NH64 = nh
    cdef int rc
    cdef double t0 = perf_counter() if tm is not None else 0.0
    with nogil:
        rc = dec_step(lp, pp, kp, vp, t64, p64, V64, T64, C64, L64, NH64, nt, use_avx2)
    if rc != 0:
        raise MemoryError("decode_step: could not allocate the scratch buffers")
    if tm is not None:
        tm.record(nt, perf_counter() - t0)
