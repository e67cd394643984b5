# cython: language_level=3
"""The one matrix-product engine of the kernels: a GEMM in the manner of BLIS, in C.

matmul.pyx runs every linear layer on ``gemm``; attention.pyx builds its
products from the same pieces (``pack_a``, ``pack_b``, ``micro``), so one
micro-kernel carries all the model's multiply-adds. Everything is ``static``
C, compiled into each module that cimports this (each CPU variant of each
kernel gets its own copy, built with its own instruction set).

The pieces:
- Packing. A micro-panel of A is MR = 6 rows of kc values, stored k-major
  (Ap[k * 6 + i]); a micro-panel of B is kc rows of NR = 16 columns
  (Bp[k * 16 + j]). Rows or columns past the matrix edge are zeros, so the
  micro-kernel always runs on a full tile. Element (i, k) of A is
  A[i * ars + k * acs] and (k, j) of B is B[k * brs + j * bcs]: a transposed
  operand is just other strides.
- ``micro``: one 6 x 16 tile of C from a pair of micro-panels, its
  accumulators in registers for the whole sum over k (see there).
- ``gemm``: C = beta * C + bias + residual + A @ B, called by every thread of
  an OpenMP parallel region; k in one block up to 512, else blocks of 256; the threads pack
  B together and then take blocks of C from a dynamic queue.

Why our own and not BLAS: OpenBLAS's sgemm, one call per thread on a static
band of the output, ran at the same speed on these shapes, but a band stalled
the whole product whenever the (shared, virtual) machine held up its thread;
here a late thread delays only its own blocks. Each element of C is the same
FMA chain in the same order whichever thread computes it, so results are
bit-identical across runs and across thread counts; and attention's products
come out of the same micro-kernel instead of hand-rolled loops.
"""

