r"""Evaluation splits as recommender papers use them: k-fold and temporal leave-last-k-out.

:func:`kfold_splits` partitions the ratings into ``k`` folds at random
(seeded): every rating is in exactly one test fold and in the training set
of the other ``k - 1``, so the ``k`` test scores together cover the whole
table once.  :func:`leave_last_k_out` holds out each user's ``k`` most recent
ratings, the protocol of next-item evaluation: the model never sees the
future of the user it is tested on.

Both return :class:`~bayes_mf.data.Ratings` pairs like
:func:`bayes_mf.data.train_test_split`, with the same unseen-id policy
(``test.meta["n_unseen"]`` counts test rows whose user or item has no
training rating).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from .data import Ratings, RatingsError, UnseenPolicy, _split_unseen

__all__ = ["kfold_assign", "kfold_splits", "leave_last_k_out"]


def kfold_assign(n: int, k: int = 5, *, random_seed: int | None = 0) -> np.ndarray:
    """The fold (``0..k-1``) of each of ``n`` ratings: a seeded random partition.

    Fold sizes differ by at most one (``n // k`` or ``n // k + 1``).

    Raises
    ------
    ValueError
        If ``k < 2`` or there are fewer ratings than folds.
    """
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    if n < k:
        raise ValueError(f"k={k} folds need at least {k} ratings, got {n}")
    rng = np.random.default_rng(random_seed)
    fold = np.empty(n, dtype=np.int64)
    # a random permutation cut into k near-equal runs: sizes differ by at most one
    fold[rng.permutation(n)] = np.arange(n) % k
    return fold


def kfold_splits(ratings, k: int = 5, *, random_seed: int | None = 0,
                 unseen: UnseenPolicy = "prior") -> Iterator[tuple[Ratings, Ratings]]:
    """Yield the ``(train, test)`` pairs of seeded ``k``-fold cross-validation.

    Parameters
    ----------
    ratings : Ratings, DataFrame or path
        Any ratings table (see :meth:`Ratings.coerce`).
    k : int
        Number of folds (>= 2).
    random_seed : int or None
        Seeds the partition: the same seed gives the same folds.
    unseen : {"prior", "drop", "error"}
        Test rows whose user or item has no rating in that fold's training
        set.  The default ``"prior"`` keeps them (the estimators predict them
        from the prior / biases), so that every rating is scored exactly once;
        ``"drop"`` loses that property.  Their count is warned about
        (:class:`~bayes_mf.data.UnseenIdsWarning`) and kept in
        ``test.meta["n_unseen"]``.

    Yields
    ------
    train, test : Ratings
        ``test.meta["fold"]`` is the fold number (0-based).
    """
    ratings = Ratings.coerce(ratings)
    fold = kfold_assign(len(ratings), k, random_seed=random_seed)
    for f in range(int(k)):
        is_test = fold == f
        train = ratings.subset(~is_test)
        test = _split_unseen(train, ratings.subset(is_test), unseen)
        train.meta["fold"] = test.meta["fold"] = f
        yield train, test


def _timestamps(ratings, timestamps, time_col: str) -> tuple[Ratings, np.ndarray]:
    """The ratings and one timestamp per rating, from the argument, the table or ``meta``."""
    if timestamps is None and isinstance(ratings, pd.DataFrame):
        if time_col not in ratings.columns:
            raise RatingsError(f"leave_last_k_out needs timestamps: the table has no {time_col!r} column "
                               f"(it has {list(ratings.columns)}); pass time_col= or timestamps=")
        timestamps = ratings[time_col].to_numpy()
    # from_frame keeps the row order (duplicate pairs raise), so the timestamps stay aligned
    r = Ratings.coerce(ratings)
    if timestamps is None:
        timestamps = r.meta.get("timestamp")
    if timestamps is None:
        raise RatingsError("leave_last_k_out needs timestamps: pass timestamps= (one per rating), a table "
                           f"with a {time_col!r} column, or Ratings with meta['timestamp'] "
                           "(bayes_mf.datasets.load_movielens sets it)")
    ts = np.asarray(timestamps)
    if ts.shape != (len(r),):
        raise RatingsError(f"timestamps must hold one value per rating ({len(r)}), got shape {ts.shape}")
    missing = pd.isna(ts)
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise RatingsError(f"timestamps has {int(missing.sum())} missing value(s); first at row {pos}")
    return r, ts


def leave_last_k_out(ratings, k: int = 1, *, timestamps=None, time_col: str = "timestamp",
                     min_train: int = 1, unseen: UnseenPolicy = "drop") -> tuple[Ratings, Ratings]:
    """Hold out every user's ``k`` most recent ratings (a temporal, per-user split).

    Parameters
    ----------
    ratings : Ratings, DataFrame or path
        The ratings; their timestamps come from ``timestamps``, else the
        ``time_col`` column of a DataFrame, else ``ratings.meta["timestamp"]``
        (set by the MovieLens loaders).
    k : int
        Ratings held out per user (>= 1).
    timestamps : array-like, optional
        One sortable value per rating (numbers or ``datetime64``), aligned with
        the rows.
    time_col : str
        Column of a DataFrame holding the timestamps.
    min_train : int
        Users with fewer than ``k + min_train`` ratings stay entirely in
        training (their history would otherwise be empty).
    unseen : {"drop", "prior", "error"}
        Test rows whose *item* appears only in held-out ratings (new items),
        as in :func:`bayes_mf.data.per_user_split`.

    Returns
    -------
    train, test : Ratings
        Ties in time are broken by row order (a later row counts as later),
        so the split is deterministic.  The timestamps travel with the rows in
        ``meta["timestamp"]``.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not isinstance(min_train, (int, np.integer)) or min_train < 0:
        raise ValueError(f"min_train must be an integer >= 0, got {min_train!r}")
    r, ts = _timestamps(ratings, timestamps, time_col)
    n = len(r)
    # by user, then time, then row: the last k positions of each user's run are the newest
    order = np.lexsort((np.arange(n), ts, r.user))
    counts = r.counts("user")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    u = r.user[order]
    pos = np.arange(n) - starts[u]
    newest = (pos >= counts[u] - k) & (counts[u] >= k + min_train)
    is_test = np.zeros(n, dtype=bool)
    is_test[order[newest]] = True
    if not is_test.any():
        raise ValueError(f"no user has the {k + min_train} ratings a leave-last-{k}-out split needs")
    if r.meta.get("timestamp") is not ts:
        r = Ratings(r.user, r.item, r.rating, r.users, r.items, r.scale, r.names,
                    {**r.meta, "timestamp": ts})
    train = r.subset(~is_test)
    test = _split_unseen(train, r.subset(is_test), unseen)
    return train, test
