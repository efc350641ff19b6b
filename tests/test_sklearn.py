"""The scikit-learn contract of every estimator: params, clone, repr, fitted checks, score, CV."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils.validation import check_is_fitted

import bayes_mf as bmf
from bayes_mf.base import NotFittedError
from bayes_mf.datasets import simulate_pmf

ALL = [bmf.ALS, bmf.GradientDescentMF, bmf.GlobalMean, bmf.BiasBaseline, bmf.PMF, bmf.GibbsPMF]


@pytest.fixture(scope="module")
def table():
    """Every (user, item) pair rated, rows shuffled: each fold of a 2-fold split sees every id."""
    sim = simulate_pmf(30, 20, 2, density=1.0, noise_sd=0.4, global_mean=3.0, bias_sd=0.5, random_seed=1)
    return sim.ratings.to_frame().sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.mark.parametrize("cls", ALL)
def test_params_clone_and_repr(cls):
    est = cls()
    shallow, deep = est.get_params(deep=False), est.get_params(deep=True)
    assert shallow == deep and "clip" in shallow
    copy = clone(est)
    assert copy is not est and copy.get_params() == shallow
    assert repr(est) == f"{cls.__name__}()"  # only parameters that differ from the defaults
    assert est.set_params(clip=False) is est and est.clip is False
    assert repr(est) == f"{cls.__name__}(clip=False)"
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(no_such_option=1)
    with pytest.raises(TypeError, match="no_such_option"):
        cls(no_such_option=1)
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(est)


def test_repr_shows_changed_parameters_only():
    assert repr(bmf.ALS(4, reg=2.0)) == "ALS(n_factors=4, reg=2.0)"
    assert repr(bmf.GibbsPMF(draws=50, chains=2)) == "GibbsPMF(chains=2, draws=50)"


def test_fitted_checks_and_not_fitted_error(table):
    est = bmf.ALS(2, reg=2.0)
    with pytest.raises(NotFittedError, match="not fitted") as info:
        est.predict(table)
    # one exception for both worlds: the package's (a RuntimeError) and scikit-learn's
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, SklearnNotFittedError)
    est.fit(table)
    check_is_fitted(est)


def test_score_is_negative_rmse_and_fit_takes_pairs_plus_y(table):
    train, test = table.iloc[:450], table.iloc[450:]
    est = bmf.ALS(2, reg=2.0).fit(train)
    pred = est.predict(test)
    rmse = float(np.sqrt(np.mean((pred["rating"] - pred["mean"]) ** 2)))
    assert est.score(test) == pytest.approx(-rmse, rel=1e-12)
    assert est.score(test[["user", "item"]], test["rating"].to_numpy()) == est.score(test)
    other = bmf.ALS(2, reg=2.0).fit(train[["user", "item"]], train["rating"])
    np.testing.assert_array_equal(other.U_, est.U_)
    with pytest.raises(ValueError, match="already has a 'rating' column"):
        bmf.ALS(2).fit(train, train["rating"])
    with pytest.raises(ValueError, match="one rating per row"):
        bmf.ALS(2).fit(train[["user", "item"]], train["rating"].iloc[:3])
    with pytest.raises(ValueError, match="score needs observed ratings"):
        est.score(test[["user", "item"]])


def test_score_reads_the_training_rating_column_name(table):
    stars = table.rename(columns={"rating": "stars"})
    est = bmf.BiasBaseline().fit(stars.iloc[:450], rating_col="stars")
    assert est.score(stars.iloc[450:]) == pytest.approx(est.score(table.iloc[450:]), rel=1e-12)


def test_unknown_fit_and_predict_options_raise(table):
    r = bmf.Ratings.from_frame(table)
    with pytest.raises(TypeError, match="model"):
        bmf.ALS(2).fit(table, model=object())
    with pytest.raises(TypeError, match="already validated"):
        bmf.ALS(2).fit(r, scale=(1, 5))
    with pytest.raises(TypeError, match="unknown option"):
        bmf.ALS(2).fit(r).predict(table, intervall=0.5)


def test_grid_search_over_rank(table):
    grid = GridSearchCV(bmf.ALS(reg=2.0), {"n_factors": [2, 4]}, cv=2).fit(table)
    scores = grid.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and (scores < 0).all()
    # the data have rank 2: the smaller rank generalises better
    assert grid.best_params_ == {"n_factors": 2}
    check_is_fitted(grid.best_estimator_)
    assert grid.best_estimator_.n_train_ == len(table)


def test_cross_val_score_passes_fit_options(table):
    # fit options reach every fold: without rating_col this table has no rating column to fit on
    stars = table.rename(columns={"rating": "stars"})
    cv = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(bmf.BiasBaseline(), stars, cv=cv, params={"rating_col": "stars"})
    by_hand = [bmf.BiasBaseline().fit(table.iloc[tr]).score(table.iloc[te]) for tr, te in cv.split(table)]
    np.testing.assert_allclose(scores, by_hand, rtol=1e-12)
    assert (scores < 0).all()


def test_clone_gibbs_and_deprecated_aliases(table):
    assert clone(bmf.GibbsPMF()).get_params() == bmf.GibbsPMF().get_params()
    r = bmf.Ratings.from_frame(table)
    new = bmf.GibbsPMF(2, draws=5, tune=2, chains=1, random_seed=4).fit(r)
    with pytest.warns(FutureWarning) as record:
        old = bmf.GibbsPMF(2, n_samples=5, burn_in=2, chains=1, random_seed=4).fit(r)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2 and "burn_in=...) is deprecated" in messages[0] and "use tune" in messages[0]
    assert "n_samples=...) is deprecated" in messages[1] and "use draws" in messages[1]
    assert record[0].filename == __file__  # the warning points at the caller's line
    for name in ("sigma", "mu", "U"):
        np.testing.assert_array_equal(old.result_["posterior"][name], new.result_["posterior"][name])
    with pytest.raises(ValueError, match="give draws only"):
        bmf.GibbsPMF(2, draws=5, n_samples=5, chains=1).fit(r)


def test_fit_accepts_any_row_subset_of_a_table(table):
    rows = table.iloc[np.arange(0, len(table), 2)]  # a non-contiguous index, as splitters make
    est = bmf.ALS(2, reg=2.0).fit(rows)
    assert est.n_train_ == len(rows)
    pd.testing.assert_index_equal(est.users_.sort_values(), pd.Index(sorted(rows["user"].unique()),
                                                                     name="user"))
