"""k-fold and temporal splits, cross-validation, top-N lists and ranking metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayes_mf as bmf
from bayes_mf import ranking, splits
from bayes_mf.data import Ratings, RatingsError, UnseenIdsWarning


def _pairs(r):
    return set(zip(r.user_ids.tolist(), r.item_ids.tolist(), strict=True))


def test_kfold_each_rating_in_exactly_one_test_fold(sim_small):
    r = sim_small.ratings
    folds = list(splits.kfold_splits(r, 4, random_seed=5))
    assert len(folds) == 4
    tests = [_pairs(te) for _, te in folds]
    assert sum(len(t) for t in tests) == len(r)
    assert set().union(*tests) == _pairs(r)
    for train, test in folds:
        assert not (_pairs(train) & _pairs(test))
        assert len(train) + len(test) == len(r)
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1


def test_kfold_unseen_rows_kept_and_counted():
    # 10 ratings, users rated once: a user's only rating held out is unseen in training
    frame = pd.DataFrame({"user": range(10), "item": [0, 1] * 5, "rating": np.arange(10.0)})
    with pytest.warns(UnseenIdsWarning):
        folds = list(splits.kfold_splits(frame, 2, random_seed=0))
    assert sum(len(te) for _, te in folds) == 10
    assert all(te.meta["n_unseen"] == len(te) for _, te in folds)


def test_kfold_is_seeded():
    a = splits.kfold_assign(101, 5, random_seed=3)
    assert np.array_equal(a, splits.kfold_assign(101, 5, random_seed=3))
    assert not np.array_equal(a, splits.kfold_assign(101, 5, random_seed=4))
    assert np.bincount(a).tolist() == [21, 20, 20, 20, 20]
    with pytest.raises(ValueError, match="k must be"):
        splits.kfold_assign(10, 1)
    with pytest.raises(ValueError, match="at least 5 ratings"):
        splits.kfold_assign(3, 5)


def _timed():
    # user 1 rated items 0..3 at times 40, 10, 30, 20; user 2 two items; user 3 one item
    return pd.DataFrame({"user": [1, 1, 1, 1, 2, 2, 3], "item": [0, 1, 2, 3, 0, 1, 2],
                         "rating": [5.0, 4, 3, 2, 1, 2, 3], "timestamp": [40, 10, 30, 20, 5, 6, 7]})


def test_leave_last_k_out_holds_out_the_newest():
    train, test = splits.leave_last_k_out(_timed(), k=2)
    # user 1: times 40 (item 0) and 30 (item 2) are the newest two; user 2 has 2 < k + min_train
    assert _pairs(test) == {(1, 0), (1, 2)}
    assert _pairs(train) == {(1, 1), (1, 3), (2, 0), (2, 1), (3, 2)}
    # the timestamps travel with their rows
    assert sorted(test.meta["timestamp"].tolist()) == [30, 40]
    assert max(train.meta["timestamp"][train.user_ids == 1]) < min(test.meta["timestamp"])


def test_leave_last_k_out_timestamps_sources_and_errors():
    frame = _timed()
    r = Ratings.from_frame(frame)
    a = splits.leave_last_k_out(r, timestamps=frame["timestamp"])[1]
    r.meta["timestamp"] = frame["timestamp"].to_numpy()
    b = splits.leave_last_k_out(r)[1]
    c = splits.leave_last_k_out(frame.rename(columns={"timestamp": "t"}), time_col="t")[1]
    assert _pairs(a) == _pairs(b) == _pairs(c) == {(1, 0), (2, 1)}
    with pytest.raises(RatingsError, match="no 'timestamp' column"):
        splits.leave_last_k_out(frame.drop(columns="timestamp"))
    with pytest.raises(RatingsError, match="needs timestamps"):
        splits.leave_last_k_out(Ratings.from_frame(frame))
    with pytest.raises(RatingsError, match="one value per rating"):
        splits.leave_last_k_out(frame, timestamps=[1, 2])
    with pytest.raises(ValueError, match="k must be"):
        splits.leave_last_k_out(frame, k=0)


def test_subset_keeps_per_rating_meta_aligned():
    frame = _timed()
    r = Ratings.from_frame(frame)
    r.meta["timestamp"] = frame["timestamp"].to_numpy()
    sub = r.subset(r.rating >= 3)
    assert sub.meta["timestamp"].tolist() == [40, 10, 30, 7]


@pytest.mark.movielens
def test_leave_last_k_out_on_movielens(movielens_dir, monkeypatch):
    monkeypatch.setenv("BAYES_MF_DATA", str(movielens_dir.parent))
    r = bmf.datasets.load_movielens("100k")
    with pytest.warns(UnseenIdsWarning, match="unseen-item rows"):  # items first rated last
        train, test = splits.leave_last_k_out(r, k=1, unseen="prior")
    assert len(test) == r.n_users  # every MovieLens user has >= 20 ratings
    assert 0 < test.meta["n_unseen"] < 20
    last_train = pd.Series(train.meta["timestamp"]).groupby(train.user_ids).max()
    held = pd.Series(test.meta["timestamp"], index=test.user_ids)
    assert (held >= last_train.reindex(held.index)).all()


# ---------------------------------------------------------------- ranking metrics
def test_ranking_metrics_by_hand():
    recs = pd.DataFrame({"user": ["a"] * 3 + ["b"] * 3, "rank": [1, 2, 3] * 2,
                         "item": ["x", "y", "z", "x", "y", "z"]})
    # a: relevant y and w (w never recommended); b: relevant x; b's z (rating 3) is not relevant
    test = pd.DataFrame({"user": ["a", "a", "a", "b", "b", "c"], "item": ["y", "w", "x", "x", "z", "x"],
                         "rating": [5, 4, 2, 4, 3, 5]})
    m = ranking.ranking_metrics(recs, test, k=3, threshold=4)
    ndcg_a = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert m["precision@3"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert m["recall@3"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["ndcg@3"] == pytest.approx((ndcg_a + 1) / 2)
    assert m["map@3"] == pytest.approx(((1 / 2) / 2 + 1) / 2)
    assert m["n_users"] == 2 and m["n_users_no_list"] == 1  # c has a relevant item but no list
    per = ranking.ranking_metrics(recs, test, k=1, threshold=4, per_user=True)
    assert per.loc["a", "precision@1"] == 0 and per.loc["b", "precision@1"] == 1
    with pytest.raises(ValueError, match="recs lack column"):
        ranking.ranking_metrics(recs.drop(columns="rank"), test)
    with pytest.raises(RatingsError, match="test lacks column"):
        ranking.ranking_metrics(recs, test.drop(columns="rating"))


@pytest.fixture(scope="module")
def als_fit(sim_split):
    train, _ = sim_split
    return bmf.ALS(2, reg=2.0, reg_bias=2.0, random_seed=0).fit(train)


def test_top_n_matches_predict_and_excludes_rated(als_fit, sim_split):
    train, _ = sim_split
    recs = ranking.top_n(als_fit, n=4)
    assert set(recs["user"]) == set(train.users)
    assert recs.groupby("user")["rank"].apply(list).map(lambda r: r == [1, 2, 3, 4]).all()
    # no training pair is recommended, and scores decrease along each list
    assert not (_pairs_frame(recs) & _pairs(train))
    assert (recs.groupby("user")["score"].diff().dropna() <= 0).all()
    # the best unrated item of a user is what predict says is best
    u = train.users[0]
    rated = set(train.item_ids[train.user_ids == u])
    cand = [i for i in train.items if i not in rated]
    pred = als_fit.predict(pd.DataFrame({"user": u, "item": cand}))
    assert recs[recs.user == u].item.iloc[0] == pred.sort_values("mean", ascending=False).item.iloc[0]
    # blocks of any size give the same lists
    small = ranking.top_n(als_fit, n=4, max_elements=50)
    pd.testing.assert_frame_equal(recs, small)


def _pairs_frame(f):
    return set(zip(f["user"].tolist(), f["item"].tolist(), strict=True))


def test_top_n_errors(als_fit):
    with pytest.raises(ValueError, match="needs posterior draws"):
        ranking.top_n(als_fit, strategy="ucb")
    with pytest.raises(RatingsError, match="not in the training data"):
        ranking.top_n(als_fit, ["nobody"])
    with pytest.raises(ValueError, match="strategy must be"):
        ranking.top_n(als_fit, strategy="best")


@pytest.fixture(scope="module")
def gibbs_fit(sim_split):
    train, _ = sim_split
    return bmf.GibbsPMF(2, draws=60, tune=60, chains=2, random_seed=0, progressbar=False).fit(train)


def test_top_n_posterior_strategies(gibbs_fit, sim_split):
    _, test = sim_split
    users = list(gibbs_fit.users_[:5])
    mean = ranking.top_n(gibbs_fit, users, n=3)
    ucb = ranking.top_n(gibbs_fit, users, n=3, strategy="ucb", ucb_c=2.0)
    assert np.allclose(ucb["score"], ucb["mean"] + 2.0 * ucb["sd"])
    # the mean strategy ranks by the posterior mean of recommend(): same first item
    first = gibbs_fit.recommend(users[0], 1)["item"].iloc[0]
    assert mean.loc[mean.user == users[0], "item"].iloc[0] == first
    t1 = ranking.top_n(gibbs_fit, users, n=3, strategy="thompson", random_seed=1)
    t2 = ranking.top_n(gibbs_fit, users, n=3, strategy="thompson", random_seed=1, max_elements=100)
    assert t1[["user", "rank", "item"]].equals(t2[["user", "rank", "item"]])
    assert np.allclose(t1["score"], t2["score"])
    res = {s: ranking.evaluate_ranking(gibbs_fit, test, k=5, threshold=3.5, strategy=s)
           for s in ("mean", "ucb", "thompson")}
    for s, m in res.items():
        assert m["strategy"] == s and m["n_users"] > 20
        assert 0 <= m["precision@5"] <= 1 and 0 <= m["ndcg@5"] <= 1


def test_cross_validate_is_seeded_and_covers_every_rating(sim_small):
    frame = sim_small.ratings.to_frame()
    cv = bmf.evaluate.cross_validate(bmf.ALS(2, reg=2.0, reg_bias=2.0), frame, k=3, random_seed=1,
                                     ranking_k=5, threshold=3.5)
    assert list(cv["fold"]) == [0, 1, 2]
    assert cv["n_test"].sum() == len(frame)
    assert (cv["n_train"] + cv["n_test"] == len(frame)).all()
    assert cv["coverage"].isna().all()  # a point estimate has no interval
    assert ((cv["rmse"] > 0.3) & (cv["rmse"] < 1.2)).all()
    assert {"precision@5", "recall@5", "ndcg@5", "map@5"} <= set(cv.columns)
    again = bmf.evaluate.cross_validate(bmf.ALS(2, reg=2.0, reg_bias=2.0), frame, k=3, random_seed=1,
                                        ranking_k=5, threshold=3.5)
    pd.testing.assert_frame_equal(cv, again.assign(fit_seconds=cv["fit_seconds"]))
    other = bmf.evaluate.cross_validate(bmf.ALS(2, reg=2.0, reg_bias=2.0), frame, k=3, random_seed=2)
    assert not np.allclose(other["rmse"], cv["rmse"])
