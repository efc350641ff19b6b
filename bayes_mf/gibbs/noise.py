r"""Heteroscedastic noise: a precision multiplier per user and per item (``heteroscedastic=True``).

.. math::

    R_{ij} \mid \cdot \sim N\bigl(\eta_{ij},\ (\tau\,\alpha_i\,\beta_j)^{-1}\bigr),\qquad
    \alpha_i \sim \mathrm{Gamma}(a_U, a_U),\quad \beta_j \sim \mathrm{Gamma}(a_V, a_V),\quad
    a_U, a_V \sim \mathrm{Gamma}(2, 0.1).

Some users rate consistently and some do not, and likewise for items: the
noise is row- and column-specific (Lakshminarayanan, Bouchard & Archambeau,
*Robust Bayesian Matrix Factorisation*, AISTATS 2011).  Each multiplier has
mean 1 under its prior, so :math:`\sigma = \tau^{-1/2}` stays the typical
noise sd; a rating of user *i* on item *j* has sd
:math:`\sigma / \sqrt{\alpha_i \beta_j}`.

Given the rest, with :math:`e_{ij} = R_{ij} - \eta_{ij}` (time effects included)
and :math:`n_i` user *i*'s ratings, the shape is drawn with the multipliers integrated
out (:func:`_shape_logp`), then

.. math::

    \alpha_i \mid \cdot \sim \mathrm{Gamma}\Bigl(a_U + \tfrac{n_i}{2},\
        a_U + \tfrac{\tau}{2}\sum_j \beta_j e_{ij}^2\Bigr)

(items alike).  Everything else in the sweep sees the weights
:math:`w_{ij} = \alpha_i\beta_j`: the rows' Gram matrices and right-hand sides,
the residual sums of the mean, bias and effect draws and of the scale moves
(their "counts" become :math:`\sum w`).  The shapes are slice-sampled on
:math:`\log a`.  :math:`\tau` and a side's multipliers trade along
:math:`(\tau, \alpha) \to (\tau/g, g\alpha)`, which leaves every weight times
:math:`\tau` unchanged; a generalised Gibbs step (Liu & Sabatti 2000) draws
:math:`t = \log g` from

.. math::

    p(t) \propto \exp\bigl(t\,(n a - a_0) - b_0\,\tau e^{-t} - a\,e^{t}\textstyle\sum_i \alpha_i\bigr)

(:math:`n` multipliers, :math:`\tau \sim \mathrm{Gamma}(a_0, b_0)`), so the
noise scale does not creep along that ridge; :math:`(\alpha, \beta) \to (g\alpha, \beta/g)`
likewise.  Not with the ordinal
likelihood (its latent noise is fixed) nor the Dask backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from .moves import slice_draw

#: Gamma(shape, rate) prior of each side's shape a
SHAPE_PRIOR = (2.0, 0.1)
SIDES = ("user", "item")


@dataclass
class NoiseState:
    """Per side: the precision multipliers and their Gamma shape."""

    mult: dict
    shape: dict


def initial_noise(problem: dict, rng) -> NoiseState:
    """A dispersed start: multipliers from a Gamma(5, 5) around 1, shapes around 5."""
    mult, shape = {}, {}
    for side in SIDES:
        n = problem[f"n_{side}s"]
        shape[side] = 5.0 * math.exp(rng.normal(0.0, 0.5))
        mult[side] = rng.gamma(5.0, 0.2, n)
    return NoiseState(mult, shape)


def _shape_logp(t: float, counts: np.ndarray, S: np.ndarray) -> float:
    r"""Log density of :math:`t = \log a` with the side's multipliers integrated out.

    Row *i* with :math:`n_i` ratings and :math:`S_i = \tau\sum_j \beta_j e_{ij}^2` contributes
    :math:`\int \prod_j N(e_{ij} \mid 0, (\tau\alpha\beta_j)^{-1})\,\mathrm{Gamma}(\alpha; a, a)\,d\alpha
    \propto \frac{\Gamma(a + n_i/2)}{\Gamma(a)}\,\frac{a^a}{(a + S_i/2)^{a + n_i/2}}`.
    """
    a = math.exp(t)
    p, q = SHAPE_PRIOR
    h = a + 0.5 * counts
    lik = float(np.sum(gammaln(h) - h * np.log(a + 0.5 * S))) + counts.size * (a * t - gammaln(a))
    return lik + (p - 1.0) * t - q * a + t


def _scale_logp(t: float, n: int, a: float, sum_m: float, tau: float, a0: float, b0: float) -> float:
    return t * (n * a - a0) - b0 * tau * math.exp(-t) - a * math.exp(t) * sum_m


def _swap_logp(t: float, nu: int, au: float, su: float, nv: int, av: float, sv: float) -> float:
    return t * (nu * au - nv * av) - au * math.exp(t) * su - av * math.exp(-t) * sv


class Noise:
    """The noise block of one problem: weights per rating, their draw, and the records."""

    def __init__(self, sweeper, st):
        self.st = st
        self.rows = {"user": sweeper.user, "item": sweeper.item}
        self.n = {s: len(sweeper.counts[s]) for s in SIDES}
        self.n_obs_rows = {s: sweeper.counts[s].copy() for s in SIDES}

    def set_weights(self, sw, s) -> None:
        """Hand the core the weights :math:`w_n = \\alpha_i\\beta_j` of the current state."""
        w = s.noise.mult["user"][sw.user] * s.noise.mult["item"][sw.item]
        sw.weights = w
        sw.weight_sum = float(w.sum())
        for side in SIDES:
            sw.by[side].set_wts(w)
            sw.counts[side] = np.bincount(self.rows[side], weights=w, minlength=self.n[side])

    def step(self, sw, s) -> None:
        """Draw the multipliers, their shapes and the scale moves; then update the weights."""
        e = sw.rating - sw.linear_predictor(s)
        q = s.tau * e * e
        m = s.noise.mult
        for side, other, rows, cols in (("user", "item", sw.user, sw.item),
                                        ("item", "user", sw.item, sw.user)):
            # (a, multipliers) as one block: a with the multipliers integrated out, then they given a.
            # Drawn in turn, a crawled along the funnel of many rows with few ratings each (a u1 run:
            # the item shape was the last quantity to converge)
            S = np.bincount(rows, weights=q * m[other][cols], minlength=self.n[side])
            counts = self.n_obs_rows[side]
            t = slice_draw(s.rng, lambda t, c=counts, S=S: _shape_logp(t, c, S),
                           math.log(s.noise.shape[side]))
            a = s.noise.shape[side] = math.exp(t)
            m[side] = s.rng.gamma(a + 0.5 * counts) / (a + 0.5 * S)
        a0, b0 = self.st.gamma_prior
        for side in SIDES:
            x, n = m[side], self.n[side]
            sum_m = float(x.sum())
            if self.st.sigma is None:
                a = s.noise.shape[side]
                g = slice_draw(s.rng, lambda t, n=n, a=a, sm=sum_m: _scale_logp(t, n, a, sm, s.tau, a0, b0))
                m[side] = x * math.exp(g)
                s.tau *= math.exp(-g)
        # and the two sides against each other: (alpha, beta) -> (g alpha, beta / g), same weights
        (au, av), (xu, xv) = (s.noise.shape["user"], s.noise.shape["item"]), (m["user"], m["item"])
        su, sv = float(xu.sum()), float(xv.sum())
        g = slice_draw(s.rng, lambda t: _swap_logp(t, self.n["user"], au, su, self.n["item"], av, sv))
        m["user"], m["item"] = xu * math.exp(g), xv * math.exp(-g)
        self.set_weights(sw, s)

    def empty(self, n_keep: int) -> dict:
        out = {f"{side}_noise": np.empty((n_keep, self.n[side])) for side in SIDES}
        out.update({f"noise_shape_{side}": np.empty(n_keep) for side in SIDES})
        return out

    def record(self, s, out: dict, row: int) -> None:
        for side in SIDES:
            out[f"{side}_noise"][row] = s.noise.mult[side]
            out[f"noise_shape_{side}"][row] = s.noise.shape[side]


def weighted_residuals(sw, mu, Uf, Vf, bu, bv) -> tuple[float, float]:
    """Weighted sum and sum of squares of the residuals at ``mu``; per-row weighted sums into ``sw.resid``."""
    eta = mu + np.einsum("nk,nk->n", Uf[sw.user], Vf[sw.item])
    if sw.ub:
        eta += bu[sw.user] + bv[sw.item]
    r = sw.rating - eta
    wr = sw.weights * r
    sw.resid["user"][:] = np.bincount(sw.user, weights=wr, minlength=sw.resid["user"].size)
    sw.resid["item"][:] = np.bincount(sw.item, weights=wr, minlength=sw.resid["item"].size)
    return float(wr.sum()), float(wr @ r)
