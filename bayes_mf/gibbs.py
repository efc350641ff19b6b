r"""Blocked Gibbs sampling for (B)PMF: exact conditional Gaussian draws.

The model (all conditionals below are exact; there is no step size, no
gradient and no approximation)

.. math::
    R_{ij} \mid \cdot \sim N\bigl(\mu + \tilde b_i + \tilde c_j
        + \tilde U_i^\top \tilde V_j,\ \tau^{-1}\bigr),
    \qquad (i, j) \in \Omega,

with *effective* user and item vectors built from an own part and optional
sparse features (implicit feedback, side information):

.. math::
    [\tilde U_i, \tilde b_i] = [U_i, b_i] + \sum_l A^{(u)}_{il} W_l,\qquad
    [\tilde V_j, \tilde c_j] = [V_j, c_j] + \sum_m A^{(v)}_{jm} Z_m .

``implicit="user"`` sets :math:`A^{(u)}_{il} = |\Omega_i|^{-1/2}` for the
items :math:`l` user :math:`i` rated (the constrained PMF of Salakhutdinov &
Mnih 2008 / the SVD++ term of Koren 2008, one factor vector :math:`W_l` per
item); ``implicit="item"`` does the same for items (a factor vector per user
who rated them); user/item side features passed to :meth:`GibbsPMF.fit`
append further columns to :math:`A`.  Without features
:math:`\tilde U = U`, the plain (B)PMF.

Priors (``d = k + 1`` with biases, ``k`` without)

* ``prior="bpmf"``: :math:`U_i \sim N(\mu_U, \Lambda_U^{-1})`,
  :math:`(\mu_U, \Lambda_U) \sim NW(\mu_0 = 0, \beta_0 = 2, W_0 = I, \nu_0 = k)`
  (Salakhutdinov & Mnih 2008), same for :math:`V`;
* ``prior="adaptive"``: :math:`U_i \sim N(0, \lambda_U^{-1} I)`,
  :math:`\lambda_U \sim \mathrm{Gamma}(a_0, b_0)`;
* ``prior="fixed"``: :math:`U_i \sim N(0, \sigma_U^2 I)` with given
  :math:`\sigma_U` (``sigma_u``), likewise ``sigma_v`` and ``sigma_bias``.

Biases :math:`b_i \sim N(0, \lambda_b^{-1})`, :math:`c_j \sim N(0,
\lambda_c^{-1})`; feature vectors :math:`W_{lp} \sim N(0, \lambda_{W,p}^{-1})`
with one precision per column and feature group; all these precisions
:math:`\sim \mathrm{Gamma}(a_0, b_0)` (``gamma_prior``) unless fixed.
:math:`\mu \sim N(0, 100^2)`; noise precision
:math:`\tau \sim \mathrm{Gamma}(a_0, b_0)` unless ``sigma`` is given.

One sweep draws, in turn,

1. every user's :math:`x_i = [\tilde U_i, \tilde b_i]` given the item side.
   With :math:`\xi_j = [\tilde V_j, 1]` and target
   :math:`y_{ij} = R_{ij} - \mu - \tilde c_j`,

   .. math::
       x_i \mid \cdot \sim N\bigl(\Lambda_i^{-1} h_i,\ \Lambda_i^{-1}\bigr),\quad
       \Lambda_i = P + \tau\sum_{j\in\Omega_i}\xi_j\xi_j^\top,\quad
       h_i = P(m + s_i) + \tau\sum_{j\in\Omega_i} y_{ij}\,\xi_j,

   where :math:`P, m` are the prior precision and mean of the own part and
   :math:`s_i = A^{(u)}_i W` the feature offset; then :math:`[U_i, b_i] = x_i - s_i`.
   All users at once: the sufficient statistics are gathered over the observed
   triplets (never a dense matrix) and each draw is one :math:`d\times d`
   Cholesky factorisation :math:`\Lambda_i = LL^\top` and
   :math:`x_i = L^{-\top}(L^{-1}h_i + \varepsilon_i)`, :math:`\varepsilon_i\sim N(0, I)`;
2. each feature vector :math:`W_l` in turn given everything else.  With
   :math:`G_i = \tau\sum_j \xi_j\xi_j^\top`, :math:`g_i = \tau\sum_j y_{ij}\xi_j`
   (kept from step 1) and :math:`x_i^{(-l)} = x_i - A_{il}W_l`,

   .. math::
       W_l \mid \cdot \sim N\bigl(Q_l^{-1} q_l, Q_l^{-1}\bigr),\quad
       Q_l = \mathrm{diag}(\lambda_W) + \sum_i A_{il}^2 G_i,\quad
       q_l = \sum_i A_{il}\,(g_i - G_i x_i^{(-l)}),

   after which the :math:`x_i` of the users holding feature :math:`l` move by
   :math:`A_{il}\,\Delta W_l`.  Cost: :math:`O(\mathrm{nnz}(A)\,d^2)`, the order of step 1;
3. the same for items and their features;
4. :math:`\mu \mid \cdot \sim N\bigl(\frac{\tau\sum(R - \eta + \mu)}{\tau n + 10^{-4}},
   \frac{1}{\tau n + 10^{-4}}\bigr)` and
   :math:`\tau \mid \cdot \sim \mathrm{Gamma}(a_0 + n/2,\ b_0 + \tfrac12\sum (R-\eta)^2)`;
5. the hyperparameters: for BPMF the Normal-Wishart posterior
   :math:`\Lambda_U \sim \mathcal W\bigl((W_0^{-1} + nS + \tfrac{\beta_0 n}{\beta_0+n}
   (\bar U-\mu_0)(\bar U-\mu_0)^\top)^{-1},\ \nu_0 + n\bigr)`,
   :math:`\mu_U \sim N\bigl(\tfrac{\beta_0\mu_0 + n\bar U}{\beta_0+n},
   ((\beta_0+n)\Lambda_U)^{-1}\bigr)`; Gamma precisions
   :math:`\lambda \sim \mathrm{Gamma}(a_0 + \tfrac{N}{2}, b_0 + \tfrac12\sum\theta^2)`
   over the :math:`N` coefficients :math:`\theta` they govern.

Kernels: with numba importable the per-row loops run compiled (``cache=True``,
so the compile cost is paid once per installation); otherwise an equivalent
NumPy implementation (sparse x dense products, batched Cholesky) is used.
Both consume the same random numbers, so they give the same draws up to
floating-point rounding.

Identifiability: :math:`U, V` are identified only up to rotation; diagnose
``sigma``, ``mu``, biases, prior scales and ``pred_check`` (the mean rating of
a fixed, seeded random subset of training pairs in every draw), never raw
factors.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._util import SideIndex
from .base import BayesianEstimator
from .data import Ratings

__all__ = ["GibbsPMF", "HAVE_NUMBA"]

try:  # numba is optional: the NumPy kernels below are the fallback
    import numba as _numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is absent
    _numba = None
    HAVE_NUMBA = False

_PRIORS = ("bpmf", "adaptive", "fixed")
_IMPLICIT = {False: (), None: (), "none": (), "user": ("user",), "item": ("item",),
             True: ("user", "item"), "both": ("user", "item")}
_MU_PRIOR_PREC = 1e-4  # mu ~ N(0, 100^2): flat on any rating scale
_PARALLEL_MIN_WORK = 5e7  # rating-sweeps per chain above which cores=None uses worker processes


# --------------------------------------------------------------------------- kernels (NumPy)
def _side_step_numpy(side, other_F, other_b, mu, use_bias, P, pm, tau, z, G_store, h_store):
    """All rows' conditional draws of one side, vectorised; see the module docstring (step 1)."""
    X = np.c_[other_F, np.ones(other_F.shape[0])] if use_bias else other_F
    y = side.vals_obs - mu - (other_b[side.cols_obs] if use_bias else 0.0)
    G = side.index.gram(X) * tau
    h = side.index.rhs(X, y) * tau
    if G_store is not None:
        G_store[...] = G
        h_store[...] = h
    G += P
    h += pm @ P
    L = np.linalg.cholesky(G)
    w = np.linalg.solve(L, h[..., None]) + z[..., None]
    return np.linalg.solve(np.swapaxes(L, -1, -2), w)[..., 0]


