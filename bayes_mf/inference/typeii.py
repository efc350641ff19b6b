r"""Type-II (empirical Bayes) prior scales and the posterior mode at them.

The maths is in the docstring of :mod:`bayes_mf.inference` ("Setting the
prior scales").  :func:`empirical_bayes` estimates the scales by mean-field
variational EM on the identity-link model, :func:`validate_shrinkage` picks
the factor-prior strength for the *mode*, :func:`posterior_mode` finds that
mode by exact alternating updates, and the private helpers map the scales
to the logistic link or substitute user-given ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._util import SideIndex, rowdot
from ..data import Ratings
from ..models import to_model_scale

__all__ = ["TypeII", "empirical_bayes", "posterior_mode", "validate_shrinkage", "SHRINK_GRID"]


@dataclass
class TypeII:
    """Result of :func:`empirical_bayes`: posterior means and the estimated scales.

    ``scales`` holds ``sigma``, ``sigma_u``, ``sigma_v`` (and ``sigma_b``,
    ``sigma_c`` with biases), on the rating scale; ``moments`` the factor
    mean and covariance per side (``{"U": (m, C), "V": (m, C)}``).
    """

    U: np.ndarray
    V: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    mu: float
    scales: dict
    moments: dict
    n_iter: int
    history: list = field(default_factory=list)


# ------------------------------------------------------------ linear algebra
def _batched_inv(A: np.ndarray) -> np.ndarray:
    # rows are small SPD matrices: Cholesky is stabler than a general inverse
    L = np.linalg.cholesky(A)
    eye = np.broadcast_to(np.eye(A.shape[-1]), A.shape)
    Linv = np.linalg.solve(L, eye)
    return np.swapaxes(Linv, -1, -2) @ Linv


def _side_update(index: SideIndex, design: np.ndarray, target: np.ndarray, sigma2: float,
                 prior_mean: np.ndarray, prior_prec: np.ndarray, extra_gram: np.ndarray | None,
                 cov: bool = True):
    r"""Gaussian posterior of every row of one side with the other side fixed at its mean.

    Precision :math:`A_r = G_r/\sigma^2 + P`, mean :math:`A_r^{-1}(b_r/\sigma^2 + P m)`
    with :math:`G_r = \sum_{n\in r} x_n x_n^\top` (+ the other side's
    posterior covariances, ``extra_gram``, for the mean-field expectation).
    With ``cov=False`` only the mean is computed (a solve instead of an
    inverse: the mode needs no covariance) and ``S`` is ``None``.
    """
    G = index.gram(design)
    if extra_gram is not None:
        G = G + extra_gram
    A = G / sigma2 + prior_prec[None]
    rhs = index.rhs(design, target) / sigma2 + (prior_prec @ prior_mean)[None]
    if not cov:
        return np.linalg.solve(A, rhs[..., None])[..., 0], None, G
    S = _batched_inv(A)
    return np.einsum("rab,rb->ra", S, rhs), S, G


def _prior_from(M: np.ndarray, S: np.ndarray, k: int, biases: bool, full_cov: bool, floor: float):
    """M-step for one side's prior: factor mean/cov (or scalar sd) and bias sd."""
    F, SF = M[:, :k], S[:, :k, :k]
    if full_cov:
        m = F.mean(0)
        D = F - m
        C = (D.T @ D + SF.sum(0)) / len(F)
        C = C + floor**2 * np.eye(k)
    else:
        m = np.zeros(k)
        s2 = (np.sum(F**2) + np.trace(SF, axis1=1, axis2=2).sum()) / (F.size)
        C = max(s2, floor**2) * np.eye(k)
    bias_sd = None
    if biases:
        bias_sd = float(np.sqrt(max(np.mean(M[:, k] ** 2 + S[:, k, k]), floor**2)))
    return m, C, bias_sd


def _prec(m, C, bias_sd, biases):
    """Prior mean and precision of one side's rows ``[F, b]`` (bias last, when fitted)."""
    k = len(m)
    d = k + int(biases)
    P = np.zeros((d, d))
    P[:k, :k] = np.linalg.inv(C)
    mean = np.zeros(d)
    mean[:k] = m
    if biases:
        P[k, k] = 1.0 / bias_sd**2
    return mean, P


def _design(M: np.ndarray, k: int, biases: bool) -> np.ndarray:
    # the other side's row as regressors: [F_j, 1] (its bias goes to the target)
    return np.c_[M[:, :k], np.ones(len(M))] if biases else M


def _offset(M: np.ndarray, codes: np.ndarray, k: int, biases: bool):
    """The bias column of ``M`` at ``codes`` (0 without biases)."""
    return M[codes, k] if biases else 0.0


