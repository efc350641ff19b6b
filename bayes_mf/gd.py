r"""Matrix factorization by full-batch gradient descent (with momentum).

Minimises the same regularised squared error as :class:`~bayes_mf.ALS`
(plain penalty, i.e. the PMF MAP objective per rating)

.. math::
    L = \frac{1}{|\Omega|}\Bigl[\tfrac12\sum_{(i,j)\in\Omega}(R_{ij}-\hat R_{ij})^2
        + \tfrac{\lambda}{2}\bigl(\sum_i \|U_i\|^2 + \sum_j \|V_j\|^2\bigr)
        + \tfrac{\lambda_b}{2}\bigl(\sum_i b_i^2 + \sum_j c_j^2\bigr)\Bigr]

with gradients gathered over the observed triplets by sparse products,
:math:`\partial L/\partial U_i \propto -\sum_j e_{ij} V_j + \lambda U_i`.
It is slower to converge than ALS and is kept as the textbook second point
estimator (and as a check that both reach similar optima).
"""

from __future__ import annotations

import numpy as np

from ._util import SideIndex
from .base import PointFactorEstimator

__all__ = ["GradientDescentMF"]


class GradientDescentMF(PointFactorEstimator):
    r"""Biased matrix factorization fitted by gradient descent with momentum.

    Parameters
    ----------
    n_factors : int
    reg : float
        :math:`\lambda` on the factors (plain, per entity).
    reg_bias : float
        :math:`\lambda_b` on the biases.
    biases : bool
    learning_rate : float
        Step size per unit of per-entity average gradient (the gradient of
        each user/item is divided by its number of ratings, a diagonal
        preconditioner that makes one step size fit rare and frequent ids).
    momentum : float
        Heavy-ball momentum in [0, 1).
    max_iter : int
    tol : float
        Stop when the relative decrease of the objective is below it.
    init_scale : float
    clip : bool
    random_seed : int or None
    rating_unit : "auto" or float
        The fit works on ``ratings / rating_unit`` and reports ``U_``,
        ``V_`` (times its square root), biases, ``train_rmse_`` and
        predictions back in rating units.  ``"auto"``:
        :func:`~bayes_mf.base.rating_unit`, the power of ten nearest the
        training sd (1 for star ratings, so their fits are unchanged; the
        same ratings in cents get 100 and exactly 100 x the predictions).
        ``reg``, ``reg_bias``, ``init_scale`` and ``learning_rate`` apply on that
        standardised scale.

    Attributes
    ----------
    U_, V_, user_bias_, item_bias_, global_mean_, n_iter_, loss_curve_
    """

    def __init__(
        self,
        n_factors: int = 10,
        *,
        reg: float = 14.0,
        reg_bias: float = 5.0,
        biases: bool = True,
        learning_rate: float = 0.1,
        momentum: float = 0.9,
        max_iter: int = 500,
        tol: float = 1e-6,
        init_scale: float = 0.1,
        clip: bool = True,
        random_seed: int | None = 0,
        rating_unit: float | str = "auto",
    ):
        self.n_factors = n_factors
        self.reg = reg
        self.reg_bias = reg_bias
        self.biases = biases
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.max_iter = max_iter
        self.tol = tol
        self.init_scale = init_scale
        self.clip = clip
        self.random_seed = random_seed
        self.rating_unit = rating_unit

    def _fit(self, r) -> None:
        if not isinstance(self.n_factors, (int, np.integer)) or self.n_factors < 1:
            raise ValueError(f"n_factors must be an integer >= 1, got {self.n_factors!r}")
        if not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        for name in ("reg", "reg_bias"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.number)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        rng = np.random.default_rng(self.random_seed)
        k = int(self.n_factors)
        by_user = SideIndex(r.user, r.item, r.n_users, r.n_items)
        by_item = SideIndex(r.item, r.user, r.n_items, r.n_users)
        nu = np.maximum(by_user.counts, 1)[:, None]
        ni = np.maximum(by_item.counts, 1)[:, None]
        y = r.rating - self.global_mean_
        params = [rng.normal(0, self.init_scale, (r.n_users, k)),
                  rng.normal(0, self.init_scale, (r.n_items, k)),
                  np.zeros(r.n_users), np.zeros(r.n_items)]
        vel = [np.zeros_like(p) for p in params]
        self.loss_curve_ = []
        prev = np.inf
        lr, lam, lamb = self.learning_rate, self.reg, self.reg_bias
        for it in range(int(self.max_iter)):
            U, V, b, c = params
            self.U_, self.V_, self.user_bias_, self.item_bias_ = U, V, b, c
            e = y - self._eta(r.user, r.item)
            loss = 0.5 * (e @ e + lam * (np.sum(U**2) + np.sum(V**2))
                          + lamb * (b @ b + c @ c)) / len(r)
            self.loss_curve_.append(float(loss))
            self.n_iter_ = it + 1
            if not np.isfinite(loss) or loss > 1e3 * self.loss_curve_[0]:
                raise FloatingPointError(
                    f"gradient descent diverged at iteration {it} (objective {loss:.3g}): "
                    f"lower learning_rate (now {self.learning_rate})"
                )
            # momentum makes the objective non-monotone: stop on a small change either way
            if np.isfinite(prev) and abs(prev - loss) <= self.tol * abs(prev):
                break
            prev = loss
            grads = [(lam * U - by_user.rhs(V, e)) / nu,
                     (lam * V - by_item.rhs(U, e)) / ni]
            if self.biases:
                grads += [(lamb * b - by_user.matrix(e).sum(axis=1).A1) / nu[:, 0],
                          (lamb * c - by_item.matrix(e).sum(axis=1).A1) / ni[:, 0]]
            else:
                grads += [np.zeros_like(b), np.zeros_like(c)]
            for p, v, g in zip(params, vel, grads, strict=True):
                v *= self.momentum
                v -= lr * g
                p += v
        # the last step moved the parameters after the loss was measured: measure again
        e = y - self._eta(r.user, r.item)
        self.train_rmse_ = float(np.sqrt(np.mean(e**2)))
