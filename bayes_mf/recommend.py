r"""Top-n recommendations with uncertainty, for one user at a time.

Scores every item for the user in one vectorised pass (cost: one row of
factors times the item factors per posterior draw -- never an all-users
matrix).  Strategies:

``"mean"``
    rank by the posterior (or point) mean rating;
``"ucb"``
    rank by the upper bound of the central ``interval`` of the *mean* rating
    (optimism under uncertainty: items the model knows little about rise);
``"thompson"``
    rank by one posterior draw of the mean rating (Thompson sampling),
    seeded by ``random_seed``.

``ucb`` and ``thompson`` need a posterior; a point estimate has none and
raises.

A fit with time effects (``GibbsPMF(time_effects=...)``) scores the items at
one time, ``at``: by default the day after its last training rating, a day
no user rated on, so each per-user day effect is a draw from its prior
(mean 0; its spread widens the intervals) and each item time bin is the
last one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["recommend", "scoring_time"]

STRATEGIES = ("mean", "ucb", "thompson")


def recommend(estimator, user, n: int = 10, *, strategy: str = "mean", exclude_rated: bool = True,
              titles=None, interval: float = 0.9, random_seed=None, at=None) -> pd.DataFrame:
    """Recommend ``n`` items to ``user`` (an original id).

    Parameters
    ----------
    estimator : fitted estimator
    user : the user's original id; an unseen user gets prior-based scores
    n : number of items
    strategy : {"mean", "ucb", "thompson"}
    exclude_rated : drop the items the user rated in training
    titles : optional Series (or one-column DataFrame) indexed by item id,
        e.g. :func:`bayes_mf.datasets.movielens_items` ``["title"]``
    interval : interval probability for the reported bounds (and for UCB)
    random_seed : seeds Thompson sampling
    at : the time the items are scored for, for a fit with time effects
        only: Unix seconds, or anything :class:`pandas.Timestamp` reads
        (naive times are UTC); default: the day after the last training rating

    Returns
    -------
    DataFrame with ``rank``, ``item``, (``title``), ``mean``, ``lo``, ``hi``
    (interval of the predicted rating, noise included), ``score``.
    """
    from .predict import linear_predictor, posterior_predictive

    estimator._check_fitted()
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    bayes = getattr(estimator, "is_bayesian", False)
    draws = estimator.draws_ if bayes else None
    if strategy != "mean" and (draws is None or draws.n_draws < 2):
        raise ValueError(f"strategy {strategy!r} needs posterior draws; "
                         f"{type(estimator).__name__} gives a point estimate")
    when = scoring_time(estimator, at)  # checked before any scoring
    code = int(estimator.users_.get_indexer([user])[0])
    n_items = len(estimator.items_)
    items = np.arange(n_items, dtype=np.int64)
    ucode = np.full(n_items, code, dtype=np.int64)
    candidates = np.ones(n_items, dtype=bool)
    if exclude_rated and code >= 0:
        candidates[estimator.train_item_codes_[estimator.train_user_codes_ == code]] = False
    seed = getattr(estimator, "random_seed", None) if random_seed is None else random_seed
    if draws is not None and draws.n_draws > 1:
        # a custom model (PMF.from_model) predicts from its own likelihood, the package's from draws_
        own = getattr(estimator, "_predicts_from_model", lambda: False)()

        def predictive(**kw):
            if own:
                return estimator._predict_codes(ucode, items, interval=interval, random_seed=seed, **kw)
            return posterior_predictive(draws, ucode, items, interval=interval, random_seed=seed,
                                        offset=_offset(estimator, ucode, items, when), **kw)

        pred = predictive()
        if strategy == "ucb":
            score = predictive(include_noise=False)["hi"]
        elif strategy == "thompson":
            rng = np.random.default_rng(seed)
            pick = int(rng.integers(draws.n_draws))
            one = draws.take([pick])
            eta = linear_predictor(one, ucode, items, rng)[0]
            offset = _offset(estimator, ucode, items, when, index=[pick])
            if offset is not None:
                eta = eta + offset(0, n_items, rng)[0]
            if one.link == "logistic":
                lo, hi = one.scale
                eta = lo + (hi - lo) / (1 + np.exp(-eta))
            score = eta
        else:
            score = pred["mean"]
    else:
        pred = estimator._predict_codes(ucode, items)
        pred.setdefault("lo", np.full(n_items, np.nan))
        pred.setdefault("hi", np.full(n_items, np.nan))
        score = pred["mean"]
    cand = np.flatnonzero(candidates)
    order = cand[np.argsort(-score[cand], kind="stable")[: int(n)]]
    # no scale (a small set without a declared one): nothing to clip to
    clip = getattr(estimator, "clip", True) and estimator.scale_ is not None
    lo_s, hi_s = estimator.scale_ if clip else (None, None)

    def c(a):
        return np.clip(a, lo_s, hi_s) if clip else a

    out = pd.DataFrame({"rank": np.arange(1, order.size + 1), "item": estimator.items_.to_numpy()[order]})
    if titles is not None:
        t = titles.iloc[:, 0] if isinstance(titles, pd.DataFrame) else titles
        out["title"] = t.reindex(out["item"]).to_numpy()
    out["mean"] = c(pred["mean"][order])
    out["lo"] = c(pred["lo"][order])
    out["hi"] = c(pred["hi"][order])
    out["score"] = score[order]
    out.attrs.update(user=user, strategy=strategy, unseen_user=code < 0)
    if when is not None:
        out.attrs["at"] = when
    return out


def scoring_time(estimator, at):
    """The Unix time the items are scored at: None for a fit without time effects."""
    if getattr(estimator, "time_coding_", None) is not None:
        return estimator._recommend_time(at)
    if at is not None:
        raise ValueError(f"at={at!r}: only a fit with time effects (GibbsPMF(time_effects=...)) scores "
                         f"at a time; this {type(estimator).__name__} has none")
    return None


def _offset(estimator, ucode, icode, when, index=None):
    """The time effects of the pairs at ``when`` per draw (``offset`` of posterior_predictive), or None."""
    return None if when is None else estimator._offset_at(ucode, icode, when, index)
