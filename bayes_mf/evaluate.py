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
