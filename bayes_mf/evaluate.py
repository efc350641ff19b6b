"""Accuracy and calibration metrics: a NumPy core and a DataFrame wrapper.

Point estimates have no predictive spread, so their coverage is ``nan``
("n/a" in reports), never a made-up number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["rmse", "mae", "coverage", "gaussian_lpd", "score", "cross_validate", "log_score",
           "ranked_probability_score", "ordinal_scores", "star_ppc"]


def _pair(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shapes differ: {y_true.shape} vs {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("no pairs to score")
    return y_true, y_pred


def rmse(y_true, y_pred) -> float:
    r"""Root mean squared error :math:`\sqrt{\frac1n\sum (y - \hat y)^2}`."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true, y_pred) -> float:
    r"""Mean absolute error :math:`\frac1n\sum |y - \hat y|`."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def coverage(y_true, lo, hi) -> float:
    """Fraction of ``y_true`` inside ``[lo, hi]``; ``nan`` when no interval exists."""
    y_true = np.asarray(y_true, dtype=float)
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    if np.isnan(lo).all() or np.isnan(hi).all():
        return float("nan")
    return float(np.mean((y_true >= lo) & (y_true <= hi)))


def gaussian_lpd(y_true, mean, sd) -> float:
    """Mean log predictive density under a Gaussian approximation N(mean, sd²).

    A moment-matched approximation of the posterior predictive; exact for a
    point estimate with known noise, ``nan`` when ``sd`` is missing.
    """
    sd = np.asarray(sd, dtype=float)
    if np.isnan(sd).all():
        return float("nan")
    return float(np.mean(stats.norm.logpdf(np.asarray(y_true, float), np.asarray(mean, float), sd)))


def score(pred: pd.DataFrame, y_true=None) -> dict:
    """Metrics of a ``predict`` DataFrame: rmse, mae, and where intervals exist,
    their coverage (``coverage``) and the Gaussian mean log predictive density.
    """
    if y_true is None:
        if "rating" not in pred.columns:
            raise ValueError("pred has no 'rating' column: pass y_true")
        y_true = pred["rating"].to_numpy()
    out = {"rmse": rmse(y_true, pred["mean"]), "mae": mae(y_true, pred["mean"])}
    if {"lo", "hi"} <= set(pred.columns):
        out["coverage"] = coverage(y_true, pred["lo"], pred["hi"])
    else:
        out["coverage"] = float("nan")
    out["lpd"] = gaussian_lpd(y_true, pred["mean"], pred["sd"]) if "sd" in pred.columns else float("nan")
    return out


def _level_index(y_true, proba, levels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float)
    proba = np.asarray(proba, dtype=float)
    levels = np.asarray(levels, dtype=float)
    if proba.ndim != 2 or proba.shape != (y.size, levels.size):
        raise ValueError(f"proba must be (n_pairs, n_levels) = ({y.size}, {levels.size}), got {proba.shape}")
    idx = np.searchsorted(levels, y)
    if not np.all((idx < levels.size) & (levels[np.minimum(idx, levels.size - 1)] == y)):
        raise ValueError(f"every rating must be one of the levels {levels.tolist()}")
    return y, proba, idx


def log_score(y_true, proba, levels) -> float:
    r"""Mean log predictive probability of the observed level, :math:`\frac1n\sum_n \log p_{n, r_n}`.

    The proper local scoring rule for categorical predictions (greater is
    better); ``proba`` is ``(n, K)`` over ``levels``.
    """
    _, proba, idx = _level_index(y_true, proba, levels)
    p = proba[np.arange(idx.size), idx]
    return float(np.mean(np.log(np.maximum(p, np.finfo(float).tiny))))


def ranked_probability_score(y_true, proba, levels) -> float:
    r"""Mean ranked probability score :math:`\frac1n\sum_n\sum_{k=1}^{K-1}(F_{nk} - 1\{r_n \le \ell_k\})^2`.

    :math:`F_{nk}` is the predicted cumulative probability of levels up to
    :math:`\ell_k`.  Not divided by :math:`K - 1`: for unit-spaced stars it
    then equals the CRPS of the discrete predictive, in stars (smaller is better).
    """
    _, proba, idx = _level_index(y_true, proba, levels)
    F = np.cumsum(proba, axis=1)[:, :-1]
    below = idx[:, None] <= np.arange(proba.shape[1] - 1)[None, :]
    return float(np.mean(np.sum((F - below) ** 2, axis=1)))


def ordinal_scores(y_true, proba, levels, interval: float = 0.9) -> dict:
    """Every star-scale metric of level probabilities ``(n, K)``.

    Returns
    -------
    dict
        ``rmse`` of the predictive mean, ``mae_median`` of the median star,
        ``accuracy`` of the most probable star, ``log_score``
        (:func:`log_score`), ``rps`` (:func:`ranked_probability_score`) and
        ``coverage``: the fraction of ratings inside their smallest star set
        of mass >= ``interval`` (:func:`bayes_mf.gibbs.ordinal_predict.star_sets`).
    """
    from .gibbs.ordinal_predict import star_sets

    y, proba, idx = _level_index(y_true, proba, levels)
    levels = np.asarray(levels, dtype=float)
    rows = np.arange(idx.size)
    median = levels[np.argmax(np.cumsum(proba, axis=1) >= 0.5 - 1e-12, axis=1)]
    return {"rmse": rmse(y, proba @ levels), "mae_median": mae(y, median),
            "accuracy": float(np.mean(np.argmax(proba, axis=1) == idx)),
            "log_score": log_score(y, proba, levels), "rps": ranked_probability_score(y, proba, levels),
            "coverage": float(np.mean(star_sets(proba, interval)[rows, idx]))}


def star_ppc(estimator, pairs, *, interval: float = 0.9, max_draws: int = 200,
             random_seed=None) -> pd.DataFrame:
    r"""Posterior predictive check of the star histogram of ``pairs`` (an ordinal model).

    For each level :math:`\ell_k`: the observed count, the expected count
    :math:`\sum_n P(R_n = \ell_k)` (:meth:`predict_proba`) and the central
    ``interval`` of the count over replicated data sets, one per posterior
    draw (:meth:`predict_draws`, at most ``max_draws``), which carries both
    the posterior and the sampling spread.  Observed counts outside their band
    are what the model does not reproduce.

    Returns
    -------
    DataFrame
        ``level``, ``observed``, ``expected``, ``lo``, ``hi``, ``p_value``
        (the share of replicated counts at or below the observed one).
    """
    import warnings

    from .base import _observed_ratings
    from .data import UnseenIdsWarning

    observed = _observed_ratings(pairs)
    if observed is None:
        raise ValueError("pairs carry no observed ratings to check against")
    levels = np.asarray(estimator.levels_, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenIdsWarning)
        proba = estimator.predict_proba(pairs, max_draws=max_draws, random_seed=random_seed)
        reps = estimator.predict_draws(pairs, max_draws=max_draws, random_seed=random_seed)
    y = reps.to_numpy().reshape(-1, reps.sizes["obs"])
    counts = (y[:, :, None] == levels[None, None, :]).sum(axis=1)  # (draws, K)
    obs = (np.asarray(observed, float)[:, None] == levels[None, :]).sum(axis=0)
    lo, hi = np.quantile(counts, [(1 - interval) / 2, (1 + interval) / 2], axis=0)
    return pd.DataFrame({"level": levels, "observed": obs, "expected": proba[list(levels)].sum().to_numpy(),
                         "lo": lo, "hi": hi, "p_value": (counts <= obs[None, :]).mean(axis=0)})


DEFAULT_EDGES = (0, 20, 40, 80, 160, np.inf)


def activity(pred: pd.DataFrame, train, by: str = "user") -> np.ndarray:
    """Number of training ratings of each prediction's user (or item); 0 if unseen."""
    ids = train.users if by == "user" else train.items
    counts = train.counts(by)
    code = ids.get_indexer(pred[by].to_numpy())
    return np.where(code >= 0, counts[np.maximum(code, 0)], 0)


