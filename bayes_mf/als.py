r"""Alternating least squares for (biased) matrix factorization.

With the other side fixed, the MAP objective of PMF

.. math::
    E = \tfrac12 \sum_{(i,j)\in\Omega} (R_{ij} - \hat R_{ij})^2
        + \tfrac{\lambda_U}{2}\sum_i \lambda_i \|U_i\|^2
        + \tfrac{\lambda_V}{2}\sum_j \lambda_j \|V_j\|^2,
    \qquad \hat R_{ij} = \mu + b_i + c_j + U_i^\top V_j

is a ridge regression per user, solved in closed form:

.. math::
    U_i = \Bigl(\lambda_U s_i I + \sum_{j\in\Omega_i} V_j V_j^\top\Bigr)^{-1}
          \sum_{j\in\Omega_i} (R_{ij} - \mu - c_j)\, V_j

(and with biases, :math:`[U_i; b_i]` is solved jointly against
:math:`[V_j; 1]`).  The per-user weight :math:`s_i` is 1 for
``regularization="plain"`` -- the paper's :math:`\lambda = \sigma^2/\sigma_U^2`
-- and the number of ratings :math:`n_i` for ``"weighted"`` (the
"weighted-lambda" rule of Zhou et al. 2008, which scales the penalty with the
data each factor sees and is more robust to the choice of :math:`\lambda`).

Each sweep gathers all per-user Gram matrices with one sparse x dense product
over the observed triplets and solves them in one batched call: no Python
loop over users or ratings, no dense users x items matrix.

``reg="auto"`` (the default) picks :math:`\lambda` by validation: a seeded
10 % of the training ratings is held out, ALS is fitted on the rest (10
sweeps) for every other value of a geometric grid (:data:`AUTO_GRID`, a
factor 4 apart), then for the neighbours of the best a factor 2 and
:math:`\sqrt 2` away (9 fits in all), and the value with the lowest
validation RMSE is refitted on all the training data.  A fixed
:math:`\lambda` suits one data set only: tuned on MovieLens (14), it shrinks
every factor to zero on data with another noise-to-signal ratio, and ALS
silently becomes the bias baseline.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ._util import SideIndex
from .base import PointFactorEstimator
from .data import Ratings

__all__ = ["ALS", "AUTO_GRID"]

#: the lambda values ``reg="auto"`` tries, per ``regularization`` (a factor 2 apart; the weighted
#: penalty is multiplied by each row's count, so its useful values are about 100 x smaller on MovieLens)
AUTO_GRID = {
    "plain": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
    "weighted": (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64),
}
#: share of the training ratings held out to choose lambda
AUTO_VALIDATION = 0.1
#: sweeps of each trial fit (enough to rank the lambdas; the final fit runs ``max_iter``)
AUTO_SWEEPS = 10
#: below this many ratings ``"auto"`` does not validate and uses :data:`AUTO_FALLBACK`
AUTO_MIN_RATINGS = 50
#: lambda of ``"auto"`` on data too small to validate (the values chosen on MovieLens ``u1.base``)
AUTO_FALLBACK = {"plain": 14.0, "weighted": 0.12}


def ridge_side(index: SideIndex, other: np.ndarray, target: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Solve every row's ridge problem of one ALS half-step.

    Parameters
    ----------
    index : SideIndex
        Observations grouped by the side being solved for.
    other : (n_other, d)
        Fixed features of the other side.
    target : (n_obs,)
        Regression target per observation.
    reg : (n_rows, d)
        Diagonal of each row's penalty matrix.
    """
    G = index.gram(other)
    d = other.shape[1]
    G[:, np.arange(d), np.arange(d)] += reg
    b = index.rhs(other, target)
    return np.linalg.solve(G, b[..., None])[..., 0]


