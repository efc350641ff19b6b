"""Time effects of :class:`~bayes_mf.gibbs.GibbsPMF`: timestamps in, levels coded, posterior summarised.

The maths and the sampler blocks are in :mod:`bayes_mf.gibbs.effects`; this
module is the estimator's side: where the timestamps come from (``fit`` and
``predict``), and the per-level posterior kept for prediction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import Ratings
from .effects import TimeCoding

TIME_COLUMN = "timestamp"


def timestamps(X, n: int, what: str) -> np.ndarray | None:
    """The timestamps (Unix seconds) carried by ``X``: ``Ratings.meta["timestamp"]`` or a
    ``timestamp`` column of a DataFrame; ``None`` when it carries none.

    Raises
    ------
    ValueError
        A timestamp that is not a finite whole number (its row is named), or
        a count that does not match the ``n`` rows (e.g. duplicates merged).
    """
    if isinstance(X, Ratings):
        t = X.meta.get(TIME_COLUMN)
    elif isinstance(X, pd.DataFrame) and TIME_COLUMN in X.columns:
        t = X[TIME_COLUMN].to_numpy()
    else:
        return None
    if t is None:
        return None
    try:
        t = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: column {TIME_COLUMN!r} must hold Unix seconds (numbers)") from None
    bad = ~np.isfinite(t) | (t != np.round(t))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: column {TIME_COLUMN!r} of row {row} is {float(t[row])}, "
                         "not whole Unix seconds")
    if t.shape != (n,):
        raise ValueError(f"{what}: {t.shape[0]} timestamps for {n} ratings (were duplicate pairs merged? "
                         "pass duplicates='error' or one row per pair)")
    return t.astype(np.int64)


def need_timestamps(X, n: int, what: str) -> np.ndarray:
    """:func:`timestamps`, or a clear error naming the column when ``X`` has none."""
    t = timestamps(X, n, what)
    if t is None:
        raise ValueError(f"time_effects is on: {what} needs a {TIME_COLUMN!r} column (Unix seconds) in a "
                         "DataFrame, or Ratings with meta['timestamp'] (as bayes_mf.datasets loaders give)")
    return t


def coding(sides: tuple, n_bins: int, r: Ratings, t: np.ndarray) -> TimeCoding:
    return TimeCoding(sides, n_bins, t, r.user, r.item, r.n_users, r.n_items)


class TimePosterior:
    """Per family: each level's posterior mean and sd, and the prior sd of an unseen level.

    Built from the chains' running sums (:class:`~bayes_mf.gibbs.schedule.Sampled`)
    and the draws of ``sigma_<family>``; all on the scale the sampler ran on
    until :meth:`scale` maps them to rating units.
    """

    def __init__(self, code: TimeCoding, E_sum: dict, E_sq: dict, n: int, sigma_draws: dict):
        self.code = code
        self.mean = {name: v / n for name, v in E_sum.items()}
        self.sd = {name: np.sqrt(np.maximum(E_sq[name] / n - self.mean[name] ** 2, 0.0)) for name in E_sum}
        # an unseen level's effect ~ N(0, 1/lambda): its predictive variance is E[1/lambda]
        self.prior_sd = {name: float(np.sqrt(np.mean(np.square(s)))) for name, s in sigma_draws.items()}

    def scale(self, unit: float) -> None:
        for d in (self.mean, self.sd):
            for name in d:
                d[name] = d[name] * unit
        self.prior_sd = {name: v * unit for name, v in self.prior_sd.items()}

    def offset(self, ucode, icode, t) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of the summed time effects of pairs (training codes, ``-1`` unseen) at times ``t``."""
        from .effects import TIME_FAMILIES

        mean = np.zeros(len(ucode))
        var = np.zeros(len(ucode))
        for side in self.code.sides:
            name = TIME_FAMILIES[side]
            lev = self.code.levels(side, ucode if side == "user" else icode, t)
            seen = lev >= 0
            mean[seen] += self.mean[name][lev[seen]]
            var += np.where(seen, self.sd[name][np.maximum(lev, 0)] ** 2, self.prior_sd[name] ** 2)
        return mean, np.sqrt(var)
