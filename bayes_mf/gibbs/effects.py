r"""Rating-level crossed effects (time biases, timeSVD-style), drawn exactly in the Gibbs sweep.

The model of :mod:`bayes_mf.gibbs` gains, for each *family* :math:`f` of
effects, one more additive term per rating:

.. math::
    R_n \mid \cdot \sim N\Bigl(\eta_n + \sum_f e_{f,\,g_f(n)},\ \tau^{-1}\Bigr),\qquad
    e_{f,g} \sim N(0, \lambda_f^{-1}),\quad \lambda_f \sim \mathrm{Gamma}(a_0, b_0),

where :math:`\eta_n = \mu + \tilde b_i + \tilde c_j + \tilde U_i^\top\tilde V_j` is the core's
prediction and :math:`g_f(n)` the level of rating :math:`n` in family :math:`f`.  Every
level belongs to one *parent* (a user or an item): the time families of
:class:`~bayes_mf.gibbs.GibbsPMF` (``time_effects=``) are

* ``time_item``: :math:`c_{j,\mathrm{Bin}(t)}`, item :math:`j` in one of ``time_bins``
  equal-width bins of the training period (Koren 2009: item biases drift
  slowly, ~30 bins suffice);
* ``time_user``: :math:`b_{i,t}`, user :math:`i` on day :math:`t` (UTC).  Koren's
  day-specific user bias: users rate in sessions, and a session's mood or
  scale use is shared by the ratings of that day far more than by a coarse
  bin; per-(user, bin) effects would mostly average unrelated sessions.

The Gaussian core sees the *working response* :math:`y_n = R_n - \sum_f
e_{f,g_f(n)}` (:meth:`Sweeper.set_offsets <bayes_mf.gibbs.chain.Sweeper.set_offsets>`,
the one hook), so steps 1-5 of :mod:`bayes_mf.gibbs` are unchanged.  Added to the
sweep, all exact:

*Effects* (after the side steps, family by family): with :math:`r_n = R_n -
\eta_n - \sum_{f' \ne f} e_{f', g_{f'}(n)}`, the levels of one family are
conditionally independent,

.. math::
    e_{f,g} \mid \cdot \sim N\Bigl(\frac{\tau \sum_{n: g_f(n)=g} r_n}{\tau n_g + \lambda_f},\
        \frac{1}{\tau n_g + \lambda_f}\Bigr)

(with heteroscedastic noise, :mod:`bayes_mf.gibbs.noise`, :math:`n_g` and the sum carry the
ratings' weights: :math:`\sum w_n` and :math:`\sum w_n r_n`);

*precision*: :math:`\lambda_f \mid \cdot \sim \mathrm{Gamma}(a_0 + L_f/2,\ b_0 +
\tfrac12\sum_g e_{f,g}^2)` over its :math:`L_f` levels (always learned, whatever ``prior``);

*parent shift* (a generalised Gibbs step as in :mod:`bayes_mf.gibbs.moves`):
for each parent :math:`p` of family :math:`f`, own bias :math:`c_p \to c_p + a_p` and
:math:`e_{f,g} \to e_{f,g} - a_p` for its levels.  Every rating of :math:`p` has one
level of :math:`f`, so no prediction changes; only the priors see :math:`a_p`:

.. math::
    a_p \sim N(h_p / Q_p,\ 1/Q_p),\quad Q_p = \lambda_c + m_p\lambda_f,\quad
    h_p = -\lambda_c c_p + \lambda_f \sum_{g \in p} e_{f,g},

:math:`m_p` the parent's levels, :math:`\lambda_c` its side's bias precision.  This is
the direction a new bias family adds (a bin's effects against the item's own
bias, and through the offset move of :mod:`bayes_mf.gibbs.moves` against
:math:`\mu`); blockwise draws cross it slowly for parents with many ratings.
So time effects need ``biases=True``.

Predictions: the effects' draws are kept with the factors' (``store_factors``;
posterior variables ``time_item``/``time_user`` over their levels), so a test
rating whose (parent, level) was seen in training gets that level's draw in
every posterior draw -- exact, and coupled with the parent's bias it trades
with -- and an unseen level (a new day of a user, an item's bin it was not
rated in) a draw from its prior :math:`N(0, \lambda_f^{-1})` given that draw's
:math:`\lambda_f` (mean 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .moves import scale_biases
from .priors import _gamma_precision

DAY = 86_400
TIME_FAMILIES = {"item": "time_item", "user": "time_user"}


# ----------------------------------------------------------------------- coding of levels
class TimeCoding:
    """Maps (user, item, timestamp) to the levels of the time families; fitted on training ratings.

    Item bins: ``n_bins`` equal-width bins over ``[t_min, t_max]`` of training;
    a test time outside it goes to the first/last bin.  User days: UTC day
    numbers; a day the user did not rate on in training is an unseen level.
    """

    def __init__(self, sides: tuple, n_bins: int, t, user, item, n_users: int, n_items: int):
        t = np.asarray(t, dtype=np.int64)
        self.sides, self.n_bins = tuple(sides), int(n_bins)
        self.t_min, self.t_max = int(t.min()), int(t.max())
        self.day0 = self.t_min // DAY
        self.n_parent = {"user": n_users, "item": n_items}
        self.keys = {}
        for side in self.sides:
            key = self.level_key(side, user if side == "user" else item, t)
            self.keys[side] = np.unique(key)

    @classmethod
    def restore(cls, sides: tuple, n_bins: int, t_range, keys: dict, n_users: int,
                n_items: int) -> TimeCoding:
        """The coding of a saved fit (:mod:`bayes_mf.io`): its training time range and level keys."""
        self = cls.__new__(cls)
        self.sides, self.n_bins = tuple(sides), int(n_bins)
        self.t_min, self.t_max = int(t_range[0]), int(t_range[1])
        self.day0 = self.t_min // DAY
        self.n_parent = {"user": n_users, "item": n_items}
        self.keys = {}
        for side in self.sides:
            k = np.asarray(keys[side], dtype=np.int64)
            if k.ndim != 1 or (k.size > 1 and not (np.diff(k) > 0).all()):
                raise ValueError(f"the {side} time-level keys must be sorted and unique")
            if k.size and not 0 <= (k >> 31).min() <= (k >> 31).max() < self.n_parent[side]:
                raise ValueError(f"the {side} time-level keys name {side}s outside the fitted ids")
            self.keys[side] = k
        return self

    def _bin(self, side: str, t: np.ndarray) -> np.ndarray:
        if side == "item":
            width = max(self.t_max - self.t_min, 1) / self.n_bins
            return np.clip(((t - self.t_min) / width).astype(np.int64), 0, self.n_bins - 1)
        return t // DAY - self.day0  # < 0: a day before training began (never a level)

    def level_key(self, side: str, parent, t) -> np.ndarray:
        """One int64 per (parent code, time) naming its level, seen in training or not."""
        # parents are < 2**31, bins/days well below 2**31: the pair packs into one int64
        return np.asarray(parent, dtype=np.int64) * (1 << 31) + self._bin(side, np.asarray(t, np.int64))

    def levels(self, side: str, parent, t) -> np.ndarray:
        """Level of each (parent code, time); ``-1`` where unseen (or the parent code is ``-1``)."""
        key = self.level_key(side, parent, t)
        keys = self.keys[side]
        pos = np.clip(np.searchsorted(keys, key), 0, len(keys) - 1)
        early = self._bin(side, np.asarray(t, np.int64)) < 0
        found = (keys[pos] == key) & (np.asarray(parent) >= 0) & ~early
        return np.where(found, pos, -1)

    def families(self, user, item, t) -> list:
        """The sampler's layout: per family, the level of every training rating and each level's parent."""
        out = []
        for side in self.sides:
            parent = user if side == "user" else item
            index = self.levels(side, parent, t)
            out.append({"name": TIME_FAMILIES[side], "side": side, "index": index.astype(np.int64),
                        "parent": (self.keys[side] >> 31).astype(np.int64),
                        "n_parent": self.n_parent[side]})
        return out


# ----------------------------------------------------------------------- chain state and sweep
@dataclass
class EffectState:
    """Per family: the effects (one per level) and their prior precision."""

    values: dict
    lam: dict


def initial_effects(problem: dict, rng, sd: float) -> EffectState | None:
    """A dispersed start (drawn after everything else, so chains without effects are unchanged)."""
    fams = problem.get("effects") or []
    if not fams:
        return None
    values, lam = {}, {}
    for f in fams:
        scale = 0.1 * sd * math.exp(rng.normal(0.0, 0.5))
        values[f["name"]] = rng.normal(0.0, scale, len(f["parent"]))
        lam[f["name"]] = 1.0 / scale**2
    return EffectState(values, lam)


class Effects:
    """The families of one problem and their blocks of the sweep (module docstring)."""

    def __init__(self, problem: dict, st):
        self.fams = problem["effects"]
        self.st = st
        self.rating = problem["rating"]
        self.user, self.item = problem["user"], problem["item"]
        self.counts = {f["name"]: np.bincount(f["index"], minlength=len(f["parent"])).astype(np.float64)
                       for f in self.fams}
        self.n_levels = {f["name"]: np.bincount(f["parent"], minlength=f["n_parent"]).astype(np.float64)
                         for f in self.fams}
        self.check_pos = problem["check_pos"]

    def offsets(self, s, pos=None) -> np.ndarray:
        """:math:`\\sum_f e_{f, g_f(n)}` for every rating (or the ratings at ``pos``)."""
        total = np.zeros(len(self.rating) if pos is None else len(pos))
        for f in self.fams:
            idx = f["index"] if pos is None else f["index"][pos]
            total += s.effects.values[f["name"]][idx]
        return total

    def sync(self, sw, s) -> None:
        """Hand the core the working response :math:`R - \\sum_f e_f`."""
        sw.set_offsets(self.offsets(s))

    def step(self, sw, s) -> None:
        """Draw every family given the rest, in turn; then update the working response."""
        eta = sw.linear_predictor(s)
        total = self.offsets(s)
        for f in self.fams:
            name, idx = f["name"], f["index"]
            e = s.effects.values[name]
            r = sw.base - eta - (total - e[idx])
            counts, sums = self._sums(sw, idx, r, e.size, name)
            prec = s.tau * counts + s.effects.lam[name]
            new = s.tau * sums / prec + s.rng.standard_normal(e.size) / np.sqrt(prec)
            total += new[idx] - e[idx]
            s.effects.values[name] = new
        sw.set_offsets(total)

    def _sums(self, sw, idx, r, n, name):
        """Per level: the rating count and residual sum, both weighted under heteroscedastic noise."""
        if sw.weights is None:
            return self.counts[name], np.bincount(idx, weights=r, minlength=n)
        return (np.bincount(idx, weights=sw.weights, minlength=n),
                np.bincount(idx, weights=sw.weights * r, minlength=n))

    def hyper(self, s) -> None:
        a0, b0 = self.st.gamma_prior
        for f in self.fams:
            e = s.effects.values[f["name"]]
            s.effects.lam[f["name"]] = _gamma_precision(s.rng, a0, b0, float(e @ e), e.size)

    def shift(self, sw, s, own: dict) -> None:
        """The parent shift of every family (module docstring); predictions are unchanged."""
        k = sw.k
        for f in self.fams:
            name, side, parent = f["name"], f["side"], f["parent"]
            lam_c, lam_e = s.lam_b[side], s.effects.lam[name]
            e = s.effects.values[name]
            Q = lam_c + self.n_levels[name] * lam_e
            h = -lam_c * own[side][:, k] + lam_e * np.bincount(parent, weights=e, minlength=f["n_parent"])
            a = h / Q + s.rng.standard_normal(Q.size) / np.sqrt(Q)
            own[side][:, k] += a
            s.X[side][:, k] += a
            s.effects.values[name] = e - a[parent]
        self.sync(sw, s)

    def rescale(self, sw, s, s2: float) -> float:
        r"""The scale move of every family; returns the new residual sum of squares.

        :math:`e_f \to g\,e_f`, :math:`\lambda_f \to \lambda_f / g^2` (a generalised
        Gibbs step on the scalings, as :func:`~bayes_mf.gibbs.moves.scale_biases` does for
        the biases: the same orbit density, with the levels' rating counts and residual
        sums).  Many levels with few ratings each (a user's days) tie :math:`\lambda_f` to
        the effects' current spread, and blockwise draws cross that funnel slowly.
        """
        a0, b0 = self.st.gamma_prior
        total = self.offsets(s)
        r = sw.base - sw.linear_predictor(s) - total
        for f in self.fams:
            name, idx = f["name"], f["index"]
            e = s.effects.values[name]
            counts, sums = self._sums(sw, idx, r, e.size, name)
            delta, A, B = scale_biases(s.rng, e, counts, sums, s.tau, s.effects.lam[name], a0, b0)
            s2 = s2 - 2.0 * delta * B + delta * delta * A
            r -= delta * e[idx]
            total += delta * e[idx]
            s.effects.values[name] = (1.0 + delta) * e
            s.effects.lam[name] /= (1.0 + delta) ** 2
        sw.set_offsets(total)
        return s2

    # ------------------------------------------------------------------ draws kept
    def empty(self, n_keep: int) -> dict:
        out = {f"sigma_{f['name']}": np.empty(n_keep) for f in self.fams}
        if self.st.store_factors:  # the effects themselves, like the factors: predictions need them
            out.update({f["name"]: np.empty((n_keep, len(f["parent"]))) for f in self.fams})
        return out

    def record(self, s, out: dict, row: int) -> None:
        for f in self.fams:
            out[f"sigma_{f['name']}"][row] = 1.0 / math.sqrt(s.effects.lam[f["name"]])
            if self.st.store_factors:
                out[f["name"]][row] = s.effects.values[f["name"]]
        if self.check_pos.size:
            out["pred_check"][row] += self.offsets(s, self.check_pos)