class ALS(PointFactorEstimator):
    r"""Alternating least squares with optional user/item biases.

    Parameters
    ----------
    n_factors : int
        Rank :math:`k` of :math:`U` and :math:`V`.
    reg : float or "auto"
        :math:`\lambda` for the factors.  ``"auto"`` (default) chooses it
        on and between the values of :data:`AUTO_GRID` by the RMSE on a seeded 10 % validation slice
        of the training ratings (``reg_path_`` keeps every value tried; under
        :data:`AUTO_MIN_RATINGS` ratings :data:`AUTO_FALLBACK` is used); a
        number is used exactly as given.  On MovieLens 100K ``u1.base``
        (rank 10, plain) the former fixed default was 14; with ``"weighted"``
        values near 0.1 play the same role.
    reg_bias : float
        :math:`\lambda` for the biases (chosen by validation on MovieLens
        ``u1.base``; the bias penalty matters far less than the factors').
    regularization : {"weighted", "plain"}
        ``"plain"``: penalty :math:`\lambda\|U_i\|^2` (the PMF prior);
        ``"weighted"``: :math:`\lambda n_i \|U_i\|^2`.
    biases : bool
        Learn user and item offsets :math:`b_i, c_j` around the global mean.
    max_iter : int
        Maximum number of sweeps (one sweep = users then items).
    tol : float
        Stop when the relative decrease of the training objective is below it.
    init_scale : float
        Standard deviation of the random initial factors.
    clip : bool
        Clip predictions to the training rating scale (declared, else observed).
    random_seed : int or None
    rating_unit : "auto" or float
        The fit works on ``ratings / rating_unit`` and reports ``U_``,
        ``V_`` (times its square root), biases, ``train_rmse_`` and
        predictions back in rating units.  ``"auto"``:
        :func:`~bayes_mf.base.rating_unit`, the power of ten nearest the
        training sd (1 for star ratings, so their fits are unchanged; the
        same ratings in cents get 100 and exactly 100 x the predictions).
        ``reg``, ``reg_bias``, ``init_scale`` apply on that
        standardised scale.

    Attributes
    ----------
    U_ : (n_users, k), V_ : (n_items, k)
    user_bias_ : (n_users,), item_bias_ : (n_items,)   (zeros without biases)
    global_mean_ : float
    n_iter_ : int
    loss_curve_ : list of float
        Training objective after each sweep (of the standardised fit, times
        ``rating_unit_ ** 2``: in squared rating units).
    reg_ : float
        The :math:`\lambda` the factors were fitted with (``reg`` itself, or
        the value ``"auto"`` chose).
    reg_path_ : DataFrame
        With ``reg="auto"``: ``reg`` and ``val_rmse`` of every value tried
        (``None`` for a fixed ``reg``).
    """

    def __init__(
        self,
        n_factors: int = 10,
        *,
        reg: float | Literal["auto"] = "auto",
        reg_bias: float = 5.0,
        regularization: Literal["weighted", "plain"] = "plain",
        biases: bool = True,
        max_iter: int = 20,
        tol: float = 1e-5,
        init_scale: float = 0.1,
        clip: bool = True,
        random_seed: int | None = 0,
        rating_unit: float | str = "auto",
    ):
        self.n_factors = n_factors
        self.reg = reg
        self.reg_bias = reg_bias
        self.regularization = regularization
        self.biases = biases
        self.max_iter = max_iter
        self.tol = tol
        self.init_scale = init_scale
        self.clip = clip
        self.random_seed = random_seed
        self.rating_unit = rating_unit

    def _check_params(self) -> None:
        if not isinstance(self.n_factors, (int, np.integer)) or self.n_factors < 1:
            raise ValueError(f"n_factors must be an integer >= 1, got {self.n_factors!r}")
        for name in ("reg", "reg_bias"):
            value = getattr(self, name)
            if name == "reg" and isinstance(value, str) and value == "auto":
                continue
            # reg > 0 keeps every ridge system non-singular (users with fewer than k ratings)
            if not isinstance(value, (int, float, np.number)) or isinstance(value, bool) or not value > 0:
                also = " or 'auto'" if name == "reg" else ""
                raise ValueError(f"{name} must be a number > 0{also}, got {value!r}")
        if self.regularization not in ("weighted", "plain"):
            raise ValueError(f"regularization must be 'weighted' or 'plain', got {self.regularization!r}")
        if not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")

    def _penalty(self, counts: np.ndarray) -> np.ndarray:
        s = counts.astype(float) if self.regularization == "weighted" else np.ones(len(counts))
        k = self.n_factors
        lam = np.full(k + int(self.biases), float(self.reg_))
        if self.biases:
            lam[-1] = self.reg_bias
        return s[:, None] * lam[None, :]

    def _objective(self, r: Ratings, resid: np.ndarray, ucnt, icnt) -> float:
        su = ucnt if self.regularization == "weighted" else 1.0
        si = icnt if self.regularization == "weighted" else 1.0
        pen = self.reg_ * (np.sum(su * np.sum(self.U_**2, 1)) + np.sum(si * np.sum(self.V_**2, 1)))
        if self.biases:
            pen += self.reg_bias * (np.sum(su * self.user_bias_**2) + np.sum(si * self.item_bias_**2))
        return 0.5 * float(resid @ resid) + 0.5 * float(pen)

    def _fit(self, r: Ratings) -> None:
        self._check_params()
        if isinstance(self.reg, str):
            self.reg_, self.reg_path_ = self._choose_reg(r)
        else:
            self.reg_, self.reg_path_ = float(self.reg), None
        self._fit_factors(r)

    def _choose_reg(self, r: Ratings):
        """The grid value of lambda with the lowest RMSE on a seeded validation slice of ``r``."""
        import pandas as pd

        if len(r) < AUTO_MIN_RATINGS:
            # a validation slice of one or two ratings would pick lambda by noise
            return AUTO_FALLBACK[self.regularization], pd.DataFrame({"reg": [], "val_rmse": []})
        rng = np.random.default_rng(self.random_seed)
        held = np.zeros(len(r), dtype=bool)
        held[rng.choice(len(r), size=max(1, int(round(AUTO_VALIDATION * len(r)))), replace=False)] = True
        # id maps kept whole (compact=False): a user whose ratings are all held out keeps its code
        # and is fitted with zero factors, as the prior says, instead of shifting every code
        fit_part = r.subset(~held, compact=False)
        val_u, val_i, val_y = r.user[held], r.item[held], r.rating[held]
        clip = self.clip and self.scale_ is not None
        tried: dict[float, float] = {}

        def val_rmse(lam: float) -> float:
            if lam not in tried:
                trial = ALS(**{**self.get_params(deep=False), "reg": lam,
                               "max_iter": min(int(self.max_iter), AUTO_SWEEPS)})
                trial.reg_, trial.global_mean_ = lam, float(fit_part.rating.mean())
                trial._fit_factors(fit_part)
                pred = trial.global_mean_ + trial._eta(val_u, val_i)
                if clip:
                    pred = np.clip(pred, *self.scale_)
                tried[lam] = float(np.sqrt(np.mean((val_y - pred) ** 2)))
            return tried[lam]

        def best() -> float:
            # ties (flat validation curves) go to the larger, more cautious penalty
            return min(tried, key=lambda lam: (tried[lam], -lam))

        grid = AUTO_GRID[self.regularization]
        for lam in grid[::2]:  # coarse: a factor 4 apart
            val_rmse(lam)
        for step in (2.0, 2.0**0.5):  # then the neighbours of the best, a factor 2, then sqrt(2) away
            centre = best()
            for lam in (centre / step, centre * step):
                if grid[0] <= lam <= grid[-1]:
                    val_rmse(float(lam))
        path = pd.DataFrame({"reg": list(tried), "val_rmse": list(tried.values())}).sort_values("reg")
        return best(), path.reset_index(drop=True)

    def _fit_factors(self, r: Ratings) -> None:
        """Alternating ridge sweeps with the penalty ``reg_``."""
        k = int(self.n_factors)
        rng = np.random.default_rng(self.random_seed)
        mu = self.global_mean_
        by_user = SideIndex(r.user, r.item, r.n_users, r.n_items)
        by_item = SideIndex(r.item, r.user, r.n_items, r.n_users)
        pen_u = self._penalty(by_user.counts)
        pen_i = self._penalty(by_item.counts)
        self.U_ = rng.normal(0.0, self.init_scale, (r.n_users, k))
        self.V_ = rng.normal(0.0, self.init_scale, (r.n_items, k))
        self.user_bias_ = np.zeros(r.n_users)
        self.item_bias_ = np.zeros(r.n_items)
        y = r.rating - mu
        self.loss_curve_ = []
        prev = np.inf
        for it in range(int(self.max_iter)):
            if self.biases:
                X = ridge_side(by_user, np.c_[self.V_, np.ones(r.n_items)],
                               y - self.item_bias_[r.item], pen_u)
                self.U_, self.user_bias_ = X[:, :k], X[:, k]
                X = ridge_side(by_item, np.c_[self.U_, np.ones(r.n_users)],
                               y - self.user_bias_[r.user], pen_i)
                self.V_, self.item_bias_ = X[:, :k], X[:, k]
            else:
                self.U_ = ridge_side(by_user, self.V_, y, pen_u)
                self.V_ = ridge_side(by_item, self.U_, y, pen_i)
            resid = y - self._eta(r.user, r.item)
            loss = self._objective(r, resid, by_user.counts, by_item.counts)
            self.loss_curve_.append(loss)
            self.n_iter_ = it + 1
            if np.isfinite(prev) and (prev - loss) <= self.tol * abs(prev):
                break
            prev = loss
        self.train_rmse_ = float(np.sqrt(np.mean(resid**2)))