def _feature_step_numpy(f_indptr, f_rows, f_vals, G_store, h_store, X, W, prec, z):
    """Sequential draws of every feature vector W_l (module docstring, step 2); updates X, W."""
    for l in range(W.shape[0]):
        s, e = f_indptr[l], f_indptr[l + 1]
        rows, a = f_rows[s:e], f_vals[s:e]
        G = G_store[rows]
        rest = X[rows] - a[:, None] * W[l]
        Q = np.diag(prec[l]) + np.einsum("n,npq->pq", a * a, G)
        q = a @ (h_store[rows] - np.einsum("npq,nq->np", G, rest))
        L = np.linalg.cholesky(Q)
        new = np.linalg.solve(L.T, np.linalg.solve(L, q) + z[l])
        X[rows] += a[:, None] * (new - W[l])
        W[l] = new


def _residual_numpy(user, item, rating, mu, U, V, ub, vb, use_bias):
    eta = mu + np.einsum("nk,nk->n", U[user], V[item])
    if use_bias:
        eta += ub[user] + vb[item]
    r = rating - eta
    return float(r.sum()), float(r @ r)


# --------------------------------------------------------------------------- kernels (numba)
if HAVE_NUMBA:
    _jit = _numba.njit(cache=True, nogil=True, fastmath=False)

    @_jit
    def _chol_solve_draw(G, h, z, d, out):  # pragma: no cover - compiled
        """In place: G <- L (lower), out <- L^-T (L^-1 h + z); False if G is not PD."""
        for j in range(d):
            s = G[j, j]
            for p in range(j):
                s -= G[j, p] * G[j, p]
            if s <= 0.0:
                return False
            ljj = math.sqrt(s)
            G[j, j] = ljj
            for i in range(j + 1, d):
                t = G[i, j]
                for p in range(j):
                    t -= G[i, p] * G[j, p]
                G[i, j] = t / ljj
        for i in range(d):  # forward: L w = h
            t = h[i]
            for p in range(i):
                t -= G[i, p] * out[p]
            out[i] = t / G[i, i]
        for i in range(d):
            out[i] += z[i]
        for i in range(d - 1, -1, -1):  # backward: L^T x = w + z
            t = out[i]
            for p in range(i + 1, d):
                t -= G[p, i] * out[p]
            out[i] = t / G[i, i]
        return True

    @_jit
    def _side_step_numba(indptr, cols, vals, other_F, other_b, mu, use_bias, P, pm, tau, z,
                         out, store, G_store, h_store):  # pragma: no cover - compiled
        n_rows = indptr.shape[0] - 1
        n_other, k = other_F.shape
        d = k + use_bias
        nt = d * (d + 1) // 2
        # packed lower-triangular outer products of the other side, built once per step so that
        # the per-rating work is a contiguous (SIMD-friendly) add of nt numbers, ~2x faster
        # than forming x x^T per rating
        X = np.empty((n_other, d))
        O = np.empty((n_other, nt))
        for c in range(n_other):
            for a in range(k):
                X[c, a] = other_F[c, a]
            if use_bias:
                X[c, k] = 1.0
            q = 0
            for a in range(d):
                for b in range(a + 1):
                    O[c, q] = X[c, a] * X[c, b]
                    q += 1
        Gp = np.empty(nt)
        G = np.empty((d, d))
        h = np.empty(d)
        ok = True
        for r in range(n_rows):
            Gp[:] = 0.0
            h[:] = 0.0
            for n in range(indptr[r], indptr[r + 1]):
                c = cols[n]
                y = vals[n] - mu
                if use_bias:
                    y -= other_b[c]
                for q in range(nt):
                    Gp[q] += O[c, q]
                for a in range(d):
                    h[a] += y * X[c, a]
            q = 0
            for a in range(d):
                h[a] *= tau
                for b in range(a + 1):
                    G[a, b] = Gp[q] * tau
                    q += 1
            if store:
                for a in range(d):
                    h_store[r, a] = h[a]
                    for b in range(a + 1):
                        G_store[r, a, b] = G[a, b]
                        G_store[r, b, a] = G[a, b]
            for a in range(d):
                t = 0.0
                for b in range(d):
                    t += P[a, b] * pm[r, b]
                h[a] += t
                for b in range(a + 1):
                    G[a, b] += P[a, b]
            ok &= _chol_solve_draw(G, h, z[r], d, out[r])
        return ok

    @_jit
    def _feature_step_numba(f_indptr, f_rows, f_vals, G_store, h_store, X, W, prec, z):  # pragma: no cover
        n_feat, d = W.shape
        Q = np.empty((d, d))
        q = np.empty(d)
        rest = np.empty(d)
        new = np.empty(d)
        ok = True
        for l in range(n_feat):
            for p in range(d):
                q[p] = 0.0
                for r in range(d):
                    Q[p, r] = 0.0
                Q[p, p] = prec[l, p]
            for n in range(f_indptr[l], f_indptr[l + 1]):
                i = f_rows[n]
                a = f_vals[n]
                for p in range(d):
                    rest[p] = X[i, p] - a * W[l, p]
                aa = a * a
                for p in range(d):
                    # one pass over row p of G_i serves both sums (full row: contiguous, fused)
                    t = h_store[i, p]
                    for r in range(d):
                        gpr = G_store[i, p, r]
                        t -= gpr * rest[r]
                        Q[p, r] += aa * gpr
                    q[p] += a * t
            ok &= _chol_solve_draw(Q, q, z[l], d, new)
            for n in range(f_indptr[l], f_indptr[l + 1]):
                i = f_rows[n]
                a = f_vals[n]
                for p in range(d):
                    X[i, p] += a * (new[p] - W[l, p])
            for p in range(d):
                W[l, p] = new[p]
        return ok

    @_jit
    def _residual_numba(user, item, rating, mu, U, V, ub, vb, use_bias):  # pragma: no cover
        k = U.shape[1]
        s1 = 0.0
        s2 = 0.0
        for n in range(user.shape[0]):
            u = user[n]
            i = item[n]
            eta = mu
            for a in range(k):
                eta += U[u, a] * V[i, a]
            if use_bias:
                eta += ub[u] + vb[i]
            r = rating[n] - eta
            s1 += r
            s2 += r * r
        return s1, s2


