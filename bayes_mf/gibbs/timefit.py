"""Time effects of :class:`~bayes_mf.gibbs.GibbsPMF`: timestamps in, levels coded, posterior summarised.

The maths and the sampler blocks are in :mod:`bayes_mf.gibbs.effects`; this
module is the estimator's side: where the timestamps come from (``fit`` and
``predict``), and the per-level posterior kept for prediction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import Ratings
from .effects import TIME_FAMILIES, TimeCoding

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


def offset_function(code: TimeCoding, post, ucode, icode, t, index=None):
    r"""The time effects of pairs in every posterior draw, as ``f(lo, hi, rng)`` -> (S, hi - lo).

    ``post`` is the result's posterior (variables ``time_<side>`` over levels,
    ``sigma_time_<side>``); ``index`` picks draws of the flattened (chain x
    draw) axis, as :meth:`PosteriorDraws.thin <bayes_mf.predict.PosteriorDraws.thin>`
    does.  A seen level contributes its draw; an unseen one a draw of its prior
    :math:`N(0, \sigma_f^2)` with that draw's :math:`\sigma_f`, or its mean 0 when
    ``rng`` is None (the exact predictive mean).
    """
    from .effects import TIME_FAMILIES

    fams = []
    for side in code.sides:
        name = TIME_FAMILIES[side]
        e = post[name].to_numpy()
        e = e.reshape((-1,) + e.shape[2:])
        sd = post[f"sigma_{name}"].to_numpy().reshape(-1)
        if index is not None:
            e, sd = e[index], sd[index]
        fams.append((e, sd, code.levels(side, ucode if side == "user" else icode, t)))

    def f(lo: int, hi: int, rng) -> np.ndarray:
        out = 0.0
        for e, sd, lev in fams:
            lv = lev[lo:hi]
            seen = lv >= 0
            part = e[:, np.maximum(lv, 0)] * seen
            if rng is not None and not seen.all():
                part[:, ~seen] = sd[:, None] * rng.standard_normal((sd.size, int((~seen).sum())))
            out = out + part
        return out

    return f


class TimeEffectsMixin:
    """Prediction with time effects: the pairs' timestamps, and their effects per draw; save and load."""

    def _keep_time_coding(self, code: TimeCoding | None) -> None:
        """Keep the fitted coding, and its state in the attributes a save holds (:mod:`bayes_mf.io`)."""
        self.time_coding_ = code
        if code is not None:
            self.time_range_ = [code.t_min, code.t_max]
            for side in ("user", "item"):
                setattr(self, f"time_keys_{side}_", code.keys.get(side))

    def _after_load(self) -> None:
        """Rebuild the time coding of a loaded fit from its saved state (ValueError if it does not fit)."""
        from .inputs import TIME_EFFECTS

        sides = TIME_EFFECTS[self.time_effects]
        if not sides:
            self.time_coding_ = None
            return
        keys = {side: getattr(self, f"time_keys_{side}_", None) for side in sides}
        if getattr(self, "time_range_", None) is None or any(v is None for v in keys.values()):
            raise ValueError(f"time_effects={self.time_effects!r}, but the save holds no time coding "
                             "(time_range_ and the time-level keys)")
        code = TimeCoding.restore(sides, self.time_bins, self.time_range_, keys, len(self.users_),
                                  len(self.items_))
        post = self.result_["posterior"]
        for side in sides:
            name = TIME_FAMILIES[side]
            if name not in post or post[name].shape[-1] != len(code.keys[side]):
                raise ValueError(f"the posterior's {name!r} does not have one value per saved {side} "
                                 f"time level ({len(code.keys[side])})")
        self.time_coding_ = code

    def _encode(self, pairs, unseen):
        out = super()._encode(pairs, unseen)
        if getattr(self, "time_coding_", None) is not None:
            # predict() filters the pairs by `keep` before _pair_offset sees their codes
            self._pred_time = need_timestamps(pairs, len(out[0]), "predict")[out[4]]
        return out

    def _pair_offset(self, ucode, icode, draws):
        """The time effects of the pairs being predicted, per draw of ``draws`` (None without them)."""
        if getattr(self, "time_coding_", None) is None:
            return None
        t, self._pred_time = getattr(self, "_pred_time", None), None  # used once: never a stale time
        if t is None or len(t) != len(ucode):
            raise ValueError("time_effects is on: predict the pairs with their timestamps through predict() "
                             "or predict_draws() (a 'timestamp' column or Ratings.meta['timestamp'])")
        S = self.draws_.n_draws
        # the draws predict() uses: all, or the evenly spaced subset PosteriorDraws.thin takes
        index = None if draws.n_draws == S else np.linspace(0, S - 1, draws.n_draws).round().astype(int)
        return offset_function(self.time_coding_, self.result_["posterior"], ucode, icode, t, index)
