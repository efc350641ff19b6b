"""Time effects of :class:`~bayes_mf.gibbs.GibbsPMF`: timestamps in, levels coded, posterior summarised.

The maths and the sampler blocks are in :mod:`bayes_mf.gibbs.effects`; this
module is the estimator's side: where the timestamps come from (``fit`` and
``predict``), and the per-level posterior kept for prediction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import Ratings
from .effects import DAY, TIME_FAMILIES, TimeCoding

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


def parse_time(at) -> int:
    """A time as whole Unix seconds: an integer, or anything :class:`pandas.Timestamp` reads (naive = UTC).

    Raises
    ------
    ValueError
        ``at`` is neither (the message names the value).
    """
    if isinstance(at, (int, np.integer)) and not isinstance(at, bool):
        return int(at)
    if isinstance(at, (float, np.floating)):
        if np.isfinite(at) and float(at).is_integer():
            return int(at)
    elif isinstance(at, str) and at.strip().lstrip("-").isdigit():
        return int(at)
    elif not isinstance(at, bool):
        try:
            ts = pd.Timestamp(at)
        except (TypeError, ValueError):
            ts = None
        if ts is not None and not pd.isna(ts):
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
            return int(ts.timestamp())
    raise ValueError(f"at={at!r} is not a time: pass whole Unix seconds or a date pandas.Timestamp reads "
                     "(e.g. '1998-04-23')")


def coding(sides: tuple, n_bins: int, r: Ratings, t: np.ndarray) -> TimeCoding:
    return TimeCoding(sides, n_bins, t, r.user, r.item, r.n_users, r.n_items)


def offset_function(code: TimeCoding, post, ucode, icode, t, index=None, *, shared: bool = False):
    r"""The time effects of pairs in every posterior draw, as ``f(lo, hi, rng)`` -> (S, hi - lo).

    ``post`` is the result's posterior (variables ``time_<side>`` over levels,
    ``sigma_time_<side>``); ``index`` picks draws of the flattened (chain x
    draw) axis, as :meth:`PosteriorDraws.thin <bayes_mf.predict.PosteriorDraws.thin>`
    does.  A seen level contributes its draw; an unseen one a draw of its prior
    :math:`N(0, \sigma_f^2)` with that draw's :math:`\sigma_f`, or its mean 0 when
    ``rng`` is None (the exact predictive mean).  The prior draws are made per
    pair, which gives each pair's predictive exactly; with ``shared=True`` pairs
    of the same unseen level share one draw (all drawn at the first call with an
    ``rng``), which keeps the joint draws right: one user's new day shifts all
    of that user's items alike (:func:`bayes_mf.recommend.recommend`).
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
        parent = ucode if side == "user" else icode
        key = code.level_key(side, parent, t) if shared else None
        fams.append((e, sd, code.levels(side, parent, t), key))
    unseen_draws: dict = {}  # family -> (draws per unseen level, each pair's unseen level or -1)

    def f(lo: int, hi: int, rng) -> np.ndarray:
        out = 0.0
        for n, (e, sd, lev, key) in enumerate(fams):
            lv = lev[lo:hi]
            seen = lv >= 0
            part = e[:, np.maximum(lv, 0)] * seen
            if rng is not None and not seen.all():
                if key is None:
                    part[:, ~seen] = sd[:, None] * rng.standard_normal((sd.size, int((~seen).sum())))
                else:
                    if n not in unseen_draws:
                        new, which = np.unique(key[lev < 0], return_inverse=True)
                        pos = np.full(lev.size, -1)
                        pos[lev < 0] = which
                        unseen_draws[n] = (sd[:, None] * rng.standard_normal((sd.size, new.size)), pos)
                    z, pos = unseen_draws[n]
                    part[:, ~seen] = z[:, pos[lo:hi][~seen]]
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

    def _recommend_time(self, at):
        """``at`` as whole Unix seconds; default: the day after the last training rating."""
        return int(self.time_coding_.t_max) + DAY if at is None else parse_time(at)

    def _offset_at(self, ucode, icode, when, index=None):
        """The time effects of pairs all scored at Unix time ``when`` (draws ``index`` of the result)."""
        t = np.full(len(ucode), int(when), dtype=np.int64)
        return offset_function(self.time_coding_, self.result_["posterior"], ucode, icode, t,
                               None if index is None else np.asarray(index, dtype=np.int64), shared=True)

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