# --------------------------------------------------------------------------- problem layout
class _Side:
    """Observations grouped by one side, in the layouts both kernel families need."""

    def __init__(self, rows, cols, vals, n_rows, n_cols):
        self.index = SideIndex(rows, cols, n_rows, n_cols)
        self.indptr = self.index.indptr
        self.cols = self.index.indices
        self.vals = np.ascontiguousarray(vals[self.index.order], dtype=np.float64)
        self.cols_obs = cols
        self.vals_obs = vals


class _Features:
    """Feature matrix A of one side (rows = users or items) with its column (CSC) layout."""

    def __init__(self, A: sp.csr_matrix, groups: np.ndarray):
        self.A = A.tocsr()
        csc = self.A.tocsc()
        csc.sort_indices()
        self.f_indptr = csc.indptr.astype(np.int64)
        self.f_rows = csc.indices.astype(np.int64)
        self.f_vals = csc.data.astype(np.float64)
        self.groups = groups  # group id per feature column
        self.n_groups = int(groups.max()) + 1 if groups.size else 0
        self.n = A.shape[1]


def _implicit_matrix(rows, cols, n_rows, n_cols) -> sp.csr_matrix:
    """Row i: 1/sqrt(n_i) at every column it co-occurs with (the SVD++ normalisation)."""
    counts = np.bincount(rows, minlength=n_rows).astype(float)
    vals = 1.0 / np.sqrt(counts[rows])
    A = sp.csr_matrix((vals, (rows, cols)), shape=(n_rows, n_cols))
    A.sum_duplicates()
    return A


# --------------------------------------------------------------------------- hyperparameters
def _gamma_precision(rng, a0, b0, sumsq, n):
    return rng.gamma(a0 + 0.5 * n, 1.0 / (b0 + 0.5 * sumsq))


