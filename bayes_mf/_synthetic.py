"""Simulated ratings: the PMF generative model (small, dense-ish) and Netflix-shaped data at scale.

:func:`simulate_pmf` draws a fraction ``density`` of all pairs (the test and
calibration workhorse); :func:`synthetic` draws an exact number of ratings
with heavy-tailed user activity and item popularity, as in the Netflix prize
data (480,189 users x 17,770 items, 100,480,507 ratings), for benchmarks at
scale.  Neither ever forms the users x items matrix: pairs are sampled as
``int64`` codes ``user * n_items + item`` and de-duplicated by sorting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._util import rowdot
from .data import Ratings

__all__ = ["SimulatedPMF", "observed_pairs", "simulate_pmf", "synthetic", "NETFLIX_SHAPE"]

#: (users, items, ratings) of the Netflix prize training set
NETFLIX_SHAPE = (480_189, 17_770, 100_480_507)


@dataclass(frozen=True)
class SimulatedPMF:
    """Ratings drawn from the PMF model together with the truth that made them.

    ``ratings`` holds the observed triplets (ids are 0..n-1, equal to codes);
    ``mean(u, i)`` gives the noise-free mean of any pairs.
    """

    ratings: Ratings
    U: np.ndarray
    V: np.ndarray
    sigma: float
    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray

    def mean(self, user, item) -> np.ndarray:
        r"""Noise-free mean :math:`\mu + b_i + c_j + U_i \cdot V_j` of pairs (codes)."""
        user = np.asarray(user)
        item = np.asarray(item)
        return (self.global_mean + self.user_bias[user] + self.item_bias[item]
                + rowdot(self.U, self.V, user, item))


def observed_pairs(rng: np.random.Generator, n_users: int, n_items: int,
                   density: float) -> tuple[np.ndarray, np.ndarray]:
    """A random set of (user, item) codes with expected fraction ``density`` of all pairs.

    Every user and every item gets at least one pair; the pairs are sampled
    without ever forming the users x items matrix.
    """
    n_cells = n_users * n_items
    target = int(round(density * n_cells))
    if density > 0.5:
        flat = rng.choice(n_cells, size=target, replace=False)
    else:
        # oversample and de-duplicate: O(n_obs) memory, never O(n_users * n_items)
        draw = rng.integers(0, n_cells, size=int(target * 1.05) + 16)
        flat = np.unique(draw)
        if flat.size > target:
            flat = rng.choice(flat, size=target, replace=False)
    cover = np.concatenate([
        np.arange(n_users, dtype=np.int64) * n_items + rng.integers(0, n_items, n_users),
        rng.integers(0, n_users, n_items).astype(np.int64) * n_items + np.arange(n_items),
    ])
    flat = np.unique(np.concatenate([flat, cover]))
    flat = flat[rng.permutation(flat.size)]
    user = (flat // n_items).astype(np.int32)
    item = (flat % n_items).astype(np.int32)
    return user, item


def simulate_pmf(
    n_users: int = 300,
    n_items: int = 200,
    n_factors: int = 3,
    density: float = 0.1,
    noise_sd: float = 0.5,
    *,
    sigma_u: float = 1.0,
    sigma_v: float = 1.0,
    global_mean: float = 0.0,
    bias_sd: float = 0.0,
    random_seed: int | None = 0,
) -> SimulatedPMF:
    r"""Draw ratings from the PMF generative model (Salakhutdinov & Mnih 2007).

    .. math::
        U_i \sim N(0, \sigma_U^2 I),\quad V_j \sim N(0, \sigma_V^2 I),\quad
        R_{ij} \sim N(\mu + b_i + c_j + U_i^\top V_j,\ \sigma^2)

    over a random set of observed pairs with expected fraction ``density``
    (each user and each item gets at least one rating).  Biases
    ``b, c ~ N(0, bias_sd²)`` and ``global_mean`` default to 0, the plain PMF.
    Ratings are continuous (no scale is declared); the pairs are sampled
    without ever forming the users x items matrix.
    """
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if min(n_users, n_items, n_factors) < 1:
        raise ValueError("n_users, n_items and n_factors must be >= 1")
    rng = np.random.default_rng(random_seed)
    U = rng.normal(0.0, sigma_u, size=(n_users, n_factors))
    V = rng.normal(0.0, sigma_v, size=(n_items, n_factors))
    b = rng.normal(0.0, bias_sd, size=n_users) if bias_sd > 0 else np.zeros(n_users)
    c = rng.normal(0.0, bias_sd, size=n_items) if bias_sd > 0 else np.zeros(n_items)

    user, item = observed_pairs(rng, n_users, n_items, density)
    mean = global_mean + b[user] + c[item] + rowdot(U, V, user, item)
    rating = mean + rng.normal(0.0, noise_sd, size=user.size)
    ratings = Ratings(user, item, rating, pd.RangeIndex(n_users, name="user"),
                      pd.RangeIndex(n_items, name="item"))
    return SimulatedPMF(ratings, U, V, float(noise_sd), float(global_mean), b, c)


def _activity(rng: np.random.Generator, n: int, spread: float, n_ratings: int, cap: float) -> np.ndarray:
    """Cumulative sampling probabilities: lognormal weights, none expected past ``cap`` ratings."""
    p = rng.lognormal(0.0, spread, size=n) if spread > 0 else np.ones(n)
    p /= p.sum()
    for _ in range(50):  # water-filling: clip the heaviest rows, spread their excess over the rest
        over = p * n_ratings > cap
        if not over.any():
            break
        p[over] = cap / n_ratings
        rest = ~over
        p[rest] *= (1.0 - p[over].sum()) / p[rest].sum()
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return cdf


def _sorted_unique(codes: np.ndarray) -> np.ndarray:
    """``np.unique`` by an in-place sort (NumPy's hash-based unique is several times slower here)."""
    codes.sort()
    keep = np.empty(codes.size, dtype=bool)
    keep[:1] = True
    np.not_equal(codes[1:], codes[:-1], out=keep[1:])
    return codes[keep]


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), cdf.size - 1).astype(np.int64)


