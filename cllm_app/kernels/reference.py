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
def layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd):
    """Reference for ``layernorm.layernorm_backward``: adds into the gradients.

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
    dinp[...] = dinp.astype(np.float64) + dx
    dweight[...] = dweight.astype(np.float64) + (xhat * dy).sum(axis=0)
    dbias[...] = dbias.astype(np.float64) + dy.sum(axis=0)
