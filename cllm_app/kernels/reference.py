"""Plain numpy versions of the Cython kernels, written to be read.

Each function has the same signature and the same in-place semantics as its
kernel (outputs are written into the arrays passed in; gradients are added
into theirs), so a test can call both on copies of the same arrays and compare.
Arithmetic is done in float64 and stored back into the caller's arrays.
"""

import numpy as np

LAYERNORM_EPS = 1e-5


# out: (N, C), mean: (N,), rstd: (N,) are written;
# inp: (N, C), weight: (C,), bias: (C,) are read
def layernorm_forward(out, mean, rstd, inp, weight, bias):
    """Reference for ``layernorm.layernorm_forward``."""
    x = inp.astype(np.float64)
    mu = x.mean(axis=1)
    var = ((x - mu[:, None]) ** 2).mean(axis=1)  # biased, as in PyTorch
    rs = 1.0 / np.sqrt(var + LAYERNORM_EPS)
    xhat = (x - mu[:, None]) * rs[:, None]
    out[...] = xhat * weight.astype(np.float64) + bias.astype(np.float64)
    mean[...] = mu
    rstd[...] = rs


# dinp: (N, C), dweight: (C,), dbias: (C,) are accumulated into;
# dout: (N, C), inp: (N, C), weight: (C,), mean: (N,), rstd: (N,) are read
def layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, accumulate_dinp=True):
    """Reference for ``layernorm.layernorm_backward``: adds into the gradients (writes dinp if not accumulate_dinp).

    With xhat = (x - mean) * rstd and g = weight * dout, per row:
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    and dweight, dbias sum xhat * dout and dout over the rows.
    """
    x = inp.astype(np.float64)
    dy = dout.astype(np.float64)
    mu = mean.astype(np.float64)[:, None]
    rs = rstd.astype(np.float64)[:, None]
    xhat = (x - mu) * rs
    g = weight.astype(np.float64) * dy
    dx = rs * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    # Add in float64, then store: one rounding per element, like a fresh sum.
    dinp[...] = dinp.astype(np.float64) + dx if accumulate_dinp else dx
    dweight[...] = dweight.astype(np.float64) + (xhat * dy).sum(axis=0)
    dbias[...] = dbias.astype(np.float64) + dy.sum(axis=0)


# ---------------------------------------------------------------------------
# Token and position embedding (encoder.pyx)
# ---------------------------------------------------------------------------


def _check_ids(fn, ids, n):
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError(f"{fn}: an id is outside [0, {n})")


# out: (B*T, C) is written; inp: (B, T) int32, wte: (V, C), wpe: (maxT, C) are read
def encoder_forward(out, inp, wte, wpe):
    """Reference for ``encoder.encoder_forward``: out[b*T + t] = wte[inp[b, t]] + wpe[t]."""
    B, T = inp.shape
    _check_ids("encoder_forward", inp, wte.shape[0])
    x = wte.astype(np.float64)[inp] + wpe.astype(np.float64)[:T]
    out[...] = x.reshape(B * T, wte.shape[1])


# dwte: (V, C), dwpe: (maxT, C) are accumulated into; dout: (B*T, C), inp: (B, T) int32 are read
def encoder_backward(dwte, dwpe, dout, inp):
    """Reference for ``encoder.encoder_backward``: scatter-adds dout's rows by token and position."""
    B, T = inp.shape
    _check_ids("encoder_backward", inp, dwte.shape[0])
    g = dout.astype(np.float64)
    by_token = np.zeros(dwte.shape)
    np.add.at(by_token, inp.reshape(-1), g)
    dwte[...] = dwte.astype(np.float64) + by_token
    dwpe[:T] = dwpe[:T].astype(np.float64) + g.reshape(B, T, -1).sum(axis=0)


# ---------------------------------------------------------------------------
# Matrix products (matmul.pyx)
# ---------------------------------------------------------------------------


# out: (N, OC) is written, and dgelu if given; inp: (N, C), weight: (C, OC),
# bias: (OC,) or None, residual: (N, OC) or None are read
def matmul_forward(out, inp, weight, bias, residual=None, dgelu=None):
    """Reference for ``matmul.matmul_forward``: out = inp @ weight + bias + residual,
    then, given dgelu, out = gelu(that) and dgelu = gelu'(that)."""
    y = inp.astype(np.float64) @ weight.astype(np.float64)
    if bias is not None:
        y += bias.astype(np.float64)
    if residual is not None:
        y += residual.astype(np.float64)
    if dgelu is not None:
        gelu_forward(out, y, dgelu)
    else:
        out[...] = y