def by_activity(preds: dict, train, *, by: str = "user", edges=DEFAULT_EDGES) -> pd.DataFrame:
    """RMSE of each method per bucket of the user's (item's) number of training ratings.

    Parameters
    ----------
    preds : dict method -> predict DataFrame (with a ``rating`` column), same pairs
    train : Ratings the methods were fitted on
    edges : bucket edges on the count, left-closed

    Returns
    -------
    DataFrame with ``bucket``, ``n`` and one RMSE column per method.
    """
    rows = None
    for name, pred in preds.items():
        cnt = activity(pred, train, by)
        bucket = pd.cut(cnt, list(edges), right=False)
        err = (pred["rating"].to_numpy() - pred["mean"].to_numpy()) ** 2
        g = pd.DataFrame({"bucket": bucket, "err": err}).groupby("bucket", observed=False)["err"]
        col = np.sqrt(g.mean())
        if rows is None:
            rows = pd.DataFrame({"bucket": col.index.astype(str), "n": g.size().to_numpy()})
        rows[name] = col.to_numpy()
    return rows


def coverage_curve(estimator, pairs, levels=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95), *,
                   max_draws: int = 400) -> pd.DataFrame:
    """Empirical coverage of central predictive intervals at several nominal levels.

    Uses one set of posterior-predictive draws (``max_draws`` at most) for all
    levels; intervals are clipped to the rating scale as ``predict`` does.
    A well-calibrated method lies on the diagonal.
    """
    import warnings

    from .base import _observed_ratings
    from .data import UnseenIdsWarning

    observed = _observed_ratings(pairs)
    if observed is None:
        raise ValueError("pairs carry no observed ratings to compare with")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenIdsWarning)
        draws = estimator.predict_draws(pairs, max_draws=max_draws)
    y = draws.to_numpy().reshape(-1, draws.sizes["obs"])
    if getattr(estimator, "clip", True) and estimator.scale_ is not None:
        y = np.clip(y, *estimator.scale_)
    out = []
    for lv in levels:
        lo, hi = np.quantile(y, [(1 - lv) / 2, (1 + lv) / 2], axis=0)
        out.append({"nominal": float(lv), "empirical": coverage(observed, lo, hi)})
    return pd.DataFrame(out)


