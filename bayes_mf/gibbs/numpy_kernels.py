"""The NumPy twins of the Gibbs kernels (:mod:`bayes_mf.gibbs.kernels` re-exports them).

The fallback where numba is absent, and the reference the compiled kernels are
tested against; the maths is in :mod:`bayes_mf.gibbs` (steps 1, 2, 4).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp


def _side_step_numpy(side, other_F, other_b, mu, use_bias, P, pm, tau, z, G_store, h_store, x_old=None,
                     alpha: float = 0.0, wts=None):
    """All rows' conditional draws of one side, vectorised; see the module docstring (step 1).

    With ``alpha != 0`` each row is over-relaxed (Adler 1981):
    :math:`x' = m + \\alpha (x - m) + \\sqrt{1 - \\alpha^2}\\, L^{-T} z`, with
    :math:`x` the row's current value ``x_old`` and :math:`N(m, (LL^T)^{-1})` its
    conditional: a reversible move that leaves the conditional invariant.
    """
    X = np.c_[other_F, np.ones(other_F.shape[0])] if use_bias else other_F
    y = side.vals_obs - mu - (other_b[side.cols_obs] if use_bias else 0.0)
    if wts is None:
        G = side.index.gram(X) * tau
        h = side.index.rhs(X, y) * tau
    else:  # per-rating precision multipliers, in input order (heteroscedastic noise)
        G = side.index.gram(X, wts) * tau
        h = side.index.rhs(X, wts * y) * tau
    if G_store is not None:
        G_store[...] = G
        h_store[...] = h
    G += P
    h += pm @ P
    L = np.linalg.cholesky(G)
    if alpha == 0.0:
        w = np.linalg.solve(L, h[..., None]) + z[..., None]
        return np.linalg.solve(np.swapaxes(L, -1, -2), w)[..., 0]
    w = (1.0 - alpha) * np.linalg.solve(L, h[..., None]) + math.sqrt(1.0 - alpha * alpha) * z[..., None]
    return np.linalg.solve(np.swapaxes(L, -1, -2), w)[..., 0] + alpha * x_old


def _feature_step_numpy(f_indptr, f_rows, f_vals, G_store, h_store, X, W, prec, z, dims, alpha=0.0):
    """Sequential draws of every feature vector W_l (module docstring, step 2); updates X, W.

    ``alpha`` over-relaxes each draw as the row draws are: m + alpha (W_l - m) + sqrt(1 - alpha^2) L^-T z.
    Only the leading ``dims[l]`` coordinates of W_l are drawn (the rest, a bias column held at 0, stay).
    """
    for l in range(W.shape[0]):
        s, e = f_indptr[l], f_indptr[l + 1]
        rows, a = f_rows[s:e], f_vals[s:e]
        G = G_store[rows]
        rest = X[rows] - a[:, None] * W[l]
        Q = np.diag(prec[l]) + np.einsum("n,npq->pq", a * a, G)
        q = a @ (h_store[rows] - np.einsum("npq,nq->np", G, rest))
        new = _draw(Q, q, z[l], W[l], alpha, dims[l])
        X[rows] += a[:, None] * (new - W[l])
        W[l] = new


def _feature_step_centred_numpy(f_indptr, f_rows, f_vals, X, W, P, m, prec, z, dims, alpha=0.0):
    """Sequential draws of every W_l given the effective rows X (module docstring, step 2b); updates W.

    With X held, W_l meets the data only through the own parts' prior
    N(m, P^-1), so Q_l = diag(prec_l) + (sum_i A_il^2) P: O(nnz(A) d) per step.
    """
    A = sp.csc_matrix((f_vals, f_rows, f_indptr), shape=(X.shape[0], W.shape[0]))
    R = X - m - A @ W  # own parts minus their mean
    for l in range(W.shape[0]):
        s, e = f_indptr[l], f_indptr[l + 1]
        rows, a = f_rows[s:e], f_vals[s:e]
        saa = float(a @ a)
        Q = np.diag(prec[l]) + saa * P
        q = P @ (a @ R[rows] + saa * W[l])
        new = _draw(Q, q, z[l], W[l], alpha, dims[l])
        R[rows] -= a[:, None] * (new - W[l])
        W[l] = new


def _draw(Q, h, z, x, alpha, n):
    """The leading ``n`` coordinates of x drawn from N(Q^-1 h, Q^-1) restricted to them, over-relaxed.

    m + alpha (x - m) + sqrt(1 - alpha^2) L^-T z with L L^T = Q[:n, :n]; the other coordinates of x are kept.
    """
    L, out = np.linalg.cholesky(Q[:n, :n]), x.copy()
    w = (1.0 - alpha) * np.linalg.solve(L, h[:n]) + math.sqrt(1.0 - alpha * alpha) * z[:n]
    out[:n] = np.linalg.solve(L.T, w) + alpha * x[:n]
    return out


def _residual_numpy(user, item, rating, mu, U, V, ub, vb, use_bias, ru, ri):
    """Sum and sum of squares of the residuals; per-user/per-item residual sums into ``ru``, ``ri``."""
    eta = mu + np.einsum("nk,nk->n", U[user], V[item])
    if use_bias:
        eta += ub[user] + vb[item]
    r = rating - eta
    ru[:] = np.bincount(user, weights=r, minlength=ru.size)
    ri[:] = np.bincount(item, weights=r, minlength=ri.size)
    return float(r.sum()), float(r @ r)
