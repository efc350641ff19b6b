r"""Top-N lists for many users at once, and the ranking metrics recommender papers report.

:func:`top_n` scores every candidate item for a block of users in one
vectorised pass and keeps the best ``n``; blocks are sized so that at most
``max_elements`` floats (draws x users x items) exist at once, so a dense
users x items matrix is never formed for large data.  Strategies:

``"mean"``
    the posterior (or point) mean rating :math:`\bar r_{ij} = \frac1S\sum_s r^{(s)}_{ij}`;
``"ucb"``
    optimism under uncertainty, :math:`\bar r_{ij} + c\,\mathrm{sd}_s(r^{(s)}_{ij})`, the sd
    being that of the *mean* rating across posterior draws (noise left out: it is the
    same for every item).  ``c`` defaults to the normal quantile of ``(1 + interval) / 2``
    (1.645 for 0.9), the Gaussian counterpart of the upper bound that
    :func:`bayes_mf.recommend.recommend` ranks by;
``"thompson"``
    one posterior draw per user (Thompson sampling), chosen by ``random_seed``.

:func:`ranking_metrics` scores such lists against held-out ratings with a
relevance threshold (an item is relevant when its held-out rating is
``>= threshold``), per user and averaged over users with at least one
relevant held-out item:

.. math::
    \mathrm{P@k} = \frac{h_k}{k},\quad \mathrm{R@k} = \frac{h_k}{|\mathcal R_u|},\quad
    \mathrm{NDCG@k} = \frac{\sum_{r\le k} \mathrm{rel}_r/\log_2(r+1)}
                           {\sum_{r\le \min(k,|\mathcal R_u|)} 1/\log_2(r+1)},\quad
    \mathrm{AP@k} = \frac{1}{\min(k, |\mathcal R_u|)}\sum_{r\le k}\mathrm{rel}_r\,\mathrm{P@r}

(:math:`h_k`: relevant items among the first :math:`k`; MAP@k is the mean of
AP@k over users).  Candidates are all items the user did not rate in
training, the "all unrated items" protocol.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from .data import Ratings, RatingsError

__all__ = ["top_n", "ranking_metrics", "evaluate_ranking", "STRATEGIES"]

STRATEGIES = ("mean", "ucb", "thompson")


def _user_codes(estimator, users) -> np.ndarray:
    if users is None:
        return np.arange(len(estimator.users_), dtype=np.int64)
    ids = np.asarray(list(users) if not isinstance(users, (np.ndarray, pd.Index, pd.Series)) else users)
    code = estimator.users_.get_indexer(ids)
    if (code < 0).any():
        bad = ids[code < 0]
        raise RatingsError(f"users: {int((code < 0).sum())} id(s) not in the training data, e.g. "
                           f"{list(bad[:3])}; top_n ranks for known users only")
    return code.astype(np.int64)


def _draws(estimator, strategy: str, max_draws):
    """Posterior draws to score with, or None for a point estimate."""
    bayes = getattr(estimator, "is_bayesian", False)
    draws = estimator.draws_.thin(max_draws) if bayes else None
    if strategy != "mean" and (draws is None or draws.n_draws < 2):
        raise ValueError(f"strategy={strategy!r} needs posterior draws; {type(estimator).__name__} "
                         "gives a point estimate (use strategy='mean')")
    return draws


def _to_rating(d, eta):
    """Mean rating of each draw: the link applied to the linear predictor."""
    if d.link == "logistic":
        lo, hi = d.scale
        return lo + (hi - lo) / (1.0 + np.exp(-eta))
    return eta


def _eta_block(d, ub):
    """Linear predictor of every draw for users ``ub`` and all items, shape (S, B, I)."""
    eta = np.matmul(d.U[:, ub, :], np.swapaxes(d.V, 1, 2))
    if d.mu is not None:
        eta += np.asarray(d.mu, float)[:, None, None]
    if d.user_bias is not None:
        eta += d.user_bias[:, ub][:, :, None]
    if d.item_bias is not None:
        eta += d.item_bias[:, None, :]
    return eta


def _thompson_block(d, ub, which):
    """One draw per user (``which[b]`` for user ``ub[b]``), all items, shape (B, I)."""
    eta = np.einsum("bk,bik->bi", d.U[which, ub, :], d.V[which])
    if d.mu is not None:
        eta += np.asarray(d.mu, float)[which][:, None]
    if d.user_bias is not None:
        eta += d.user_bias[which, ub][:, None]
    if d.item_bias is not None:
        eta += d.item_bias[which]
    return _to_rating(d, eta)


def top_n(estimator, users=None, n: int = 10, *, strategy: str = "mean", exclude_rated: bool = True,
          interval: float = 0.9, ucb_c: float | None = None, random_seed=None, max_draws: int | None = 200,
          max_elements: int = 4_000_000) -> pd.DataFrame:
    """The ``n`` best items for many users at once.

    Parameters
    ----------
    estimator : fitted estimator
    users : iterable of user ids, optional
        Users seen in training (default: all of them); an unknown id raises.
    n : int
        List length; users with fewer unrated items get shorter lists.
    strategy : {"mean", "ucb", "thompson"}
        See the module docstring; ``"ucb"`` and ``"thompson"`` need a posterior.
    exclude_rated : bool
        Leave out the items each user rated in training.
    interval : float
        Sets the default UCB multiplier ``c = Phi^{-1}((1 + interval) / 2)``.
    ucb_c : float, optional
        UCB multiplier ``c`` (overrides ``interval``).
    random_seed : int, optional
        Seeds Thompson sampling (default: the estimator's ``random_seed``);
        each user's draw is chosen up front, so results do not depend on
        ``max_elements``.
    max_draws : int or None
        Posterior draws used (evenly thinned); ``None`` uses all.
    max_elements : int
        Largest number of floats in a block (draws x users x items).

    Returns
    -------
    DataFrame
        ``user``, ``rank`` (1 = best), ``item``, ``score`` (what was ranked by),
        ``mean`` (mean rating, clipped to the scale as ``predict`` does) and,
        for a posterior, ``sd`` (across draws, of the mean rating).
    """
    estimator._check_fitted()
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval}")
    codes = _user_codes(estimator, users)
    d = _draws(estimator, strategy, max_draws)
    n_items = len(estimator.items_)
    c = float(stats.norm.ppf((1 + interval) / 2)) if ucb_c is None else float(ucb_c)
    S = 1 if d is None else d.n_draws
    block = max(1, int(max_elements // max(1, S * n_items)))
    seed = getattr(estimator, "random_seed", None) if random_seed is None else random_seed
    which = None
    if strategy == "thompson":
        which = np.random.default_rng(seed).integers(S, size=len(estimator.users_))
    rated = None
    if exclude_rated:
        uc, ic = np.asarray(estimator.train_user_codes_), np.asarray(estimator.train_item_codes_)
        rated = sp.csr_matrix((np.ones(uc.size, dtype=bool), (uc, ic)),
                              shape=(len(estimator.users_), n_items))
    clip = getattr(estimator, "clip", True) and estimator.scale_ is not None
    items = np.arange(n_items, dtype=np.int64)
    parts = []
    for s in range(0, codes.size, block):
        ub = codes[s:s + block]
        sd = None
        if d is None:
            # any point estimator: its own prediction of every (user, item) pair of the block
            pred = estimator._predict_codes(np.repeat(ub, n_items), np.tile(items, ub.size))
            mean = pred["mean"].reshape(ub.size, n_items)
            score = mean
        elif strategy == "thompson":
            mean = _to_rating(d, _eta_block(d, ub)).mean(axis=0)
            score = _thompson_block(d, ub, which[ub])
        else:
            r = _to_rating(d, _eta_block(d, ub))
            mean = r.mean(axis=0)
            sd = r.std(axis=0, ddof=1) if S > 1 else None
            score = mean + c * sd if strategy == "ucb" else mean
        score = np.array(score, dtype=float)
        if rated is not None:
            sub = rated[ub].tocoo()
            score[sub.row, sub.col] = -np.inf
        parts.append(_best(ub, score, mean, sd, int(n)))
    empty = _best(codes, np.empty((0, n_items)), None, None, 1)
    out = pd.concat(parts, ignore_index=True) if parts else empty
    out["user"] = estimator.users_.to_numpy()[out["user"].to_numpy()]
    out["item"] = estimator.items_.to_numpy()[out["item"].to_numpy()]
    if clip:
        out["mean"] = np.clip(out["mean"], *estimator.scale_)
    out.attrs.update(strategy=strategy, ucb_c=c if strategy == "ucb" else None,
                     n_draws=S, method=type(estimator).__name__)
    return out


def _best(ub, score, mean, sd, n):
    """Rows (user code, rank, item code, score, mean, sd) of each user's ``n`` best finite scores."""
    B, I = score.shape
    m = min(n, I)
    if B == 0 or I == 0:
        return pd.DataFrame({"user": np.empty(0, np.int64), "rank": np.empty(0, np.int64),
                             "item": np.empty(0, np.int64), "score": [], "mean": []})
    # argpartition then a sort of the m kept: O(I) per user instead of a full sort
    top = np.argpartition(-score, m - 1, axis=1)[:, :m] if m < I else np.tile(np.arange(I), (B, 1))
    s = np.take_along_axis(score, top, axis=1)
    # ties broken by item code, so equal scores rank the same way every run
    order = np.lexsort((top, -s), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    s = np.take_along_axis(s, order, axis=1)
    keep = np.isfinite(s)
    rows = np.broadcast_to(np.arange(B)[:, None], top.shape)[keep]
    cols = top[keep]
    frame = {"user": ub[rows], "rank": np.broadcast_to(np.arange(1, m + 1), top.shape)[keep],
             "item": cols, "score": s[keep], "mean": mean[rows, cols]}
    if sd is not None:
        frame["sd"] = sd[rows, cols]
    return pd.DataFrame(frame)


def _held_out(test, threshold) -> pd.DataFrame:
    """Held-out ``user, item, rating`` rows as a DataFrame."""
    if isinstance(test, Ratings):
        return pd.DataFrame({"user": test.user_ids, "item": test.item_ids, "rating": test.rating})
    if not isinstance(test, pd.DataFrame):
        raise RatingsError(f"test must be Ratings or a DataFrame, got {type(test).__name__}")
    missing = [col for col in ("user", "item", "rating") if col not in test.columns]
    if missing:
        raise RatingsError(f"test lacks column(s) {missing}; it has {list(test.columns)}")
    return test[["user", "item", "rating"]]


def ranking_metrics(recs: pd.DataFrame, test, *, k: int = 10, threshold: float = 4.0,
                    per_user: bool = False):
    """Precision, recall, NDCG and MAP at ``k`` of top-N lists against held-out ratings.

    Parameters
    ----------
    recs : DataFrame
        ``user``, ``item``, ``rank`` (1 = best), as :func:`top_n` returns.
    test : Ratings or DataFrame
        Held-out ``user, item, rating``.
    k : int
        Cut-off; ranks beyond ``k`` are ignored.
    threshold : float
        A held-out item is relevant when its rating is ``>= threshold``.
    per_user : bool
        Return the per-user table instead of the averages.

    Returns
    -------
    dict
        ``precision@k``, ``recall@k``, ``ndcg@k``, ``map@k`` averaged over the
        users that have a list and at least one relevant held-out item
        (``n_users``); ``n_users_no_list`` counts users with relevant items but
        no list (e.g. unseen in training), left out of the averages.  With
        ``per_user=True`` a DataFrame of the same per user.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    missing = [col for col in ("user", "item", "rank") if col not in recs.columns]
    if missing:
        raise ValueError(f"recs lack column(s) {missing}; they have {list(recs.columns)} (see top_n)")
    held = _held_out(test, threshold)
    rel = held.loc[held["rating"].to_numpy(dtype=float) >= threshold, ["user", "item"]]
    n_rel = rel.groupby("user").size().rename("n_relevant")
    r = recs.loc[recs["rank"] <= k, ["user", "item", "rank"]]
    listed = n_rel.index.isin(pd.unique(r["user"]))
    r = r[r["user"].isin(n_rel.index)].sort_values(["user", "rank"], kind="stable")
    hit = pd.MultiIndex.from_frame(r[["user", "item"]]).isin(pd.MultiIndex.from_frame(rel)).astype(float)
    rank = r["rank"].to_numpy(dtype=float)
    cum = pd.Series(hit).groupby(r["user"].to_numpy()).cumsum().to_numpy()
    g = pd.DataFrame({"user": r["user"].to_numpy(), "hit": hit, "dcg": hit / np.log2(rank + 1),
                      "ap": hit * cum / rank}).groupby("user").sum()
    g = g.join(n_rel, how="inner")
    discount = np.concatenate([[0.0], np.cumsum(1 / np.log2(np.arange(2, k + 2)))])
    ideal = np.minimum(g["n_relevant"].to_numpy(), k)
    table = pd.DataFrame({
        f"precision@{k}": g["hit"] / k,
        f"recall@{k}": g["hit"] / g["n_relevant"],
        f"ndcg@{k}": g["dcg"] / discount[ideal],
        f"map@{k}": g["ap"] / ideal,
        "n_relevant": g["n_relevant"],
    })
    if per_user:
        return table
    out = {name: float(table[name].mean()) if len(table) else float("nan")
           for name in table.columns if name != "n_relevant"}
    out["n_users"] = int(len(table))
    out["n_users_no_list"] = int((~listed).sum())
    return out


def evaluate_ranking(estimator, test, *, k: int = 10, threshold: float = 4.0, strategy: str = "mean",
                     **top_n_kw) -> dict:
    """Ranking metrics of ``estimator`` on held-out ratings in one call.

    Builds the top-``k`` list (:func:`top_n`, training items excluded) of
    every test user seen in training who has a relevant held-out item, and
    scores it with :func:`ranking_metrics`.  ``top_n_kw`` go to :func:`top_n`
    (``interval``, ``ucb_c``, ``random_seed``, ``max_draws``, ``max_elements``).
    """
    held = _held_out(test, threshold)
    users = pd.unique(held.loc[held["rating"].to_numpy(dtype=float) >= threshold, "user"])
    users = users[estimator.users_.get_indexer(users) >= 0]
    recs = top_n(estimator, users, k, strategy=strategy, **top_n_kw)
    out = ranking_metrics(recs, held, k=k, threshold=threshold)
    out["strategy"] = strategy
    return out
