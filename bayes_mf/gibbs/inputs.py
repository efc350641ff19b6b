"""Inputs of :class:`~bayes_mf.gibbs.GibbsPMF` turned into sampler arrays: feature matrices A by side."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..base import _check_rating_unit, _in_units
from ..data import Ratings
from . import kernels
from .chain import _Settings
from .layout import _implicit_matrix

#: time_effects option -> the sides with time-level biases (gibbs.effects)
TIME_EFFECTS = {None: (), False: (), "none": (), "item": ("item",), "user": ("user",),
                "both": ("item", "user"), True: ("item", "user")}


def feature_groups(table: pd.DataFrame) -> np.ndarray:
    """Group number of each column: the first level of two-level columns, else one group for all.

    Two-level columns ``(group, level)`` (as :func:`bayes_mf.sideinfo.movielens_features`
    gives) make one group per distinct first level, numbered in order of first
    appearance; each group gets its own Gamma prior precision per column of its
    feature vectors.
    """
    if isinstance(table.columns, pd.MultiIndex):
        names = table.columns.get_level_values(0)
        return pd.factorize(names)[0].astype(np.int64)
    return np.zeros(table.shape[1], dtype=np.int64)


def side_table(table, side: str, ids: pd.Index) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows of a user/item feature table aligned to the fitted ids (missing ids: zeros), and its groups.

    Raises
    ------
    ValueError
        Not a DataFrame; a column that is not numeric or a non-finite value
        (the column and id are named); repeated ids in the index.
    """
    name = f"{side}_features"
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame indexed by {side} id, got {type(table).__name__}")
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()][:3].tolist()
        raise ValueError(f"{name} repeats {side} id(s) {dup}: one row per {side}")
    try:
        values = table.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must have numeric columns only: {exc}") from None
    arr = values.to_numpy()
    if not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} holds non-finite value {arr[row, col]!r} in column "
                         f"{table.columns[col]!r} of {side} {table.index[row]!r}")
    dense = values.reindex(ids).fillna(0.0).to_numpy()
    return sp.csr_matrix(dense), feature_groups(table)


def feature_block(side: str, r: Ratings, implicit: bool, table, implicit_bias: bool = True):
    """The feature matrix A of one side, the group of each column, and whether each group has a bias column.

    ``None`` without features.  Implicit feedback, when on, is group 0 (with a
    bias column if ``implicit_bias``); the side table's groups follow (with one).
    """
    blocks, groups = [], []
    if implicit:
        rows, cols = (r.user, r.item) if side == "user" else (r.item, r.user)
        n_rows, n_cols = (r.n_users, r.n_items) if side == "user" else (r.n_items, r.n_users)
        blocks.append(_implicit_matrix(rows, cols, n_rows, n_cols))
        groups.append(np.zeros(n_cols, dtype=np.int64))
    if table is not None:
        A, g = side_table(table, side, r.users if side == "user" else r.items)
        blocks.append(A)
        groups.append(g + len(groups))  # after the implicit group, if any
    if not blocks:
        return None
    groups = np.concatenate(groups)
    bias = np.ones(int(groups.max()) + 1 if groups.size else 0, dtype=bool)
    if implicit and bias.size:
        bias[0] = bool(implicit_bias)
    return sp.hstack(blocks).tocsr(), groups, bias