def _normal_wishart(rng, X):
    """Draw (mu, Lambda) from the Normal-Wishart conditional of BPMF (module docstring, step 5)."""
    n, k = X.shape
    beta0, nu0 = 2.0, float(k)
    xbar = X.mean(axis=0)
    D = X - xbar
    Winv = np.eye(k) + D.T @ D + (beta0 * n / (beta0 + n)) * np.outer(xbar, xbar)
    Winv = 0.5 * (Winv + Winv.T)
    # chol of W = Winv^-1 without forming an explicit inverse of an ill-conditioned matrix
    Li = np.linalg.cholesky(Winv)
    Linv = np.linalg.solve(Li, np.eye(k))
    Lw = np.linalg.cholesky(Linv.T @ Linv)
    nu = nu0 + n
    A = np.zeros((k, k))
    A[np.diag_indices(k)] = np.sqrt(rng.chisquare(nu - np.arange(k)))
    A[np.tril_indices(k, -1)] = rng.standard_normal(k * (k - 1) // 2)
    LA = Lw @ A
    Lam = LA @ LA.T
    beta = beta0 + n
    mu_star = n * xbar / beta
    Ll = np.linalg.cholesky(beta * Lam)
    mu = mu_star + np.linalg.solve(Ll.T, rng.standard_normal(k))
    return mu, Lam


@dataclass
class _Settings:
    n_factors: int
    prior: str
    biases: bool
    global_mean: bool
    sigma: float | None
    sigma_u: float
    sigma_v: float
    sigma_bias: float
    gamma_prior: tuple
    n_samples: int
    burn_in: int
    thin: int
    init_scale: float
    backend: str
    store_factors: bool


def _run_chain(problem: dict, st: _Settings, seed, chain: int, progress: bool = False) -> dict:
    """One Gibbs chain; a top-level function so that worker processes can run it."""
    use_numba = st.backend == "numba"
    rng = np.random.default_rng(seed)
    user, item, rating = problem["user"], problem["item"], problem["rating"]
    n_users, n_items = problem["n_users"], problem["n_items"]
    n_obs = rating.shape[0]
    k = st.n_factors
    ub = int(st.biases)
    d = k + ub
    a0, b0 = st.gamma_prior
    by_user = _Side(user, item, rating, n_users, n_items)
    by_item = _Side(item, user, rating, n_items, n_users)
    feats = {s: (_Features(*problem[f"{s}_features"]) if problem.get(f"{s}_features") else None)
             for s in ("user", "item")}

    # state: effective vectors X (rows x d; last column = bias) and own parts
    Xu = np.zeros((n_users, d))
    Xv = np.zeros((n_items, d))
    Xu[:, :k] = rng.normal(0.0, st.init_scale, (n_users, k))
    Xv[:, :k] = rng.normal(0.0, st.init_scale, (n_items, k))
    W = {s: (np.zeros((f.n, d)) if f is not None else None) for s, f in feats.items()}
    mu = float(rating.mean()) if st.global_mean else 0.0
    tau = 1.0 / st.sigma**2 if st.sigma is not None else 1.0 / max(float(rating.var()), 1e-12)
    fixed = st.prior == "fixed"
    lam_f = {"user": 1.0 / st.sigma_u**2, "item": 1.0 / st.sigma_v**2}
    lam_b = {"user": 1.0 / st.sigma_bias**2, "item": 1.0 / st.sigma_bias**2}
    m_f = {"user": np.zeros(k), "item": np.zeros(k)}
    Lam_f = {"user": lam_f["user"] * np.eye(k), "item": lam_f["item"] * np.eye(k)}
    prec_feat = {s: (np.full((f.n_groups, d), lam_f[s]) if f is not None else None)
                 for s, f in feats.items()}
    G_store = {s: (np.empty((X.shape[0], d, d)) if feats[s] is not None else np.empty((1, 1, 1)))
               for s, X in (("user", Xu), ("item", Xv))}
    h_store = {s: (np.empty((X.shape[0], d)) if feats[s] is not None else np.empty((1, 1)))
               for s, X in (("user", Xu), ("item", Xv))}

    n_keep, thin = st.n_samples, st.thin
    n_sweeps = st.burn_in + n_keep * thin
    check_u, check_i = problem["check_user"], problem["check_item"]
    out = {
        "sigma": np.empty(n_keep),
        "sigma_u": np.empty(n_keep),
        "sigma_v": np.empty(n_keep),
        "pred_check": np.empty((n_keep, check_u.size)),
        "train_rmse": np.empty(n_keep),
    }
    if st.global_mean:
        out["mu"] = np.empty(n_keep)
    if ub:
        out.update(user_bias=np.empty((n_keep, n_users)), item_bias=np.empty((n_keep, n_items)),
                   sigma_b=np.empty(n_keep), sigma_c=np.empty(n_keep))
    if st.prior == "bpmf":
        out.update(mu_u=np.empty((n_keep, k)), mu_v=np.empty((n_keep, k)))
    if st.store_factors:
        out.update(U=np.empty((n_keep, n_users, k)), V=np.empty((n_keep, n_items, k)))
    U_sum = np.zeros((n_users, k))
    V_sum = np.zeros((n_items, k))

    def prior(side):
        P = np.zeros((d, d))
        P[:k, :k] = Lam_f[side]
        m = np.zeros(d)
        m[:k] = m_f[side]
        if ub:
            P[k, k] = lam_b[side]
        return P, m

    def step(side, X, other, by):
        """Draw one side's effective vectors and its feature vectors; return the own parts."""
        P, m = prior(side)
        f = feats[side]
        pm = np.empty_like(X)
        pm[:] = m
        if f is not None:
            pm += f.A @ W[side]
        z = rng.standard_normal(X.shape)
        zf = rng.standard_normal(W[side].shape) if f is not None else None
        store = f is not None
        other_F = np.ascontiguousarray(other[:, :k])
        other_b = np.ascontiguousarray(other[:, k]) if ub else np.zeros(other.shape[0])
        if use_numba:
            ok = _side_step_numba(by.indptr, by.cols, by.vals, other_F, other_b, mu, ub, P, pm, tau, z,
                                  X, store, G_store[side], h_store[side])
            if not ok:
                raise FloatingPointError(f"non positive-definite {side} precision matrix")
        else:
            X[...] = _side_step_numpy(by, other_F, other_b, mu, ub, P, pm, tau, z,
                                      G_store[side] if store else None, h_store[side] if store else None)
        if f is None:
            return X
        prec_rows = prec_feat[side][f.groups]
        if use_numba:
            ok = _feature_step_numba(f.f_indptr, f.f_rows, f.f_vals, G_store[side], h_store[side],
                                     X, W[side], prec_rows, zf)
            if not ok:
                raise FloatingPointError(f"non positive-definite {side}-feature precision matrix")
        else:
            _feature_step_numpy(f.f_indptr, f.f_rows, f.f_vals, G_store[side], h_store[side],
                                X, W[side], prec_rows, zf)
        return X - f.A @ W[side]

    resid_fn = _residual_numba if use_numba else _residual_numpy
    t_loop = time.perf_counter()
    bar = _progress(n_sweeps, f"chain {chain}") if progress else None
    kept = 0
    for t in range(n_sweeps):
        own_u = step("user", Xu, Xv, by_user)
        own_v = step("item", Xv, Xu, by_item)
        Uf, Vf = np.ascontiguousarray(Xu[:, :k]), np.ascontiguousarray(Xv[:, :k])
        bu = np.ascontiguousarray(Xu[:, k]) if ub else np.zeros(1)
        bv = np.ascontiguousarray(Xv[:, k]) if ub else np.zeros(1)
        s1, s2 = resid_fn(user, item, rating, mu, Uf, Vf, bu, bv, ub)
        if st.global_mean:
            prec = tau * n_obs + _MU_PRIOR_PREC
            new_mu = (tau * (s1 + n_obs * mu)) / prec + rng.standard_normal() / math.sqrt(prec)
            delta = mu - new_mu
            s2 = s2 + 2.0 * delta * s1 + n_obs * delta * delta
            mu = new_mu
        if st.sigma is None:
            tau = _gamma_precision(rng, a0, b0, s2, n_obs)
        if not fixed:
            for side, own in (("user", own_u), ("item", own_v)):
                F = own[:, :k]
                if st.prior == "bpmf":
                    m_f[side], Lam_f[side] = _normal_wishart(rng, F)
                else:
                    lam_f[side] = _gamma_precision(rng, a0, b0, float(np.sum(F * F)), F.size)
                    Lam_f[side] = lam_f[side] * np.eye(k)
                if ub:
                    lam_b[side] = _gamma_precision(rng, a0, b0, float(own[:, k] @ own[:, k]), own.shape[0])
                f = feats[side]
                if f is not None:
                    for g in range(f.n_groups):
                        Wg = W[side][f.groups == g]
                        prec_feat[side][g] = _gamma_precision(rng, a0, b0, np.sum(Wg * Wg, axis=0),
                                                              Wg.shape[0])
        if bar is not None:
            bar.update(1)
        if t < st.burn_in or (t - st.burn_in + 1) % thin:
            continue
        s = kept
        kept += 1
        out["sigma"][s] = 1.0 / math.sqrt(tau)
        out["train_rmse"][s] = math.sqrt(max(s2, 0.0) / n_obs)
        for side, name in (("user", "sigma_u"), ("item", "sigma_v")):
            # the prior sd of a new user's/item's factors (exact for isotropic priors;
            # for BPMF the root mean variance of N(mu_U, Lambda_U^-1), its mean mu_U ignored)
            out[name][s] = math.sqrt(float(np.mean(np.diag(np.linalg.inv(Lam_f[side])))))
        eta = mu + np.einsum("nk,nk->n", Xu[check_u, :k], Xv[check_i, :k])
        if ub:
            eta += Xu[check_u, k] + Xv[check_i, k]
            out["user_bias"][s] = Xu[:, k]
            out["item_bias"][s] = Xv[:, k]
            out["sigma_b"][s] = 1.0 / math.sqrt(lam_b["user"])
            out["sigma_c"][s] = 1.0 / math.sqrt(lam_b["item"])
        out["pred_check"][s] = eta
        if st.global_mean:
            out["mu"][s] = mu
        if st.prior == "bpmf":
            out["mu_u"][s] = m_f["user"]
            out["mu_v"][s] = m_f["item"]
        if st.store_factors:
            out["U"][s] = Xu[:, :k]
            out["V"][s] = Xv[:, :k]
        U_sum += Xu[:, :k]
        V_sum += Xv[:, :k]
    if bar is not None:
        bar.close()
    out["loop_seconds"] = time.perf_counter() - t_loop
    out["U_mean"] = U_sum / n_keep
    out["V_mean"] = V_sum / n_keep
    return out


def _progress(total, desc):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is optional
        return _TextBar(total, desc)
    return tqdm(total=total, desc=desc, leave=False)


class _TextBar:  # pragma: no cover - only without tqdm
    def __init__(self, total, desc):
        self.total, self.desc, self.n = total, desc, 0

    def update(self, n):
        self.n += n
        if self.n % max(1, self.total // 20) == 0 or self.n == self.total:
            print(f"\r{self.desc}: {self.n}/{self.total}", end="", file=sys.stderr)

    def close(self):
        print(file=sys.stderr)


def _pool_chain(args):
    return _run_chain(*args)


# --------------------------------------------------------------------------- estimator
class GibbsPMF(BayesianEstimator):
    r"""Blocked Gibbs sampler for PMF / BPMF with biases and implicit feedback.

    The maths (model, priors, the exact conditional of every block) is in the
    module docstring of :mod:`bayes_mf.gibbs`.

    Parameters
    ----------
    n_factors : int
        Rank :math:`k`.
    prior : {"bpmf", "adaptive", "fixed"}
        Normal-Wishart hierarchy on the factors (BPMF), isotropic Gaussian
        with a Gamma hyperprior on its precision, or fixed prior sds
        ``sigma_u``/``sigma_v``/``sigma_bias``.
    biases : bool
        User and item offsets :math:`b_i, c_j`.
    global_mean : bool
        Learn :math:`\mu` (else :math:`\mu = 0`).
    implicit : {False, "user", "item", "both"}
        Implicit-feedback terms (module docstring): a user's vector gains
        :math:`|\Omega_i|^{-1/2}\sum_{l\in\Omega_i} W_l` over the items it
        rated, an item's the same over its raters.  ``True`` means ``"both"``.
    sigma : float or None
        Fixed noise sd; ``None`` learns the noise precision (Gamma prior).
    sigma_u, sigma_v, sigma_bias : float
        Prior sds of factors and biases for ``prior="fixed"`` (feature
        vectors of a side use that side's factor sd); ignored otherwise.
    gamma_prior : (shape, rate)
        :math:`(a_0, b_0)` of every Gamma hyperprior on a precision.
    n_samples : int
        Kept draws per chain.
    burn_in : int
        Sweeps discarded first.  Total sweeps per chain:
        ``burn_in + n_samples * thin``.
    thin : int
        Keep every ``thin``-th sweep after burn-in.
    chains : int
        Independent chains; chain ``c`` uses child ``c`` of
        ``np.random.SeedSequence(random_seed)``, so results do not depend on ``cores``.
    cores : int or None
        Worker processes for the chains; 1 runs them in this process.
        ``None``: ``min(chains, os.cpu_count())`` processes when a chain has
        at least 5e7 rating-sweeps of work (worker start-up costs seconds),
        else in this process.  From a script, guard the fit with
        ``if __name__ == "__main__":`` (workers re-import the main module).
    backend : {"auto", "numba", "numpy"}
        Kernel family; ``"auto"`` uses numba when it is importable.
    store_factors : bool
        Keep U and V of every kept draw (needed by ``predict``).  Memory:
        chains x n_samples x (n_users + n_items) x k floats; with ``False``
        only their running posterior means (``U_mean_``, ``V_mean_``) are
        kept, which bounds memory for huge data, and ``predict`` is unavailable.
    n_check : int
        Training pairs (a seeded random subset) whose mean rating is stored
        per draw as ``pred_check`` for R-hat/ESS.
    init_scale : float
        Sd of the random initial factors.
    clip : bool
        Clip predictions to the rating scale.
    progressbar : bool
    random_seed : int or None

    Attributes
    ----------
    result_ : xarray.DataTree
        ``posterior`` with ``U, V, sigma, mu, user_bias, item_bias, sigma_u,
        sigma_v, sigma_b, sigma_c, pred_check`` (and ``mu_u, mu_v`` for BPMF);
        ``U``/``V`` (and biases) are the *effective* vectors, implicit terms
        included, so the shared posterior predictive applies unchanged.
    U_mean_, V_mean_ : ndarray
        Posterior means of the effective factors (all chains).
    sweep_seconds_ : float
        Mean wall time of one sweep of one chain (the sampling loop only: no
        set-up, process start or result building).
    compile_seconds_ : float
        Time spent compiling or loading the numba kernels in this process.
    """

    def __init__(
        self,
        n_factors: int = 10,
        *,
        prior: str = "bpmf",
        biases: bool = True,
        global_mean: bool = True,
        implicit=False,
        sigma: float | None = None,
        sigma_u: float = 1.0,
        sigma_v: float = 1.0,
        sigma_bias: float = 1.0,
        gamma_prior: tuple = (1.0, 1.0),
        n_samples: int = 150,
        burn_in: int = 50,
        thin: int = 1,
        chains: int = 4,
        cores: int | None = None,
        backend: str = "auto",
        store_factors: bool = True,
        n_check: int = 50,
        init_scale: float = 0.1,
        clip: bool = True,
        progressbar: bool = False,
        random_seed: int | None = 0,
    ):
        self.n_factors = n_factors
        self.prior = prior
        self.biases = biases
        self.global_mean = global_mean
        self.implicit = implicit
        self.sigma = sigma
        self.sigma_u = sigma_u
        self.sigma_v = sigma_v
        self.sigma_bias = sigma_bias
        self.gamma_prior = gamma_prior
        self.n_samples = n_samples
        self.burn_in = burn_in
        self.thin = thin
        self.chains = chains
        self.cores = cores
        self.backend = backend
        self.store_factors = store_factors
        self.n_check = n_check
        self.init_scale = init_scale
        self.clip = clip
        self.progressbar = progressbar
        self.random_seed = random_seed

    # ----------------------------------------------------------------- checks
    def _check_params(self) -> None:
        def integer(name, low):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")

        def positive(name, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                    or not np.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive number{' or None' if allow_none else ''}, "
                                 f"got {v!r}")

        integer("n_factors", 1)
        integer("n_samples", 1)
        integer("burn_in", 0)
        integer("thin", 1)
        integer("chains", 1)
        integer("n_check", 0)
        if self.cores is not None:
            integer("cores", 1)
        if self.prior not in _PRIORS:
            raise ValueError(f"prior must be one of {_PRIORS}, got {self.prior!r}")
        if not isinstance(self.implicit, (bool, str, type(None))) or self.implicit not in _IMPLICIT:
            raise ValueError(
                f"implicit must be False, True, 'user', 'item' or 'both', got {self.implicit!r}")
        if self.backend not in ("auto", "numba", "numpy"):
            raise ValueError(f"backend must be 'auto', 'numba' or 'numpy', got {self.backend!r}")
        if self.backend == "numba" and not HAVE_NUMBA:
            raise ValueError("backend='numba' but numba is not installed; use backend='auto' or 'numpy'")
        positive("sigma", allow_none=True)
        for name in ("sigma_u", "sigma_v", "sigma_bias", "init_scale"):
            positive(name)
        gp = self.gamma_prior
        if (not isinstance(gp, (tuple, list)) or len(gp) != 2
                or not all(isinstance(x, (int, float)) and np.isfinite(x) and x > 0 for x in gp)):
            raise ValueError(f"gamma_prior must be a (shape, rate) pair of positive numbers, got {gp!r}")

    def _resolved_backend(self) -> str:
        if self.backend == "auto":
            return "numba" if HAVE_NUMBA else "numpy"
        return self.backend

    # -------------------------------------------------------------------- fit
    def fit(self, ratings, *, user_features=None, item_features=None, **ratings_kw):
        r"""Sample the posterior given training ratings; returns ``self``.

        Parameters
        ----------
        ratings : Ratings, DataFrame or path
        user_features, item_features : DataFrame, optional
            Side information indexed by the original user/item ids (numeric
            columns; ids missing from the table get zeros).  Each column
            :math:`l` adds :math:`A_{il} W_l` to the effective vector
            (:math:`W_l` has its own factor and bias part, one Gamma prior
            per column of :math:`W` for the whole table).  Scale the columns
            yourself (e.g. one-hot rows divided by their norm).
        **ratings_kw
            Passed to :meth:`Ratings.coerce`.
        """
        self._side_features = {"user": user_features, "item": item_features}
        try:
            return super().fit(ratings, **ratings_kw)
        finally:
            del self._side_features

    def _feature_block(self, side: str, r: Ratings):
        implicit = _IMPLICIT[self.implicit]
        blocks, groups = [], []
        if side in implicit:
            rows, cols = (r.user, r.item) if side == "user" else (r.item, r.user)
            n_rows, n_cols = (r.n_users, r.n_items) if side == "user" else (r.n_items, r.n_users)
            blocks.append(_implicit_matrix(rows, cols, n_rows, n_cols))
            groups.append(np.zeros(n_cols, dtype=np.int64))
        table = self._side_features[side]
        if table is not None:
            ids = r.users if side == "user" else r.items
            name = f"{side}_features"
            if not isinstance(table, pd.DataFrame):
                raise ValueError(f"{name} must be a DataFrame indexed by {side} id, "
                                 f"got {type(table).__name__}")
            try:
                values = table.astype(float)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} must have numeric columns only: {exc}") from None
            if not np.isfinite(values.to_numpy()).all():
                raise ValueError(f"{name} holds non-finite values")
            dense = values.reindex(ids).fillna(0.0).to_numpy()
            blocks.append(sp.csr_matrix(dense))
            groups.append(np.full(dense.shape[1], len(groups), dtype=np.int64))
        if not blocks:
            return None
        return sp.hstack(blocks).tocsr(), np.concatenate(groups)

    def _fit(self, r: Ratings) -> None:
        self._check_params()
        backend = self._resolved_backend()
        self.compile_seconds_ = _warm_up() if backend == "numba" else 0.0
        st = _Settings(
            n_factors=int(self.n_factors), prior=self.prior, biases=bool(self.biases),
            global_mean=bool(self.global_mean), sigma=None if self.sigma is None else float(self.sigma),
            sigma_u=float(self.sigma_u), sigma_v=float(self.sigma_v), sigma_bias=float(self.sigma_bias),
            gamma_prior=tuple(float(x) for x in self.gamma_prior), n_samples=int(self.n_samples),
            burn_in=int(self.burn_in), thin=int(self.thin), init_scale=float(self.init_scale),
            backend=backend, store_factors=bool(self.store_factors),
        )
        check_rng = np.random.default_rng(np.random.SeedSequence(self.random_seed).spawn(1)[0].spawn(1)[0])
        n_check = min(int(self.n_check), len(r))
        check = np.sort(check_rng.choice(len(r), size=n_check, replace=False))
        problem = {
            "user": np.ascontiguousarray(r.user, dtype=np.int64),
            "item": np.ascontiguousarray(r.item, dtype=np.int64),
            "rating": np.ascontiguousarray(r.rating, dtype=np.float64),
            "n_users": r.n_users, "n_items": r.n_items,
            "check_user": r.user[check].astype(np.int64), "check_item": r.item[check].astype(np.int64),
            "user_features": self._feature_block("user", r),
            "item_features": self._feature_block("item", r),
        }
        chains = int(self.chains)
        seeds = np.random.SeedSequence(self.random_seed).spawn(chains)
        n_sweeps = st.burn_in + st.n_samples * st.thin
        if self.cores is not None:
            cores = min(int(self.cores), chains)
        elif len(r) * n_sweeps * (1 + len(_IMPLICIT[self.implicit])) < _PARALLEL_MIN_WORK:
            # a worker process costs ~2-3 s to start (imports); small fits finish sooner in-process
            cores = 1
        else:
            cores = min(chains, os.cpu_count() or 1)
        t0 = time.perf_counter()
        jobs = [(problem, st, seeds[c], c, bool(self.progressbar) and cores == 1) for c in range(chains)]
        if cores > 1:
            results = _run_parallel(jobs, cores, bool(self.progressbar))
        else:
            results = [_run_chain(*job) for job in jobs]
        elapsed = time.perf_counter() - t0
        loop = [res.pop("loop_seconds") for res in results]
        self.sweep_seconds_ = float(np.mean(loop)) / n_sweeps
        self.U_mean_ = np.mean([res.pop("U_mean") for res in results], axis=0)
        self.V_mean_ = np.mean([res.pop("V_mean") for res in results], axis=0)
        self.result_ = self._build(results, r, problem, check, st, elapsed)

    def _build(self, results, r, problem, check, st, elapsed):
        from .results import build_result

        stacked = {name: np.stack([res[name] for res in results]) for name in results[0]}
        sample_stats = {"train_rmse": stacked.pop("train_rmse")}
        extra_dims = {"pred_check": ["check"], "mu_u": ["factor"], "mu_v": ["factor"]}
        model = {"bpmf": "BPMF", "adaptive": "PMF (adaptive priors)", "fixed": "PMF (fixed priors)"}[st.prior]
        extras = [e for e, on in (("biases", st.biases), (f"implicit={self.implicit}", bool(
            _IMPLICIT[self.implicit]))) if on]
        for side in ("user", "item"):
            if problem[f"{side}_features"] is not None and self._side_features[side] is not None:
                extras.append(f"{side} features")
        if extras:
            model += " + " + ", ".join(extras)
        dt = build_result(
            stacked, r, method="gibbs", model=model, n_factors=st.n_factors, random_seed=self.random_seed,
            fit_seconds=elapsed, sample_stats=sample_stats, extra_dims=extra_dims, scale=self.scale_,
            attrs={"prior": st.prior, "backend": st.backend, "chains": len(results),
                   "n_samples": st.n_samples, "burn_in": st.burn_in, "thin": st.thin,
                   "sweeps_per_chain": st.burn_in + st.n_samples * st.thin,
                   "noise": "learned" if st.sigma is None else f"fixed {st.sigma:g}",
                   "implicit": str(self.implicit), "store_factors": int(st.store_factors),
                   "sigma_u_note": "BPMF: sigma_u/sigma_v = root mean diagonal of the prior "
                                   "covariance (used for unseen ids; prior mean ignored)"},
        )
        post = dt["posterior"].to_dataset()
        post = post.assign_coords(check=np.arange(check.size),
                                  check_user=("check", r.users.to_numpy()[r.user[check]]),
                                  check_item=("check", r.items.to_numpy()[r.item[check]]),
                                  check_obs=("check", check))
        dt["posterior"] = post
        return dt

    def _predict_codes(self, ucode, icode, **kw):
        if "U" not in self.result_["posterior"]:
            raise ValueError("this GibbsPMF was fitted with store_factors=False: factor draws were not "
                             "kept, so the posterior predictive is unavailable (U_mean_/V_mean_ hold "
                             "the posterior means); refit with store_factors=True")
        return super()._predict_codes(ucode, icode, **kw)


def _run_parallel(jobs, cores, progressbar):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    from concurrent.futures.process import BrokenProcessPool

    try:
        with ProcessPoolExecutor(max_workers=cores, mp_context=ctx) as pool:
            futures = [pool.submit(_pool_chain, job) for job in jobs]
            bar = _progress(len(jobs), "chains") if progressbar else None
            results = []
            for fut in futures:
                results.append(fut.result())
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
    except BrokenProcessPool as exc:
        raise RuntimeError(
            f"a chain worker process died ({method} start method). When fitting from a script, put the "
            "code under `if __name__ == '__main__':` (worker processes re-import the main module), "
            "or pass cores=1 to run the chains in this process."
        ) from exc
    return results


_WARM = {"done": False, "seconds": 0.0}


def _warm_up() -> float:
    """Compile (or load from the on-disk cache) every numba kernel once per process.

    Returns the seconds it took in this call (0 once warm), reported as
    ``compile_seconds_`` so that benchmarks can separate it from sampling.
    """
    if _WARM["done"]:
        return 0.0
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    user = np.array([0, 0, 1], dtype=np.int64)
    item = np.array([0, 1, 1], dtype=np.int64)
    rating = rng.standard_normal(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for use_bias, feat in ((1, True), (0, False)):
            problem = {"user": user, "item": item, "rating": rating, "n_users": 2, "n_items": 2,
                       "check_user": user[:1], "check_item": item[:1],
                       "user_features": (_implicit_matrix(user, item, 2, 2), np.zeros(2, np.int64))
                       if feat else None, "item_features": None}
            st = _Settings(2, "adaptive", bool(use_bias), True, None, 1.0, 1.0, 1.0, (1.0, 1.0), 1, 0, 1,
                           0.1, "numba", False)
            _run_chain(problem, st, 0, 0)
    _WARM["done"] = True
    _WARM["seconds"] = time.perf_counter() - t0
    return _WARM["seconds"]