cdef extern from *:
    """
    #include <stddef.h>
    #include <stdlib.h>
    #include <string.h>
    #include <stdint.h>

    #if defined(_MSC_VER)
    #define CLLM_TLS __declspec(thread)
    #else
    #define CLLM_TLS __thread
    #endif

    /* With AVX-512 (the x86_64_v4 build) a tile is 12 rows of two 16-float vectors (12 x 32):
       24 accumulators, two B vectors and a broadcast, 27 of the 32 registers, 24 FMAs per 14
       loads, each FMA twice as wide as AVX2's. Elsewhere 6 rows of two 8-float vectors. Each
       element of C is the same FMA chain over k either way, so the builds agree to the bit. */
    #if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
    #define CLLM_WIDE 1
    enum { CLLM_MR = 12, CLLM_NR = 32, CLLM_KC = 256, CLLM_MC = 72 };
    #else
    enum { CLLM_MR = 6, CLLM_NR = 16, CLLM_KC = 256, CLLM_MC = 72 };
    #endif

    /* Packing. A micro-panel of A is CLLM_MR rows of kc values, stored k-major
       (Ap[k * MR + i]); a micro-panel of B is kc rows of CLLM_NR columns
       (Bp[k * NR + j]). Rows or columns past the matrix edge are zeros, so the
       micro-kernel always runs on a full tile. Element (i, k) of A is
       A[i * ars + k * acs] and (k, j) of B is B[k * brs + j * bcs]: a transposed
       operand is just other strides. */
    static void cllm_pack_a(float* Ap, const float* A, ptrdiff_t ars, ptrdiff_t acs,
                            int mr, int kc) {
        if (mr < CLLM_MR) memset(Ap, 0, sizeof(float) * CLLM_MR * kc);
        if (acs == 1) {
            for (int i = 0; i < mr; i++)
                for (int k = 0; k < kc; k++) Ap[k * CLLM_MR + i] = A[i * ars + k];
        } else {
            for (int k = 0; k < kc; k++)
                for (int i = 0; i < mr; i++) Ap[k * CLLM_MR + i] = A[i * ars + k * acs];
        }
    }

    static void cllm_pack_b(float* Bp, const float* B, ptrdiff_t brs, ptrdiff_t bcs,
                            int nr, int kc) {
        if (nr < CLLM_NR) memset(Bp, 0, sizeof(float) * CLLM_NR * kc);
        if (bcs == 1) {
            for (int k = 0; k < kc; k++)
                for (int j = 0; j < nr; j++) Bp[k * CLLM_NR + j] = B[k * brs + j];
        } else {
            for (int j = 0; j < nr; j++)
                for (int k = 0; k < kc; k++) Bp[k * CLLM_NR + j] = B[j * bcs + k * brs];
        }
    }

    /* A tile's store: rows [0, mr) x columns [0, nr) of C (rows ldc apart)
       from the product tile T (rows CLLM_NR apart), as
           C = (add ? C : 0) + T, then += bias[j], then += res[i, j]
       (bias, res NULL when there are none; res rows ldc apart). */
    static void cllm_store(float* C, ptrdiff_t ldc, const float* T, int mr, int nr, int add,
                         const float* bias, const float* res) {
        for (int i = 0; i < mr; i++) {
            float* c = C + i * ldc;
            const float* t = T + i * CLLM_NR;
            if (add) { for (int j = 0; j < nr; j++) c[j] += t[j]; }
            else { for (int j = 0; j < nr; j++) c[j] = t[j]; }
            if (bias) for (int j = 0; j < nr; j++) c[j] += bias[j];
            if (res) for (int j = 0; j < nr; j++) c[j] += res[i * ldc + j];
        }
    }

    /* cllm_pack_b of a B with contiguous rows (bcs = 1) that also adds each
       column's sum over the kc rows into colsum[0:nr]: a bias gradient,
       had while dout passes through for packing. Summed in row order, in
       float over 32 rows at a time, then in double, as matmul.pyx's own
       column sums are. */
    static void cllm_pack_b_sum(float* Bp, const float* B, ptrdiff_t brs, int nr, int kc,
                                float* colsum) {
        double acc[CLLM_NR] = {0};
        float part[CLLM_NR];
        if (nr < CLLM_NR) memset(Bp, 0, sizeof(float) * CLLM_NR * kc);
        for (int k0 = 0; k0 < kc; k0 += 32) {
            const int k1 = k0 + 32 < kc ? k0 + 32 : kc;
            for (int j = 0; j < nr; j++) part[j] = 0.0f;
            for (int k = k0; k < k1; k++)
                for (int j = 0; j < nr; j++) {
                    const float v = B[k * brs + j];
                    Bp[k * CLLM_NR + j] = v;
                    part[j] += v;
                }
            for (int j = 0; j < nr; j++) acc[j] += part[j];
        }
        for (int j = 0; j < nr; j++) colsum[j] = (float)(colsum[j] + acc[j]);
    }

    /* The micro-kernel: the (mr x nr) tile of C at C gets A Bp over kc,
       stored as cllm_store says. A is 6 rows by kc, element (i, k) at
       A[i * ars + k * acs]: a packed micro-panel (ars 1, acs 6), or rows of
       a row-major matrix read in place (ars = its row stride, acs 1), or
       columns of one (ars 1, acs = its row stride); its values are only
       ever broadcast, so any layout costs the same. Bp is a packed B panel. Twelve 8-float accumulators, two B vectors
       and one broadcast A value: 15 of the 16 AVX registers, 12 FMAs for 8
       loads. A full tile is stored straight from the registers; an edge tile
       goes through T. Not inlined, so gcc allocates registers for this loop
       alone. The baseline build lowers the vectors to SSE pairs; other
       compilers get plain loops. */
    #if defined(__GNUC__) || defined(__clang__)
    #ifndef CLLM_VEC8
    #define CLLM_VEC8  /* also defined by _gelu.pxd: whichever comes first */
    typedef float cllm_g8 __attribute__((vector_size(32)));
    static inline cllm_g8 cllm_gld(const float* p) { cllm_g8 v; memcpy(&v, p, sizeof v); return v; }
    static inline void cllm_gst(float* p, cllm_g8 v) { memcpy(p, &v, sizeof v); }
    #endif
    static inline void cllm_row(float* c, const float* bias, const float* r, int add,
                                cllm_g8 x0, cllm_g8 x1) {
        if (add) { x0 = cllm_gld(c) + x0; x1 = cllm_gld(c + 8) + x1; }
        if (bias) { x0 += cllm_gld(bias); x1 += cllm_gld(bias + 8); }
        if (r) { x0 += cllm_gld(r); x1 += cllm_gld(r + 8); }
        cllm_gst(c, x0);
        cllm_gst(c + 8, x1);
    }
    #if defined(CLLM_WIDE)
    typedef float cllm_g16 __attribute__((vector_size(64)));
    static inline cllm_g16 cllm_gld16(const float* p) { cllm_g16 v; memcpy(&v, p, sizeof v); return v; }
    static inline void cllm_gst16(float* p, cllm_g16 v) { memcpy(p, &v, sizeof v); }
    static __attribute__((noinline)) void cllm_micro(int kc, const float* A, ptrdiff_t ars,
                                                    ptrdiff_t acs, const float* Bp,
                                                    float* C, ptrdiff_t ldc, int mr, int nr, int add,
                                                    const float* bias, const float* res) {
        cllm_g16 c[CLLM_MR], d[CLLM_MR];
        for (int i = 0; i < CLLM_MR; i++) { c[i] = (cllm_g16){0}; d[i] = (cllm_g16){0}; }
        for (int i = 0; i < mr; i++) {
            __builtin_prefetch(C + i * ldc, 1);
            __builtin_prefetch(C + i * ldc + CLLM_NR - 1, 1);
        }
        #pragma GCC unroll 2
        for (int k = 0; k < kc; k++) {
            const cllm_g16 b0 = cllm_gld16(Bp), b1 = cllm_gld16(Bp + 16);
            #pragma GCC unroll 12
            for (int i = 0; i < CLLM_MR; i++) {
                const float a = A[i * ars];
                c[i] += a * b0;
                d[i] += a * b1;
            }
            A += acs;
            Bp += CLLM_NR;
        }
        if (mr == CLLM_MR && nr == CLLM_NR) {
            for (int i = 0; i < CLLM_MR; i++) {
                float* ci = C + i * ldc;
                cllm_g16 x = c[i], y = d[i];
                if (add) { x = cllm_gld16(ci) + x; y = cllm_gld16(ci + 16) + y; }
                if (bias) { x += cllm_gld16(bias); y += cllm_gld16(bias + 16); }
                if (res) { x += cllm_gld16(res + i * ldc); y += cllm_gld16(res + i * ldc + 16); }
                cllm_gst16(ci, x);
                cllm_gst16(ci + 16, y);
            }
            return;
        }
        float T[CLLM_MR * CLLM_NR];
        for (int i = 0; i < CLLM_MR; i++) { cllm_gst16(T + i * CLLM_NR, c[i]); cllm_gst16(T + i * CLLM_NR + 16, d[i]); }
        cllm_store(C, ldc, T, mr, nr, add, bias, res);
    }
    #else
    static __attribute__((noinline)) void cllm_micro(int kc, const float* A, ptrdiff_t ars,
                                                    ptrdiff_t acs, const float* Bp,
                                                    float* C, ptrdiff_t ldc, int mr, int nr, int add,
                                                    const float* bias, const float* res) {
        cllm_g8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
        cllm_g8 c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
        const ptrdiff_t r2 = 2 * ars, r3 = 3 * ars, r4 = 4 * ars, r5 = 5 * ars;
        /* C's tile is stored after the loop: ask for its lines now, so a
           tile that has left the cache costs no stall at the store. */
        for (int i = 0; i < mr; i++) {
            __builtin_prefetch(C + i * ldc, 1);
            __builtin_prefetch(C + i * ldc + CLLM_NR - 1, 1);
        }
        #pragma GCC unroll 4
        for (int k = 0; k < kc; k++) {
            const cllm_g8 b0 = cllm_gld(Bp), b1 = cllm_gld(Bp + 8);
            float a;
            a = A[0]; c00 += a * b0; c01 += a * b1;
            a = A[ars]; c10 += a * b0; c11 += a * b1;
            a = A[r2]; c20 += a * b0; c21 += a * b1;
            a = A[r3]; c30 += a * b0; c31 += a * b1;
            a = A[r4]; c40 += a * b0; c41 += a * b1;
            a = A[r5]; c50 += a * b0; c51 += a * b1;
            A += acs;
            Bp += CLLM_NR;
        }
        if (mr == CLLM_MR && nr == CLLM_NR) {
            cllm_row(C, bias, res, add, c00, c01);
            cllm_row(C + ldc, bias, res ? res + ldc : NULL, add, c10, c11);
            cllm_row(C + 2 * ldc, bias, res ? res + 2 * ldc : NULL, add, c20, c21);
            cllm_row(C + 3 * ldc, bias, res ? res + 3 * ldc : NULL, add, c30, c31);
            cllm_row(C + 4 * ldc, bias, res ? res + 4 * ldc : NULL, add, c40, c41);
            cllm_row(C + 5 * ldc, bias, res ? res + 5 * ldc : NULL, add, c50, c51);
            return;
        }
        float T[CLLM_MR * CLLM_NR];
        cllm_gst(T, c00); cllm_gst(T + 8, c01); cllm_gst(T + 16, c10); cllm_gst(T + 24, c11);
        cllm_gst(T + 32, c20); cllm_gst(T + 40, c21); cllm_gst(T + 48, c30); cllm_gst(T + 56, c31);
        cllm_gst(T + 64, c40); cllm_gst(T + 72, c41); cllm_gst(T + 80, c50); cllm_gst(T + 88, c51);
        cllm_store(C, ldc, T, mr, nr, add, bias, res);
    }
    #endif
    #else
    static void cllm_micro(int kc, const float* A, ptrdiff_t ars, ptrdiff_t acs, const float* Bp,
                           float* C, ptrdiff_t ldc, int mr, int nr, int add, const float* bias,
                           const float* res) {
        float T[CLLM_MR * CLLM_NR];
        for (int t = 0; t < CLLM_MR * CLLM_NR; t++) T[t] = 0.0f;
        for (int k = 0; k < kc; k++)
            for (int i = 0; i < CLLM_MR; i++)
                for (int j = 0; j < CLLM_NR; j++)
                    T[i * CLLM_NR + j] += A[k * acs + i * ars] * Bp[k * CLLM_NR + j];
        cllm_store(C, ldc, T, mr, nr, add, bias, res);
    }
    #endif

    /* How the work of C (M x N) is cut on nt threads: row blocks of
       CLLM_MC rows times column groups of `group` panels, enough blocks for
       the queue to even out the threads' work. With more than one column
       group, A is packed once for all of them (shared) rather than by each
       block. */
    typedef struct { int panels, row_blocks, col_groups, group, shared_a, kcmax; } cllm_plan;

    static cllm_plan cllm_gemm_plan(int M, int N, int K, int nt) {
        cllm_plan p;
        p.panels = (N + CLLM_NR - 1) / CLLM_NR;
        p.row_blocks = (M + CLLM_MC - 1) / CLLM_MC;
        p.col_groups = (4 * nt + p.row_blocks - 1) / p.row_blocks;
        if (p.col_groups > p.panels) p.col_groups = p.panels;
        if (p.col_groups < 1) p.col_groups = 1;
        p.group = (p.panels + p.col_groups - 1) / p.col_groups;
        p.col_groups = (p.panels + p.group - 1) / p.group;
        p.shared_a = p.col_groups > 1;  /* cllm_gemm drops it for an A read in place */
        /* up to 512 values of k in one block: one pass over C instead of two */
        p.kcmax = K <= 2 * CLLM_KC ? K : CLLM_KC;
        return p;
    }

    /* Floats of scratch for a product of an M x K by a K x N matrix on nt threads. */
    static size_t cllm_gemm_scratch(int M, int N, int K, int nt) {
        const cllm_plan p = cllm_gemm_plan(M, N, K, nt);
        const size_t mpad = ((size_t)M + CLLM_MR - 1) / CLLM_MR * CLLM_MR;
        const size_t a = mpad > (size_t)nt * CLLM_MC ? mpad : (size_t)nt * CLLM_MC;
        return (size_t)p.kcmax * ((size_t)p.panels * CLLM_NR + a);
    }

    /* C (M x N) = beta * C + bias + res + A (M x K) @ B (K x N), beta 0 or 1,
       res (may be NULL) an M x N array with rows ldc apart like C.
       Called by every thread of an OpenMP parallel region (or outside one,
       with nt = 1), each with its thread number t; scratch is
       cllm_gemm_scratch(M, N, K, nt) floats shared by all of them.
       For each block of k (all of K up to 512, else CLLM_KC = 256 at a time:
       each block is one more pass over C) the threads pack B (and a shared
       A) together, then take blocks of C from a dynamic queue: a thread the
       machine holds up delays only its own blocks. Every element of C is the
       same sum in the same order whichever thread computes it, so results
       do not depend on the thread count. post, if not NULL, is called on
       each block of C as soon as its sums are complete (still in cache):
       post(ctx, block, ldc, rows, cols, at), at the block's offset in C.
       colsum, if not NULL (and bcs is 1), gets B's column sums added, as B
       is packed. */
    typedef void (*cllm_post)(void* ctx, float* C, ptrdiff_t ldc, int rows, int cols,
                              ptrdiff_t at);

    static void cllm_gemm(int t, int nt, int M, int N, int K,
                          const float* A, ptrdiff_t ars, ptrdiff_t acs,
                          const float* B, ptrdiff_t brs, ptrdiff_t bcs,
                          int beta, float* C, ptrdiff_t ldc,
                          const float* bias, const float* res, float* scratch,
                          cllm_post post, void* ctx, float* colsum) {
        cllm_plan pl = cllm_gemm_plan(M, N, K, nt);
        /* A with rows contiguous in k is read in place by the micro-kernel
           (its values are only broadcast, so packing buys nothing), but for
           a last, partial tile, whose missing rows are zeros from packing. */
        const int in_place = acs == 1;
        if (in_place) pl.shared_a = 0;
        const int panels = pl.panels, col_groups = pl.col_groups, group = pl.group;
        const int a_panels = (M + CLLM_MR - 1) / CLLM_MR;
        float* Bp = scratch;
        float* Ash = scratch + (size_t)pl.kcmax * panels * CLLM_NR;
        float* Ap = Ash + (size_t)t * pl.kcmax * CLLM_MC;
        for (int k0 = 0; k0 < K; k0 += pl.kcmax) {
            const int kc = K - k0 < pl.kcmax ? K - k0 : pl.kcmax;
            const int first = k0 == 0;
            int p, item;
            #pragma omp for schedule(static) nowait
            for (p = 0; p < panels; p++) {
                const int j0 = p * CLLM_NR;
                const int nr = N - j0 < CLLM_NR ? N - j0 : CLLM_NR;
                if (colsum)
                    cllm_pack_b_sum(Bp + (size_t)p * kc * CLLM_NR, B + k0 * brs + j0, brs, nr, kc,
                                    colsum + j0);
                else
                    cllm_pack_b(Bp + (size_t)p * kc * CLLM_NR, B + k0 * brs + j0 * bcs, brs, bcs, nr, kc);
            }
            if (pl.shared_a) {
                #pragma omp for schedule(static) nowait
                for (p = 0; p < a_panels; p++) {
                    const int i = p * CLLM_MR;
                    const int mr = M - i < CLLM_MR ? M - i : CLLM_MR;
                    cllm_pack_a(Ash + (size_t)i * kc, A + i * ars + k0 * acs, ars, acs, mr, kc);
                }
            }
            #pragma omp barrier
            #pragma omp for schedule(dynamic, 1)
            for (item = 0; item < pl.row_blocks * col_groups; item++) {
                const int i0 = (item / col_groups) * CLLM_MC;
                const int mc = M - i0 < CLLM_MC ? M - i0 : CLLM_MC;
                const int p0 = (item % col_groups) * group;
                const int p1 = p0 + group < panels ? p0 + group : panels;
                const float* Ablock = pl.shared_a ? Ash + (size_t)i0 * kc : Ap;
                if (!pl.shared_a) {
                    for (int i = 0; i < mc; i += CLLM_MR) {
                        const int mr = mc - i < CLLM_MR ? mc - i : CLLM_MR;
                        if (!in_place || mr < CLLM_MR)
                            cllm_pack_a(Ap + (size_t)i * kc, A + (i0 + i) * ars + k0 * acs, ars, acs, mr, kc);
                    }
                }
                for (int pp = p0; pp < p1; pp++) {
                    const int j0 = pp * CLLM_NR;
                    const int nr = N - j0 < CLLM_NR ? N - j0 : CLLM_NR;
                    for (int i = 0; i < mc; i += CLLM_MR) {
                        const int mr = mc - i < CLLM_MR ? mc - i : CLLM_MR;
                        const ptrdiff_t at = (ptrdiff_t)(i0 + i) * ldc + j0;
                        const int direct = in_place && mr == CLLM_MR;
                        cllm_micro(kc, direct ? A + (i0 + i) * ars + k0 : Ablock + (size_t)i * kc,
                                   direct ? ars : 1, direct ? 1 : CLLM_MR, Bp + (size_t)pp * kc * CLLM_NR,
                                   C + at, ldc, mr, nr, !first || beta,
                                   first && bias ? bias + j0 : NULL, first && res ? res + at : NULL);
                    }
                }
                if (post && k0 + kc >= K) {
                    const int j0 = p0 * CLLM_NR, j1 = p1 * CLLM_NR < N ? p1 * CLLM_NR : N;
                    const ptrdiff_t at = (ptrdiff_t)i0 * ldc + j0;
                    post(ctx, C + at, ldc, mc, j1 - j0, at);
                }
            }
        }
    }

    /* Scratch kept per calling thread from call to call: a fresh block of
       this size comes from the OS as new pages, and faulting them in costs
       more than a small product. It is never freed (at most a few MB a
       thread). NULL if it cannot be had. */
    static CLLM_TLS void* cllm_scratch_raw = NULL;
    static CLLM_TLS size_t cllm_scratch_cap = 0;
    static float* cllm_gemm_buffer(size_t floats) {
        if (floats > cllm_scratch_cap) {
            free(cllm_scratch_raw);
            cllm_scratch_raw = malloc(floats * sizeof(float) + 64);
            cllm_scratch_cap = cllm_scratch_raw ? floats : 0;
            if (!cllm_scratch_raw) return NULL;
        }
        return (float*)(((uintptr_t)cllm_scratch_raw + 63) & ~(uintptr_t)63);
    }
    """
    enum:
        MR "CLLM_MR"  # rows of a micro-kernel tile (12 in the AVX-512 build, else 6)
        NR "CLLM_NR"  # columns of a micro-kernel tile (32 in the AVX-512 build, else 16)
    ctypedef void (*post_fn "cllm_post")(void* ctx, float* C, Py_ssize_t ldc, int rows, int cols,
                                         Py_ssize_t at) noexcept nogil
    size_t gemm_scratch "cllm_gemm_scratch"(int M, int N, int K, int nt) noexcept nogil
    float* gemm_buffer "cllm_gemm_buffer"(size_t floats) noexcept nogil
    void gemm "cllm_gemm"(int t, int nt, int M, int N, int K,
                         const float* A, Py_ssize_t ars, Py_ssize_t acs,
                         const float* B, Py_ssize_t brs, Py_ssize_t bcs,
                         bint beta, float* C, Py_ssize_t ldc,
                         const float* bias, const float* res, float* scratch,
                         post_fn post, void* ctx, float* colsum) noexcept nogil
    void pack_a "cllm_pack_a"(float* Ap, const float* A, Py_ssize_t ars, Py_ssize_t acs,
                              int mr, int kc) noexcept nogil
    void pack_b "cllm_pack_b"(float* Bp, const float* B, Py_ssize_t brs, Py_ssize_t bcs,
                              int nr, int kc) noexcept nogil
    void micro "cllm_micro"(int kc, const float* A, Py_ssize_t ars, Py_ssize_t acs,
                            const float* Bp, float* C, Py_ssize_t ldc,
                            int mr, int nr, bint add, const float* bias,
                            const float* res) noexcept nogil