def synthetic(
    n_users: int,
    n_items: int,
    n_ratings: int,
    *,
    n_factors: int = 10,
    noise_sd: float = 0.9,
    signal_sd: float = 0.6,
    global_mean: float = 3.6,
    bias_sd: float = 0.4,
    user_spread: float = 1.25,
    item_spread: float = 2.1,
    discrete: bool = True,
    random_seed: int | None = 0,
) -> SimulatedPMF:
    r"""Netflix-shaped ratings: exactly ``n_ratings`` distinct pairs, heavy-tailed activity.

    Pass :data:`NETFLIX_SHAPE` (``480_189, 17_770, 100_480_507``) for the size
    of the Netflix prize training set.  Users are drawn with lognormal
    activity weights (``user_spread``) and items with lognormal popularity
    (``item_spread``); the defaults give mean/median ratings per row of about
    2.2 (users) and 9 (items), as in the Netflix data.  Every user and every
    item gets at least one rating.  Ratings follow a PMF model with biases,

    .. math::
        R_{ij} = \mu + b_i + c_j + U_i^\top V_j + \varepsilon,\quad
        U_i, V_j \sim N(0, s^2 I),\ s^4 K = \mathrm{signal\_sd}^2,\
        b, c \sim N(0, \mathrm{bias\_sd}^2),\ \varepsilon \sim N(0, \mathrm{noise\_sd}^2),

    rounded and clipped to whole stars 1..5 when ``discrete`` (then
    ``scale=(1, 5)``; ``sigma`` in the result is ``noise_sd`` before rounding).

    Pairs are sampled as ``int64`` codes ``user * n_items + item``, made
    unique by sorting and topped up until there are enough; memory is
    O(``n_ratings``), never O(``n_users * n_items``).  Rows come sorted by
    user, then item.  One million ratings take about a second; the Netflix
    shape about two minutes and a few GB.

    Parameters
    ----------
    n_users, n_items, n_ratings : int
        ``n_users + n_items <= n_ratings <= n_users * n_items / 2``.
    n_factors : int
        Rank ``K`` of the true factors.
    noise_sd, signal_sd, global_mean, bias_sd : float
        Noise sd, sd of :math:`U_i^\top V_j`, overall mean, sd of each bias.
    user_spread, item_spread : float
        Sd of the log activity weights (0: uniform).
    discrete : bool
        Round and clip ratings to 1..5.
    random_seed : int or None

    Returns
    -------
    SimulatedPMF
        ``ratings`` (ids 0..n-1 equal to codes), the true factors and biases.
    """
    n_users, n_items, n_ratings = int(n_users), int(n_items), int(n_ratings)
    if min(n_users, n_items, n_factors) < 1:
        raise ValueError("n_users, n_items and n_factors must be >= 1")
    if n_ratings < n_users + n_items:
        raise ValueError(f"n_ratings={n_ratings:,} is fewer than n_users + n_items = {n_users + n_items:,}: "
                         "every user and item gets at least one rating")
    if n_ratings > n_users * n_items // 2:
        raise ValueError(f"n_ratings={n_ratings:,} is more than half of the {n_users * n_items:,} pairs; "
                         "use simulate_pmf(density=...) for dense data")
    rng = np.random.default_rng(random_seed)
    ucdf = _activity(rng, n_users, user_spread, n_ratings, 0.5 * n_items)
    icdf = _activity(rng, n_items, item_spread, n_ratings, 0.5 * n_users)
    # at least one rating per user and per item
    cover = _sorted_unique(np.concatenate([
        np.arange(n_users, dtype=np.int64) * n_items + _draw(rng, icdf, n_users),
        _draw(rng, ucdf, n_items) * n_items + np.arange(n_items, dtype=np.int64),
    ]))
    codes = cover.copy()
    for _ in range(100):
        need = n_ratings - codes.size
        if need <= 0:
            break
        m = int(need * 1.15) + 1024
        codes = _sorted_unique(np.concatenate([codes, _draw(rng, ucdf, m) * n_items + _draw(rng, icdf, m)]))
    else:  # pragma: no cover - the caps above keep collisions rare
        raise RuntimeError("could not draw enough distinct pairs; lower n_ratings or the spreads")
    extra = codes.size - n_ratings
    if extra:  # drop surplus pairs at random, never a covering one
        free = np.flatnonzero(~np.isin(codes, cover, assume_unique=True))
        codes = np.delete(codes, rng.choice(free, size=extra, replace=False))
    user = (codes // n_items).astype(np.int32)
    item = (codes % n_items).astype(np.int32)
    del codes, cover

    s = (signal_sd**2 / n_factors) ** 0.25
    U = rng.normal(0.0, s, size=(n_users, n_factors))
    V = rng.normal(0.0, s, size=(n_items, n_factors))
    b = rng.normal(0.0, bias_sd, size=n_users) if bias_sd > 0 else np.zeros(n_users)
    c = rng.normal(0.0, bias_sd, size=n_items) if bias_sd > 0 else np.zeros(n_items)
    rating = rowdot(U, V, user, item)
    rating += global_mean
    rating += b[user]
    rating += c[item]
    rating += rng.normal(0.0, noise_sd, size=rating.size)
    if discrete:
        np.clip(np.rint(rating, out=rating), 1.0, 5.0, out=rating)
    ratings = Ratings(user, item, rating, pd.RangeIndex(n_users, name="user"),
                      pd.RangeIndex(n_items, name="item"), (1.0, 5.0) if discrete else None)
    return SimulatedPMF(ratings, U, V, float(noise_sd), float(global_mean), b, c)
