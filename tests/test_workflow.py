"""Diagnostics, plots, recommendations, save/load and the comparison report,
on a small Gibbs posterior of data drawn from the model."""

import json
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest

import bayes_mf as bmf
from bayes_mf import diagnostics, evaluate, io, plots
from bayes_mf.compare import run, write_report
from bayes_mf.data import UnseenIdsWarning

matplotlib.use("Agg")
import matplotlib.axes  # noqa: E402
import matplotlib.figure  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def fits(sim_split):
    train, test = sim_split
    gibbs = bmf.GibbsPMF(2, draws=150, tune=100, chains=2, cores=1, random_seed=0).fit(train)
    als = bmf.ALS(2, reg=2.0, reg_bias=2.0).fit(train)
    return gibbs, als


def test_convergence_on_identifiable_quantities_only(fits):
    gibbs, _ = fits
    table = diagnostics.convergence(gibbs.result_, warn=False)
    assert "pred_check" in table.index and "sigma" in table.index
    assert "U" not in table.index and "V" not in table.index
    assert table.loc["sigma", "rhat_max"] < 1.05
    assert table.loc["pred_check", "size"] == 50
    with pytest.raises(ValueError, match="not identifiable"):
        diagnostics.convergence(gibbs.result_, var_names=["U"])


def test_convergence_warning_names_quantities(fits):
    gibbs, _ = fits
    with pytest.warns(diagnostics.ConvergenceWarning, match="sigma"):
        diagnostics.convergence(gibbs.result_, var_names=["sigma"], ess_min=1e9)


def test_point_estimate_has_no_chains_to_diagnose(sim_split):
    train, _ = sim_split
    from bayes_mf.results import build_result

    dt = build_result({"sigma": np.ones((1, 1))}, train, method="map", model="x", n_factors=2,
                      random_seed=0, fit_seconds=0.0)
    with pytest.raises(ValueError, match="2 chains"):
        diagnostics.convergence(dt)


def test_loo_and_log_likelihood(fits):
    gibbs, _ = fits
    ll = diagnostics.log_likelihood(gibbs.result_, max_draws=100)
    assert ll["log_likelihood"]["rating"].shape[:2] == (2, 50)
    assert np.isfinite(ll["log_likelihood"]["rating"].to_numpy()).all()
    with warnings.catch_warnings():
        # ArviZ warns when some Pareto k > 0.7: that is LOO's own diagnostic, reported in the object
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        res = diagnostics.loo(gibbs.result_, max_draws=100)
    assert np.isfinite(res.elpd)


def test_calibration_curve_and_activity_table(fits, sim_split):
    gibbs, als = fits
    train, test = sim_split
    cur = evaluate.coverage_curve(gibbs, test, levels=(0.5, 0.9))
    assert cur["empirical"].between(0, 1).all()
    assert cur["empirical"].iloc[1] > cur["empirical"].iloc[0]
    tab = evaluate.by_activity({"als": als.predict(test), "gibbs": gibbs.predict(test)}, train)
    assert tab["n"].sum() == len(test) and {"als", "gibbs"} <= set(tab.columns)


def test_every_plot_returns_what_it_drew_on(fits, sim_split):
    gibbs, als = fits
    train, test = sim_split
    pg, pa = gibbs.predict(test, interval=0.8), als.predict(test)
    axes = [
        plots.posterior_vs_point(pg, pa, train),
        plots.calibration({"gibbs": evaluate.coverage_curve(gibbs, test)}),
        plots.ppc_ratings(gibbs, test),
        plots.rmse_by_activity({"als": pa, "gibbs": pg}, train),
        plots.top_n_intervals(gibbs.recommend(train.users[0], 5)),
    ]
    assert all(isinstance(a, matplotlib.axes.Axes) and a.has_data() for a in axes)
    figs = [plots.interval_width_vs_activity(pg, train), plots.rank_plot(gibbs.result_),
            plots.trace_plot(gibbs.result_)]
    assert all(isinstance(f, matplotlib.figure.Figure) and f.axes for f in figs)
    # labels say what is plotted: the interval level predict used, the units
    assert "80 % predictive interval" in axes[0].get_legend_handles_labels()[1]
    assert "(stars)" in axes[0].get_xlabel() and "80 % interval" in figs[0].axes[0].get_ylabel()
    with pytest.raises(ValueError, match="no intervals"):
        plots.interval_width_vs_activity(pa, train)
    with pytest.raises(ValueError, match="energy"):
        plots.energy_plot(gibbs.result_)
    plt.close("all")


