import numpy as np
import pandas as pd
import pytest

from bayes_mf.data import (
    Ratings,
    RatingsError,
    UnseenIdsWarning,
    encode_pairs,
    per_user_split,
    train_test_split,
)


def frame(**over):
    base = {"user": ["a", "b", "a", "c"], "item": [10, 10, 20, 30], "rating": [4.0, 3.0, 5.0, 1.0]}
    base.update(over)
    return pd.DataFrame(base)


def test_from_frame_encodes_ids_and_round_trips():
    r = Ratings.from_frame(frame(), scale=(1, 5))
    assert r.user.dtype == np.int32 and r.item.dtype == np.int32
    assert list(r.users) == ["a", "b", "c"] and list(r.items) == [10, 20, 30]
    back = r.to_frame()
    pd.testing.assert_frame_equal(back, frame(), check_dtype=False)
    assert r.counts("user").tolist() == [2, 1, 1]
    csr = r.to_csr()
    assert csr.shape == (3, 3) and csr.nnz == 4 and csr[0, 1] == 5.0


def test_custom_column_names():
    f = frame().rename(columns={"user": "uid", "item": "movie", "rating": "stars"})
    r = Ratings.from_frame(f, user_col="uid", item_col="movie", rating_col="stars")
    assert r.names == ("uid", "movie", "stars")
    assert list(r.to_frame().columns) == ["uid", "movie", "stars"]


@pytest.mark.parametrize(
    "bad, match",
    [
        (frame().drop(columns="rating"), r"missing column\(s\) \['rating'\]"),
        (frame().iloc[:0], "empty"),
        (frame(rating=[4.0, np.nan, 5.0, 1.0]), r"'rating'.*row 1"),
        (frame(rating=[4.0, 3.0, np.inf, 1.0]), r"row 2"),
        (frame(rating=["4", "x", "5", "1"]), r"row 1: 'x'"),
        (frame(user=["a", None, "a", "c"]), r"'user'.*row 1"),
        (frame(item=[10, 10, 10, 30]), r"repeat.*row 0: \('a', 10\)"),
    ],
)
def test_bad_input_names_the_problem(bad, match):
    with pytest.raises(RatingsError, match=match):
        Ratings.from_frame(bad)


def test_scale_violation_names_row_and_value():
    with pytest.raises(RatingsError, match=r"outside the declared scale \[1, 5\].*row 3: 7.0"):
        Ratings.from_frame(frame(rating=[4.0, 3.0, 5.0, 7.0]), scale=(1, 5))


def test_duplicate_policies():
    f = frame(item=[10, 10, 10, 30], rating=[4.0, 3.0, 2.0, 1.0])
    r = Ratings.from_frame(f, duplicates="mean")
    got = r.to_frame().set_index(["user", "item"])["rating"]
    assert got[("a", 10)] == 3.0 and len(r) == 3
    r = Ratings.from_frame(f, duplicates="last")
    assert r.to_frame().set_index(["user", "item"])["rating"][("a", 10)] == 2.0


def test_from_csv(tmp_path):
    p = tmp_path / "r.csv"
    frame().to_csv(p, index=False)
    assert len(Ratings.from_csv(p)) == 4
    p2 = tmp_path / "r.tsv"
    frame().to_csv(p2, sep="\t", index=False, header=False)
    assert Ratings.from_csv(p2, header=None).n_users == 3
    with pytest.raises(RatingsError, match="expected Ratings"):
        Ratings.coerce(123)


def test_random_split_partitions_and_is_seeded(sim_small):
    r = sim_small.ratings
    tr, te = train_test_split(r, 0.25, random_seed=1, unseen="prior")
    assert len(tr) + len(te) == len(r)
    key = set(zip(tr.user_ids, tr.item_ids, strict=True))
    assert not key & set(zip(te.user_ids, te.item_ids, strict=True))
    tr2, te2 = train_test_split(r, 0.25, random_seed=1, unseen="prior")
    assert np.array_equal(te.rating, te2.rating)
    assert not np.array_equal(te.rating, train_test_split(r, 0.25, random_seed=2, unseen="prior")[1].rating)


def test_per_user_split_holds_out_k_each(sim_small):
    tr, te = per_user_split(sim_small.ratings, 2, random_seed=0)
    per_user = pd.Series(te.user_ids).value_counts()
    assert (per_user == 2).all()
    assert set(te.user_ids) <= set(tr.users)


def test_unseen_policies_are_explicit_and_counted():
    r = Ratings.from_frame(pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [1, 2, 1, 2, 9],
                                         "rating": [1.0, 2, 3, 4, 5]}))
    train = r.subset(np.array([0, 1, 2, 3]))
    _, _, uc, ic = encode_pairs(r, train.users, train.items)
    assert uc.tolist() == [0, 0, 1, 1, -1] and ic[-1] == -1
    with pytest.warns(UnseenIdsWarning, match="1 of 2 test rows.*dropped"):
        tr, te = train_test_split(r, 0.4, random_seed=4, unseen="drop")
    with pytest.raises(RatingsError, match="absent from training"):
        train_test_split(r, 0.4, random_seed=4, unseen="error")