def cross_validate(estimator, ratings, k: int = 5, *, random_seed: int | None = 0, interval: float = 0.9,
                   ranking_k: int | None = None, threshold: float = 4.0, strategy: str = "mean",
                   **ratings_kw) -> pd.DataFrame:
    r"""Seeded ``k``-fold cross-validation of an estimator on any ratings table.

    Each fold fits a fresh copy (:func:`sklearn.base.clone`) of ``estimator``
    on the other ``k - 1`` folds and scores it on its own
    (:func:`bayes_mf.splits.kfold_splits`): every rating is predicted exactly
    once, by a model that never saw it.  Test pairs whose user or item is
    missing from a fold's training set are predicted from the prior / biases
    and counted in ``n_unseen``.

    Parameters
    ----------
    estimator : unfitted (or fitted: it is cloned) bayes_mf estimator
    ratings : Ratings, DataFrame or path
    k : int
        Number of folds (>= 2).
    random_seed : int or None
        Seeds the partition; the estimator keeps its own ``random_seed``, so
        the same seeds give the same numbers.
    interval : float
        Central probability of the intervals whose coverage is reported
        (posterior methods; ``nan`` for point estimates).
    ranking_k : int, optional
        Also report precision, recall, NDCG and MAP at this cut-off
        (:func:`bayes_mf.ranking.evaluate_ranking`, relevance ``rating >= threshold``,
        ranking by ``strategy``).
    **ratings_kw
        Options of :meth:`Ratings.from_frame` for a DataFrame or path
        (``user_col``, ``scale``, ...).

    Returns
    -------
    DataFrame
        One row per fold: ``fold``, ``rmse``, ``mae``, ``coverage``, ``lpd``,
        ``fit_seconds``, ``n_train``, ``n_test``, ``n_unseen`` (and the ranking
        metrics).  ``frame.mean(numeric_only=True)`` gives the cross-validated
        estimate; its spread across folds, ``std / sqrt(k)``, a rough
        standard error.
    """
    import warnings

    from sklearn.base import clone

    from .data import Ratings, UnseenIdsWarning
    from .splits import kfold_splits

    ratings = Ratings.coerce(ratings, **ratings_kw)
    rows = []
    with warnings.catch_warnings():
        # the count of unseen test pairs is a column of the table instead
        warnings.simplefilter("ignore", UnseenIdsWarning)
        for train, test in kfold_splits(ratings, k, random_seed=random_seed):
            est = clone(estimator).fit(train)
            bayes = getattr(est, "is_bayesian", False)
            pred = est.predict(test, **({"interval": interval} if bayes else {}))
            row = {"fold": test.meta["fold"], **score(pred), "fit_seconds": est.fit_seconds_,
                   "n_train": len(train), "n_test": len(test), "n_unseen": test.meta["n_unseen"]}
            if ranking_k is not None:
                from .ranking import evaluate_ranking

                ranks = evaluate_ranking(est, test, k=ranking_k, threshold=threshold, strategy=strategy)
                row.update({name: v for name, v in ranks.items() if "@" in name})
            rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(method=type(estimator).__name__, k=int(k), random_seed=random_seed, interval=interval)
    return out
