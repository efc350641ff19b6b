r"""The plug-in model in NumPy: log density, gradient and per-row precisions.

MAP, Laplace, Pathfinder and low-rank ADVI all work on the *plug-in*
model -- the identity-link PyMC model of :mod:`bayes_mf.models` with every
scale (and, for the BPMF prior, the factor mean and covariance) held at its
type-II value:

.. math::
    -\log p(\theta\mid R) = \sum_{(i,j)\in\Omega} \frac{(R_{ij} - \eta_{ij})^2}{2\sigma^2}
      + \tfrac12\sum_i (U_i - m_U)^\top P_U (U_i - m_U)
      + \tfrac12\sum_j (V_j - m_V)^\top P_V (V_j - m_V)
      + \sum_i \frac{b_i^2}{2\sigma_b^2} + \sum_j \frac{c_j^2}{2\sigma_c^2}
      + \frac{(\mu - \bar y)^2}{2} + \text{const},

:math:`\eta_{ij} = \mu + b_i + c_j + U_i^\top V_j`.  Written out in NumPy it
needs no compilation and one evaluation of value and gradient costs
:math:`O(|\Omega| k)` (u1: a few milliseconds), where PyMC's compiled graph
costs a second to compile and ~40 ms per call on two cores.  ``tests``
check it against ``model.compile_logp()`` of the same PyMC model.

Given everything else, a user row :math:`a_i = (U_i, b_i)` is Gaussian with
precision

.. math::
    A_i = \frac1{\sigma^2}\sum_{j\in\Omega_i} x_j x_j^\top + P,\qquad x_j = (V_j, 1),

(:math:`P` = blockdiag(:math:`P_U, 1/\sigma_b^2`)) -- exactly the block of
the negative Hessian on that row; likewise item rows and :math:`\mu`
(precision :math:`|\Omega|/\sigma^2 + 1`).  :func:`row_precisions` returns
these blocks (the Laplace rung uses them).

Only the identity link without constrained factors is written here; other
variants raise ``NotImplementedError`` naming what works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._util import SideIndex
from ..data import Ratings
from .typeii import _scaled_moments

__all__ = ["PlugIn", "plug_in", "require_plug_in", "row_precisions"]


def require_plug_in(est, method: str) -> None:
    """Raise ``NotImplementedError`` unless ``est`` is an identity-link, unconstrained model."""
    if est.link != "identity" or est.constrained:
        raise NotImplementedError(
            f"method={method!r} is implemented for link='identity' without constrained factors "
            f"(got link={est.link!r}, constrained={est.constrained}); use method='advi' or 'nuts'")


@dataclass
class PlugIn:
    """The plug-in model: data, constants and the layout of the flat parameter vector.

    The flat vector is ``[U.ravel(), V.ravel(), b, c, mu]`` (the last three
    with biases only).
    """

    user: np.ndarray
    item: np.ndarray
    y: np.ndarray
    n_users: int
    n_items: int
    k: int
    biases: bool
    sigma: float
    mean_u: np.ndarray
    prec_u: np.ndarray
    mean_v: np.ndarray
    prec_v: np.ndarray
    sigma_b: float
    sigma_c: float
    center: float
    by_user: SideIndex
    by_item: SideIndex

    @property
    def size(self) -> int:
        return (self.n_users + self.n_items) * self.k + (self.n_users + self.n_items + 1) * self.biases

    def unpack(self, theta: np.ndarray) -> dict:
        """Flat vector -> ``{"U", "V", "user_bias", "item_bias", "mu"}`` (views)."""
        nu, ni, k = self.n_users, self.n_items, self.k
        out = {"U": theta[: nu * k].reshape(nu, k), "V": theta[nu * k:(nu + ni) * k].reshape(ni, k)}
        o = (nu + ni) * k
        if self.biases:
            out["user_bias"] = theta[o:o + nu]
            out["item_bias"] = theta[o + nu:o + nu + ni]
            out["mu"] = theta[o + nu + ni]
        else:
            out["mu"] = self.center
        return out

    def pack(self, point: dict) -> np.ndarray:
        """``{"U", "V", ...}`` -> the flat vector."""
        parts = [np.ravel(point["U"]), np.ravel(point["V"])]
        if self.biases:
            parts += [np.ravel(point["user_bias"]), np.ravel(point["item_bias"]), [float(point["mu"])]]
        return np.concatenate(parts).astype(float)

    def eta(self, p: dict) -> np.ndarray:
        eta = np.einsum("nk,nk->n", p["U"][self.user], p["V"][self.item]) + p["mu"]
        if self.biases:
            eta = eta + p["user_bias"][self.user] + p["item_bias"][self.item]
        return eta

    def neg_logp_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        r""":math:`-\log p(\theta\mid R)` (up to a constant) and its gradient."""
        p = self.unpack(theta)
        e = (self.eta(p) - self.y) / self.sigma**2  # d(-logp)/d eta per rating
        du = np.asarray(self.by_user.matrix(e) @ p["V"])
        dv = np.asarray(self.by_item.matrix(e) @ p["U"])
        ru, rv = p["U"] - self.mean_u, p["V"] - self.mean_v
        du += ru @ self.prec_u
        dv += rv @ self.prec_v
        f = 0.5 * self.sigma**2 * (e @ e) + 0.5 * np.sum((ru @ self.prec_u) * ru) \
            + 0.5 * np.sum((rv @ self.prec_v) * rv)
        grads = [du.ravel(), dv.ravel()]
        if self.biases:
            b, c, mu = p["user_bias"], p["item_bias"], p["mu"]
            db = np.bincount(self.user, e, self.n_users) + b / self.sigma_b**2
            dc = np.bincount(self.item, e, self.n_items) + c / self.sigma_c**2
            dmu = e.sum() + (mu - self.center)
            f += 0.5 * (b @ b) / self.sigma_b**2 + 0.5 * (c @ c) / self.sigma_c**2
            f += 0.5 * (mu - self.center) ** 2
            grads += [db, dc, [dmu]]
        return float(f), np.concatenate(grads)

    def neg_logp_batch(self, thetas: np.ndarray) -> np.ndarray:
        """:meth:`neg_logp_grad`'s value for each row of ``thetas`` (no gradient)."""
        return np.array([self.neg_logp_grad(t)[0] for t in thetas])