# dinp: (N, C), dweight: (C, OC), dbias: (OC,) or None are accumulated into;
# dout: (N, OC), inp: (N, C), weight: (C, OC) are read
def matmul_backward(dinp, dweight, dbias, dout, inp, weight, accumulate_dinp=True, dinp_scale=None):
    """Reference for ``matmul.matmul_backward``: adds dout @ weight.T, inp.T @ dout, sum(dout).

    With accumulate_dinp False, dinp is overwritten with dout @ weight.T, times
    dinp_scale if given.
    """
    if dinp_scale is not None and accumulate_dinp:
        raise ValueError("matmul_backward: dinp_scale needs accumulate_dinp=False")
    dy = dout.astype(np.float64)
    dx = dy @ weight.astype(np.float64).T
    if dinp_scale is not None:
        dx = dx * dinp_scale.astype(np.float64)
    dinp[...] = dinp.astype(np.float64) + dx if accumulate_dinp else dx
    dweight[...] = dweight.astype(np.float64) + inp.astype(np.float64).T @ dy
    if dbias is not None:
        dbias[...] = dbias.astype(np.float64) + dy.sum(axis=0)


# out: (N, V) is written; inp: (N, C), wte: (V, C) are read
def matmul_forward_tied(out, inp, wte):
    """Reference for ``matmul.matmul_forward_tied``: out = inp @ wte.T."""
    out[...] = inp.astype(np.float64) @ wte.astype(np.float64).T


# dinp: (N, C), dwte: (V, C) are accumulated into; dout: (N, V), inp: (N, C), wte: (V, C) are read
def matmul_backward_tied(dinp, dwte, dout, inp, wte, accumulate_dinp=True):
    """Reference for ``matmul.matmul_backward_tied``: adds dout @ wte and dout.T @ inp.

    With accumulate_dinp False, dinp is overwritten with dout @ wte.
    """
    dy = dout.astype(np.float64)
    dx = dy @ wte.astype(np.float64)
    dinp[...] = dinp.astype(np.float64) + dx if accumulate_dinp else dx
    dwte[...] = dwte.astype(np.float64) + dy.T @ inp.astype(np.float64)


# ---------------------------------------------------------------------------
# Causal self-attention (attention.pyx). The reference builds the full T x T
# score matrix of every head; the kernel never does.
# ---------------------------------------------------------------------------


def _heads(a, B, T, NH):
    """(B*T, NH*hs) -> (B, NH, T, hs) in float64."""
    return a.astype(np.float64).reshape(B, T, NH, -1).transpose(0, 2, 1, 3)


def _unheads(a):
    """(B, NH, T, hs) -> (B*T, NH*hs)."""
    B, NH, T, hs = a.shape
    return a.transpose(0, 2, 1, 3).reshape(B * T, NH * hs)


def _qkv(qkv, B, T, NH):
    C = qkv.shape[1] // 3
    return tuple(_heads(qkv[:, i * C : (i + 1) * C], B, T, NH) for i in range(3))


# out: (B*T, C), lse: (B, NH, T) are written; qkv: (B*T, 3C) is read
def attention_forward(out, lse, qkv, B, T, NH):
    """Reference for ``attention.attention_forward``.

    s = q k^T / sqrt(hs) with future keys masked, out = softmax(s) v per head,
    lse = log sum exp(s) per query.
    """
    if B * T == 0:
        return
    q, k, v = _qkv(qkv, B, T, NH)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    s = np.where(np.tril(np.ones((T, T), dtype=bool)), s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - m)
    total = e.sum(axis=-1, keepdims=True)
    out[...] = _unheads((e / total) @ v)
    lse[...] = (m + np.log(total))[..., 0]


# dqkv: (B*T, 3C) is accumulated into; dout: (B*T, C), qkv: (B*T, 3C),
# out: (B*T, C), lse: (B, NH, T) are read
def attention_backward(dqkv, dout, qkv, out, lse, B, T, NH, accumulate=True):
    """Reference for ``attention.attention_backward``: adds d(loss)/d(qkv) into dqkv.

    With accumulate False, dqkv is overwritten with the gradient. Like the kernel it takes the probabilities from lse, P = exp(s - lse),
    and uses D = rowsum(dout * out) for rowsum(P * dP).
    """
    if B * T == 0:
        return
    q, k, v = _qkv(qkv, B, T, NH)
    scale = 1.0 / np.sqrt(q.shape[-1])
    dy = _heads(dout, B, T, NH)
    y = _heads(out, B, T, NH)
    s = q @ k.transpose(0, 1, 3, 2) * scale
    s = np.where(np.tril(np.ones((T, T), dtype=bool)), s, -np.inf)
    p = np.exp(s - lse.astype(np.float64)[..., None])
    dv = p.transpose(0, 1, 3, 2) @ dy
    dp = dy @ v.transpose(0, 1, 3, 2)
    ds = p * (dp - (dy * y).sum(axis=-1, keepdims=True)) * scale
    dq = ds @ k
    dk = ds.transpose(0, 1, 3, 2) @ q
    grad = np.concatenate([_unheads(dq), _unheads(dk), _unheads(dv)], axis=1)
    dqkv[...] = dqkv.astype(np.float64) + grad if accumulate else grad


# ---------------------------------------------------------------------------
# GELU and the residual add (gelu.pyx)
# ---------------------------------------------------------------------------

