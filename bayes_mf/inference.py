r"""Fitting the PyMC models of :mod:`bayes_mf.models`: MAP, ADVI and NUTS behind one estimator.

Five lines from data to posterior predictions::

    from bayes_mf import PMF
    from bayes_mf.datasets import movielens_fold
    train, test = movielens_fold("100k", 1)
    map_fit = PMF(n_factors=10, priors="bpmf", method="map").fit(train)
    pred = PMF(n_factors=10, priors="bpmf", method="nuts", init=map_fit).fit(train).predict(test)

``pred`` has per pair the posterior-predictive mean, sd and 90 % interval
(``lo``, ``hi``).  ``init`` is optional (NUTS and ADVI run their own MAP
first).  On MovieLens u1 the MAP takes seconds and NUTS about a quarter of
an hour on two CPU cores (``priors="adaptive"``: about a third of that).

Every fit stores ``result_``, an ``xarray.DataTree`` in the format of
:mod:`bayes_mf.results`: ``posterior`` (MAP = one chain x one draw),
``sample_stats``, ``observed_data``, ``constant_data``, with attrs recording
method, model, rank, seed, package versions and wall time.  The posterior
also holds ``pred_check`` (dim ``check``): the predicted mean rating of a
fixed, seeded set of 50 training pairs -- an identifiable quantity to
diagnose (R-hat, ESS) where :math:`U` and :math:`V` are not (they are
defined only up to rotation, sign and permutation; never diagnose them).

Setting the prior scales (type-II estimation)
---------------------------------------------
A joint mode over factors *and* their learned scales collapses
(:math:`\sigma_U \to 0, U \to 0` increases the density without bound), so
MAP never maximises over the scales.  They are set by *type-II* (empirical
Bayes) estimation instead: :func:`empirical_bayes` runs variational EM on
the identity-link model -- a mean-field Gaussian posterior per user row
:math:`[U_i, b_i]` and per item row :math:`[V_j, c_j]` (closed-form updates,
batched over rows) alternated with the M-step

.. math::
    \sigma_U^2 = \frac{1}{n_U k}\sum_i \bigl(\|\bar U_i\|^2 + \mathrm{tr}\,\Sigma_{U_i}\bigr),\qquad
    \sigma^2 = \frac1N \sum_{(i,j)\in\Omega} \mathbb E_q\bigl[(R_{ij} - \hat R_{ij})^2\bigr]

(likewise :math:`\sigma_V, \sigma_b, \sigma_c`; a mean vector and full
covariance per side for the BPMF prior).  The posterior-variance terms are
what keeps the scales away from zero.  MAP then maximises the model with
those scales plugged in (``priors="adaptive"`` and ``"bpmf"`` become the
``"fixed"`` model at the type-II values; ``result_.attrs["hyperparameters"]``
says so).  One more step is needed for a *point* estimate: the type-II
scales balance the fit against the posterior variance of the factors, which
the mode ignores, so the mode over-fits with them (u1, rank 10: test RMSE
0.93-0.95, depending on how far the EM runs).  :func:`validate_shrinkage`
therefore multiplies the factor prior precision by the value of a small
grid that predicts a random 5 % slice of the training ratings best (u1: 3,
RMSE 0.923); the noise and bias scales stay at their type-II values.
The mode is found by exact alternating updates (:func:`posterior_mode`) and finished with L-BFGS-B on PyMC's
compiled log-density and gradient (``pm.find_MAP``) -- never started from
:math:`U = V = 0`, a saddle point where the gradient vanishes.  For the
logistic link the scales are mapped through the slope of the link at the
mean rating (delta method) and L-BFGS-B does all the work.

NUTS integrates over the scales of the adaptive and BPMF priors, starting
from the MAP point and the type-II scales.  ADVI keeps the scales at their
type-II values: mean-field ADVI with learned scales prunes the factors
(u1, rank 10: :math:`\sigma_U` 0.45 -> 0.14, test RMSE 0.953, the bias
baseline; with type-II scales 0.923).

Sampler statistics
------------------
``sample_stats`` uses one set of names whatever the backend: ``diverging``,
``tree_depth``, ``step_size``, ``energy``, ``lp``, ``n_steps`` (NUTS).  For
ADVI it holds ``elbo`` over its own dim ``advi_iteration`` (the ELBO
estimate, i.e. minus PyMC's loss, at every optimisation step).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ._util import SideIndex, rowdot
from .base import BayesianEstimator
from .data import Ratings
from .models import build_model, check_options, model_name, to_model_scale

__all__ = ["PMF", "METHODS", "NUTS_SAMPLERS", "TypeII", "empirical_bayes", "normalise_sample_stats"]

METHODS = ("map", "advi", "nuts", "gibbs")
NUTS_SAMPLERS = ("nutpie", "pymc", "numpyro")

#: variables of the shared result format (see :mod:`bayes_mf.results`)
RESULT_VARS = ("U", "V", "sigma", "mu", "user_bias", "item_bias", "sigma_u", "sigma_v", "sigma_b", "sigma_c")

#: backend statistic name -> normalised name
_STAT_NAMES = {
    "diverging": "diverging", "divergent": "diverging",
    "tree_depth": "tree_depth", "depth": "tree_depth",
    "step_size": "step_size",
    "energy": "energy",
    "lp": "lp", "logp": "lp",
    "n_steps": "n_steps", "n_leapfrog": "n_steps", "num_steps": "n_steps",
}

N_CHECK = 50
_CHECK_SEED = 20070101  # fixed: the check pairs are the same for every fit of the same data


# ============================================================ type-II (EM)
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


def _batched_inv(A: np.ndarray) -> np.ndarray:
    # rows are small SPD matrices: Cholesky is stabler than a general inverse
    L = np.linalg.cholesky(A)
    eye = np.broadcast_to(np.eye(A.shape[-1]), A.shape)
    Linv = np.linalg.solve(L, eye)
    return np.swapaxes(Linv, -1, -2) @ Linv


def _side_update(index: SideIndex, design: np.ndarray, target: np.ndarray, sigma2: float,
                 prior_mean: np.ndarray, prior_prec: np.ndarray, extra_gram: np.ndarray | None):
    r"""Gaussian posterior of every row of one side with the other side fixed at its mean.

    Precision :math:`A_r = G_r/\sigma^2 + P`, mean :math:`A_r^{-1}(b_r/\sigma^2 + P m)`
    with :math:`G_r = \sum_{n\in r} x_n x_n^\top` (+ the other side's
    posterior covariances, ``extra_gram``, for the mean-field expectation).
    """
    G = index.gram(design)
    if extra_gram is not None:
        G = G + extra_gram
    A = G / sigma2 + prior_prec[None]
    S = _batched_inv(A)
    rhs = index.rhs(design, target) / sigma2 + (prior_prec @ prior_mean)[None]
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
    k = len(m)
    d = k + int(biases)
    P = np.zeros((d, d))
    P[:k, :k] = np.linalg.inv(C)
    mean = np.zeros(d)
    mean[:k] = m
    if biases:
        P[k, k] = 1.0 / bias_sd**2
    return mean, P


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
    from .als import ALS

    k = int(n_factors)
    r = ratings
    N = len(r)
    mu = float(r.rating.mean())
    y = r.rating - mu
    # a weakly regularised start: with a strong penalty the factors start near
    # U = V = 0, a fixed point of the EM that it leaves only very slowly
    als = ALS(k, reg=1.0, reg_bias=1.0, regularization="plain", biases=biases, max_iter=5,
              random_seed=random_seed, clip=False).fit(r)
    by_user = SideIndex(r.user, r.item, r.n_users, r.n_items)
    by_item = SideIndex(r.item, r.user, r.n_items, r.n_users)
    d = k + int(biases)
    A = np.c_[als.U_, als.user_bias_] if biases else als.U_.copy()
    B = np.c_[als.V_, als.item_bias_] if biases else als.V_.copy()
    SA = np.zeros((r.n_users, d, d))
    SB = np.zeros((r.n_items, d, d))
    sigma2 = als.train_rmse_**2
    mA, CA, sbA = _prior_from(A, SA + 0.01 * np.eye(d), k, biases, full_cov, floor)
    mB, CB, sbB = _prior_from(B, SB + 0.01 * np.eye(d), k, biases, full_cov, floor)
    history = []

    def design(M):
        # the other side's row as regressors: [F_j, 1] (its bias goes to the target)
        return np.c_[M[:, :k], np.ones(len(M))] if biases else M

    def offset(M, codes):
        return M[codes, k] if biases else 0.0

    def cov_sum(index, S):
        # sum over a row's observations of the other side's factor covariance
        out = np.zeros((index.shape[0], d, d))
        ones = index.matrix(np.ones(len(index.indices)))
        out[:, :k, :k] = np.asarray(ones @ S[:, :k, :k].reshape(len(S), k * k)).reshape(-1, k, k)
        return out

    n_iter = 0
    for _ in range(int(max_iter)):
        n_iter += 1
        pm_, pP = _prec(mA, CA, sbA, biases)
        A, SA, _ = _side_update(by_user, design(B), y - offset(B, r.item), sigma2, pm_, pP,
                                cov_sum(by_user, SB))
        pm_, pP = _prec(mB, CB, sbB, biases)
        B, SB, GB = _side_update(by_item, design(A), y - offset(A, r.user), sigma2, pm_, pP,
                                 cov_sum(by_item, SA))
        mA, CA, sbA = _prior_from(A, SA, k, biases, full_cov, floor)
        mB, CB, sbB = _prior_from(B, SB, k, biases, full_cov, floor)
        pred = rowdot(A[:, :k], B[:, :k], r.user, r.item) + offset(A, r.user) + offset(B, r.item)
        resid = y - pred
        # E_q[(y - pred)^2] = resid^2 + variance of the prediction under q
        GA = by_user.gram(design(B)) + cov_sum(by_user, SB)
        var_terms = np.einsum("rab,rba->", SA, GA) + np.einsum("rab,rba->", SB, GB)
        new_sigma2 = max((resid @ resid + var_terms) / N, floor**2)
        change = abs(np.sqrt(new_sigma2) - np.sqrt(sigma2)) / np.sqrt(sigma2)
        sigma2 = new_sigma2
        history.append(float(np.sqrt(sigma2)))
        if change < tol:
            break
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


def _side_indices(r: Ratings):
    return (SideIndex(r.user, r.item, r.n_users, r.n_items),
            SideIndex(r.item, r.user, r.n_items, r.n_users))


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

    def design(M):
        return np.c_[M[:, :k], np.ones(len(M))] if biases else M

    for _ in range(int(sweeps)):
        target = y - (B[r.item, k] if biases else 0.0)
        A, _, _ = _side_update(by_user, design(B), target, sigma2, pmA, PA, None)
        target = y - (A[r.user, k] if biases else 0.0)
        B, _, _ = _side_update(by_item, design(A), target, sigma2, pmB, PB, None)
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
    from .als import ALS

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


# ========================================================= result helpers
def normalise_sample_stats(stats, *, keep_extra: bool = False) -> dict:
    """Backend sampler statistics -> ``{normalised name: (chain, draw) array}``.

    nutpie calls the tree depth ``depth`` and the log density ``logp``;
    PyMC and the JAX samplers already use ``tree_depth``/``lp``.  ``n_steps``
    is derived from the depth when a backend lacks it.
    """
    out = {}
    names = list(stats.data_vars) if hasattr(stats, "data_vars") else list(stats)
    for name in names:
        target = _STAT_NAMES.get(name)
        if target is None and not keep_extra:
            continue
        arr = np.asarray(stats[name])
        if arr.ndim != 2:
            continue
        out[target or name] = arr
    if "diverging" in out:
        out["diverging"] = out["diverging"].astype(bool)
    if "tree_depth" in out:
        out["tree_depth"] = out["tree_depth"].astype(np.int64)
    if "n_steps" in out:
        out["n_steps"] = out["n_steps"].astype(np.int64)
    return out


def check_pairs(ratings: Ratings, n: int = N_CHECK) -> np.ndarray:
    """Positions of the fixed, seeded set of training pairs behind ``pred_check``."""
    rng = np.random.default_rng(_CHECK_SEED)
    return np.sort(rng.choice(len(ratings), size=min(n, len(ratings)), replace=False))


def _pred_check(post: dict, ratings: Ratings, link: str, scale) -> np.ndarray:
    """Mean rating of the check pairs per draw, on the rating scale: (chain, draw, check)."""
    pos = check_pairs(ratings)
    u, i = ratings.user[pos], ratings.item[pos]
    eta = np.einsum("cdpk,cdpk->cdp", post["U"][:, :, u, :], post["V"][:, :, i, :])
    eta = eta + np.asarray(post["mu"])[..., None]
    if "user_bias" in post:
        eta = eta + post["user_bias"][:, :, u] + post["item_bias"][:, :, i]
    if link == "logistic":
        lo, hi = scale
        return lo + (hi - lo) / (1.0 + np.exp(-eta))
    return eta


def _as_chain_draw(a, n_chain: int, n_draw: int) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return np.broadcast_to(a, (n_chain, n_draw) + a.shape[2:]) if a.ndim >= 2 else \
        np.broadcast_to(a, (n_chain, n_draw))


def _posterior_dict(posterior, *, biases: bool) -> dict:
    """Select the shared result variables from a PyMC posterior Dataset."""
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    out = {}
    for name in RESULT_VARS:
        if name in ("user_bias", "item_bias", "sigma_b", "sigma_c") and not biases:
            continue
        if name not in posterior:
            continue
        a = np.asarray(posterior[name].to_numpy(), dtype=float)
        if a.ndim < 2:  # a constant stored once: repeat it per draw
            a = np.broadcast_to(a, (n_chain, n_draw) + a.shape)
        out[name] = np.ascontiguousarray(a)
    return out


# =============================================================== estimator
class PMF(BayesianEstimator):
    r"""Bayesian probabilistic matrix factorization with PyMC: MAP, ADVI or NUTS.

    .. math::
        R_{ij} \sim N\bigl(g(\mu + b_i + c_j + U_i^\top V_j),\ \sigma^2\bigr),
        \quad U_i \sim N(0, \sigma_U^2 I),\ V_j \sim N(0, \sigma_V^2 I)

    with the variants of :mod:`bayes_mf.models` (learned or fixed scales,
    BPMF's hierarchical prior, biases, logistic link, constrained PMF).

    Parameters
    ----------
    n_factors : int
        Rank :math:`k`.
    priors : {"adaptive", "fixed", "bpmf"}
        ``"adaptive"``: scales learned under HalfNormal hyperpriors (NUTS)
        or set by type-II EM (MAP, ADVI); ``"fixed"``: constant scales, those
        given as ``sigma``/``sigma_u``/... or else their type-II estimates;
        ``"bpmf"``: factor means and LKJ-Cholesky covariances.
    biases : bool
        Global mean plus user and item offsets.
    link : {"identity", "logistic"}
        ``"logistic"`` maps ratings to [0, 1] and needs a rating scale.
    constrained : bool
        Constrained PMF user factors.
    method : {"map", "advi", "nuts", "gibbs"}
        ``"gibbs"`` delegates to :class:`bayes_mf.gibbs.GibbsPMF`.
    draws, tune, chains : int
        Posterior draws per chain, warm-up steps (NUTS), chains (>= 2 for
        NUTS).  ADVI draws ``draws * chains`` from its approximation, stored
        as one chain.
    nuts_sampler : {"nutpie", "pymc", "numpyro"}
        NUTS backend; ``"numpyro"`` needs JAX.
    target_accept : float
        NUTS target acceptance.
    advi_iterations : int
        ADVI optimisation steps.
    advi_learning_rate : float
        Adam step size of ADVI.
    batch_size : int, optional
        ADVI minibatch size (``None``: full data, fine up to ~10^5 ratings).
    sigma, sigma_u, sigma_v, sigma_b, sigma_c : float, optional
        On the model scale.  ``priors="fixed"``: the scales themselves
        (missing ones are type-II estimates).  Otherwise the scales of the
        HalfNormal hyperpriors of NUTS/ADVI; missing ones default to twice
        the type-II estimate (a weak prior centred on the data's own scale).
        With ``method="gibbs"`` they are passed on to :class:`~bayes_mf.gibbs.GibbsPMF`.
    init : PMF, optional
        A fitted MAP ``PMF`` to start NUTS/ADVI from (else a MAP is run).
    map_maxiter, map_ftol : int, float
        L-BFGS-B iteration limit and relative objective tolerance of MAP
        (the start is already near the mode; 1e-6 of a log density of ~1e5
        is far below what changes a prediction).
    em_iter : int
        Maximum variational-EM iterations of the type-II step.
    random_seed : int or None
    progressbar : bool
    clip : bool
        Clip predicted means and interval ends to the rating scale.

    Attributes
    ----------
    result_ : xarray.DataTree
    model_ : pymc.Model
        The model that was fitted (for MAP: with the type-II scales as constants).
    type2_ : TypeII
        The type-II estimates behind the fit.
    map_point_ : dict
        The MAP point (model variable names -> arrays); NUTS/ADVI start there.
    fit_seconds_ : float
    """

    def __init__(
        self,
        n_factors: int = 10,
        *,
        priors: str = "adaptive",
        biases: bool = True,
        link: str = "identity",
        constrained: bool = False,
        method: str = "map",
        draws: int = 500,
        tune: int = 500,
        chains: int = 2,
        nuts_sampler: str = "nutpie",
        target_accept: float = 0.8,
        advi_iterations: int = 10_000,
        advi_learning_rate: float = 0.01,
        batch_size: int | None = None,
        sigma: float | None = None,
        sigma_u: float | None = None,
        sigma_v: float | None = None,
        sigma_b: float | None = None,
        sigma_c: float | None = None,
        init=None,
        map_maxiter: int = 1000,
        map_ftol: float = 1e-6,
        em_iter: int = 25,
        random_seed: int | None = 0,
        progressbar: bool = False,
        clip: bool = True,
    ):
        self.n_factors = n_factors
        self.priors = priors
        self.biases = biases
        self.link = link
        self.constrained = constrained
        self.method = method
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.nuts_sampler = nuts_sampler
        self.target_accept = target_accept
        self.advi_iterations = advi_iterations
        self.advi_learning_rate = advi_learning_rate
        self.batch_size = batch_size
        self.sigma = sigma
        self.sigma_u = sigma_u
        self.sigma_v = sigma_v
        self.sigma_b = sigma_b
        self.sigma_c = sigma_c
        self.init = init
        self.map_maxiter = map_maxiter
        self.map_ftol = map_ftol
        self.em_iter = em_iter
        self.random_seed = random_seed
        self.progressbar = progressbar
        self.clip = clip

    # ------------------------------------------------------------- checks
    def _check_params(self, scale) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        check_options(n_factors=self.n_factors, priors=self.priors, link=self.link, scale=scale)
        if self.method == "nuts" and self.nuts_sampler not in NUTS_SAMPLERS:
            raise ValueError(f"nuts_sampler must be one of {NUTS_SAMPLERS}, got {self.nuts_sampler!r}")
        for name in ("draws", "chains", "advi_iterations", "map_maxiter", "em_iter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.tune, bool) or not isinstance(self.tune, int | np.integer) or self.tune < 0:
            raise ValueError(f"tune must be an integer >= 0, got {self.tune!r}")
        if self.method == "nuts" and self.chains < 2:
            raise ValueError(f"chains must be >= 2 for NUTS (R-hat needs them), got {self.chains}")
        if not 0 < self.target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1), got {self.target_accept!r}")
        if not self.advi_learning_rate > 0:
            raise ValueError(f"advi_learning_rate must be > 0, got {self.advi_learning_rate!r}")
        for name in ("sigma", "sigma_u", "sigma_v", "sigma_b", "sigma_c"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number or None, got {v!r}")
        if self.batch_size is not None and self.method != "advi":
            raise ValueError("batch_size applies to method='advi' only")
        if self.init is not None and not (isinstance(self.init, PMF) and hasattr(self.init, "map_point_")):
            raise ValueError("init must be a fitted PMF (e.g. PMF(method='map').fit(train)) or None")

    # ------------------------------------------------------------------ fit
    def _fit(self, r: Ratings) -> None:
        scale = r.scale if r.scale is not None else None
        self._check_params(scale)
        self._t0 = time.perf_counter()
        self._scale = scale
        if self.method == "gibbs":
            return self._fit_gibbs(r)
        self._model_label = model_name(self.priors, self.biases, self.link, self.constrained)
        if self.method == "map":
            return self._fit_map(r)
        if self.init is not None:
            self._adopt_init(self.init, r)
        else:
            self._fit_map(r, store=False)
        if self.method == "nuts":
            return self._fit_nuts(r)
        return self._fit_advi(r)

    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _given_scales(self) -> dict:
        return {k: getattr(self, k) for k in ("sigma", "sigma_u", "sigma_v", "sigma_b", "sigma_c")}

    def _adopt_init(self, other: PMF, r: Ratings) -> None:
        if not (other.users_.equals(r.users) and other.items_.equals(r.items)):
            raise ValueError("init was fitted on different users/items than the data given to fit")
        if int(other.n_factors) != int(self.n_factors):
            raise ValueError(f"init has n_factors={other.n_factors}, this PMF {self.n_factors}")
        self.type2_ = other.type2_
        self.map_point_ = dict(other.map_point_)
        self._map_scales = dict(other._map_scales)

    # ------------------------------------------------------------------ MAP
    def _type2(self, r: Ratings) -> TypeII:
        return empirical_bayes(r, int(self.n_factors), biases=self.biases,
                               full_cov=self.priors == "bpmf", max_iter=int(self.em_iter),
                               tol=1e-3, random_seed=self.random_seed)

    def _fit_map(self, r: Ratings, *, store: bool = True) -> None:
        import pymc as pm

        timing = {}
        tic = time.perf_counter()
        t2 = self._type2(r)
        self.type2_ = t2
        timing["type2"] = time.perf_counter() - tic
        k = int(self.n_factors)
        given = {k_: v for k_, v in self._given_scales().items() if v is not None and k_ in t2.scales}
        if self.priors == "fixed" and given:  # the user's scales win; type-II fills the rest
            t2 = _with_scales(t2, given, self.link, self._scale)
        user_fixed = self.priors == "fixed" and {"sigma_u", "sigma_v"} <= set(given)
        if user_fixed:
            shrink, val_scores = 1.0, {}
        else:
            shrink, val_scores = validate_shrinkage(r, t2, random_seed=self.random_seed)
        self.shrink_, self.validation_rmse_ = shrink, val_scores
        timing["validation"] = time.perf_counter() - tic - timing["type2"]
        if self.link == "identity":
            A, B = posterior_mode(r, t2, shrink=shrink, sweeps=30)
            t2_mode = TypeII(U=A[:, :k], V=B[:, :k],
                             user_bias=A[:, k] if self.biases else t2.user_bias,
                             item_bias=B[:, k] if self.biases else t2.item_bias,
                             mu=t2.mu, scales=t2.scales, moments=t2.moments, n_iter=t2.n_iter)
        else:
            t2_mode = t2
        f = 1.0 / np.sqrt(shrink)
        if self.link == "logistic":
            scales, point = _logistic_scales(t2_mode, self._scale)
        else:
            scales = dict(t2.scales)
            point = {"U": t2_mode.U, "V": t2_mode.V}
            if self.biases:
                point["user_bias"], point["item_bias"] = t2_mode.user_bias, t2_mode.item_bias
        # NUTS/ADVI start their learned scales at the type-II values ...
        self._map_scales = dict(scales)
        # ... while the mode uses the validated, stronger factor prior
        map_scales = dict(scales, sigma_u=scales["sigma_u"] * f, sigma_v=scales["sigma_v"] * f)
        moments = None
        if self.priors == "bpmf":
            g = scales["sigma_u"] / t2.scales["sigma_u"]  # 1 for the identity link
            moments = {key: (m * g, C * g**2 * f**2) for key, (m, C) in t2.moments.items()}
        if self.biases:
            point["mu"] = t2.mu if self.link == "identity" else _logit_of_mean(r, self._scale)
        if self.constrained:
            point["Y"] = point.pop("U")
            point["W"] = np.zeros_like(point["V"])
        scales = map_scales
        model = build_model(
            r, int(self.n_factors), priors="bpmf" if self.priors == "bpmf" else "fixed",
            biases=self.biases, link=self.link, constrained=self.constrained,
            sigma=scales["sigma"], sigma_u=scales["sigma_u"], sigma_v=scales["sigma_v"],
            sigma_b=scales.get("sigma_b"), sigma_c=scales.get("sigma_c"),
            sigma_w=scales["sigma_u"], factor_moments=moments, scale=self._scale,
        )
        free = {rv.name for rv in model.free_RVs}
        initvals = {k: np.asarray(v, dtype=float) for k, v in point.items() if k in free}
        timing["numpy_mode"] = time.perf_counter() - tic - timing["type2"] - timing["validation"]
        with model:
            # jitter=False: the start is the mode found above, not PyMC's U = V = 0 saddle
            dt = pm.find_MAP(initvals=initvals, method="L-BFGS-B", jitter=False,
                             return_inferencedata=True, progressbar=False,
                             random_seed=self.random_seed, maxiter=int(self.map_maxiter),
                             ftol=float(self.map_ftol))
        timing["find_map"] = time.perf_counter() - tic - sum(timing.values())
        self.map_timing_ = timing
        post = dt["posterior"].to_dataset()
        self.map_point_ = {name: np.asarray(post[name].to_numpy())[0, 0] for name in post.data_vars}
        # start values for the adaptive/hierarchical models: the type-II scales
        self.map_point_.update({k: np.asarray(v) for k, v in self._map_scales.items()})
        if self.constrained:
            self.map_point_["sigma_y"] = np.asarray(self._map_scales["sigma_u"])
            self.map_point_["sigma_w"] = np.asarray(self._map_scales["sigma_u"])
        if self.priors == "bpmf":
            # the hierarchical mean and covariance start at their type-II values
            # (unshrunk: the sampler integrates over them)
            g2 = (self._map_scales["sigma_u"] / t2.scales["sigma_u"]) ** 2
            tril = np.tril_indices(k)
            u_name, v_name = ("y", "v") if self.constrained else ("u", "v")
            for key, name in (("U", u_name), ("V", v_name)):
                mean, cov = t2.moments[key]
                self.map_point_[f"mu_{name}"] = mean * np.sqrt(g2)
                self.map_point_[f"chol_{name}"] = np.linalg.cholesky(cov * g2)[tril]
        if not store:
            return
        self.model_ = model
        opt = dt["optimizer_result"].to_dataset() if "optimizer_result" in dt.children else None
        attrs = {"hyperparameters": "type-II (mean-field variational EM); factor prior "
                                    "precision x shrink, chosen on a 5% validation slice",
                 "em_iterations": int(t2.n_iter), "shrink": float(shrink),
                 "validation_rmse": ", ".join(f"{m:g}: {v:.4f}" for m, v in val_scores.items())}
        if opt is not None:
            for key in ("nit", "success", "fun"):
                if key in opt:
                    val = opt[key].to_numpy()
                    attrs[f"optimizer_{key}"] = val.item() if val.size == 1 else str(val)
        self._store(post, r, method="map", sample_stats=None, attrs=attrs)

    # ----------------------------------------------------------------- NUTS
    def _sampling_model(self, r: Ratings, batch_size=None, *, plug_in: bool = False):
        given = self._given_scales()
        scales = dict(self._map_scales)
        if plug_in:
            # the scales (BPMF: factor means and covariances) as constants at
            # their type-II values
            moments = None
            if self.priors == "bpmf":
                g = scales["sigma_u"] / self.type2_.scales["sigma_u"]
                moments = {key: (m * g, C * g**2) for key, (m, C) in self.type2_.moments.items()}
            return build_model(r, int(self.n_factors), priors="bpmf" if moments else "fixed",
                               biases=self.biases, link=self.link, constrained=self.constrained,
                               scale=self._scale, batch_size=batch_size, factor_moments=moments,
                               sigma_w=scales["sigma_u"],
                               **{k: scales.get(k) for k in ("sigma", "sigma_u", "sigma_v", "sigma_b",
                                                             "sigma_c")})
        if self.priors == "fixed":
            kw = {k: scales.get(k) for k in ("sigma", "sigma_u", "sigma_v", "sigma_b", "sigma_c")}
            kw["sigma_w"] = scales["sigma_u"]
        else:
            # hyperprior scales: the user's, else weakly informative ones wide
            # around the type-II values (HalfNormal(2s) has its median near 1.35 s)
            kw = {k: (given[k] if given[k] is not None else 2.0 * scales[k]) if k in scales else None
                  for k in ("sigma", "sigma_u", "sigma_v", "sigma_b", "sigma_c")}
            kw["sigma_w"] = kw["sigma_u"]
        return build_model(r, int(self.n_factors), priors=self.priors, biases=self.biases,
                           link=self.link, constrained=self.constrained, scale=self._scale,
                           batch_size=batch_size, **kw)

    def _initvals(self, model) -> dict:
        free = {rv.name: rv for rv in model.free_RVs}
        ip = model.initial_point()
        out = {}
        for name, value in self.map_point_.items():
            if name in free:
                value = np.asarray(value, dtype=float)
                if np.shape(ip[model.rvs_to_values[free[name]].name]) == value.shape:
                    out[name] = value
        return out

    def _fit_nuts(self, r: Ratings) -> None:
        import pymc as pm

        if self.nuts_sampler == "numpyro":
            _require_jax()
        model = self._sampling_model(r)
        self.model_ = model
        initvals = self._initvals(model)
        kw = {}
        if self.nuts_sampler == "nutpie":
            # start every chain at the MAP: nutpie's default U(-1, 1) jitter
            # would throw the factors far from the mode
            kw["compile_kwargs"] = {"jitter_rvs": set()}
            init = initvals
        elif self.nuts_sampler == "pymc":
            kw["init"] = "adapt_diag"
            init = initvals
        else:
            kw["nuts"] = {"jitter": False}
            init = initvals
        with model:
            dt = pm.sample(
                draws=int(self.draws), tune=int(self.tune), chains=int(self.chains),
                nuts_sampler=self.nuts_sampler, initvals=init, target_accept=float(self.target_accept),
                random_seed=self.random_seed, progressbar=self.progressbar,
                compute_convergence_checks=False, **kw,
            )
        post = dt["posterior"].to_dataset()
        stats = {}
        if "sample_stats" in dt.children:
            stats = normalise_sample_stats(dt["sample_stats"].to_dataset())
        attrs = {"nuts_sampler": self.nuts_sampler, "draws": int(self.draws), "tune": int(self.tune),
                 "chains": int(self.chains), "target_accept": float(self.target_accept),
                 "init": "MAP with type-II scales"}
        if "diverging" in stats:
            attrs["n_divergent"] = int(stats["diverging"].sum())
        self._store(post, r, method="nuts", sample_stats=stats, attrs=attrs)

    # ----------------------------------------------------------------- ADVI
    def _fit_advi(self, r: Ratings) -> None:
        import pymc as pm

        # Mean-field ADVI with learned scales prunes the factors: on u1 (rank 10)
        # sigma_u fell from 0.45 to 0.14 and the fit to the bias baseline (RMSE
        # 0.953).  So ADVI, like MAP, keeps the scales at their type-II values.
        model = self._sampling_model(r, batch_size=self.batch_size, plug_in=True)
        self.model_ = model
        initvals = self._initvals(model)
        ip = model.initial_point()
        # start the means at the MAP (transformed space) and the sds small, so
        # ADVI refines the mode instead of re-learning it from noise
        start = {}
        with model:
            for rv in model.free_RVs:
                if rv.name in initvals:
                    start[rv.name] = initvals[rv.name]
            start_sigma = {v.name: np.full(np.size(ip[v.name]), 0.02) for v in model.value_vars}
            advi = pm.ADVI(start=start, start_sigma=start_sigma, random_seed=self.random_seed)
            approx = advi.fit(int(self.advi_iterations), progressbar=self.progressbar,
                              obj_optimizer=pm.adam(learning_rate=float(self.advi_learning_rate)))
            n_draws = int(self.draws) * int(self.chains)
            dt = approx.sample(n_draws, random_seed=self.random_seed)
        post = dt["posterior"].to_dataset()
        elbo = -np.asarray(approx.hist, dtype=float)
        self.elbo_ = elbo
        attrs = {"advi_iterations": int(self.advi_iterations),
                 "advi_learning_rate": float(self.advi_learning_rate),
                 "batch_size": -1 if self.batch_size is None else int(self.batch_size),
                 "approximation": "mean-field Gaussian", "init": "MAP with type-II scales",
                 "hyperparameters": "type-II (mean-field variational EM), held fixed"}
        self._store(post, r, method="advi", sample_stats=None, attrs=attrs,
                    elbo=elbo)

    # ---------------------------------------------------------------- Gibbs
    def _fit_gibbs(self, r: Ratings) -> None:
        try:
            from .gibbs import GibbsPMF
        except ImportError as exc:
            raise NotImplementedError(
                "method='gibbs' needs bayes_mf.gibbs.GibbsPMF, which is not available in this "
                f"installation ({exc})"
            ) from exc
        if self.link != "identity" or self.constrained:
            raise ValueError("method='gibbs' supports link='identity' and constrained=False only")
        kw = {}
        if self.sigma is not None:
            kw["sigma"] = float(self.sigma)
        for name in ("sigma_u", "sigma_v"):
            if getattr(self, name) is not None:
                kw[name] = float(getattr(self, name))
        if self.sigma_b is not None or self.sigma_c is not None:
            kw["sigma_bias"] = float(self.sigma_b if self.sigma_b is not None else self.sigma_c)
        # the same prior names; warm-up steps are the sampler's burn-in
        gibbs = GibbsPMF(n_factors=int(self.n_factors), prior=self.priors, biases=self.biases,
                         n_samples=int(self.draws), burn_in=int(self.tune), chains=int(self.chains),
                         random_seed=self.random_seed, progressbar=self.progressbar, clip=self.clip, **kw)
        gibbs.fit(r)
        self.result_ = gibbs.result_
        self.gibbs_ = gibbs

    # -------------------------------------------------------------- results
    def _store(self, post, r: Ratings, *, method: str, sample_stats, attrs: dict, elbo=None) -> None:
        import xarray as xr

        from .results import build_result

        posterior = _posterior_dict(post, biases=self.biases)
        posterior["pred_check"] = _pred_check(posterior, r, self.link, self._scale)
        attrs = {"priors": self.priors, "biases": int(self.biases), "constrained": int(self.constrained),
                 **{f"type2_{k}": float(v) for k, v in self._map_scales.items()}, **attrs}
        dt = build_result(
            posterior, r, method=method, model=self._model_label, n_factors=int(self.n_factors),
            random_seed=self.random_seed, fit_seconds=self._elapsed(), sample_stats=sample_stats or None,
            extra_dims={"pred_check": ["check"]}, link=self.link,
            scale=self._scale if self.link == "logistic" else r.scale, attrs=attrs,
        )
        pos = check_pairs(r)
        dt["posterior"] = dt["posterior"].to_dataset().assign_coords(
            check=np.arange(len(pos)), check_obs=("check", pos),
            check_user=("check", r.user_ids[pos]), check_item=("check", r.item_ids[pos]))
        if elbo is not None:
            ss = dt["sample_stats"].to_dataset() if "sample_stats" in dt.children else xr.Dataset()
            dt["sample_stats"] = ss.assign(elbo=xr.DataArray(elbo, dims=["advi_iteration"]))
        self.result_ = dt


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
    t = float(np.mean(to_model_scale(r.rating, "logistic", scale)))
    t = min(max(t, 1e-6), 1 - 1e-6)
    return float(np.log(t / (1 - t)))


def _require_jax() -> None:
    try:
        import jax  # noqa: F401
        import numpyro  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "nuts_sampler='numpyro' needs JAX and NumPyro (pip install jax numpyro); "
            "use nuts_sampler='nutpie' (default) or 'pymc' instead"
        ) from exc

