"""Accuracy and calibration metrics: a NumPy core and a DataFrame wrapper.

Point estimates have no predictive spread, so their coverage is ``nan``
("n/a" in reports), never a made-up number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["rmse", "mae", "coverage", "gaussian_lpd", "score"]


def _pair(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shapes differ: {y_true.shape} vs {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("no pairs to score")
    return y_true, y_pred


def rmse(y_true, y_pred) -> float:
    r"""Root mean squared error :math:`\sqrt{\frac1n\sum (y - \hat y)^2}`."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true, y_pred) -> float:
    r"""Mean absolute error :math:`\frac1n\sum |y - \hat y|`."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def coverage(y_true, lo, hi) -> float:
    """Fraction of ``y_true`` inside ``[lo, hi]``; ``nan`` when no interval exists."""
    y_true = np.asarray(y_true, dtype=float)
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    if np.isnan(lo).all() or np.isnan(hi).all():
        return float("nan")
    return float(np.mean((y_true >= lo) & (y_true <= hi)))


def gaussian_lpd(y_true, mean, sd) -> float:
    """Mean log predictive density under a Gaussian approximation N(mean, sd²).

    A moment-matched approximation of the posterior predictive; exact for a
    point estimate with known noise, ``nan`` when ``sd`` is missing.
    """
    sd = np.asarray(sd, dtype=float)
    if np.isnan(sd).all():
        return float("nan")
    return float(np.mean(stats.norm.logpdf(np.asarray(y_true, float), np.asarray(mean, float), sd)))


def score(pred: pd.DataFrame, y_true=None) -> dict:
    """Metrics of a ``predict`` DataFrame: rmse, mae, and where intervals exist,
    their coverage (``coverage``) and the Gaussian mean log predictive density.
    """
    if y_true is None:
        if "rating" not in pred.columns:
            raise ValueError("pred has no 'rating' column: pass y_true")
        y_true = pred["rating"].to_numpy()
    out = {"rmse": rmse(y_true, pred["mean"]), "mae": mae(y_true, pred["mean"])}
    if {"lo", "hi"} <= set(pred.columns):
        out["coverage"] = coverage(y_true, pred["lo"], pred["hi"])
    else:
        out["coverage"] = float("nan")
    out["lpd"] = gaussian_lpd(y_true, pred["mean"], pred["sd"]) if "sd" in pred.columns else float("nan")
    return out


DEFAULT_EDGES = (0, 20, 40, 80, 160, np.inf)


def activity(pred: pd.DataFrame, train, by: str = "user") -> np.ndarray:
    """Number of training ratings of each prediction's user (or item); 0 if unseen."""
    ids = train.users if by == "user" else train.items
    counts = train.counts(by)
    code = ids.get_indexer(pred[by].to_numpy())
    return np.where(code >= 0, counts[np.maximum(code, 0)], 0)


def by_activity(preds: dict, train, *, by: str = "user", edges=DEFAULT_EDGES) -> pd.DataFrame:
    """RMSE of each method per bucket of the user's (item's) number of training ratings.

    Parameters
    ----------
    preds : dict method -> predict DataFrame (with a ``rating`` column), same pairs
    train : Ratings the methods were fitted on
    edges : bucket edges on the count, left-closed

    Returns
    -------
    DataFrame with ``bucket``, ``n`` and one RMSE column per method.
    """
    rows = None
    for name, pred in preds.items():
        cnt = activity(pred, train, by)
        bucket = pd.cut(cnt, list(edges), right=False)
        err = (pred["rating"].to_numpy() - pred["mean"].to_numpy()) ** 2
        g = pd.DataFrame({"bucket": bucket, "err": err}).groupby("bucket", observed=False)["err"]
        col = np.sqrt(g.mean())
        if rows is None:
            rows = pd.DataFrame({"bucket": col.index.astype(str), "n": g.size().to_numpy()})
        rows[name] = col.to_numpy()
    return rows


def coverage_curve(estimator, pairs, levels=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95), *,
                   max_draws: int = 400) -> pd.DataFrame:
    """Empirical coverage of central predictive intervals at several nominal levels.

    Uses one set of posterior-predictive draws (``max_draws`` at most) for all
    levels; intervals are clipped to the rating scale as ``predict`` does.
    A well-calibrated method lies on the diagonal.
    """
    import warnings

    from .base import _observed_ratings
    from .data import UnseenIdsWarning

    observed = _observed_ratings(pairs)
    if observed is None:
        raise ValueError("pairs carry no observed ratings to compare with")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenIdsWarning)
        draws = estimator.predict_draws(pairs, max_draws=max_draws)
    y = draws.to_numpy().reshape(-1, draws.sizes["obs"])
    if getattr(estimator, "clip", True) and estimator.scale_ is not None:
        y = np.clip(y, *estimator.scale_)
    out = []
    for lv in levels:
        lo, hi = np.quantile(y, [(1 - lv) / 2, (1 + lv) / 2], axis=0)
        out.append({"nominal": float(lv), "empirical": coverage(observed, lo, hi)})
    return pd.DataFrame(out)
