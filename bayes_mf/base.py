"""The estimator contract every method shares: a scikit-learn estimator.

:class:`RatingsEstimator` is a :class:`sklearn.base.BaseEstimator`, so
``get_params``/``set_params``, :func:`sklearn.base.clone`, the compact repr
(only parameters that differ from their defaults), ``check_is_fitted`` and
model selection (``GridSearchCV``, ``cross_val_score``) work on every
method.  ``X`` is a ratings table: a pandas DataFrame with user, item and
rating columns (scikit-learn's splitters index its rows), a
:class:`~bayes_mf.data.Ratings` or a CSV path; ``score`` is the negative
RMSE on such a table (greater is better, as scikit-learn expects).

Subclasses set hyper-parameters in ``__init__`` (keyword arguments stored
unchanged under their own names, validated at fit time) and implement

* ``_fit(ratings)`` -- learn from a validated :class:`~bayes_mf.data.Ratings`;
* ``_predict_codes(ucode, icode, **kw)`` -- return a dict of per-pair arrays
  with at least ``"mean"`` (Bayesian methods add ``"sd"``, ``"lo"``, ``"hi"``).
  Codes are ``-1`` for users/items unseen in training: the method predicts
  those from its prior / biases.

The base class owns coercion of the input, the id maps, timing, the unseen-id
policy, clipping to the rating scale and the labelled DataFrame output.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import replace
from os import PathLike

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

from ._util import rowdot
from .data import Ratings, RatingsError, encode_pairs, handle_unseen

__all__ = ["RatingsEstimator", "PointFactorEstimator", "BayesianEstimator", "NotFittedError",
           "DataSupportWarning", "RatingUnitWarning", "rating_unit"]

#: an undeclared rating scale is taken from the observed range only from this many ratings on
MIN_RATINGS_FOR_OBSERVED_SCALE = 100


class NotFittedError(_SklearnNotFittedError, RuntimeError):
    """Raised when ``predict`` is called before ``fit``.

    It is scikit-learn's ``NotFittedError`` (so model-selection code catches
    it) and stays a ``RuntimeError`` as in earlier versions.
    """


class DataSupportWarning(UserWarning):
    """The training data cannot pin down the model (too few ratings, or no spread in them)."""


class RatingUnitWarning(UserWarning):
    """A hyper-parameter given in rating units is far from the scale of the training ratings."""


def rating_unit(ratings) -> float:
    """The power of ten nearest (on a log scale) the sd of ``ratings``: the unit every fit works in.

    Estimators fit ``ratings / unit``, whose sd lies in [0.316, 3.16), so
    that their default priors, penalties and step sizes (set for ratings of
    about unit spread) apply whatever the unit of the data, and report every
    result back in rating units.  Ratings on a 1-5 or 1-10 star scale (sd
    about 1-3) have unit 1, so their fits are unchanged; the same ratings in
    cents (x 100) have unit 100, and their fit is exactly 100 x theirs.
    Constant or empty ratings have unit 1.
    """
    sd = float(np.std(np.asarray(ratings, dtype=float))) if np.size(ratings) else 0.0
    if not (math.isfinite(sd) and sd > 0):
        return 1.0
    return 10.0 ** math.floor(math.log10(sd) + 0.5)


def _check_rating_unit(value) -> None:
    if isinstance(value, str) and value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"rating_unit must be 'auto' or a positive number, got {value!r}")


def _in_units(est, r: Ratings, given: dict, warn=None) -> dict:
    """Hyper-parameters given in rating units, on the scale the fit works in (``r``: ratings / unit).

    ``given`` maps a name to ``(value, power)``: a noise or bias sd carries
    the rating unit once (power 1), a factor sd its square root (power 0.5,
    so that a product of two factors carries it once).  ``None`` values are
    skipped.  A value more than 100 times off the training ratings' sd (to
    its power) warns with a :class:`RatingUnitWarning`, for the names in
    ``warn`` (default: all): it looks like a value meant for ratings in
    other units.
    """
    unit = est.rating_unit_
    sd = float(np.std(r.rating)) * unit  # r is what _fit sees: ratings / unit
    out = {}
    for name, (value, power) in given.items():
        if value is None:
            continue
        value = float(value)
        if (warn is None or name in warn) and sd > 0 and not 1e-2 <= value / sd**power <= 1e2:
            what = "sd" if power == 1 else "sd ** 0.5"
            warnings.warn(f"{type(est).__name__}({name}={value:g}): {name} is in rating units, but the "
                          f"training ratings have sd {sd:.3g}, so {name} is {value / sd**power:.2g} x their "
                          f"{what}; if the ratings changed units (x 100, say), give {name} in the new units "
                          "too", RatingUnitWarning, stacklevel=4)
        out[name] = value if unit == 1.0 else value / unit**power
    return out


def _clip_scale(r: Ratings):
    """The scale predictions are clipped to: declared, else observed on a set large enough to show it.

    The observed range of one rating, or of ratings that are all equal, is a
    point: clipping to it would turn every interval into ``[3, 3]``.
    """
    if r.scale is not None:
        return tuple(r.scale)
    lo, hi = float(r.rating.min()), float(r.rating.max())
    if len(r) < MIN_RATINGS_FOR_OBSERVED_SCALE or not lo < hi:
        return None
    return (lo, hi)


def _warn_if_unsupported(est, r: Ratings) -> None:
    """Warn when the ratings cannot support the model: no variance, or fewer ratings than parameters."""
    import warnings

    if np.ptp(r.rating) == 0:
        warnings.warn(f"all {len(r)} training ratings equal {r.rating[0]:g}: there is no variation to learn "
                      "from, so predictions repeat that value and any spread comes from the prior",
                      DataSupportWarning, stacklevel=3)
        return
    # counted at the level of one number per user and item: factor models are meant to have more
    # parameters than ratings (priors and regularisation handle that), but with fewer ratings than
    # users + items not even the biases are identified
    if type(est).__name__ != "GlobalMean" and len(r) < 1 + r.n_users + r.n_items:
        warnings.warn(f"{len(r)} training ratings for {r.n_users} users and {r.n_items} items: fewer than "
                      f"the {1 + r.n_users + r.n_items} parameters of even a biases-only model, so the data "
                      "cannot pin the model down and estimates are mostly the prior or regularisation",
                      DataSupportWarning, stacklevel=3)


class RatingsEstimator(BaseEstimator):
    """Base class: ``fit(X) -> self``, ``predict(pairs) -> DataFrame``, ``score(X) -> -RMSE``.

    Attributes set by :meth:`fit`
    -----------------------------
    users_, items_ : pandas.Index
        Training id maps (position = code).
    rating_unit_ : float
        The unit the fit worked in (:func:`rating_unit`: a power of ten, 1
        for star ratings): the estimator was fitted on ``ratings /
        rating_unit_``, and every fitted attribute, result and prediction is
        reported back in the units of the training ratings.
    scale_ : (low, high) or None
        Rating scale used for clipping (``clip=True``); taken from the data's
        declared scale, else from the observed min/max of at least
        :data:`MIN_RATINGS_FOR_OBSERVED_SCALE` ratings with some spread;
        ``None`` (no clipping) for a smaller or constant set, whose observed
        range says nothing about the scale.
    global_mean_ : float
    fit_seconds_ : float
        Wall time of the fit.
    """

    #: whether predictions carry a posterior spread (sd, intervals)
    is_bayesian = False

    def __sklearn_is_fitted__(self) -> bool:
        # explicit, so that attributes a subclass may set before fit never count as fitted
        return hasattr(self, "users_")

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, **ratings_kw):
        """Fit on training ratings; returns ``self``.

        Parameters
        ----------
        X : DataFrame, Ratings or path
            The ratings table (user, item and rating columns; any row subset
            of a table works, so scikit-learn's splitters can index it).
        y : array-like, optional
            Ratings of the rows of ``X`` when ``X`` holds only the (user,
            item) pairs; leave it out when ``X`` has a rating column.
        **ratings_kw
            Options of :meth:`Ratings.from_frame` / :meth:`Ratings.from_csv`
            (``user_col``, ``item_col``, ``rating_col``, ``scale``,
            ``duplicates``); any other name raises ``TypeError``.
        """
        if "model" in ratings_kw:
            raise TypeError(f"{type(self).__name__}.fit() takes no model=: to fit a PyMC model of your own, "
                            "use bayes_mf.PMF.from_model(model, ...).fit(ratings)")
        r = Ratings.coerce(_with_ratings(X, y, ratings_kw), **ratings_kw)
        self.users_ = r.users
        self.items_ = r.items
        unit = self._rating_unit(r)
        self.rating_unit_ = unit
        # the fit works on ratings / unit (identical for unit 1), and reports back in rating units
        work = r if unit == 1.0 else replace(
            r, rating=r.rating / unit, meta=dict(r.meta),
            scale=None if r.scale is None else (r.scale[0] / unit, r.scale[1] / unit))
        self.scale_ = _clip_scale(work)
        self.global_mean_ = float(work.rating.mean())
        _warn_if_unsupported(self, r)
        self.n_train_ = len(r)
        self._names = r.names
        # kept so that recommend() can exclude what a user has already rated
        self.train_user_codes_ = r.user
        self.train_item_codes_ = r.item
        t0 = time.perf_counter()
        self._fit(work)
        if unit != 1.0:
            self._to_rating_units(unit, r)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _rating_unit(self, r: Ratings) -> float:
        """The unit of this fit: the ``rating_unit`` parameter, or :func:`rating_unit` of the ratings."""
        value = getattr(self, "rating_unit", "auto")
        _check_rating_unit(value)
        return rating_unit(r.rating) if isinstance(value, str) else float(value)

    def _to_rating_units(self, unit: float, r: Ratings) -> None:
        """Express what ``_fit`` learnt from ``r.rating / unit`` in the units of ``r`` (subclasses extend)."""
        self.scale_ = _clip_scale(r)
        self.global_mean_ = float(r.rating.mean())

    def score(self, X, y=None, *, unseen: str = "prior") -> float:
        """Negative root mean squared error of the predicted means on a ratings table.

        Greater is better, as scikit-learn's model selection expects; this is
        the default scorer of ``GridSearchCV`` and ``cross_val_score``.

        Parameters
        ----------
        X : DataFrame, Ratings or path
            Held-out ratings (user, item, rating), as for :meth:`fit`.
        y : array-like, optional
            The ratings when ``X`` holds only (user, item) pairs.
        unseen : {"prior", "drop", "error"}
            Policy for pairs whose user or item was not in training, as in
            :meth:`predict` (their count is reported with a warning).

        Returns
        -------
        float
            ``-RMSE`` of the (clipped, when ``clip``) predicted means.
        """
        self._check_fitted()
        rating_col = getattr(self, "_names", ("user", "item", "rating"))[2]
        table = _with_ratings(X, y, {"rating_col": rating_col})
        if isinstance(table, (str, PathLike)):
            table = Ratings.coerce(table)
        elif isinstance(table, pd.DataFrame) and "rating" not in table.columns and rating_col in table:
            # predict reads observed ratings from a "rating" column; the training table's name counts too
            table = table.rename(columns={rating_col: "rating"})
        pred = self.predict(table, unseen=unseen)
        if "rating" not in pred.columns:
            raise ValueError("score needs observed ratings: pass a table with a rating column, or y")
        if len(pred) == 0:
            raise ValueError("score: no pair left to score (all were dropped as unseen)")
        err = pred["rating"].to_numpy(dtype=float) - pred["mean"].to_numpy(dtype=float)
        return -float(np.sqrt(np.mean(err**2)))

    def _fit(self, ratings: Ratings) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict_codes(self, ucode: np.ndarray, icode: np.ndarray, **kw) -> dict:  # pragma: no cover
        raise NotImplementedError

    def recommend(self, user, n: int = 10, *, strategy: str = "mean", exclude_rated: bool = True,
                  titles=None, interval: float = 0.9, random_seed=None, at=None) -> pd.DataFrame:
        """Top-``n`` items for one user; see :func:`bayes_mf.recommend.recommend`."""
        from .recommend import recommend

        return recommend(self, user, n, strategy=strategy, exclude_rated=exclude_rated, titles=titles,
                         interval=interval, random_seed=random_seed, at=at)

    def _check_fitted(self) -> None:
        if not hasattr(self, "users_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(ratings) first")

    # -------------------------------------------------------------- predict
    def predict(self, pairs, *, unseen: str = "prior", **kw) -> pd.DataFrame:
        """Predict ratings for any (user, item) pairs.

        Parameters
        ----------
        pairs : Ratings, DataFrame with user/item columns, or (users, items)
            Original ids, as in the training data.
        unseen : {"prior", "drop", "error"}
            Pairs whose user or item was not in training are predicted from
            the prior/biases (``"prior"``), dropped, or rejected; their count
            is always reported with a warning.
        **kw
            Posterior options (``interval=0.9``, ``include_noise``, ``max_draws``,
            ``random_seed``); point estimates accept and ignore them (they have
            no spread), any other name raises ``TypeError``.

        Returns
        -------
        DataFrame
            ``user``, ``item``, ``mean`` (and ``sd``, ``lo``, ``hi`` for
            posterior methods), plus ``rating`` when the pairs carry one.
            Values are clipped to ``scale_`` when ``clip`` is on;
            ``attrs["clipped_to"]`` says so.
        """
        self._check_fitted()
        if not self.is_bayesian:
            unknown = set(kw) - _POSTERIOR_OPTIONS
            if unknown:
                raise TypeError(f"{type(self).__name__}.predict got unknown option(s) {sorted(unknown)}")
            # interval options mean nothing for a point estimate: it has no spread to report
            kw = {}
        uid, iid, uc, ic, keep, observed = self._encode(pairs, unseen)
        n_unseen = int(((uc < 0) | (ic < 0)).sum())
        if not keep.all():
            uid, iid, uc, ic = uid[keep], iid[keep], uc[keep], ic[keep]
            observed = None if observed is None else observed[keep]
        out = self._predict_codes(uc.astype(np.int64), ic.astype(np.int64), **kw)
        clip = getattr(self, "clip", True)
        frame = pd.DataFrame({"user": uid, "item": iid})
        clip = clip and self.scale_ is not None
        for name, values in out.items():
            if clip and name in ("mean", "lo", "hi"):
                values = np.clip(values, *self.scale_)
            frame[name] = values
        if observed is not None:
            frame["rating"] = observed
        frame.attrs["method"] = type(self).__name__
        frame.attrs["clipped_to"] = tuple(self.scale_) if clip else None
        frame.attrs["n_unseen"] = n_unseen
        frame.attrs["unseen_policy"] = unseen
        if self.is_bayesian:
            # what lo/hi mean, for plots and reports that label them
            frame.attrs["interval"] = float(kw.get("interval", 0.9))
        return frame

    def _encode(self, pairs, unseen):
        """Codes of ``pairs`` under the training maps, the rows kept by the unseen
        policy, and the observed ratings the pairs carry (if any)."""
        uname, iname = getattr(self, "_names", ("user", "item"))[:2]
        if isinstance(pairs, pd.DataFrame) and uname not in pairs.columns and "user" in pairs.columns:
            uname, iname = "user", "item"
        uid, iid, uc, ic = encode_pairs(pairs, self.users_, self.items_, names=(uname, iname))
        keep = handle_unseen(uc, ic, unseen, user_ids=uid, item_ids=iid)
        return uid, iid, uc, ic, keep, _observed_ratings(pairs)


def _with_ratings(X, y, ratings_kw: dict):
    """``X`` with the ratings ``y`` as its rating column (``X`` unchanged when ``y`` is None)."""
    if y is None:
        return X
    col = ratings_kw.get("rating_col", "rating")
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"y is accepted with a DataFrame of (user, item) pairs only, got X of type "
                        f"{type(X).__name__}; or leave y out and pass a table with a {col!r} column")
    if col in X.columns:
        raise ValueError(f"X already has a {col!r} column: leave y out (or drop the column)")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"y must be one rating per row of X ({len(X)}), got shape {y.shape}")
    return X.assign(**{col: y})


#: predict options of posterior methods; point estimates accept and ignore them
_POSTERIOR_OPTIONS = {"interval", "include_noise", "max_draws", "random_seed"}


class PointFactorEstimator(RatingsEstimator):
    r"""Shared prediction of point estimates :math:`\mu + b_i + c_j + U_i^\top V_j`.

    Subclasses set ``U_``, ``V_``, ``user_bias_`` and ``item_bias_`` in
    ``_fit``.  For an unseen user or item the prior mean of its factors (0)
    and of its bias (0) is used, so only the known side's bias remains.
    """

    def _eta(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return self.user_bias_[u] + self.item_bias_[i] + rowdot(self.U_, self.V_, u, i)

    def _to_rating_units(self, unit: float, r: Ratings) -> None:
        super()._to_rating_units(unit, r)
        root = math.sqrt(unit)
        self.U_ = self.U_ * root
        self.V_ = self.V_ * root
        self.user_bias_ = self.user_bias_ * unit
        self.item_bias_ = self.item_bias_ * unit
        if hasattr(self, "train_rmse_"):
            self.train_rmse_ = self.train_rmse_ * unit
        if hasattr(self, "loss_curve_"):
            # the objective of the standardised fit, in squared rating units
            self.loss_curve_ = [float(v) * unit**2 for v in self.loss_curve_]

    def _predict_codes(self, ucode, icode):
        known = (ucode >= 0) & (icode >= 0)
        mean = np.full(ucode.shape, self.global_mean_)
        mean[ucode >= 0] += self.user_bias_[ucode[ucode >= 0]]
        mean[icode >= 0] += self.item_bias_[icode[icode >= 0]]
        mean[known] += rowdot(self.U_, self.V_, ucode[known], icode[known])
        return {"mean": mean}


def _observed_ratings(pairs):
    if isinstance(pairs, Ratings):
        return pairs.rating
    if isinstance(pairs, pd.DataFrame):
        for col in ("rating",):
            if col in pairs.columns:
                values = pd.to_numeric(pairs[col], errors="coerce").to_numpy(dtype=float)
                if np.isnan(values).any() and not pairs[col].isna().to_numpy().any():
                    pos = int(np.flatnonzero(np.isnan(values))[0])
                    raise RatingsError(f"column {col!r} of the pairs is not numeric: row {pos} holds "
                                       f"{pairs[col].iloc[pos]!r}")
                return values
    return None


class BayesianEstimator(RatingsEstimator):
    """Shared prediction for methods whose fit yields posterior draws.

    Subclasses set, in ``_fit``, ``result_`` (the ``xarray.DataTree`` of
    :mod:`bayes_mf.results`).  Predictions then come from the posterior
    predictive (noise included) via :func:`bayes_mf.predict.posterior_predictive`.
    """

    is_bayesian = True

    def _to_rating_units(self, unit: float, r: Ratings) -> None:
        from .results import to_rating_units

        super()._to_rating_units(unit, r)
        self._draws_cache = None
        if getattr(self, "result_", None) is not None:
            to_rating_units(self.result_, unit, r)

    @property
    def draws_(self):
        """Posterior draws flattened for prediction (cached per result)."""
        from .results import draws_from_result

        cached = getattr(self, "_draws_cache", None)
        if cached is None or cached[0] is not self.result_:
            self._draws_cache = (self.result_, draws_from_result(self.result_))
        return self._draws_cache[1]

    def _predict_codes(self, ucode, icode, *, interval: float = 0.9, include_noise: bool = True,
                       max_draws: int | None = None, random_seed=None):
        from .predict import posterior_predictive

        seed = getattr(self, "random_seed", None) if random_seed is None else random_seed
        draws = self.draws_.thin(max_draws)
        out = posterior_predictive(draws, ucode, icode, interval=interval,
                                   include_noise=include_noise, random_seed=seed,
                                   offset=self._pair_offset(ucode, icode, draws))
        if draws.n_draws == 1:
            # a point estimate has no posterior spread: never fake one
            out["sd"][:] = np.nan
            out["lo"][:] = np.nan
            out["hi"][:] = np.nan
        return out

    def _pair_offset(self, ucode, icode, draws):
        """Terms outside ``draws`` added to each pair's linear predictor, or None
        (``offset`` of :func:`~bayes_mf.predict.posterior_predictive`).

        Subclasses with such terms (the time effects of :class:`~bayes_mf.gibbs.GibbsPMF`) override it.
        """
        return None

    def predict_draws(self, pairs, *, unseen: str = "prior", include_noise: bool = True,
                      max_draws: int | None = None, random_seed=None):
        """Posterior predictive draws as a DataArray with dims (chain, draw, obs).

        Memory is draws x pairs floats: thin with ``max_draws`` or pass a
        subset of pairs for large problems.
        """
        import xarray as xr

        from .predict import posterior_predictive

        self._check_fitted()
        uid, iid, uc, ic, keep, _ = self._encode(pairs, unseen)
        uid, iid, uc, ic = uid[keep], iid[keep], uc[keep], ic[keep]
        seed = getattr(self, "random_seed", None) if random_seed is None else random_seed
        draws = self.draws_.thin(max_draws)
        out = posterior_predictive(draws, uc, ic, include_noise=include_noise, random_seed=seed,
                                   return_draws=True, offset=self._pair_offset(uc, ic, draws))
        post = self.result_["posterior"]
        # thinning across chains leaves one pooled chain
        n_chain = post.sizes["chain"] if draws is self.draws_ else 1
        y = out["draws"].reshape(n_chain, -1, len(uc))
        return xr.DataArray(y, dims=("chain", "draw", "obs"),
                            coords={"user": ("obs", uid), "item": ("obs", iid)}, name="rating")
