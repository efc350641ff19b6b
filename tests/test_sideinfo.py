"""MovieLens side information: feature tables from u.user/u.item, and their use by GibbsPMF."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_mf.data import Ratings
from bayes_mf.gibbs import GibbsPMF
from bayes_mf.gibbs.inputs import feature_block
from bayes_mf.sideinfo import GENRES_100K, attach_features, movielens_features

USERS = """1|24|M|technician|85711
2|53|F|other|94043
3|17|M|student|01002
4|60|F|Retired|T8H1N
5|33|M|writer|32067
"""


def _item_line(item, title, date, genres):
    flags = ["1" if g in genres else "0" for g in GENRES_100K]
    return "|".join([str(item), title, date, "", "http://x", *flags])


ITEMS = "\n".join([
    _item_line(1, "Toy Story (1995)", "01-Jan-1995", {"Animation", "Children's", "Comedy"}),
    _item_line(2, "Casablanca (1942)", "01-Jan-1942", {"Drama", "Romance", "War"}),
    _item_line(3, "unknown", "", {"unknown"}),
    _item_line(4, "Air Force One (1997)", "01-Jan-1997", {"Action", "Thriller"}),
]) + "\n"


@pytest.fixture
def tables(tmp_path):
    (tmp_path / "u.user").write_text(USERS, encoding="latin-1")
    (tmp_path / "u.item").write_text(ITEMS, encoding="latin-1")
    return movielens_features(users=tmp_path / "u.user", items=tmp_path / "u.item")


def test_user_features_one_hot_per_group(tables):
    uf, _ = tables
    assert list(uf.index) == [1, 2, 3, 4, 5]
    assert list(dict.fromkeys(uf.columns.get_level_values(0))) == ["age", "gender", "occupation", "zip"]
    # every one-hot group sums to one in every row
    for group in ("age", "gender", "occupation", "zip"):
        np.testing.assert_allclose(uf[group].sum(axis=1), 1.0)
    assert uf.loc[3, ("age", "<18")] == 1 and uf.loc[4, ("age", "56+")] == 1
    assert uf.loc[5, ("age", "25-34")] == 1
    assert uf.loc[3, ("zip", "0")] == 1          # the leading zero of 01002 is kept
    assert uf.loc[4, ("zip", "other")] == 1      # a Canadian postcode is its own level
    assert uf.loc[4, ("occupation", "retired")] == 1  # case folded
    # levels no user has are dropped, so no column is all zero
    assert (uf != 0).any(axis=0).all()


def test_item_features_genres_normalised_and_year_bands(tables):
    _, itf = tables
    np.testing.assert_allclose((itf["genre"] ** 2).sum(axis=1), 1.0)  # rows of unit norm
    assert itf.loc[1, ("genre", "Comedy")] == pytest.approx(1 / np.sqrt(3))
    assert itf.loc[1, ("year", "1995")] == 1
    assert itf.loc[2, ("year", "<1960")] == 1
    assert itf.loc[3, ("year", "unknown")] == 1  # missing release date
    np.testing.assert_allclose(itf["year"].sum(axis=1), 1.0)


def test_bad_tables_name_the_row_and_value(tmp_path):
    (tmp_path / "u.user").write_text(USERS.replace("1|24|", "1|x|"), encoding="latin-1")
    (tmp_path / "u.item").write_text(ITEMS, encoding="latin-1")
    with pytest.raises(ValueError, match=r"'age' of user 1 is 'x'"):
        movielens_features(users=tmp_path / "u.user", items=tmp_path / "u.item")
    (tmp_path / "u.user").write_text(USERS, encoding="latin-1")
    bad = ITEMS.replace("01-Jan-1942||http://x|0", "01-Jan-1942||http://x|2")
    (tmp_path / "u.item").write_text(bad, encoding="latin-1")
    with pytest.raises(ValueError, match=r"genre 'unknown' of item 2 is 2"):
        movielens_features(users=tmp_path / "u.user", items=tmp_path / "u.item")


def _ratings(n_users=5, n_items=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(u, i, float(rng.integers(1, 6))) for u in range(1, n_users + 1) for i in range(1, n_items + 1)
            if rng.random() < 0.8]
    return Ratings.from_frame(pd.DataFrame(rows, columns=["user", "item", "rating"]), scale=(1, 5))


def test_groups_follow_the_first_column_level(tables):
    uf, itf = tables
    r = _ratings()
    A, groups, bias = feature_block("user", r, True, uf, implicit_bias=False)
    # implicit feedback (one column per item) is group 0, then age, gender, occupation, zip
    assert A.shape == (r.n_users, r.n_items + uf.shape[1])
    assert list(np.unique(groups)) == [0, 1, 2, 3, 4]
    assert np.sum(groups == 2) == uf["gender"].shape[1]
    assert bias.tolist() == [False, True, True, True, True]  # only the implicit group is factors-only
    _, g_items, b_items = feature_block("item", r, False, itf, implicit_bias=False)
    assert list(np.unique(g_items)) == [0, 1] and b_items.all()  # no implicit group: all keep theirs
    assert feature_block("user", r, True, uf, implicit_bias=True)[2].all()


def test_gibbs_takes_the_tables_from_meta(tables):
    r = _ratings()
    with pytest.raises(ValueError, match="side_features=True"):
        GibbsPMF(2, side_features=True, draws=2, tune=0, chains=1).fit(r)
    r.meta["user_features"], r.meta["item_features"] = tables
    model = GibbsPMF(2, side_features=True, draws=5, tune=2, chains=1, n_check=3).fit(r)
    assert "user features" in model.result_.attrs["model"]
    assert "item features" in model.result_.attrs["model"]
    # the same tables passed to fit give the same draws (same seed)
    direct = GibbsPMF(2, draws=5, tune=2, chains=1, n_check=3).fit(
        r, user_features=tables[0], item_features=tables[1])
    np.testing.assert_allclose(direct.result_["posterior"]["mu"], model.result_["posterior"]["mu"])


def test_repeated_ids_in_a_feature_table_are_refused(tables):
    uf = pd.concat([tables[0], tables[0].iloc[:1]])
    with pytest.raises(ValueError, match=r"user_features repeats user id\(s\) \[1\]"):
        GibbsPMF(2, draws=2, tune=0, chains=1).fit(_ratings(), user_features=uf)


@pytest.mark.movielens
def test_movielens_100k_tables(movielens_dir):
    uf, itf = movielens_features("100k", download=False)
    assert uf.shape[0] == 943 and itf.shape[0] == 1682
    assert set(uf.columns.get_level_values(0)) == {"age", "gender", "occupation", "zip"}
    assert uf["occupation"].shape[1] == 21 and uf["gender"].shape[1] == 2
    assert itf["genre"].shape[1] == 19
    assert itf.loc[267, ("year", "unknown")] == 1  # the one item without a release date
    train = Ratings.from_frame(pd.DataFrame({"user": [1, 2], "item": [1, 2], "rating": [3.0, 4.0]}))
    attach_features(train, download=False)
    assert train.meta["user_features"] is not None


@pytest.mark.movielens
def test_compare_methods_get_side_info_and_timestamps(movielens_dir):
    from bayes_mf.compare import load_data, make_estimator

    train, test, _ = load_data("ml-100k", fold=1)
    assert train.meta["user_features"].shape[0] == 943 and "timestamp" in test.meta
    est = make_estimator("gibbs-side", 2, 0, draws=2, tune=1, chains=1)
    assert est.side_features and est.implicit == "both"
    est.fit(train)
    assert "user features" in est.result_.attrs["model"]
    timed = make_estimator("gibbs-time", 2, 0, draws=2, tune=1, chains=1).fit(train)
    with pytest.warns(UserWarning, match="unseen"):  # u1.test has items u1.base lacks
        pred = timed.predict(test)
    assert np.isfinite(pred["mean"]).all() and len(pred) == len(test)
    full = make_estimator("gibbs-full", 2, 0, draws=2, tune=1, chains=1)
    assert (full.implicit, full.side_features, full.time_effects) == ("both", True, "user")