def check_params(est, priors: tuple, implicit: dict) -> None:
    """Refuse invalid :class:`~bayes_mf.gibbs.GibbsPMF` options with a message naming the option."""
    def integer(attr, low, name=None):
        v = getattr(est, attr)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name or attr} must be an integer >= {low}, got {v!r}")

    def positive(name, allow_none=False):
        v = getattr(est, name)
        if v is None and allow_none:
            return
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                or not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a positive number{' or None' if allow_none else ''}, "
                             f"got {v!r}")

    integer("n_factors", 1)
    if est._draws is not None:
        integer("_draws", 1, "draws")
    integer("max_draws", 10)
    integer("_tune", 0, "tune")
    integer("thin", 1)
    integer("chains", 1)
    integer("n_check", 0)
    if est.cores is not None:
        integer("cores", 1)
    if est.threads is not None:
        integer("threads", 1)
    v = est.overrelax
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not 0 <= v < 1:
        raise ValueError(f"overrelax must be a number in [0, 1) (0: plain Gibbs), got {v!r}")
    if not isinstance(est.interweave, (bool, np.bool_)):
        raise ValueError(f"interweave must be True or False, got {est.interweave!r}")
    if est.prior not in priors:
        raise ValueError(f"prior must be one of {priors}, got {est.prior!r}")
    if est.factor_means not in (True, False, None):
        raise ValueError(f"factor_means must be True, False or None, got {est.factor_means!r}")
    if not isinstance(est.implicit_bias, (bool, np.bool_)):
        raise ValueError(f"implicit_bias must be True or False, got {est.implicit_bias!r}")
    if not isinstance(est.implicit, (bool, str, type(None))) or est.implicit not in implicit:
        raise ValueError(
            f"implicit must be False, True, 'user', 'item' or 'both', got {est.implicit!r}")
    if est.backend not in ("auto", "numba", "numpy", "dask"):
        raise ValueError(f"backend must be 'auto', 'numba', 'numpy' or 'dask', got {est.backend!r}")
    if est.backend in ("numba", "dask") and not kernels.HAVE_NUMBA:
        raise ValueError(f"backend={est.backend!r} but numba is not installed; use backend='auto' "
                         "or 'numpy'")
    if est.client is not None and est.backend != "dask":
        raise ValueError(f"client is used only with backend='dask', got backend={est.backend!r}")
    if est.backend == "dask" and (est.time_effects or est.likelihood != "gaussian" or est.heteroscedastic):
        raise ValueError("backend='dask' does not support time effects, heteroscedastic noise or the "
                         "ordinal likelihood yet; use backend='numba'")
    if not isinstance(est.heteroscedastic, (bool, np.bool_)):
        raise ValueError(f"heteroscedastic must be True or False, got {est.heteroscedastic!r}")
    if est.heteroscedastic and est.likelihood != "gaussian":
        raise ValueError("heteroscedastic=True needs likelihood='gaussian': the ordinal likelihood's "
                         "latent noise sd is fixed at 1")
    positive("sigma", allow_none=True)
    if isinstance(est.target_rhat, bool) or not (isinstance(est.target_rhat, (int, float))
                                                  and est.target_rhat > 1.0):
        raise ValueError(f"target_rhat must be a number > 1, got {est.target_rhat!r}")
    for name in ("sigma_u", "sigma_v", "sigma_bias"):
        positive(name, allow_none=True)
    for name in ("init_scale", "target_ess", "max_seconds"):
        positive(name)
    _check_rating_unit(est.rating_unit)
    gp = est.gamma_prior
    if (not isinstance(gp, (tuple, list)) or len(gp) != 2
            or not all(isinstance(x, (int, float)) and np.isfinite(x) and x > 0 for x in gp)):
        raise ValueError(f"gamma_prior must be a (shape, rate) pair of positive numbers, got {gp!r}")
    if est.time_effects not in TIME_EFFECTS:
        raise ValueError(f"time_effects must be None, 'item', 'user' or 'both', got {est.time_effects!r}")
    integer("time_bins", 1)
    if TIME_EFFECTS[est.time_effects] and not est.biases:
        raise ValueError("time_effects needs biases=True: a time effect is a deviation of the user's or "
                         "item's own bias (gibbs.effects)")


def factor_means_on(est) -> bool:
    """Whether BPMF learns the factor means (``factor_means=None``: only without biases)."""
    if est.factor_means is None:
        return not est.biases
    return bool(est.factor_means)


def lengths(est, deprecated: str) -> tuple[int | None, int]:
    """``(draws, tune)`` of a GibbsPMF, taking the deprecated ``n_samples``/``burn_in`` where given."""
    out = {"draws": est.draws, "tune": est.tune}
    defaults = {"draws": None, "tune": 100}
    for old, new in (("n_samples", "draws"), ("burn_in", "tune")):
        value = getattr(est, old)
        if isinstance(value, str) and value == deprecated:
            continue
        if out[new] != defaults[new]:
            raise ValueError(f"GibbsPMF got both {new}={out[new]!r} and its deprecated alias "
                             f"{old}={value!r}: give {new} only")
        # stacklevel: lengths <- _lengths <- _fit <- RatingsEstimator.fit <- GibbsPMF.fit <- the caller
        warnings.warn(f"GibbsPMF({old}=...) is deprecated and will be removed; use {new}=... "
                      "(the name PMF uses)", FutureWarning, stacklevel=6)
        out[new] = value
    return out["draws"], out["tune"]


def settings(est, backend: str, r: Ratings):
    """The chains' settings, the hyper-parameters given in rating units on the standardised scale."""
    # the prior sds also set the chains' dispersed start; they are the prior only with prior="fixed"
    used = {"sigma"} | ({"sigma_u", "sigma_v"} if est.prior == "fixed" else set()) | (
        {"sigma_bias"} if est.prior == "fixed" and est.biases else set())
    given = _in_units(est, r, {"sigma": (est.sigma, 1.0), "sigma_u": (est.sigma_u, 0.5),
                               "sigma_v": (est.sigma_v, 0.5), "sigma_bias": (est.sigma_bias, 1.0)},
                      warn=used)
    return _Settings(
        n_factors=int(est.n_factors), prior=est.prior, biases=bool(est.biases),
        global_mean=bool(est.global_mean), sigma=1.0 if est._ordinal else given.get("sigma"),
        sigma_u=given.get("sigma_u", 1.0), sigma_v=given.get("sigma_v", 1.0),
        sigma_bias=given.get("sigma_bias", 1.0),
        gamma_prior=tuple(float(x) for x in est.gamma_prior), init_scale=float(est.init_scale),
        backend=backend, store_factors=bool(est.store_factors), moves=bool(est.moves),
        overrelax=float(est.overrelax), interweave=bool(est.interweave),
        factor_means=factor_means_on(est), likelihood=est.likelihood,
        threads=int(est.threads or 1), heteroscedastic=bool(est.heteroscedastic),
    )
