# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Fused causal self-attention, forward and backward, in the manner of FlashAttention.

qkv rows hold q | k | v, each C wide; head h owns columns h*hs .. (h+1)*hs
of each (hs = C / NH), as in GPT-2's c_attn. For batch b, head h and query
position t (rows b*T + t):

    s_tj = q_t . k_j / sqrt(hs)  for j <= t (causal)
    out_t = sum_j softmax(s_t)_j v_j,   lse_t = log sum_j exp(s_tj)

- ``attention_forward`` overwrites ``out`` and ``lse``.
- ``attention_backward`` ADDS into ``dqkv``, or overwrites it when
  accumulate is False (every element belongs to one (batch, head) pair).

No T x T matrix is ever stored. The forward takes two query rows at a time:
their scores against every key they may see (one row of T floats each), a
plain two-pass softmax of each row, and both output rows in one pass over V;
only lse is kept for the backward. The backward recomputes the probabilities
of one BQ x BK tile at a time from lse, with D_t = dout_t . out_t standing in
for the row sums of P * dP (FlashAttention-2's trick), so it needs out, not
the probabilities.

Work is split over OpenMP threads by (batch, head) pairs, statically. A pair
reads and writes only its own columns, so threads never share an output, and
each output is summed in a fixed order: results are bit-identical across runs
and across thread counts.

Every product here is the same small operation, out[0:W] += sum_r a_r row_r
over rows of a contiguous buffer (see _acc): K and V are copied once per
pair into zero-padded buffers (K transposed and pre-scaled by 1/sqrt(hs)),
so the vector loops run over a fixed width of 16 or 32 floats that gcc keeps
in registers. exp is the vectorizable one from _common.pxd.

``reference.py`` holds numpy versions with the same signatures.
"""
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport INFINITY, log, sqrt
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc

cimport numpy as cnp
cimport openmp

from cllm_app.kernels._common cimport check, check_2d, check_apart, fast_exp

cnp.import_array()

cdef enum:
    BK = 32     # keys per block: the width of a score row
    BQ = 32     # queries per block
    PAD = 16    # head size and buffer strides are rounded up to this many floats
    LINE = 64   # bytes; every thread's scratch starts on its own cache line


# ---------------------------------------------------------------------------
# The one product, for one output row or two:
#     out[0:W]  (+)= sum_{r < n} coef[r * cs]  * rows[r * rs + 0:W]
#     out2[0:W] (+)= sum_{r < n} coef2[r * cs] * rows[r * rs + 0:W]
# with W a multiple of 16, starting from zero if zero is true (else adding
# into out). Every product of attention is of this form (see the callers).
#
# It is written in C with GCC/Clang vector extensions so that the
# accumulators are vector registers for the whole sum: as Cython loops over a
# local float array, gcc 12 kept them in registers in a small function but
# spilled them to the stack once inlined here, a 4x loss. Two output rows
# share every row they read, so the two-row form runs 8 independent FMA
# chains of 32-wide chunks, enough to hide the FMA latency, where a single
# row of 32 runs 4 and is latency-bound. The baseline build lowers the
# 8-wide vectors to SSE pairs; other compilers get plain loops. Products are
# separately rounded or fused (FMA) as the build's instruction set allows, the
# same way on every call.
# ---------------------------------------------------------------------------

cdef extern from *:
    """
    #include <string.h>
    #if defined(__GNUC__) || defined(__clang__)
    typedef float cllm_v8 __attribute__((vector_size(32)));
    static inline cllm_v8 cllm_ld(const float* p) { cllm_v8 v; memcpy(&v, p, sizeof v); return v; }
    static inline void cllm_st(float* p, cllm_v8 v) { memcpy(p, &v, sizeof v); }

    /* One or two rows of K accumulators of 8 floats: out[0 : 8K], out2[0 : 8K] */
    #define CLLM_ACC1(K)                                                       \
        cllm_v8 a[K];                                                          \
        for (int k = 0; k < K; k++) a[k] = zero ? (cllm_v8){0} : cllm_ld(out + 8 * k); \
        for (Py_ssize_t r = 0; r < n; r++) {                                   \
            const float c = coef[r * cs];                                      \
            const float* row = rows + r * rs;                                  \
            for (int k = 0; k < K; k++) a[k] += c * cllm_ld(row + 8 * k);      \
        }                                                                      \
        for (int k = 0; k < K; k++) cllm_st(out + 8 * k, a[k]);
    #define CLLM_ACC2(K)                                                       \
        cllm_v8 a[K], b[K];                                                    \
        for (int k = 0; k < K; k++) {                                          \
            a[k] = zero ? (cllm_v8){0} : cllm_ld(out + 8 * k);                 \
            b[k] = zero ? (cllm_v8){0} : cllm_ld(out2 + 8 * k);                \
        }                                                                      \
        for (Py_ssize_t r = 0; r < n; r++) {                                   \
            const float c = coef[r * cs], c2 = coef2[r * cs];                  \
            const float* row = rows + r * rs;                                  \
            for (int k = 0; k < K; k++) {                                      \
                const cllm_v8 x = cllm_ld(row + 8 * k);                        \
                a[k] += c * x;                                                 \
                b[k] += c2 * x;                                                \
            }                                                                  \
        }                                                                      \
        for (int k = 0; k < K; k++) { cllm_st(out + 8 * k, a[k]); cllm_st(out2 + 8 * k, b[k]); }
    #else
    #define CLLM_ACC1(K)                                                       \
        for (int k = 0; k < 8 * K; k++) {                                      \
            float a = zero ? 0.0f : out[k];                                    \
            for (Py_ssize_t r = 0; r < n; r++) a += coef[r * cs] * rows[r * rs + k]; \
            out[k] = a;                                                        \
        }
    #define CLLM_ACC2(K)                                                       \
        for (int k = 0; k < 8 * K; k++) {                                      \
            float a = zero ? 0.0f : out[k], b = zero ? 0.0f : out2[k];         \
            for (Py_ssize_t r = 0; r < n; r++) {                               \
                a += coef[r * cs] * rows[r * rs + k];                          \
                b += coef2[r * cs] * rows[r * rs + k];                         \
            }                                                                  \
            out[k] = a;                                                        \
            out2[k] = b;                                                       \
        }
    #endif

    /* Not inlined: inside the callers' loops gcc keeps exp's constants in
       vector registers and then spills accumulators here; a call costs less. */
    #if defined(__GNUC__) || defined(__clang__)
    #define CLLM_KERNEL static __attribute__((noinline))
    #else
    #define CLLM_KERNEL static
    #endif
    #define CLLM_ACC1_ARGS float* out, const float* coef, Py_ssize_t cs, \
        const float* rows, Py_ssize_t rs, Py_ssize_t n, int zero
    #define CLLM_ACC2_ARGS float* out, float* out2, const float* coef, const float* coef2, \
        Py_ssize_t cs, const float* rows, Py_ssize_t rs, Py_ssize_t n, int zero
    CLLM_KERNEL void cllm_acc1_64(CLLM_ACC1_ARGS) { CLLM_ACC1(8) }
    CLLM_KERNEL void cllm_acc1_32(CLLM_ACC1_ARGS) { CLLM_ACC1(4) }
    CLLM_KERNEL void cllm_acc1_16(CLLM_ACC1_ARGS) { CLLM_ACC1(2) }
    CLLM_KERNEL void cllm_acc2_32(CLLM_ACC2_ARGS) { CLLM_ACC2(4) }
    CLLM_KERNEL void cllm_acc2_16(CLLM_ACC2_ARGS) { CLLM_ACC2(2) }

    static inline void cllm_acc1(float* out, Py_ssize_t W, const float* coef, Py_ssize_t cs,
                                 const float* rows, Py_ssize_t rs, Py_ssize_t n, int zero) {
        Py_ssize_t w = 0;
        for (; w + 64 <= W; w += 64) cllm_acc1_64(out + w, coef, cs, rows + w, rs, n, zero);
        if (w + 32 <= W) { cllm_acc1_32(out + w, coef, cs, rows + w, rs, n, zero); w += 32; }
        if (w < W) cllm_acc1_16(out + w, coef, cs, rows + w, rs, n, zero);
    }
    static inline void cllm_acc2(float* out, float* out2, Py_ssize_t W, const float* coef,
                                 const float* coef2, Py_ssize_t cs, const float* rows,
                                 Py_ssize_t rs, Py_ssize_t n, int zero) {
        Py_ssize_t w = 0;
        for (; w + 32 <= W; w += 32)
            cllm_acc2_32(out + w, out2 + w, coef, coef2, cs, rows + w, rs, n, zero);
        if (w < W) cllm_acc2_16(out + w, out2 + w, coef, coef2, cs, rows + w, rs, n, zero);
    }
    """
    void _acc1 "cllm_acc1"(float* out, Py_ssize_t W, const float* coef, Py_ssize_t cs,
                           const float* rows, Py_ssize_t rs, Py_ssize_t n,
                           bint zero) noexcept nogil
    void _acc2 "cllm_acc2"(float* out, float* out2, Py_ssize_t W, const float* coef,
                           const float* coef2, Py_ssize_t cs, const float* rows, Py_ssize_t rs,
                           Py_ssize_t n, bint zero) noexcept nogil


# ---------------------------------------------------------------------------
# Per-thread scratch, in floats. Tp is T rounded up to BK, hsp is hs rounded
# up to PAD. The copies below write the padding too (zeros), and every other
# buffer is written before it is read, so scratch needs no clearing.
# ---------------------------------------------------------------------------

cdef inline Py_ssize_t _round_up(Py_ssize_t x, Py_ssize_t m) noexcept nogil:
    return (x + m - 1) // m * m


cdef inline Py_ssize_t _forward_scratch(Py_ssize_t Tp, Py_ssize_t hsp) noexcept nogil:
    # Kt tiles (Tp / BK, hsp, BK), V (Tp, hsp), p (2, Tp), O (2, hsp)
    return _round_up(2 * Tp * hsp + 2 * Tp + 2 * hsp, LINE // sizeof(float))


cdef inline Py_ssize_t _backward_scratch(Py_ssize_t Tp, Py_ssize_t hsp) noexcept nogil:
    # Kt, Vt tiles; K, Q, dO, dQ (Tp, hsp); dK, dV (BK, hsp); P, G (BQ, BK);
    # s, dp (2, BK); D (Tp)
    return _round_up(6 * Tp * hsp + 2 * BK * hsp + 2 * BQ * BK + 4 * BK + Tp,
                     LINE // sizeof(float))


# Rows [0, T) x cols [0, hs) of a strided source into dst (T, hsp), with
# zeros in columns [hs, hsp).
cdef inline void _copy_rows(float* dst, Py_ssize_t hsp, const float* src, Py_ssize_t stride,
                            Py_ssize_t T, Py_ssize_t hs) noexcept nogil:
    cdef Py_ssize_t j, d
    for j in range(T):
        for d in range(hs):
            dst[j * hsp + d] = src[j * stride + d]
        for d in range(hs, hsp):
            dst[j * hsp + d] = 0.0


# The same, times scale and transposed in tiles, one per block of BK keys:
# key j, feature d goes to dst[(j // BK) * hsp * BK + d * BK + j % BK]. A
# tile is one contiguous (hsp, BK) block, so the score loop reads it at stride
# BK. (A plain (hsp, Tp) transpose is read at stride Tp, a power of two for
# the usual T, and its rows then share a few L1 sets and evict each other.)
cdef inline void _copy_transposed(float* dst, Py_ssize_t hsp, const float* src,
                                  Py_ssize_t stride, Py_ssize_t T, Py_ssize_t hs,
                                  float scale) noexcept nogil:
    cdef Py_ssize_t j0 = 0, j, d, nk
    cdef float* tile
    cdef const float* col
    while j0 < T:
        nk = BK if T - j0 > BK else T - j0
        tile = dst + j0 * hsp
        for d in range(hs):
            col = src + j0 * stride + d
            for j in range(nk):
                tile[d * BK + j] = col[j * stride] * scale
            for j in range(nk, BK):
                tile[d * BK + j] = 0.0
        j0 += BK


# One query row's softmax: p[0:n] holds its scores and gets exp(score - max);
# [n, width) (width a multiple of 8, <= the row's buffer) gets zeros. Its max
# and the sum of the exponentials go to m and l. A whole row of scores fits in
# scratch for any T, so one pass finds the max and one takes the exponentials:
# no running rescaling as in a block-by-block (online) softmax.
cdef inline void _softmax_row(float* p, Py_ssize_t n, Py_ssize_t width, float* m,
                              float* l) noexcept nogil:
    cdef float mx[8]
    cdef float sm[8]
    cdef Py_ssize_t j, k
    cdef float best, e
    for j in range(n, width):
        p[j] = -INFINITY
    for k in range(8):
        mx[k] = p[k]
    j = 8
    while j < width:
        for k in range(8):
            mx[k] = p[j + k] if p[j + k] > mx[k] else mx[k]
        j += 8
    best = mx[0]
    for k in range(1, 8):
        best = mx[k] if mx[k] > best else best
    for k in range(8):
        sm[k] = 0.0
    j = 0
    while j < width:
        for k in range(8):
            e = fast_exp(p[j + k] - best)
            p[j + k] = e
            sm[k] += e
        j += 8
    m[0] = best
    l[0] = ((sm[0] + sm[1]) + (sm[2] + sm[3])) + ((sm[4] + sm[5]) + (sm[6] + sm[7]))


# One (batch, head) pair. q, k, v point at the pair's first row of qkv (row
# stride C3); y at its first row of out (stride C); lse_row at lse[b, h, 0].
# Query rows go two at a time (rows i and i + 1 share every K and V row they
# read): their scores against all the keys they may see, the softmax of each
# row, then both output rows in one pass over V. Row i's probability of key
# i + 1 is zero, so both rows use the same key count in that pass.
cdef void _forward_pair(float* y, float* lse_row, const float* q, const float* k,
                        const float* v, Py_ssize_t C3, Py_ssize_t C, Py_ssize_t T,
                        Py_ssize_t hs, Py_ssize_t hsp, Py_ssize_t Tp, float scale,
                        float* buf) noexcept nogil:
    cdef float* Kt = buf                 # tiles (Tp / BK, hsp, BK), k^T * scale
    cdef float* Vb = Kt + hsp * Tp       # (Tp, hsp)
    cdef float* p = Vb + Tp * hsp        # (2, Tp), scores, then exponentials, of two rows
    cdef float* O = p + 2 * Tp           # (2, hsp), unnormalized output rows
    cdef float ml[4]                     # max and sum of rows i and i + 1
    cdef Py_ssize_t i, j0, d, n, width, r, rows
    cdef float inv
    _copy_transposed(Kt, hsp, k, C3, T, hs, scale)
    _copy_rows(Vb, hsp, v, C3, T, hs)
    i = 0
    while i < T:
        rows = 2 if i + 1 < T else 1
        n = i + rows                     # keys the last of the rows sees
        width = _round_up(n, 8)
        j0 = 0
        while j0 < n:
            if rows == 2:
                _acc2(p + j0, p + Tp + j0, BK, q + i * C3, q + (i + 1) * C3, 1, Kt + j0 * hsp,
                      BK, hs, True)
            else:
                _acc1(p + j0, BK, q + i * C3, 1, Kt + j0 * hsp, BK, hs, True)
            j0 += BK
        _softmax_row(p, i + 1, width, ml, ml + 1)
        if rows == 2:
            _softmax_row(p + Tp, n, width, ml + 2, ml + 3)
            _acc2(O, O + hsp, hsp, p, p + Tp, 1, Vb, hsp, n, True)
        else:
            _acc1(O, hsp, p, 1, Vb, hsp, n, True)
        for r in range(rows):
            inv = <float>1.0 / ml[2 * r + 1]
            for d in range(hs):
                y[(i + r) * C + d] = O[r * hsp + d] * inv
            lse_row[i + r] = ml[2 * r] + log(ml[2 * r + 1])
        i += 2


# One query row of a backward tile: from its scores s (BK,) and dout . v
# products dp (BK,), the probabilities P = exp(s - lse) (0 past kv) and
# G = scale * P * (dp - D), the gradient of the unscaled scores.
cdef inline void _backward_row(float* P, float* G, const float* s, const float* dp,
                               float lse_i, float D_i, Py_ssize_t kv,
                               float scale) noexcept nogil:
    cdef Py_ssize_t j
    cdef float pj
    for j in range(BK):
        pj = fast_exp(s[j] - lse_i)
        pj = pj if j < kv else <float>0.0
        P[j] = pj
        G[j] = pj * (dp[j] - D_i) * scale


# One (batch, head) pair of the backward; pointers as in _forward_pair, plus
# dy/o (dout/out rows, stride C), and dq/dk/dv (dqkv, stride C3), added into
# (or written, if not accumulate).
# Key blocks are the outer loop: dK and dV of a block are complete after its
# query rows (from j0 on), dQ collects over all key blocks.
cdef void _backward_pair(float* dq, float* dk, float* dv, const float* dy, const float* o,
                         const float* q, const float* k, const float* v,
                         const float* lse_row, Py_ssize_t C3, Py_ssize_t C, Py_ssize_t T,
                         Py_ssize_t hs, Py_ssize_t hsp, Py_ssize_t Tp, float scale,
                         bint accumulate, float* buf) noexcept nogil:
    cdef float* Kt = buf                 # tiles (Tp / BK, hsp, BK), k^T * scale
    cdef float* Vt = Kt + hsp * Tp       # tiles (Tp / BK, hsp, BK), v^T
    cdef float* Kb = Vt + hsp * Tp       # (Tp, hsp), k
    cdef float* Qb = Kb + Tp * hsp       # (Tp, hsp), q
    cdef float* dOb = Qb + Tp * hsp      # (Tp, hsp), dout
    cdef float* dQ = dOb + Tp * hsp      # (Tp, hsp), accumulated dq
    cdef float* dK = dQ + Tp * hsp       # (BK, hsp), dk of one key block
    cdef float* dV = dK + BK * hsp       # (BK, hsp), dv of one key block
    cdef float* P = dV + BK * hsp        # (BQ, BK), probabilities of a tile
    cdef float* G = P + BQ * BK          # (BQ, BK), scale * P * (dP - D)
    cdef float* s = G + BQ * BK          # (2, BK), scores of two rows
    cdef float* dp = s + 2 * BK          # (2, BK), dout . v of two rows
    cdef float* D = dp + 2 * BK          # (Tp,), dout_t . out_t
    cdef Py_ssize_t i0, j0, r, i, j, d, nq, nk, kv
    cdef float D_i
    _copy_transposed(Kt, hsp, k, C3, T, hs, scale)
    _copy_transposed(Vt, hsp, v, C3, T, hs, 1.0)
    _copy_rows(Kb, hsp, k, C3, T, hs)
    _copy_rows(Qb, hsp, q, C3, T, hs)
    _copy_rows(dOb, hsp, dy, C, T, hs)
    for i in range(T):
        D_i = 0.0
        for d in range(hs):
            D_i = D_i + dy[i * C + d] * o[i * C + d]
        D[i] = D_i
    for i in range(Tp * hsp):
        dQ[i] = 0.0
    j0 = 0
    while j0 < T:
        nk = BK if T - j0 > BK else T - j0
        for i in range(BK * hsp):
            dK[i] = 0.0
            dV[i] = 0.0
        i0 = j0
        while i0 < T:
            nq = BQ if T - i0 > BQ else T - i0
            # P and G of the tile, two query rows at a time
            r = 0
            while r < nq:
                i = i0 + r
                kv = BK if i - j0 + 1 > BK else i - j0 + 1
                if r + 1 < nq:
                    _acc2(s, s + BK, BK, Qb + i * hsp, Qb + (i + 1) * hsp, 1, Kt + j0 * hsp,
                          BK, hs, True)
                    _acc2(dp, dp + BK, BK, dOb + i * hsp, dOb + (i + 1) * hsp, 1,
                          Vt + j0 * hsp, BK, hs, True)
                    _backward_row(P + r * BK, G + r * BK, s, dp, lse_row[i], D[i], kv, scale)
                    kv = BK if kv == BK else kv + 1
                    _backward_row(P + (r + 1) * BK, G + (r + 1) * BK, s + BK, dp + BK,
                                  lse_row[i + 1], D[i + 1], kv, scale)
                    r += 2
                else:
                    _acc1(s, BK, Qb + i * hsp, 1, Kt + j0 * hsp, BK, hs, True)
                    _acc1(dp, BK, dOb + i * hsp, 1, Vt + j0 * hsp, BK, hs, True)
                    _backward_row(P + r * BK, G + r * BK, s, dp, lse_row[i], D[i], kv, scale)
                    r += 1
            # dV[j] += sum_r P[r, j] dout[r] and dK[j] += sum_r G[r, j] q[r], two keys at a time
            j = 0
            while j + 1 < nk:
                _acc2(dV + j * hsp, dV + (j + 1) * hsp, hsp, P + j, P + j + 1, BK,
                      dOb + i0 * hsp, hsp, nq, False)
                _acc2(dK + j * hsp, dK + (j + 1) * hsp, hsp, G + j, G + j + 1, BK,
                      Qb + i0 * hsp, hsp, nq, False)
                j += 2
            if j < nk:
                _acc1(dV + j * hsp, hsp, P + j, BK, dOb + i0 * hsp, hsp, nq, False)
                _acc1(dK + j * hsp, hsp, G + j, BK, Qb + i0 * hsp, hsp, nq, False)
            # dQ[r] += sum_j G[r, j] k[j], two query rows at a time
            r = 0
            while r + 1 < nq:
                _acc2(dQ + (i0 + r) * hsp, dQ + (i0 + r + 1) * hsp, hsp, G + r * BK,
                      G + (r + 1) * BK, 1, Kb + j0 * hsp, hsp, nk, False)
                r += 2
            if r < nq:
                _acc1(dQ + (i0 + r) * hsp, hsp, G + r * BK, 1, Kb + j0 * hsp, hsp, nk, False)
            i0 += BQ
        for j in range(nk):
            if accumulate:
                for d in range(hs):
                    dk[(j0 + j) * C3 + d] += dK[j * hsp + d]
                    dv[(j0 + j) * C3 + d] += dV[j * hsp + d]
            else:
                for d in range(hs):
                    dk[(j0 + j) * C3 + d] = dK[j * hsp + d]
                    dv[(j0 + j) * C3 + d] = dV[j * hsp + d]
        j0 += BK
    for i in range(T):
        if accumulate:
            for d in range(hs):
                dq[i * C3 + d] += dQ[i * hsp + d]
        else:
            for d in range(hs):
                dq[i * C3 + d] = dQ[i * hsp + d]


cdef int _shapes(str fn, object qkv, Py_ssize_t B, Py_ssize_t T, Py_ssize_t NH,
                 Py_ssize_t* C) except -1:
    cdef Py_ssize_t n, c3
    if B < 0 or T < 0 or NH < 1:
        raise ValueError(f"{fn}: need B >= 0, T >= 0 and NH >= 1, got {B}, {T}, {NH}")
    check_2d(fn, "qkv", qkv, &n, &c3)
    if c3 % 3 != 0 or c3 == 0:
        raise ValueError(f"{fn}: qkv has {c3} columns, expected 3 * C")
    C[0] = c3 // 3
    if C[0] % NH != 0:
        raise ValueError(f"{fn}: C = {C[0]} is not a multiple of NH = {NH}")
    check(fn, "qkv", qkv, (B * T, 3 * C[0]), cnp.NPY_FLOAT32, False)
    return 0


# Scratch memory is kept from call to call: freshly allocated blocks of this
# size come from the OS as new pages, and faulting them in cost several
# percent of a training step. One cached block is lent to one call at a time
# (taken and returned under the GIL, so threads cannot share it); a call that
# finds it lent allocates its own.
cdef void* _cache = NULL
cdef size_t _cache_bytes = 0
cdef bint _cache_lent = False


cdef float* _take_scratch(str fn, size_t nbytes, void** own) except NULL:
    """Scratch of nbytes, 64-byte aligned; sets own[0] if it is a private block to free."""
    global _cache, _cache_bytes, _cache_lent
    cdef void* mem
    own[0] = NULL
    nbytes += LINE
    if _cache_lent:
        own[0] = malloc(nbytes)
        mem = own[0]
    else:
        if _cache_bytes < nbytes:
            free(_cache)
            _cache = malloc(nbytes)
            _cache_bytes = nbytes if _cache != NULL else 0
        mem = _cache
        _cache_lent = mem != NULL
    if mem == NULL:
        raise MemoryError(f"{fn}: could not allocate {nbytes} bytes of scratch")
    return <float*>((<uintptr_t>mem + LINE - 1) & ~(<uintptr_t>(LINE - 1)))


cdef void _return_scratch(void* own) noexcept:
    global _cache_lent
    if own != NULL:
        free(own)
    else:
        _cache_lent = False


cdef int _threads(Py_ssize_t pairs) noexcept:
    cdef int nt = openmp.omp_get_max_threads()
    return <int>pairs if pairs < nt else nt


# out: (B*T, C), lse: (B, NH, T) are written; qkv: (B*T, 3C) is read
def attention_forward(out, lse, qkv, Py_ssize_t B, Py_ssize_t T, Py_ssize_t NH):
    """Causal multi-head attention of qkv's q | k | v into out; the log-sum-exp per query into lse.

    Raises ValueError on a wrong shape, dtype or layout, if C is not a
    multiple of NH, or if out or lse shares memory with qkv or each other.
    """
    fn = "attention_forward"
    cdef Py_ssize_t C
    _shapes(fn, qkv, B, T, NH, &C)
    check(fn, "out", out, (B * T, C), cnp.NPY_FLOAT32, True)
    check(fn, "lse", lse, (B, NH, T), cnp.NPY_FLOAT32, True)
    check_apart(fn, "out", out, "qkv", qkv)
    check_apart(fn, "lse", lse, "qkv", qkv)
    check_apart(fn, "out", out, "lse", lse)
    if B * T == 0:
        return
    cdef Py_ssize_t hs = C // NH, hsp = _round_up(hs, PAD), Tp = _round_up(T, BK), C3 = 3 * C
    cdef float scale = <float>(1.0 / sqrt(<double>hs))
    cdef Py_ssize_t pairs = B * NH, per = _forward_scratch(Tp, hsp)
    cdef int nthreads = _threads(pairs)
    cdef void* own = NULL
    cdef float* scratch = _take_scratch(fn, <size_t>(per * nthreads) * sizeof(float), &own)
    cdef float* y = <float*>cnp.PyArray_DATA(out)
    cdef float* lp = <float*>cnp.PyArray_DATA(lse)
    cdef const float* x = <const float*>cnp.PyArray_DATA(qkv)
    cdef Py_ssize_t pair, b, h
    cdef const float* q
    cdef float* buf = NULL
    cdef int t = 0
    try:
        with nogil, parallel(num_threads=nthreads):
            t = threadid()
            buf = scratch + t * per
            for pair in prange(pairs, schedule="static"):
                b = pair // NH
                h = pair % NH
                q = x + b * T * C3 + h * hs
                _forward_pair(y + b * T * C + h * hs, lp + pair * T, q, q + C, q + 2 * C,
                              C3, C, T, hs, hsp, Tp, scale, buf)
    finally:
        _return_scratch(own)


# dqkv: (B*T, 3C) is accumulated into; dout: (B*T, C), qkv: (B*T, 3C),
# out: (B*T, C), lse: (B, NH, T) are read
def attention_backward(dqkv, dout, qkv, out, lse, Py_ssize_t B, Py_ssize_t T, Py_ssize_t NH,
                       bint accumulate=True):
    """Add the gradient of attention_forward with respect to qkv into dqkv (write it if not accumulate).

    out and lse are what attention_forward wrote for this qkv; dout is the
    gradient with respect to out. Raises ValueError on a wrong shape, dtype or
    layout, or if dqkv shares memory with an input.
    """
    fn = "attention_backward"
    cdef Py_ssize_t C
    _shapes(fn, qkv, B, T, NH, &C)
    check(fn, "dout", dout, (B * T, C), cnp.NPY_FLOAT32, False)
    check(fn, "out", out, (B * T, C), cnp.NPY_FLOAT32, False)
    check(fn, "lse", lse, (B, NH, T), cnp.NPY_FLOAT32, False)
    check(fn, "dqkv", dqkv, (B * T, 3 * C), cnp.NPY_FLOAT32, True)
    for name, a in (("dout", dout), ("qkv", qkv), ("out", out), ("lse", lse)):
        check_apart(fn, "dqkv", dqkv, name, a)
    if B * T == 0:
        return
    cdef Py_ssize_t hs = C // NH, hsp = _round_up(hs, PAD), Tp = _round_up(T, BK), C3 = 3 * C
    cdef float scale = <float>(1.0 / sqrt(<double>hs))
    cdef Py_ssize_t pairs = B * NH, per = _backward_scratch(Tp, hsp)
    cdef int nthreads = _threads(pairs)
    cdef void* own = NULL
    cdef float* scratch = _take_scratch(fn, <size_t>(per * nthreads) * sizeof(float), &own)
    cdef float* dx = <float*>cnp.PyArray_DATA(dqkv)
    cdef const float* dy = <const float*>cnp.PyArray_DATA(dout)
    cdef const float* x = <const float*>cnp.PyArray_DATA(qkv)
    cdef const float* o = <const float*>cnp.PyArray_DATA(out)
    cdef const float* lp = <const float*>cnp.PyArray_DATA(lse)
    cdef Py_ssize_t pair, b, h, qoff, yoff
    cdef float* buf = NULL
    cdef int t = 0
    try:
        with nogil, parallel(num_threads=nthreads):
            t = threadid()
            buf = scratch + t * per
            for pair in prange(pairs, schedule="static"):
                b = pair // NH
                h = pair % NH
                qoff = b * T * C3 + h * hs
                yoff = b * T * C + h * hs
                _backward_pair(dx + qoff, dx + qoff + C, dx + qoff + 2 * C, dy + yoff, o + yoff,
                               x + qoff, x + qoff + C, x + qoff + 2 * C, lp + pair * T,
                               C3, C, T, hs, hsp, Tp, scale, accumulate, buf)
    finally:
        _return_scratch(own)