def plug_in(est, r: Ratings, *, shrink: float = 1.0) -> PlugIn:
    """The plug-in model of ``est`` (past its MAP step) on ``r``.

    ``shrink`` multiplies the factor prior precision (the MAP's validated
    point-estimate prior); ``1`` is the type-II posterior plug-in that NUTS
    and ADVI start from.
    """
    require_plug_in(est, est.method)
    k = int(est.n_factors)
    scales = est._map_scales
    if est.priors == "bpmf":
        moments = _scaled_moments(est.type2_, scales["sigma_u"])
        (mu_u, cu), (mu_v, cv) = moments["U"], moments["V"]
    else:
        mu_u = mu_v = np.zeros(k)
        cu, cv = scales["sigma_u"] ** 2 * np.eye(k), scales["sigma_v"] ** 2 * np.eye(k)
    y = np.asarray(r.rating, dtype=float)
    return PlugIn(
        user=r.user.astype(np.int64), item=r.item.astype(np.int64), y=y,
        n_users=r.n_users, n_items=r.n_items, k=k, biases=bool(est.biases), sigma=float(scales["sigma"]),
        mean_u=np.asarray(mu_u, float), prec_u=np.linalg.inv(cu) * shrink,
        mean_v=np.asarray(mu_v, float), prec_v=np.linalg.inv(cv) * shrink,
        sigma_b=float(scales.get("sigma_b", 1.0)), sigma_c=float(scales.get("sigma_c", 1.0)),
        center=float(y.mean()),
        by_user=SideIndex(r.user, r.item, r.n_users, r.n_items),
        by_item=SideIndex(r.item, r.user, r.n_items, r.n_users),
    )


