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

No T x T matrix is kept: only lse goes from the forward to the backward.
Both take query rows six at a time, the rows of one micro-kernel tile, and
build every product from the micro-kernel of ``_gemm.pxd`` (the one that runs
the linear layers): scores S = Q K^T against the keys the rows may see, a
plain two-pass softmax of each whole row in place (a row of scores fits in
scratch for any T, so no online rescaling), then out = P V. The backward
recomputes S and P from lse, with D_t = dout_t . out_t standing in for the
row sums of P * dP (FlashAttention-2's trick), gets dQ = dS K for the six rows
at once, and keeps P and dS for up to MQ query rows to sum dV += P^T dO and
dK += dS^T Q over them. The micro-kernel reads its left operand in place
(Q rows in qkv, P and dS rows, or their columns as P^T and dS^T), so only K,
V, dout and Q are repacked, once per (batch, head) pair, into 16-wide panels
(K^T pre-scaled by 1/sqrt(hs)). exp is the vectorizable one from
_common.pxd.

Work is split over OpenMP threads by (batch, head) pairs, from a dynamic
queue. A pair reads and writes only its own columns, so threads never share
an output, and each output is summed in a fixed order: results are
bit-identical across runs and across thread counts.

``reference.py`` holds numpy versions with the same signatures.
"""
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport INFINITY, log, sqrt

cimport numpy as cnp
cimport openmp

from cllm_app.kernels._common cimport check, check_2d, check_apart, fast_exp
from cllm_app.kernels._gemm cimport MR, NR, gemm_buffer, micro, pack_a, pack_b

cnp.import_array()

cdef enum:
    MQ = 192    # query rows whose P and dS the backward keeps at once (a multiple of MR: 6 or 12)
    LINE = 64   # bytes; every thread's scratch starts on its own cache line


cdef inline Py_ssize_t _round_up(Py_ssize_t x, Py_ssize_t m) noexcept nogil:
    return (x + m - 1) // m * m


# ---------------------------------------------------------------------------
# Per-thread scratch, in floats, cut into pieces that each start on a cache
# line. Tp is T rounded up to NR, T6 to MR, hsp is hs rounded up to NR.
# Everything is written before it is read, so scratch needs no clearing.
# ---------------------------------------------------------------------------

cdef inline Py_ssize_t _piece(Py_ssize_t floats) noexcept nogil:
    return _round_up(floats, LINE // sizeof(float))


cdef inline Py_ssize_t _forward_scratch(Py_ssize_t T, Py_ssize_t hs) noexcept nogil:
    cdef Py_ssize_t Tp = _round_up(T, NR), hsp = _round_up(hs, NR)
    # Kt panels (hs, Tp), V panels (T, hsp), Aq (MR, hs), S (MR, Tp + NR)
    return _piece(hs * Tp) + _piece(Tp * hsp) + _piece(MR * hs) + _piece(MR * (Tp + NR))


cdef inline Py_ssize_t _backward_scratch(Py_ssize_t T, Py_ssize_t hs) noexcept nogil:
    cdef Py_ssize_t Tp = _round_up(T, NR), hsp = _round_up(hs, NR), T6 = _round_up(T, MR)
    cdef Py_ssize_t mq = MQ if MQ < T6 else T6
    # Kt, Vt panels (hs, Tp); K panels (T, hsp); Aq, Ado (MR, hs); S, dP (mq, Tp + NR);
    # dO and Q panels (mq, hsp); dK, dV (T6, hsp); D (Tp)
    return (2 * _piece(hs * Tp) + _piece(Tp * hsp) + 2 * _piece(MR * hs)
            + 2 * _piece(mq * (Tp + NR)) + 2 * _piece(mq * hsp) + 2 * _piece(T6 * hsp) + _piece(Tp))


# One query row's softmax: p[0:n] holds its scores and gets exp(score - max);
# [n, width) (width a multiple of 8, <= the row's buffer) gets zeros. Its max
# and the sum of the exponentials go to m and l. A whole row of scores is at
# hand, so one pass finds the max and one takes the exponentials: no running
# rescaling as in a block-by-block (online) softmax.
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


# Rows [r0, r0 + MR) of a row-major matrix (rows ld apart, hs used) as the
# micro-kernel's A operand: read in place (returns rows, ars = ld), or, for a
# last, partial tile (mr < MR), packed with zero rows into buf (ars = 1,
# acs = MR): reading MR rows in place would read past the pair's rows.
cdef inline const float* _rows(const float* rows, Py_ssize_t ld, Py_ssize_t mr, Py_ssize_t hs,
                               float* buf, Py_ssize_t* ars, Py_ssize_t* acs) noexcept nogil:
    if mr == MR:
        ars[0] = ld
        acs[0] = 1
        return rows
    pack_a(buf, rows, ld, 1, <int>mr, <int>hs)
    ars[0] = 1
    acs[0] = MR
    return buf


# Scores of MR query rows (A operand, as _rows gives) against keys [0, n)
# into S (MR rows, Ts apart): one micro-kernel tile per 16 keys. Kt holds the
# keys' panels (hs, 16), pre-scaled.
cdef inline void _scores(float* S, Py_ssize_t Ts, const float* A, Py_ssize_t ars, Py_ssize_t acs,
                         const float* Kt, Py_ssize_t hs, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t p
    for p in range((n + NR - 1) // NR):
        micro(<int>hs, A, ars, acs, Kt + p * hs * NR, S + p * NR, Ts, MR, NR, False, NULL, NULL)


# Panels of 16 keys of k^T (hs rows of 16 keys each), times scale, for the
# scores; and panels of 16 features of a row-major (T, hs) matrix (T rows of
# 16 features), for the products summed over keys or queries.
cdef inline void _key_panels(float* Kt, const float* k, Py_ssize_t C3, Py_ssize_t T,
                             Py_ssize_t hs, float scale) noexcept nogil:
    cdef Py_ssize_t p, j, Tp = _round_up(T, NR)
    for p in range(Tp // NR):
        pack_b(Kt + p * hs * NR, k + p * NR * C3, 1, C3,
               <int>(NR if T - p * NR > NR else T - p * NR), <int>hs)
    if scale != 1.0:
        for j in range(hs * Tp):
            Kt[j] = Kt[j] * scale


cdef inline void _feature_panels(float* Fp, const float* x, Py_ssize_t ld, Py_ssize_t rows,
                                 Py_ssize_t hs) noexcept nogil:
    cdef Py_ssize_t p
    for p in range(_round_up(hs, NR) // NR):
        pack_b(Fp + p * rows * NR, x + p * NR, ld, 1,
               <int>(NR if hs - p * NR > NR else hs - p * NR), <int>rows)


# a . b over n floats, in eight running sums (so the adds do not wait on
# each other one by one), then the eight summed pairwise, then the tail.
cdef inline float _dot(const float* a, const float* b, Py_ssize_t n) noexcept nogil:
    cdef float acc[8]
    cdef Py_ssize_t d = 0, k
    cdef float tail = 0.0
    for k in range(8):
        acc[k] = 0.0
    while d + 8 <= n:
        for k in range(8):
            acc[k] += a[d + k] * b[d + k]
        d += 8
    while d < n:
        tail += a[d] * b[d]
        d += 1
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail


# One (batch, head) pair. q, k, v point at the pair's first row of qkv (row
# stride C3); y at its first row of out (stride C); lse_row at lse[b, h, 0].
# Query rows go MR at a time: their scores against every key the last of them
# may see (Q K^T, one tile per 16 keys, Q read in place), each row's softmax
# in place, then out = P V (one tile per 16 features, P read in place).
cdef void _forward_pair(float* y, float* lse_row, const float* q, const float* k,
                        const float* v, Py_ssize_t C3, Py_ssize_t C, Py_ssize_t T,
                        Py_ssize_t hs, float scale, float* buf) noexcept nogil:
    cdef Py_ssize_t Tp = _round_up(T, NR), hsp = _round_up(hs, NR), Ts = Tp + NR
    cdef float* Kt = buf                        # panels of 16 keys: (hs, 16) each, k^T * scale
    cdef float* Vp = Kt + _piece(hs * Tp)       # panels of 16 features: (T, 16) each, v
    cdef float* Aq = Vp + _piece(Tp * hsp)      # (MR, hs) packed q of a last, partial tile
    cdef float* S = Aq + _piece(MR * hs)        # (MR, Ts) scores, then probabilities
    cdef Py_ssize_t p, r0, r, i, j, n, mr, ars, acs
    cdef const float* A
    cdef float ml[2]
    cdef float inv
    cdef float* row
    _key_panels(Kt, k, C3, T, hs, scale)
    _feature_panels(Vp, v, C3, T, hs)
    r0 = 0
    while r0 < T:
        mr = MR if T - r0 > MR else T - r0
        n = r0 + mr
        A = _rows(q + r0 * C3, C3, mr, hs, Aq, &ars, &acs)
        _scores(S, Ts, A, ars, acs, Kt, hs, n)
        for r in range(mr):
            i = r0 + r
            row = S + r * Ts
            _softmax_row(row, i + 1, _round_up(i + 1, 8), ml, ml + 1)
            inv = <float>1.0 / ml[1]
            for j in range(i + 1):
                row[j] = row[j] * inv
            for j in range(i + 1, n):
                row[j] = 0.0
            lse_row[i] = ml[0] + log(ml[1])
        # rows [mr, MR) of S hold the scores of zero rows: zeros, never stored
        for p in range(hsp // NR):
            micro(<int>n, S, Ts, 1, Vp + p * T * NR, y + r0 * C + p * NR, C, <int>mr,
                  <int>(NR if hs - p * NR > NR else hs - p * NR), False, NULL, NULL)
        r0 += MR


# One (batch, head) pair of the backward; pointers as in _forward_pair, plus
# dy/o (dout/out rows, stride C), and dq/dk/dv (dqkv, stride C3), added into
# (or written, if not accumulate).
# Query rows go MR at a time, as in the forward: S = Q K^T and dP = dO V^T
# for the keys they see, then, in place, P = exp(S - lse) and
# dS = scale * P * (dP - D) (D_t = dout_t . out_t stands in for the row sums
# of P * dP, FlashAttention-2's trick), and dQ = dS K at once, since a row's dS
# is complete. P and dS stay for up to MQ query rows; after each MQ rows
# dV += P^T dO and dK += dS^T Q sum over them, reading P and dS in place as
# columns.
cdef void _backward_pair(float* dq, float* dk, float* dv, const float* dy, const float* o,
                         const float* q, const float* k, const float* v,
                         const float* lse_row, Py_ssize_t C3, Py_ssize_t C, Py_ssize_t T,
                         Py_ssize_t hs, float scale, bint accumulate, float* buf) noexcept nogil:
    cdef Py_ssize_t Tp = _round_up(T, NR), hsp = _round_up(hs, NR), T6 = _round_up(T, MR)
    cdef Py_ssize_t mq = MQ if MQ < T6 else T6, Ts = Tp + NR
    cdef float* Kt = buf                        # panels of 16 keys: (hs, 16) each, k^T * scale
    cdef float* Vt = Kt + _piece(hs * Tp)       # the same of v^T (not scaled)
    cdef float* Kp = Vt + _piece(hs * Tp)       # panels of 16 features: (T, 16) each, k
    cdef float* Aq = Kp + _piece(Tp * hsp)      # (MR, hs) packed q of a last, partial tile
    cdef float* Ado = Aq + _piece(MR * hs)      # the same of dout
    cdef float* S = Ado + _piece(MR * hs)       # (mq, Ts) scores, then P
    cdef float* dP = S + _piece(mq * Ts)        # (mq, Ts) dout . v, then dS
    cdef float* Bdo = dP + _piece(mq * Ts)      # panels of 16 features: (mq, 16) each, dout
    cdef float* Bq = Bdo + _piece(mq * hsp)     # the same of q
    cdef float* dK = Bq + _piece(mq * hsp)      # (T6, hsp)
    cdef float* dV = dK + _piece(T6 * hsp)      # (T6, hsp)
    cdef float* D = dV + _piece(T6 * hsp)       # (Tp,)
    cdef Py_ssize_t p, i0, r0, r, i, j, d, n, mr, mqb, nblk, q0, end, ars, acs, ars2, acs2
    cdef float D_i, lse_i, pj
    cdef int nf
    cdef const float* A
    cdef const float* A2
    cdef float* prow
    cdef float* dsrow
    _key_panels(Kt, k, C3, T, hs, scale)
    _key_panels(Vt, v, C3, T, hs, 1.0)
    _feature_panels(Kp, k, C3, T, hs)
    for i in range(T):
        D[i] = _dot(dy + i * C, o + i * C, hs)
    for i in range(T6 * hsp):
        dK[i] = 0.0
        dV[i] = 0.0
    i0 = 0
    while i0 < T:
        mqb = mq if T - i0 > mq else T - i0
        nblk = i0 + mqb
        r0 = i0
        while r0 < nblk:
            mr = MR if nblk - r0 > MR else nblk - r0
            n = r0 + mr
            prow = S + (r0 - i0) * Ts
            dsrow = dP + (r0 - i0) * Ts
            A = _rows(q + r0 * C3, C3, mr, hs, Aq, &ars, &acs)
            A2 = _rows(dy + r0 * C, C, mr, hs, Ado, &ars2, &acs2)
            _scores(prow, Ts, A, ars, acs, Kt, hs, n)
            _scores(dsrow, Ts, A2, ars2, acs2, Vt, hs, n)
            for r in range(mr):
                i = r0 + r
                lse_i = lse_row[i]
                D_i = D[i]
                for j in range(i + 1):
                    pj = fast_exp(prow[j] - lse_i)
                    prow[j] = pj
                    dsrow[j] = pj * (dsrow[j] - D_i) * scale
                # zeros to the end of the key micro-panel (read by dV, dK) and
                # of this tile's keys (read by dQ)
                end = _round_up(i + 1, MR)
                end = end if end > n else n
                for j in range(i + 1, end):
                    prow[j] = 0.0
                    dsrow[j] = 0.0
                prow += Ts
                dsrow += Ts
            # rows [mr, MR) of dS hold dout . v of zero rows: zeros, never stored
            for p in range(hsp // NR):
                nf = <int>(NR if hs - p * NR > NR else hs - p * NR)
                micro(<int>n, dP + (r0 - i0) * Ts, Ts, 1, Kp + p * T * NR, dq + r0 * C3 + p * NR,
                      C3, <int>mr, nf, accumulate, NULL, NULL)
            r0 += MR
        _feature_panels(Bdo, dy + i0 * C, C, mqb, hs)
        _feature_panels(Bq, q + i0 * C3, C3, mqb, hs)
        # Queries before a key micro-panel see none of its keys (their P and
        # dS there were never written), so its sums start at query q0.
        j = 0
        while j < nblk:
            mr = MR if nblk - j > MR else nblk - j
            q0 = j - i0 if j > i0 else 0
            for p in range(hsp // NR):
                micro(<int>(mqb - q0), S + q0 * Ts + j, 1, Ts, Bdo + (p * mqb + q0) * NR,
                      dV + j * hsp + p * NR, hsp, <int>mr, NR, True, NULL, NULL)
                micro(<int>(mqb - q0), dP + q0 * Ts + j, 1, Ts, Bq + (p * mqb + q0) * NR,
                      dK + j * hsp + p * NR, hsp, <int>mr, NR, True, NULL, NULL)
            j += MR
        i0 += mqb
    for j in range(T):
        if accumulate:
            for d in range(hs):
                dk[j * C3 + d] += dK[j * hsp + d]
                dv[j * C3 + d] += dV[j * hsp + d]
        else:
            for d in range(hs):
                dk[j * C3 + d] = dK[j * hsp + d]
                dv[j * C3 + d] = dV[j * hsp + d]


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


# Scratch comes from the GEMM's buffer kept per calling thread (_gemm.pxd):
# fresh blocks of this size come from the OS as new pages, and faulting them
# in cost several percent of a training step.
cdef float* _scratch(str fn, size_t floats) except NULL:
    cdef float* buf = gemm_buffer(floats)
    if buf == NULL:
        raise MemoryError(f"{fn}: could not allocate {floats * sizeof(float)} bytes of scratch")
    return buf


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
    cdef Py_ssize_t hs = C // NH, C3 = 3 * C
    cdef float scale = <float>(1.0 / sqrt(<double>hs))
    cdef Py_ssize_t pairs = B * NH, per = _forward_scratch(T, hs)
    cdef int nthreads = _threads(pairs)
    cdef float* scratch = _scratch(fn, <size_t>(per * nthreads))
    cdef float* y = <float*>cnp.PyArray_DATA(out)
    cdef float* lp = <float*>cnp.PyArray_DATA(lse)
    cdef const float* x = <const float*>cnp.PyArray_DATA(qkv)
    cdef Py_ssize_t pair, b, h
    cdef const float* q
    cdef float* buf = NULL
    cdef int t = 0
    with nogil, parallel(num_threads=nthreads):
        t = threadid()
        buf = scratch + t * per
        for pair in prange(pairs, schedule="dynamic"):
            b = pair // NH
            h = pair % NH
            q = x + b * T * C3 + h * hs
            _forward_pair(y + b * T * C + h * hs, lp + pair * T, q, q + C, q + 2 * C,
                          C3, C, T, hs, scale, buf)


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
    cdef Py_ssize_t hs = C // NH, C3 = 3 * C
    cdef float scale = <float>(1.0 / sqrt(<double>hs))
    cdef Py_ssize_t pairs = B * NH, per = _backward_scratch(T, hs)
    cdef int nthreads = _threads(pairs)
    cdef float* scratch = _scratch(fn, <size_t>(per * nthreads))
    cdef float* dx = <float*>cnp.PyArray_DATA(dqkv)
    cdef const float* dy = <const float*>cnp.PyArray_DATA(dout)
    cdef const float* x = <const float*>cnp.PyArray_DATA(qkv)
    cdef const float* o = <const float*>cnp.PyArray_DATA(out)
    cdef const float* lp = <const float*>cnp.PyArray_DATA(lse)
    cdef Py_ssize_t pair, b, h, qoff, yoff
    cdef float* buf = NULL
    cdef int t = 0
    with nogil, parallel(num_threads=nthreads):
        t = threadid()
        buf = scratch + t * per
        for pair in prange(pairs, schedule="dynamic"):
            b = pair // NH
            h = pair % NH
            qoff = b * T * C3 + h * hs
            yoff = b * T * C + h * hs
            _backward_pair(dx + qoff, dx + qoff + C, dx + qoff + 2 * C, dy + yoff, o + yoff,
                           x + qoff, x + qoff + C, x + qoff + 2 * C, lp + pair * T,
                           C3, C, T, hs, scale, accumulate, buf)
