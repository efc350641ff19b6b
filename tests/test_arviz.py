"""ArviZ round trip: az.summary, az.loo, az.compare and az.plot_ppc_dist on results as they are."""

import warnings

import arviz as az
import matplotlib
import numpy as np
import pytest
import xarray as xr
from scipy import stats

import bayes_mf as bmf
from bayes_mf import diagnostics, io
from bayes_mf.data import train_test_split
from bayes_mf.datasets import simulate_pmf
from bayes_mf.results import PREDICTIVE_DRAWS, add_predictive

matplotlib.use("Agg")

# ArviZ flags Pareto k above its threshold: LOO's own diagnostic, reported in the object it returns
PARETO = "Estimated shape parameter of Pareto"


@pytest.fixture(scope="module")
def train():
    sim = simulate_pmf(40, 30, 2, density=0.4, noise_sd=0.5, global_mean=3.0, bias_sd=0.3, random_seed=1)
    return train_test_split(sim.ratings, 0.2, random_seed=0)[0]


@pytest.fixture(scope="module")
def gibbs(train):
    # 2 x 150 kept draws: more than PREDICTIVE_DRAWS, so the predictive groups are thinned
    return bmf.GibbsPMF(2, draws=150, tune=50, chains=2, cores=1, random_seed=0).fit(train)


@pytest.fixture(scope="module")
def nuts(train):
    return bmf.PMF(2, method="nuts", draws=60, tune=100, random_seed=0).fit(train)


@pytest.mark.parametrize("which", ["gibbs", "nuts"])
def test_summary_works_bare(which, request):
    dt = request.getfixturevalue(which).result_
    table = az.summary(dt)
    assert {"sigma", "mu", "pred_check[0]"} <= set(table.index)
    sigma = float(dt["posterior"]["sigma"].mean())
    assert float(table.loc["sigma", "mean"]) == pytest.approx(sigma, rel=1e-2)


def test_summary_works_on_a_point_estimate(train):
    dt = bmf.PMF(2, method="map").fit(train).result_
    assert "sigma" in az.summary(dt, kind="stats").index


def test_groups_are_labelled_thinned_and_consistent(gibbs, train):
    dt = gibbs.result_
    obs = dt["observed_data"]
    np.testing.assert_array_equal(obs["obs_user"], train.user_ids)
    np.testing.assert_array_equal(obs["obs_item"], train.item_ids)
    ppc, ll = dt["posterior_predictive"]["rating"], dt["log_likelihood"]["rating"]
    assert ppc.dims == ll.dims == ("chain", "draw", "obs")
    assert ppc.sizes["chain"] * ppc.sizes["draw"] <= PREDICTIVE_DRAWS and ppc.sizes["draw"] == 100
    assert ppc.sizes["obs"] == len(train)
    np.testing.assert_array_equal(ppc["draw"], ll["draw"])
    # draws are the posterior's own: the density at a kept draw is Normal(rating | eta, sigma)
    d = int(ll["draw"][7])
    post = dt["posterior"].sel(chain=1, draw=d)
    u, i = train.user, train.item
    eta = (post["mu"].item() + post["user_bias"].to_numpy()[u] + post["item_bias"].to_numpy()[i]
           + np.einsum("nk,nk->n", post["U"].to_numpy()[u], post["V"].to_numpy()[i]))
    expected = stats.norm.logpdf(train.rating, eta, post["sigma"].item())
    np.testing.assert_allclose(ll.sel(chain=1, draw=d), expected, rtol=1e-10)
    # replicated ratings scatter around the fitted means with the noise sd
    resid = ppc.sel(chain=1, draw=d).to_numpy() - eta
    assert abs(resid.mean()) < 0.15 and resid.std() == pytest.approx(post["sigma"].item(), rel=0.2)


def test_add_predictive_caps_pairs_and_draws(gibbs, train):
    dt = add_predictive(gibbs.result_.copy(), max_draws=10, max_pairs=50)
    ll = dt["log_likelihood"]["rating"]
    assert ll.sizes["chain"] == 2 and ll.sizes["draw"] == 5 and ll.sizes["obs"] == 50
    pos = ll["obs"].to_numpy()
    assert np.all(np.diff(pos) > 0)
    np.testing.assert_array_equal(ll["obs_user"], train.user_ids[pos])
    full = gibbs.result_["log_likelihood"]["rating"]
    common = np.intersect1d(ll["draw"], full["draw"])
    np.testing.assert_array_equal(ll.sel(draw=common), full.sel(draw=common, obs=pos))
    with pytest.raises(ValueError, match="max_draws and max_pairs"):
        add_predictive(gibbs.result_.copy(), max_pairs=0)


def test_loo_and_compare_work_directly(gibbs, nuts):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PARETO)
        loo_g, loo_n = az.loo(gibbs.result_), az.loo(nuts.result_)
        table = az.compare({"gibbs": gibbs.result_, "nuts": nuts.result_})
    assert np.isfinite(loo_g.elpd) and np.isfinite(loo_n.elpd)
    assert loo_g.n_data_points == loo_n.n_data_points == gibbs.n_train_
    assert set(table.index) == {"gibbs", "nuts"}
    # the same model fitted two ways: LOO cannot tell them apart beyond a few standard errors
    assert abs(loo_g.elpd - loo_n.elpd) < 4 * max(loo_g.se, loo_n.se)


@pytest.mark.parametrize("which", ["gibbs", "nuts"])
def test_plot_ppc_dist_runs(which, request):
    import matplotlib.pyplot as plt

    pc = az.plot_ppc_dist(request.getfixturevalue(which).result_)
    fig = pc.viz["figure"].item() if hasattr(pc.viz["figure"], "item") else pc.viz["figure"]
    assert fig.axes
    plt.close("all")


def test_save_load_keeps_every_group_bit_exact(gibbs, tmp_path):
    io.save(gibbs, tmp_path / "g")
    back = io.load(tmp_path / "g").result_
    dt = gibbs.result_
    assert set(back.children) == set(dt.children)
    for group in ("posterior", "observed_data", "constant_data", "posterior_predictive", "log_likelihood"):
        xr.testing.assert_identical(back[group].to_dataset(), dt[group].to_dataset())


def test_diagnostics_loo_still_thins_the_posterior_to_match(gibbs):
    ll = diagnostics.log_likelihood(gibbs.result_, max_draws=100)
    assert ll["log_likelihood"]["rating"].sizes["draw"] == ll["posterior"].sizes["draw"] == 50