def test_plots_compose_into_one_figure(fits, sim_split):
    gibbs, als = fits
    train, test = sim_split
    pg, pa = gibbs.predict(test), als.predict(test)
    fig = plt.figure(figsize=(12, 8), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    ax = top.subplots(1, 3)
    assert plots.posterior_vs_point(pg, pa, train, ax=ax[0]) is ax[0]
    assert plots.calibration({"gibbs": evaluate.coverage_curve(gibbs, test)}, ax=ax[1]) is ax[1]
    recs = gibbs.recommend(train.users[1], 4, strategy="ucb")
    assert plots.top_n_intervals(recs, ax=ax[2]) is ax[2]
    assert plots.interval_width_vs_activity(pg, train, fig=bottom) is bottom
    assert len(fig.axes) == 3 + 1 + 2  # three panels, a colour bar, two width panels
    # the top-N plot lists the items in rank order, top to bottom, with their intervals
    labels = [t.get_text() for t in ax[2].get_yticklabels()]
    assert labels == [f"{k}. {i}" for k, i in zip(recs["rank"], recs["item"], strict=True)]
    assert "ranked by ucb" in ax[2].get_title() and f"for user {train.users[1]!r}" in ax[2].get_title()
    assert ax[2].get_xlabel() == "predicted rating (stars): mean and 90 % predictive interval"
    point = plots.top_n_intervals(als.recommend(train.users[1], 3))
    assert "point estimate, no interval" in point.get_xlabel()
    with pytest.raises(ValueError, match="recs lack column"):
        plots.top_n_intervals(recs.drop(columns="mean"))
    plt.close("all")


@pytest.mark.parametrize("strategy", ["mean", "ucb", "thompson"])
def test_recommend_strategies(fits, sim_split, strategy):
    gibbs, _ = fits
    train, _ = sim_split
    user = train.users[0]
    recs = gibbs.recommend(user, 5, strategy=strategy, random_seed=1)
    rated = set(train.item_ids[train.user_ids == user])
    assert len(recs) == 5 and not rated & set(recs["item"])
    assert (recs["lo"] <= recs["mean"]).all() and (recs["mean"] <= recs["hi"]).all()
    assert recs["score"].is_monotonic_decreasing
    again = gibbs.recommend(user, 5, strategy=strategy, random_seed=1)
    pd.testing.assert_frame_equal(recs, again)


def test_recommend_point_estimate_and_errors(fits, sim_split):
    _, als = fits
    train, _ = sim_split
    recs = als.recommend(train.users[0], 3, titles=pd.Series({i: f"t{i}" for i in train.items}))
    assert recs["title"].str.startswith("t").all() and recs["lo"].isna().all()
    with pytest.raises(ValueError, match="needs posterior draws"):
        als.recommend(train.users[0], 3, strategy="ucb")
    with pytest.raises(ValueError, match="strategy"):
        als.recommend(train.users[0], 3, strategy="best")
    unseen = als.recommend("nobody", 3)
    assert unseen.attrs["unseen_user"] and len(unseen) == 3


@pytest.mark.parametrize("which", [0, 1])
def test_save_load_gives_identical_predictions(fits, sim_split, tmp_path, which):
    est = fits[which]
    _, test = sim_split
    io.save(est, tmp_path / "m")
    back = io.load(tmp_path / "m")
    a, b = est.predict(test), back.predict(test)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(FileExistsError):
        io.save(est, tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="not a saved"):
        io.load(tmp_path)


def test_comparison_report_writes_table_and_figures(fits, sim_split, tmp_path):
    gibbs, als = fits
    train, test = sim_split
    comp = run(train, test, ["baseline", "als", "gibbs"], n_factors=2,
               estimators={"als": bmf.ALS(2, reg=2.0, reg_bias=2.0),
                           "gibbs": bmf.GibbsPMF(2, draws=100, tune=60, chains=2, cores=1)})
    t = comp.table.set_index("method")
    assert np.isnan(t.loc["als", "coverage"]) and np.isnan(t.loc["als", "rhat_max"])
    assert 0.8 <= t.loc["gibbs", "coverage"] <= 0.98 and 0.35 <= t.loc["gibbs", "coverage50"] <= 0.65
    assert t.loc["gibbs", "rmse"] < t.loc["baseline", "rmse"]
    written = write_report(comp, tmp_path, data_desc="synthetic test")
    for name in ("posterior_vs_point", "calibration", "ppc", "rmse_by_activity", "rank", "report.md"):
        assert written[name].exists()
    doc = json.loads((tmp_path / "results.json").read_text())
    assert {r["method"] for r in doc["results"]} == {"baseline", "als", "gibbs"}
    report = (tmp_path / "report.md").read_text()
    assert "| als | point |" in report and "n/a" in report


def test_save_load_pmf_map_with_init(sim_split, tmp_path):
    train, test = sim_split
    first = bmf.PMF(2, method="map", random_seed=0).fit(train)
    again = bmf.PMF(2, method="map", init=first, random_seed=0).fit(train)
    io.save(again, tmp_path / "pmf")
    back = io.load(tmp_path / "pmf")
    pd.testing.assert_frame_equal(again.predict(test), back.predict(test))
    assert back.init is None


def test_save_refuses_to_overwrite_foreign_folders(fits, tmp_path):
    _, als = fits
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a saved"):
        io.save(als, tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").exists()


def test_unseen_mean_is_exact_and_draws_keep_chains(fits, sim_split):
    gibbs, _ = fits
    train, _ = sim_split
    item = train.items[0]
    with pytest.warns(UnseenIdsWarning):
        a = gibbs.predict(pd.DataFrame({"user": ["new"], "item": [item]}))
    with pytest.warns(UnseenIdsWarning):
        b = gibbs.predict(pd.DataFrame({"user": ["new", train.users[1]], "item": [item, item]}))
    assert a["mean"].iloc[0] == pytest.approx(b["mean"].iloc[0], rel=1e-12)
    d = gibbs.predict_draws(pd.DataFrame({"user": [train.users[0]], "item": [item]}), max_draws=10_000)
    assert d.sizes["chain"] == 2


def test_logistic_loglik_is_density_of_the_rating(sim_split):
    from bayes_mf.results import build_result

    train, _ = sim_split
    k = 2
    post = {"U": np.zeros((1, 2, train.n_users, k)), "V": np.zeros((1, 2, train.n_items, k)),
            "sigma": np.full((1, 2), 0.2), "mu": np.zeros((1, 2))}
    lo, hi = float(train.rating.min()), float(train.rating.max())
    dt = build_result(post, train, method="t", model="t", n_factors=k, random_seed=0, fit_seconds=0.0,
                      link="logistic", scale=(lo, hi))
    ll = diagnostics.log_likelihood(dt)["log_likelihood"]["rating"].to_numpy()[0, 0]
    z = (train.rating - lo) / (hi - lo)
    from scipy import stats

    np.testing.assert_allclose(ll, stats.norm.logpdf(train.rating, lo + (hi - lo) * 0.5, 0.2 * (hi - lo)),
                               rtol=1e-10)
    assert z.shape == ll.shape