GELU_SCALE = np.sqrt(2.0 / np.pi)
GELU_CUBE = 0.044715


def _gelu_grad(x):
    th = np.tanh(GELU_SCALE * (x + GELU_CUBE * x**3))
    return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th**2) * GELU_SCALE * (1.0 + 3.0 * GELU_CUBE * x**2)


# out: (any) is written, and dgelu if given; inp: (same size) is read
def gelu_forward(out, inp, dgelu=None):
    """Reference for ``gelu.gelu_forward``: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); dgelu = gelu'(x)."""
    x = inp.astype(np.float64).reshape(out.shape)
    y = 0.5 * x * (1.0 + np.tanh(GELU_SCALE * (x + GELU_CUBE * x**3)))
    if dgelu is not None:  # computed before either write: dgelu (or out) may be inp
        g = _gelu_grad(x)
        dgelu[...] = g.reshape(dgelu.shape)
    out[...] = y


# dinp: (any) is accumulated into; inp, dout: (same size) are read
def gelu_backward(dinp, inp, dout, accumulate=True):
    """Reference for ``gelu.gelu_backward``: dinp += gelu'(inp) * dout (dinp = ... if not accumulate)."""
    x = inp.astype(np.float64).reshape(dinp.shape)
    dx = _gelu_grad(x) * dout.astype(np.float64).reshape(dinp.shape)
    dinp[...] = dinp.astype(np.float64) + dx if accumulate else dx


# dinp: (any) is accumulated into; dgelu, dout: (same size) are read
def gelu_backward_saved(dinp, dgelu, dout, accumulate=True):
    """Reference for ``gelu.gelu_backward_saved``: dinp += dgelu * dout (dinp = ... if not accumulate)."""
    dx = dgelu.astype(np.float64).reshape(dinp.shape) * dout.astype(np.float64).reshape(dinp.shape)
    dinp[...] = dinp.astype(np.float64) + dx if accumulate else dx


# out: (any) is written; a, b: (same size) are read; out may be a or b
def residual_forward(out, a, b):
    """Reference for ``gelu.residual_forward``: out = a + b (out may be a or b)."""
    out[...] = (a.astype(np.float64) + b.astype(np.float64)).reshape(out.shape)


# ---------------------------------------------------------------------------
# Softmax cross-entropy (crossentropy.pyx)
# ---------------------------------------------------------------------------


def _log_softmax(logits):
    x = logits.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


# losses: (N,) is written; logits: (N, V), targets: (N,) int32 are read
def crossentropy_forward(losses, logits, targets) -> float:
    """Reference for ``crossentropy.crossentropy_forward``: per-row -log softmax at the target; their mean."""
    _check_ids("crossentropy_forward", targets, logits.shape[1])
    if len(targets) == 0:
        return float("nan")
    row = -_log_softmax(logits)[np.arange(len(targets)), targets]
    losses[...] = row
    return float(row.mean())


# dlogits: (N, V) is written (it may be logits); logits: (N, V), targets: (N,) int32 are read
def crossentropy_backward(dlogits, logits, targets, scale):
    """Reference for ``crossentropy.crossentropy_backward``: dlogits = (softmax - onehot) * scale."""
    _check_ids("crossentropy_backward", targets, logits.shape[1])
    p = np.exp(_log_softmax(logits))  # a new array, so dlogits may be logits
    p[np.arange(len(targets)), targets] -= 1.0
    dlogits[...] = p * scale


# ---------------------------------------------------------------------------
# AdamW (adamw.pyx), as torch.optim.AdamW documents it
# ---------------------------------------------------------------------------


# params: (P,), m: (P,), v: (P,) are updated in place; grads: (P,) is read
def adamw_update(params, grads, m, v, lr, beta1, beta2, eps, weight_decay, step, grad_scale):
    """Reference for ``adamw.adamw_update``: one step of torch.optim.AdamW.

    g = grads * grad_scale; params *= 1 - lr * weight_decay (decoupled decay);
    m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
    params -= lr * mhat / (sqrt(vhat) + eps) with mhat = m / (1 - beta1^step),
    vhat = v / (1 - beta2^step).
    """
    if step < 1:
        raise ValueError(f"adamw_update: step counts from 1, got {step}")
    g = grads.astype(np.float64) * grad_scale
    m64 = beta1 * m.astype(np.float64) + (1.0 - beta1) * g
    v64 = beta2 * v.astype(np.float64) + (1.0 - beta2) * g * g
    mhat = m64 / (1.0 - beta1**step)
    vhat = v64 / (1.0 - beta2**step)
    p = params.astype(np.float64) * (1.0 - lr * weight_decay)
    params[...] = p - lr * mhat / (np.sqrt(vhat) + eps)
    m[...] = m64
    v[...] = v64


# grads: (P,) is read
def grad_norm_squared(grads) -> float:
    """Reference for ``adamw.grad_norm_squared``: sum(grads ** 2) in float64."""
    g = grads.astype(np.float64)
    return float(g @ g)