def _cov_sum(index: SideIndex, S: np.ndarray, k: int) -> np.ndarray:
    # sum over a row's observations of the other side's factor covariance
    d = S.shape[-1]
    out = np.zeros((index.shape[0], d, d))
    ones = index.matrix(np.ones(len(index.indices)))
    out[:, :k, :k] = np.asarray(ones @ S[:, :k, :k].reshape(len(S), k * k)).reshape(-1, k, k)
    return out


def _side_indices(r: Ratings):
    """The observations grouped by user and by item."""
    return (SideIndex(r.user, r.item, r.n_users, r.n_items),
            SideIndex(r.item, r.user, r.n_items, r.n_users))


# ------------------------------------------------------------ variational EM
def _e_step(r: Ratings, y, indices, B, SB, prior_A, prior_B, sigma2, k, biases):
    """Update ``q`` of the user rows given the item rows, then of the item rows.

    Returns the user means and covariances, the item means, covariances and
    Gram matrices.
    """
    by_user, by_item = indices
    pm_, pP = _prec(*prior_A, biases)
    A, SA, _ = _side_update(by_user, _design(B, k, biases), y - _offset(B, r.item, k, biases), sigma2,
                            pm_, pP, _cov_sum(by_user, SB, k))
    pm_, pP = _prec(*prior_B, biases)
    B, SB, GB = _side_update(by_item, _design(A, k, biases), y - _offset(A, r.user, k, biases), sigma2,
                             pm_, pP, _cov_sum(by_item, SA, k))
    return A, SA, B, SB, GB


def _mean_sq_error(r: Ratings, y, by_user: SideIndex, A, SA, B, SB, GB, k, biases) -> float:
    r""":math:`\frac1N \sum \mathbb E_q[(y - \hat y)^2]`, the M-step for :math:`\sigma^2`."""
    pred = rowdot(A[:, :k], B[:, :k], r.user, r.item) + _offset(A, r.user, k, biases) \
        + _offset(B, r.item, k, biases)
    resid = y - pred
    # E_q[(y - pred)^2] = resid^2 + variance of the prediction under q
    GA = by_user.gram(_design(B, k, biases)) + _cov_sum(by_user, SB, k)
    var_terms = np.einsum("rab,rba->", SA, GA) + np.einsum("rab,rba->", SB, GB)
    return (resid @ resid + var_terms) / len(r)


def empirical_bayes(
    ratings: Ratings,
    n_factors: int,
    *,
    biases: bool = True,
    full_cov: bool = False,
    max_iter: int = 30,
    tol: float = 1e-4,
    random_seed=0,
    floor: float = 1e-3,
) -> TypeII:
    r"""Type-II estimates of the prior scales by mean-field variational EM.

    Model (identity link): :math:`R_{ij} \sim N(\mu + b_i + c_j + U_i^\top V_j,
    \sigma^2)`, :math:`U_i \sim N(m_U, C_U)`, :math:`b_i \sim N(0, \sigma_b^2)`
    (items alike), :math:`\mu` the training mean.  With ``full_cov=False``
    :math:`m_U = 0`, :math:`C_U = \sigma_U^2 I` (the PMF prior); with
    ``full_cov=True`` mean and covariance are free (the BPMF prior).

    The E-step updates :math:`q(U_i, b_i)` and :math:`q(V_j, c_j)` in closed
    form (Lim & Teh 2007 style, batched over rows); the M-step sets the
    prior moments and :math:`\sigma^2` to their expected sufficient
    statistics.  It starts from a weakly regularised ALS fit, stops when
    :math:`\sigma` changes by less than ``tol`` relative, and costs a few ALS
    sweeps per iteration.  ``floor`` bounds every scale away from zero.

    Returns
    -------
    TypeII
    """
    from ..als import ALS

    k = int(n_factors)
    r = ratings
    mu = float(r.rating.mean())
    y = r.rating - mu
    # a weakly regularised start: with a strong penalty the factors start near
    # U = V = 0, a fixed point of the EM that it leaves only very slowly
    als = ALS(k, reg=1.0, reg_bias=1.0, regularization="plain", biases=biases, max_iter=5,
              random_seed=random_seed, clip=False).fit(r)
    indices = _side_indices(r)
    d = k + int(biases)
    A = np.c_[als.U_, als.user_bias_] if biases else als.U_.copy()
    B = np.c_[als.V_, als.item_bias_] if biases else als.V_.copy()
    SA = np.zeros((r.n_users, d, d))
    SB = np.zeros((r.n_items, d, d))
    sigma2 = als.train_rmse_**2
    prior_A = _prior_from(A, SA + 0.01 * np.eye(d), k, biases, full_cov, floor)
    prior_B = _prior_from(B, SB + 0.01 * np.eye(d), k, biases, full_cov, floor)
    history = []
    n_iter = 0
    for _ in range(int(max_iter)):
        n_iter += 1
        A, SA, B, SB, GB = _e_step(r, y, indices, B, SB, prior_A, prior_B, sigma2, k, biases)
        prior_A = _prior_from(A, SA, k, biases, full_cov, floor)
        prior_B = _prior_from(B, SB, k, biases, full_cov, floor)
        new_sigma2 = max(_mean_sq_error(r, y, indices[0], A, SA, B, SB, GB, k, biases), floor**2)
        change = abs(np.sqrt(new_sigma2) - np.sqrt(sigma2)) / np.sqrt(sigma2)
        sigma2 = new_sigma2
        history.append(float(np.sqrt(sigma2)))
        if change < tol:
            break
    (mA, CA, sbA), (mB, CB, sbB) = prior_A, prior_B
    scales = {
        "sigma": float(np.sqrt(sigma2)),
        "sigma_u": float(np.sqrt(np.trace(CA) / k)),
        "sigma_v": float(np.sqrt(np.trace(CB) / k)),
    }
    if biases:
        scales["sigma_b"], scales["sigma_c"] = float(sbA), float(sbB)
    return TypeII(
        U=A[:, :k], V=B[:, :k],
        user_bias=A[:, k] if biases else np.zeros(r.n_users),
        item_bias=B[:, k] if biases else np.zeros(r.n_items),
        mu=mu, scales=scales, moments={"U": (mA, CA), "V": (mB, CB)}, n_iter=n_iter, history=history,
    )


