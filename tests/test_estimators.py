"""The behaviour every estimator shares (fit, predict any pair, beat the baseline, seeded)."""

import numpy as np
import pandas as pd
import pytest

import bayes_mf as bmf
from bayes_mf.base import NotFittedError
from bayes_mf.data import RatingsError, UnseenIdsWarning
from bayes_mf.evaluate import rmse

POINT = [
    lambda: bmf.ALS(2, reg=2.0, reg_bias=2.0, random_seed=0),
    lambda: bmf.ALS(2, reg=0.05, regularization="weighted", random_seed=0),
    lambda: bmf.GradientDescentMF(2, reg=2.0, reg_bias=2.0, random_seed=0),
]


@pytest.mark.parametrize("make", POINT, ids=["als", "als-weighted", "gd"])
def test_factor_models_beat_bias_baseline_and_are_seeded(make, sim_split):
    train, test = sim_split
    base = rmse(test.rating, bmf.BiasBaseline().fit(train).predict(test)["mean"])
    m = make().fit(train)
    pred = m.predict(test)
    assert list(pred.columns[:3]) == ["user", "item", "mean"]
    assert rmse(pred["rating"], pred["mean"]) < 0.8 * base
    again = make().fit(train).predict(test)
    np.testing.assert_array_equal(pred["mean"], again["mean"])
    assert m.fit_seconds_ > 0 and m.U_.shape == (train.n_users, 2)


def test_als_objective_decreases_and_matches_closed_form(sim_split):
    train, _ = sim_split
    m = bmf.ALS(2, reg=3.0, biases=False, max_iter=15, tol=0, random_seed=1).fit(train)
    assert np.all(np.diff(m.loss_curve_) <= 1e-8 * m.loss_curve_[0])
    # each U_i solves its ridge problem given V: check one user directly
    y = train.rating - m.global_mean_
    sel = train.user == 5
    Vs = m.V_[train.item[sel]]
    direct = np.linalg.solve(Vs.T @ Vs + 3.0 * np.eye(2), Vs.T @ y[sel])
    # the ALS half-step must equal this dense ridge solve for every user
    from bayes_mf._util import SideIndex
    from bayes_mf.als import ridge_side

    U = ridge_side(SideIndex(train.user, train.item, train.n_users, train.n_items), m.V_, y,
                   np.full((train.n_users, 2), 3.0))
    np.testing.assert_allclose(U[5], direct, rtol=1e-8)


def test_gd_and_als_reach_similar_optima(sim_split):
    train, test = sim_split
    a = bmf.ALS(2, reg=2.0, reg_bias=2.0, max_iter=100, tol=1e-9).fit(train)
    g = bmf.GradientDescentMF(2, reg=2.0, reg_bias=2.0, max_iter=2000, tol=1e-10).fit(train)
    pa, pg = a.predict(test)["mean"], g.predict(test)["mean"]
    assert rmse(pa, pg) < 0.05


def test_predict_unseen_pairs_by_policy(sim_split):
    train, _ = sim_split
    m = bmf.ALS(2).fit(train)
    pairs = pd.DataFrame({"user": [0, 99999, 0], "item": [0, 0, 88888]})
    with pytest.warns(UnseenIdsWarning, match="2 of 3"):
        pred = m.predict(pairs)
    assert len(pred) == 3
    # an unseen user gets the global mean plus the item's bias
    assert pred["mean"][1] == pytest.approx(np.clip(m.global_mean_ + m.item_bias_[0], *m.scale_))
    with pytest.warns(UnseenIdsWarning):
        assert len(m.predict(pairs, unseen="drop")) == 1
    with pytest.raises(RatingsError, match="user 99999"):
        m.predict(pairs, unseen="error")


def test_predictions_are_clipped_and_say_so(sim_split):
    train, test = sim_split
    m = bmf.ALS(2).fit(train)
    pred = m.predict(test)
    assert pred["mean"].between(*m.scale_).all() and pred.attrs["clipped_to"] == m.scale_
    raw = bmf.ALS(2, clip=False).fit(train).predict(test)
    assert raw.attrs["clipped_to"] is None


def test_not_fitted_and_bad_params(sim_split):
    train, test = sim_split
    with pytest.raises(NotFittedError):
        bmf.ALS().predict(test)
    with pytest.raises(ValueError, match="n_factors"):
        bmf.ALS(0).fit(train)
    with pytest.raises(ValueError, match="regularization"):
        bmf.ALS(regularization="l1").fit(train)
    with pytest.raises(ValueError, match="momentum"):
        bmf.GradientDescentMF(momentum=1.5).fit(train)
    with pytest.raises(FloatingPointError, match="learning_rate"):
        bmf.GradientDescentMF(2, learning_rate=50.0).fit(train)


