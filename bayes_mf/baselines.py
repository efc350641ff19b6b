r"""Reference predictors without latent factors.

* :class:`GlobalMean` -- :math:`\hat R_{ij} = \mu`.
* :class:`BiasBaseline` -- :math:`\hat R_{ij} = \mu + b_i + c_j`, the
  ridge-regularised user and item offsets, fitted by alternating exact
  updates (a few sweeps converge).

A latent-factor model that does not beat :class:`BiasBaseline` has learned
nothing about user-item interaction.
"""

from __future__ import annotations

import numpy as np

from .base import RatingsEstimator

__all__ = ["GlobalMean", "BiasBaseline"]


class GlobalMean(RatingsEstimator):
    """Predict the training mean for every pair."""

    def __init__(self, *, clip: bool = True):
        self.clip = clip

    def _fit(self, r) -> None:
        pass

    def _predict_codes(self, ucode, icode):
        return {"mean": np.full(ucode.shape, self.global_mean_)}


class BiasBaseline(RatingsEstimator):
    r"""Global mean plus regularised user and item biases.

    Minimises :math:`\sum (R_{ij} - \mu - b_i - c_j)^2 + \lambda_b\sum b_i^2
    + \lambda_c \sum c_j^2` by exact alternating updates
    :math:`b_i = \sum_j (R_{ij}-\mu-c_j) / (\lambda_b + n_i)`.

    Parameters
    ----------
    reg_user, reg_item : float
        :math:`\lambda_b, \lambda_c`: pseudo-counts (a number of ratings,
        free of the ratings' unit: the fit is linear in the ratings).
    n_iter : int
        Alternating sweeps.
    clip : bool
        Clip predictions to the rating scale.
    """

    def __init__(self, *, reg_user: float = 5.0, reg_item: float = 5.0, n_iter: int = 10,
                 clip: bool = True):
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.n_iter = n_iter
        self.clip = clip

    def _fit(self, r) -> None:
        if self.reg_user < 0 or self.reg_item < 0:
            raise ValueError("reg_user and reg_item must be >= 0")
        y = r.rating - self.global_mean_
        nu = np.bincount(r.user, minlength=r.n_users)
        ni = np.bincount(r.item, minlength=r.n_items)
        b = np.zeros(r.n_users)
        c = np.zeros(r.n_items)
        for _ in range(int(self.n_iter)):
            b = np.bincount(r.user, y - c[r.item], minlength=r.n_users) / (self.reg_user + nu)
            c = np.bincount(r.item, y - b[r.user], minlength=r.n_items) / (self.reg_item + ni)
        self.user_bias_, self.item_bias_ = b, c

    def _to_rating_units(self, unit, r) -> None:
        super()._to_rating_units(unit, r)
        self.user_bias_ = self.user_bias_ * unit
        self.item_bias_ = self.item_bias_ * unit

    def _predict_codes(self, ucode, icode):
        mean = np.full(ucode.shape, self.global_mean_)
        mean[ucode >= 0] += self.user_bias_[ucode[ucode >= 0]]
        mean[icode >= 0] += self.item_bias_[icode[icode >= 0]]
        return {"mean": mean}