# ------------------------------------------------------------------ the mode
def posterior_mode(
    r: Ratings,
    t2: TypeII,
    *,
    shrink: float = 1.0,
    sweeps: int = 15,
    start: tuple | None = None,
    indices=None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Mode of the identity-link model at the type-II prior, by exact alternating updates.

    The factor prior precision is multiplied by ``shrink`` (the bias and
    noise scales stay at their type-II values).  Each half-step is the exact
    ridge solution of one side given the other (see :mod:`bayes_mf.als`),
    so the objective decreases monotonically to a mode.

    Returns the user rows ``[U_i, b_i]`` and item rows ``[V_j, c_j]``
    (without the bias column when the fit has no biases).
    """
    k = t2.U.shape[1]
    biases = "sigma_b" in t2.scales
    by_user, by_item = indices or _side_indices(r)
    y = r.rating - t2.mu
    if start is None:
        A = np.c_[t2.U, t2.user_bias] if biases else t2.U.copy()
        B = np.c_[t2.V, t2.item_bias] if biases else t2.V.copy()
    else:
        A, B = (x.copy() for x in start)
    (mA, CA), (mB, CB) = t2.moments["U"], t2.moments["V"]
    pmA, PA = _prec(mA, CA / shrink, t2.scales.get("sigma_b"), biases)
    pmB, PB = _prec(mB, CB / shrink, t2.scales.get("sigma_c"), biases)
    sigma2 = t2.scales["sigma"] ** 2

    for _ in range(int(sweeps)):
        target = y - _offset(B, r.item, k, biases)
        A, _, _ = _side_update(by_user, _design(B, k, biases), target, sigma2, pmA, PA, None, cov=False)
        target = y - _offset(A, r.user, k, biases)
        B, _, _ = _side_update(by_item, _design(A, k, biases), target, sigma2, pmB, PB, None, cov=False)
    return A, B


#: multipliers of the type-II factor precision tried by :func:`validate_shrinkage`
SHRINK_GRID = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def validate_shrinkage(r: Ratings, t2: TypeII, *, holdout: float = 0.05, random_seed=0,
                       grid=SHRINK_GRID, sweeps: int = 8) -> tuple[float, dict]:
    r"""Factor-prior strength for the *mode*, chosen on a held-out slice of training.

    The type-II scales are right for the posterior (they balance the fit
    against the posterior variance of the factors); the mode ignores that
    variance and over-fits with them.  So the point estimate multiplies the
    factor precision :math:`1/\sigma_U^2, 1/\sigma_V^2` by the value of
    ``grid`` with the lowest RMSE on a random ``holdout`` fraction of the
    training ratings (fits warm-started along the grid).

    Returns ``(shrink, {shrink: validation RMSE})``.
    """
    rng = np.random.default_rng(random_seed)
    is_val = rng.random(len(r)) < holdout
    fit = r.subset(~is_val, compact=False)
    val = r.subset(is_val, compact=False)
    k = t2.U.shape[1]
    biases = "sigma_b" in t2.scales
    indices = _side_indices(fit)
    # start from a fit that never saw the validation ratings (the type-II
    # means did, and would leak them into the comparison)
    from ..als import ALS

    # plain (not count-weighted) penalty: rows without ratings in this subset must stay solvable
    als = ALS(k, reg=1.0, reg_bias=1.0, regularization="plain", biases=biases, max_iter=5,
              random_seed=random_seed, clip=False).fit(fit)
    start = ((np.c_[als.U_, als.user_bias_], np.c_[als.V_, als.item_bias_]) if biases
             else (als.U_, als.V_))
    scores = {}
    for m in grid:
        A, B = posterior_mode(fit, t2, shrink=m, sweeps=sweeps, start=start, indices=indices)
        start = (A, B)
        pred = t2.mu + rowdot(A[:, :k], B[:, :k], val.user, val.item)
        if biases:
            pred = pred + A[val.user, k] + B[val.item, k]
        if r.scale is not None:
            pred = np.clip(pred, *r.scale)
        scores[float(m)] = float(np.sqrt(np.mean((val.rating - pred) ** 2)))
    return min(scores, key=scores.get), scores


# ------------------------------------------------------ scales for the model
def _scaled_moments(t2: TypeII, sigma_u: float, f: float = 1.0) -> dict:
    """BPMF factor moments of ``t2`` on the model scale (``sigma_u`` there), covariance x ``f**2``."""
    g = sigma_u / t2.scales["sigma_u"]  # 1 for the identity link
    return {key: (m * g, C * g**2 * f**2) for key, (m, C) in t2.moments.items()}


def _logistic_scales(t2: TypeII, scale) -> tuple[dict, dict]:
    r"""Map identity-link type-II scales and means to the logistic model (delta method).

    On the unit scale :math:`t = (x - lo)/(hi - lo)`, a change :math:`\delta`
    of the logit moves the mean by :math:`g'(\eta_0)\delta` with
    :math:`\eta_0 = \mathrm{logit}(\bar t)`; dividing the rating-scale
    effects by :math:`(hi - lo)\, g'(\eta_0)` (factors by its square root on
    each side) gives logit-scale ones.
    """
    lo, hi = scale
    tbar = (t2.mu - lo) / (hi - lo)
    slope = tbar * (1 - tbar)
    width = hi - lo
    c = 1.0 / (width * slope)
    f = np.sqrt(c)
    scales = {"sigma": t2.scales["sigma"] / width,
              "sigma_u": t2.scales["sigma_u"] * f, "sigma_v": t2.scales["sigma_v"] * f}
    point = {"U": t2.U * f, "V": t2.V * f}
    if "sigma_b" in t2.scales:
        scales["sigma_b"] = t2.scales["sigma_b"] * c
        scales["sigma_c"] = t2.scales["sigma_c"] * c
        point["user_bias"] = t2.user_bias * c
        point["item_bias"] = t2.item_bias * c
    return scales, point


def _with_scales(t2: TypeII, given: dict, link: str, scale) -> TypeII:
    """``t2`` with user-given (model-scale) scales substituted, on the rating scale."""
    conv = dict(given)
    if link == "logistic":
        # given scales are on the logit/unit scale; the EM works on ratings
        lo, hi = scale
        tbar = (t2.mu - lo) / (hi - lo)
        c = 1.0 / ((hi - lo) * tbar * (1 - tbar))
        inv = {"sigma": hi - lo, "sigma_u": 1 / np.sqrt(c), "sigma_v": 1 / np.sqrt(c),
               "sigma_b": 1 / c, "sigma_c": 1 / c}
        conv = {k: v * inv[k] for k, v in given.items()}
    scales = dict(t2.scales, **conv)
    k = t2.U.shape[1]
    moments = dict(t2.moments)
    for side, name in (("U", "sigma_u"), ("V", "sigma_v")):
        if name in conv:
            moments[side] = (np.zeros(k), conv[name] ** 2 * np.eye(k))
    return TypeII(U=t2.U, V=t2.V, user_bias=t2.user_bias, item_bias=t2.item_bias, mu=t2.mu,
                  scales=scales, moments=moments, n_iter=t2.n_iter, history=t2.history)


def _logit_of_mean(r: Ratings, scale) -> float:
    """Logit of the mean rating on the unit scale: the logistic model's ``mu`` start."""
    t = float(np.mean(to_model_scale(r.rating, "logistic", scale)))
    t = min(max(t, 1e-6), 1 - 1e-6)
    return float(np.log(t / (1 - t)))