def test_baselines(sim_split):
    train, test = sim_split
    g = bmf.GlobalMean().fit(train).predict(test)
    assert np.allclose(g["mean"], train.rating.mean())
    b = bmf.BiasBaseline().fit(train).predict(test)
    assert rmse(test.rating, b["mean"]) < rmse(test.rating, g["mean"])


def test_fit_accepts_dataframe_and_keeps_ids(sim_small):
    df = sim_small.ratings.to_frame()
    df["user"] = "u" + df["user"].astype(str)
    m = bmf.ALS(2).fit(df)
    pred = m.predict(df.head(5))
    assert pred["user"].str.startswith("u").all()


def test_pairs_forms_are_read_the_same_way(sim_split):
    train, _ = sim_split
    m = bmf.ALS(2).fit(train)
    u, i = train.user_ids[:2], train.item_ids[:2]
    ref = m.predict(pd.DataFrame({"user": u, "item": i}))["mean"].to_numpy()
    rows = [(u[0], i[0]), (u[1], i[1])]
    for pairs in (rows, np.array(rows), (list(u), list(i))):
        np.testing.assert_array_equal(m.predict(pairs)["mean"].to_numpy(), ref)
    np.testing.assert_array_equal(m.predict((u[0], i[0]))["mean"].to_numpy(), ref[:1])
    with pytest.raises(RatingsError, match="pairs must be"):
        m.predict(5)


def test_point_estimates_ignore_interval_options_but_reject_typos(sim_split):
    train, test = sim_split
    m = bmf.ALS(2).fit(train)
    pred = m.predict(test, interval=0.5)
    assert "lo" not in pred.columns
    with pytest.raises(TypeError, match="intervall"):
        m.predict(test, intervall=0.5)


@pytest.mark.parametrize("kw, match", [({"reg": 0}, "reg must be"), ({"reg": None}, "reg must be"),
                                       ({"reg": "best"}, "reg must be a number > 0 or 'auto'"),
                                       ({"n_factors": "a"}, "n_factors"), ({"max_iter": 0}, "max_iter")])
def test_als_parameter_errors_name_the_argument(sim_split, kw, match):
    train, _ = sim_split
    with pytest.raises(ValueError, match=match):
        bmf.ALS(**kw).fit(train)


def test_unseen_count_is_taken_before_dropping(sim_split):
    train, _ = sim_split
    m = bmf.ALS(2).fit(train)
    with pytest.warns(UnseenIdsWarning):
        pred = m.predict(pd.DataFrame({"user": [train.users[0], -5], "item": [train.items[0]] * 2}),
                         unseen="drop")
    assert len(pred) == 1 and pred.attrs["n_unseen"] == 1


def test_als_reg_auto_validates_and_beats_the_fixed_movielens_value():
    # the built-in demo data: noise sd 0.8, factor sd 0.6 -- a lambda of 14 shrinks every factor away
    from bayes_mf.compare import default_synthetic

    sim = default_synthetic(0)
    train, test = bmf.train_test_split(sim.ratings, 0.2, random_seed=0, unseen="drop")
    base = -bmf.BiasBaseline().fit(train).score(test)
    fixed = bmf.ALS(5, reg=14.0).fit(train)
    auto = bmf.ALS(5).fit(train)
    assert auto.reg == "auto" and fixed.reg_ == 14.0 and fixed.reg_path_ is None
    assert -fixed.score(test) > base - 0.03          # the collapse the default used to have
    assert -auto.score(test) < base - 0.08           # validation finds factors worth having
    path = auto.reg_path_
    assert auto.reg_ in set(path["reg"]) and len(path) == 9
    assert path.loc[path["reg"] == auto.reg_, "val_rmse"].item() == path["val_rmse"].min()
    # seeded: the same seed gives the same lambda and the same predictions
    again = bmf.ALS(5).fit(train)
    assert again.reg_ == auto.reg_ and np.array_equal(again.predict(test)["mean"], auto.predict(test)["mean"])


def test_als_explicit_reg_is_used_exactly(sim_split):
    train, test = sim_split
    a = bmf.ALS(2, reg=3.0, reg_bias=2.0, random_seed=4).fit(train)
    assert a.reg_ == 3.0 and a.reg_path_ is None
    b = bmf.ALS(2, reg=bmf.als.AUTO_GRID["plain"][3], reg_bias=2.0, random_seed=4).fit(train)
    assert b.reg_ == 2.0 and not np.allclose(a.U_, b.U_)


def test_als_reg_auto_on_tiny_data_uses_the_fallback():
    frame = pd.DataFrame({"user": [0, 0, 1, 1, 2], "item": [0, 1, 0, 2, 1], "rating": [1.0, 2, 3, 4, 5]})
    with pytest.warns(bmf.base.DataSupportWarning):
        m = bmf.ALS(1).fit(frame)
    assert m.reg_ == bmf.als.AUTO_FALLBACK["plain"] and m.reg_path_.empty
