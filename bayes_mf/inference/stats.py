"""What every PyMC fit stores: the shared result variables, sampler statistics, check pairs.

``pred_check`` is the predicted mean rating of a fixed, seeded set of
training pairs (:func:`check_pairs`) -- an identifiable quantity to diagnose
where the factors are not.  :func:`normalise_sample_stats` gives the sampler
statistics of every backend one set of names.
"""

from __future__ import annotations

import numpy as np

from ..data import Ratings

__all__ = ["RESULT_VARS", "N_CHECK", "normalise_sample_stats", "check_pairs"]

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
    """``a`` broadcast to a leading ``(chain, draw)`` shape (fewer than two dims: to exactly that)."""
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
