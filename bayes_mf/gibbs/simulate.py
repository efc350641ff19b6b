r"""Data drawn from the exact prior of a :class:`~bayes_mf.gibbs.GibbsPMF` configuration.

Simulation-based calibration (Talts et al. 2018) needs data sets drawn from
the very prior the sampler assumes: then, for every scalar :math:`\theta`, the
rank of the true value among (nearly independent) posterior draws is uniform
whenever the sampler is exact.  :func:`simulate_prior` draws, in the order of
the model of :mod:`bayes_mf.gibbs`: the hyperparameters (Gamma precisions,
BPMF's Normal-Wishart), the own rows, the feature vectors, the effective
rows, then the ratings on a random set of observed pairs.  A few extra
pairs, not rated, are returned with their true linear predictor, to
calibrate held-out predictions too.

With ``likelihood="ordinal"`` the ratings are stars ``1..n_levels``:
log gaps :math:`\alpha \sim N(0, 1)` give the cut-points (first at 0) and
:math:`r = k` when :math:`\eta + \varepsilon`, :math:`\varepsilon \sim N(0, 1)`,
falls in :math:`(\gamma_{k-1}, \gamma_k]` (:mod:`bayes_mf.gibbs.ordinal`).
:math:`\mu \sim N(0, 100^2)` then puts nearly every rating in an end level,
so ordinal SBC runs with ``global_mean=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data import Ratings
from ..datasets import observed_pairs
from .layout import _implicit_matrix
from .moves import MU_PRIOR_PREC
from .priors import BETA0

__all__ = ["PriorDraw", "simulate_prior", "sbc_ranks", "rank_uniformity"]


@dataclass
class PriorDraw:
    """One draw from the prior: the ratings and the true values of what SBC checks."""

    ratings: Ratings
    truth: dict  # sigma, mu, sigma_b, sigma_c, user_bias, item_bias (effective), ...
    heldout_user: np.ndarray
    heldout_item: np.ndarray
    heldout_eta: np.ndarray  # true mean rating of the held-out pairs


def _wishart_identity(rng, k: int, nu: float) -> np.ndarray:
    """Lambda ~ Wishart(I, nu) by the Bartlett decomposition."""
    A = np.zeros((k, k))
    A[np.diag_indices(k)] = np.sqrt(rng.chisquare(nu - np.arange(k)))
    A[np.tril_indices(k, -1)] = rng.standard_normal(k * (k - 1) // 2)
    return A @ A.T


def _own_rows(rng, n: int, k: int, prior: str, biases: bool, a0: float, b0: float,
              sd_f: float, sd_b: float, factor_means: bool = True) -> tuple[np.ndarray, dict]:
    """Own rows [F, b] of one side and the prior scales they were drawn with."""
    hyper = {}
    if prior == "bpmf":
        Lam = _wishart_identity(rng, k, float(k))
        L = np.linalg.cholesky(Lam)
        mean = np.linalg.solve(L.T, rng.standard_normal(k)) / np.sqrt(BETA0) if factor_means else 0.0
        F = mean + np.linalg.solve(L.T, rng.standard_normal((k, n))).T
    else:
        lam = rng.gamma(a0, 1.0 / b0) if prior == "adaptive" else 1.0 / sd_f**2
        F = rng.normal(0.0, 1.0 / np.sqrt(lam), (n, k))
    cols = [F]
    if biases:
        lam_b = rng.gamma(a0, 1.0 / b0) if prior != "fixed" else 1.0 / sd_b**2
        hyper["sigma_bias"] = 1.0 / np.sqrt(lam_b)
        cols.append(rng.normal(0.0, hyper["sigma_bias"], (n, 1)))
    return np.hstack(cols), hyper


def simulate_prior(n_users: int = 20, n_items: int = 15, n_factors: int = 2, *, density: float = 0.4,
                   prior: str = "bpmf", factor_means: bool | None = True, biases: bool = True,
                   global_mean: bool = True, implicit=False, implicit_bias: bool = False,
                   sigma: float | None = None, sigma_u: float = 1.0, sigma_v: float = 1.0,
                   sigma_bias: float = 1.0, gamma_prior: tuple = (1.0, 1.0), n_heldout: int = 5,
                   likelihood: str = "gaussian", n_levels: int = 5, heteroscedastic: bool = False,
                   random_seed=None) -> PriorDraw:
    """Ratings drawn from the exact prior of ``GibbsPMF`` with the same options.

    The keyword arguments mean what they mean for
    :class:`~bayes_mf.gibbs.GibbsPMF` (``implicit`` in
    ``False, "user", "item", "both"``; side features are not simulated).
    ``n_heldout`` unrated pairs of seen users and items come with their
    true mean rating (the linear predictor).  ``likelihood="ordinal"``:
    star ratings on ``n_levels`` levels (declared scale ``(1, n_levels)``),
    ``sigma`` ignored (the latent noise sd is 1), ``truth["cutpoints"]`` set.
    ``heteroscedastic``: per-user and per-item noise precision multipliers
    (:mod:`bayes_mf.gibbs.noise`), their shapes in ``truth["noise_shape_user"]`` / ``["noise_shape_item"]``.
    """
    from .estimator import _IMPLICIT, _PRIORS

    if min(n_users, n_items, n_factors) < 1:
        raise ValueError(f"n_users, n_items, n_factors must be >= 1, got {n_users}, {n_items}, {n_factors}")
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if prior not in _PRIORS:
        raise ValueError(f"prior must be one of {_PRIORS}, got {prior!r}")
    if not isinstance(implicit, (bool, str, type(None))) or implicit not in _IMPLICIT:
        raise ValueError(f"implicit must be False, 'user', 'item' or 'both', got {implicit!r}")
    rng = np.random.default_rng(random_seed)
    a0, b0 = gamma_prior
    k = int(n_factors)
    user, item = observed_pairs(rng, n_users, n_items, density)
    truth = {}
    ordinal = likelihood == "ordinal"
    if likelihood not in ("gaussian", "ordinal") or (ordinal and not 2 <= int(n_levels) <= 20):
        raise ValueError(f"likelihood must be 'gaussian' or 'ordinal' (with 2 to 20 levels), got "
                         f"{likelihood!r} and n_levels={n_levels!r}")
    if ordinal:
        sigma = 1.0
    tau = rng.gamma(a0, 1.0 / b0) if sigma is None else 1.0 / sigma**2
    truth["sigma"] = 1.0 / np.sqrt(tau)
    mu = rng.normal(0.0, 1.0 / np.sqrt(MU_PRIOR_PREC)) if global_mean else 0.0
    if global_mean:
        truth["mu"] = mu
    X = {}
    for side, n, n_other, rows, cols, sd in (("user", n_users, n_items, user, item, sigma_u),
                                              ("item", n_items, n_users, item, user, sigma_v)):
        own, hyper = _own_rows(rng, n, k, prior, biases, a0, b0, sd, sigma_bias,
                               (not biases) if factor_means is None else bool(factor_means))
        if biases:
            truth["sigma_b" if side == "user" else "sigma_c"] = hyper["sigma_bias"]
        X[side] = own
        if side in _IMPLICIT[implicit]:
            # one feature group: a precision per column, Gamma (or the side's fixed factor precision)
            d = own.shape[1]
            lam = rng.gamma(a0, 1.0 / b0, d) if prior != "fixed" else np.full(d, 1.0 / sd**2)
            W = rng.normal(0.0, 1.0, (n_other, d)) / np.sqrt(lam)
            if biases and not implicit_bias:
                W[:, k] = 0.0  # factors only (GibbsPMF's default); the same draws otherwise
            X[side] = own + _implicit_matrix(rows, cols, n, n_other) @ W
    eta = mu + np.einsum("nk,nk->n", X["user"][user, :k], X["item"][item, :k])
    if biases:
        eta += X["user"][user, k] + X["item"][item, k]
        truth["user_bias"], truth["item_bias"] = X["user"][:, k], X["item"][:, k]
    noise = rng.normal(0.0, truth["sigma"], eta.size)
    if heteroscedastic:  # drawn after the rest: the homoscedastic data sets are unchanged
        from .noise import SHAPE_PRIOR

        w = np.ones(eta.size)
        for side, n, rows in (("user", n_users, user), ("item", n_items, item)):
            a = rng.gamma(SHAPE_PRIOR[0], 1.0 / SHAPE_PRIOR[1])
            truth[f"noise_shape_{side}"] = a
            w *= rng.gamma(a, 1.0 / a, n)[rows]
        noise /= np.sqrt(w)
    rating = eta + noise
    scale = None
    if ordinal:
        from .ordinal import cutpoints_from_gaps

        truth["cutpoints"] = cutpoints_from_gaps(rng.standard_normal(int(n_levels) - 2))
        # level k holds (gamma_{k-1}, gamma_k]: the number of cut-points strictly below z, plus one
        rating = 1.0 + np.searchsorted(truth["cutpoints"], rating, side="left")
        scale = (1.0, float(n_levels))
    ratings = Ratings(user, item, rating, pd.RangeIndex(n_users, name="user"),
                      pd.RangeIndex(n_items, name="item"), scale=scale)
    # held-out pairs: seen users and items, not rated
    taken = set((user.astype(np.int64) * n_items + item).tolist())
    pick: list = []
    for _ in range(100 * max(n_heldout, 1)):  # rejection: never lists all users x items pairs
        if len(pick) >= n_heldout:
            break
        c = int(rng.integers(0, n_users * n_items))
        if c not in taken and c not in pick:
            pick.append(c)
    pick = np.array(pick, dtype=np.int64)
    hu, hi = pick // n_items, pick % n_items
    heta = mu + np.einsum("nk,nk->n", X["user"][hu, :k], X["item"][hi, :k])
    if biases:
        heta += X["user"][hu, k] + X["item"][hi, k]
    return PriorDraw(ratings, truth, hu, hi, heta)


#: what :func:`sbc_ranks` checks: name -> how to read it from a fit (and the truth)
SBC_QUANTITIES = ("sigma", "mu", "sigma_b", "user_bias[0]", "heldout[0]", "cutpoints[-1]", "noise_shape_user")


def sbc_ranks(n_reps: int, *, draws: int = 99, thin: int = 10, burn_in: int = 200, random_seed=0,
              progress=None, **model) -> pd.DataFrame:
    """Ranks of the true values among posterior draws over ``n_reps`` prior draws.

    Each replication draws a data set with :func:`simulate_prior` (``model``
    keyword arguments go to it and to ``GibbsPMF``), fits one chain of
    ``draws`` kept draws, ``thin`` sweeps apart (nearly independent, as SBC
    needs), and records for each of :data:`SBC_QUANTITIES` present the number
    of draws below the truth (0..``draws``).  Uniform ranks are what an exact
    sampler gives; see :func:`rank_uniformity`.  The fits use
    ``rating_unit=1`` (unless given): the prior that drew the data must hold
    for the ratings as drawn, whatever their spread.
    """
    import inspect

    from .estimator import GibbsPMF

    data_only = {"n_users", "n_items", "density", "n_heldout", "n_levels"}
    sim_params = set(inspect.signature(simulate_prior).parameters) - {"random_seed"}
    sim_kw = {key: v for key, v in model.items() if key in sim_params}
    est_kw = {key: v for key, v in model.items() if key not in data_only}
    est_kw.setdefault("n_factors", inspect.signature(simulate_prior).parameters["n_factors"].default)
    # the data are drawn from the prior in the units they are drawn in: no standardising
    est_kw.setdefault("rating_unit", 1.0)
    seeds = np.random.SeedSequence(random_seed).spawn(n_reps)
    rows = []
    for r, seed in enumerate(seeds):
        data_seed, fit_seed = seed.spawn(2)
        sim = simulate_prior(random_seed=data_seed, **sim_kw)
        fit = GibbsPMF(**est_kw, draws=draws, thin=thin, tune=burn_in, chains=1, cores=1,
                       progressbar=False, clip=False,
                       random_seed=int(fit_seed.generate_state(1)[0])).fit(sim.ratings)
        post = fit.result_["posterior"]
        row = {}
        for name in ("sigma", "mu", "sigma_b", "noise_shape_user"):
            if name in sim.truth and name in post and not (name == "sigma" and "cutpoints" in sim.truth):
                row[name] = int((post[name].to_numpy().ravel() < sim.truth[name]).sum())
        if "user_bias" in sim.truth:
            b0 = post["user_bias"].to_numpy()[0, :, 0]
            row["user_bias[0]"] = int((b0 < sim.truth["user_bias"][0]).sum())
        if "cutpoints" in sim.truth:  # the last cut-point: it moves with every gap
            last = post["cutpoints"].to_numpy()[0, :, -1]
            row["cutpoints[-1]"] = int((last < sim.truth["cutpoints"][-1]).sum())
        if sim.heldout_user.size:
            u, i = int(sim.heldout_user[0]), int(sim.heldout_item[0])
            eta = np.einsum("dk,dk->d", post["U"].to_numpy()[0, :, u], post["V"].to_numpy()[0, :, i])
            eta = eta + (post["mu"].to_numpy()[0] if "mu" in post else 0.0)
            if "user_bias" in post:
                eta = eta + post["user_bias"].to_numpy()[0, :, u] + post["item_bias"].to_numpy()[0, :, i]
            row["heldout[0]"] = int((eta < sim.heldout_eta[0]).sum())
        rows.append(row)
        if progress is not None:
            progress(r + 1)
    table = pd.DataFrame(rows)
    table.attrs["draws"] = draws
    return table


def rank_uniformity(ranks: pd.DataFrame, bins: int = 10) -> pd.Series:
    """Chi-square p-value of uniform ranks per column (ranks 0..draws in ``bins`` equal bins)."""
    from scipy.stats import chisquare

    n_values = int(ranks.attrs.get("draws", int(ranks.to_numpy().max()))) + 1
    edges = np.linspace(0, n_values, bins + 1)
    out = {}
    for name in ranks.columns:
        counts, _ = np.histogram(ranks[name].to_numpy() + 0.5, bins=edges)
        out[name] = float(chisquare(counts).pvalue)
    return pd.Series(out, name="p_value")