def row_precisions(m: PlugIn, theta: np.ndarray) -> dict:
    r"""Exact conditional precisions of every user row, item row and of :math:`\mu` at ``theta``.

    Returns ``{"user": (n_users, d, d), "item": (n_items, d, d), "mu": float}``
    with ``d = k + 1`` (bias last) with biases, ``k`` without; the blocks of
    :math:`-\nabla^2 \log p` on :math:`(U_i, b_i)`, :math:`(V_j, c_j)` and :math:`\mu`.
    """
    p = m.unpack(theta)
    k = m.k

    def side(index, other, prec, sb):
        design = np.c_[other, np.ones(len(other))] if m.biases else other
        A = index.gram(design) / m.sigma**2
        A[:, :k, :k] += prec
        if m.biases:
            A[:, k, k] += 1.0 / sb**2
        return A

    out = {"user": side(m.by_user, p["V"], m.prec_u, m.sigma_b),
           "item": side(m.by_item, p["U"], m.prec_v, m.sigma_c)}
    out["mu"] = len(m.y) / m.sigma**2 + 1.0 if m.biases else np.inf
    return out


def lbfgs(m: PlugIn, theta0: np.ndarray, *, maxiter: int = 1000, ftol: float = 1e-9, gtol: float = 1e-5,
          callback=None):
    """Minimise :meth:`PlugIn.neg_logp_grad` by L-BFGS-B from ``theta0`` (BLAS on one thread).

    OpenBLAS threads spin on the long level-1 calls inside L-BFGS-B: with
    28 000 parameters on two busy cores 30 iterations took 6 s with two
    threads and 0.07 s with one (scipy 1.18, OpenBLAS 0.3.31).
    """
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return minimize(m.neg_logp_grad, theta0, jac=True, method="L-BFGS-B", callback=callback,
                        options={"maxiter": int(maxiter), "ftol": ftol, "gtol": gtol, "maxcor": 10})


def scale_constants(est) -> dict:
    """The plug-in scales (type-II, model scale) as result variables held fixed in every draw."""
    s = est._map_scales
    out = {"sigma": s["sigma"], "sigma_u": s["sigma_u"], "sigma_v": s["sigma_v"]}
    if est.biases:
        out.update(sigma_b=s["sigma_b"], sigma_c=s["sigma_c"])
    return out


def store_draws(est, r: Ratings, m: PlugIn, thetas, *, method: str, attrs: dict, elbo=None) -> None:
    """Store flat draws ``thetas`` (S x size, or an iterable of chunks) as one chain of ``est.result_``.

    The scales are the plug-in constants; ``est.model_`` is the plug-in PyMC
    model the draws approximate the posterior of.
    """
    import xarray as xr

    thetas = np.asarray(thetas)
    S = thetas.shape[0]
    draws = {"U": thetas[:, : m.n_users * m.k].reshape(S, m.n_users, m.k),
             "V": thetas[:, m.n_users * m.k:(m.n_users + m.n_items) * m.k].reshape(S, m.n_items, m.k)}
    o = (m.n_users + m.n_items) * m.k
    if m.biases:
        draws["user_bias"] = thetas[:, o:o + m.n_users]
        draws["item_bias"] = thetas[:, o + m.n_users:o + m.n_users + m.n_items]
        draws["mu"] = thetas[:, -1]
    else:
        draws["mu"] = np.full(S, m.center)
    for key, v in scale_constants(est).items():
        draws[key] = np.full(S, float(v))
    dims = {"U": ["user", "factor"], "V": ["item", "factor"], "user_bias": ["user"], "item_bias": ["item"]}
    post = xr.Dataset({key: (["chain", "draw", *dims.get(key, [])], v[None]) for key, v in draws.items()})
    est.model_ = est._sampling_model(r, plug_in=True)
    attrs = {"hyperparameters": "type-II (mean-field variational EM), held fixed", "draws_total": int(S),
             **attrs}
    est._store(post, r, method=method, sample_stats=None, attrs=attrs, elbo=elbo)


def n_draws(est) -> int:
    """Draws an approximation stores: ``draws * chains`` (one pooled chain, as ADVI)."""
    return int(est.draws) * int(est.chains)
