"""The ordered-probit Gibbs option: its pieces exact, its estimator usable, its predictions in stars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_mf.gibbs import GibbsPMF
from bayes_mf.gibbs import ordinal as ordm
from bayes_mf.gibbs.ordinal_predict import star_sets, summarise


def ordinal_frame(n_users=40, n_items=30, k=2, density=0.35, cuts=(0.0, 0.8, 1.6, 2.2), seed=0):
    """Star ratings 1..5 drawn from the ordered-probit model with a rank-k mean."""
    rng = np.random.default_rng(seed)
    U, V = rng.normal(0, 0.8, (n_users, k)), rng.normal(0, 0.8, (n_items, k))
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    z = 1.0 + (U[u] * V[i]).sum(1) + rng.normal(0, 0.3, n_users)[u] + rng.standard_normal(u.size)
    r = 1 + np.searchsorted(np.asarray(cuts), z)
    return pd.DataFrame({"user": u, "item": i, "rating": r.astype(float)})


@pytest.mark.parametrize("lo, hi", [(-1.0, 0.5), (-np.inf, -3.0), (2.5, np.inf), (38.0, np.inf),
                                    (-np.inf, -40.0), (6.0, 6.01), (-0.2, 0.2)])
def test_truncated_normal_matches_scipy_in_the_tails(lo, hi):
    """Inverse-CDF draws in log space have the truncated normal's mean and sd, even 40 sd out,
    and never leave the interval."""
    x = ordm.truncated_normal(np.random.default_rng(0), np.full(20000, lo), np.full(20000, hi))
    assert np.all((x >= lo) & (x <= hi))
    mean, var = stats.truncnorm.stats(lo, hi, moments="mv")
    sd = float(np.sqrt(var))
    assert abs(x.mean() - float(mean)) < 5 * sd / np.sqrt(x.size) + 1e-9
    assert abs(x.std() - sd) < 0.05 * sd + 1e-9
    if np.isfinite(lo) and np.isfinite(hi) and hi - lo > 0.1:
        assert stats.kstest(x, stats.truncnorm(lo, hi).cdf).pvalue > 1e-3


def test_log_interval_is_accurate_where_differences_underflow():
    """log(Phi(b) - Phi(a)) agrees with scipy where that is accurate, and stays finite 40 sd out."""
    a, b = np.array([-1.0, -np.inf, 0.3, 2.0]), np.array([0.5, -2.0, np.inf, 2.5])
    ref = np.log(stats.norm.cdf(b) - stats.norm.cdf(a))
    np.testing.assert_allclose(ordm.log_interval(a, b), ref, rtol=1e-12)
    far = ordm.log_interval(np.array([40.0]), np.array([np.inf]))
    np.testing.assert_allclose(far, stats.norm.logsf(40.0), rtol=1e-10)


def test_cutpoint_block_samples_the_exact_marginal_posterior():
    """The (cut-points, latent ratings) block, run alone at a fixed linear predictor, reproduces the
    posterior of the two log gaps computed by quadrature on a grid: means and sds within Monte-Carlo
    error (a wrong acceptance ratio, prior or proposal would shift them).  Few ratings, so the prior
    matters too."""
    rng = np.random.default_rng(3)
    n = 25
    eta = rng.normal(0.8, 1.0, n)
    true_cuts = np.array([0.0, 0.7, 1.5])
    codes = np.searchsorted(true_cuts, eta + rng.standard_normal(n)).astype(np.int64)
    # the exact posterior, written independently of the sampler's code: scipy's normal CDF and N(0, 1)
    grid = np.linspace(-4.0, 2.5, 201)
    A1, A2 = np.meshgrid(grid, grid, indexing="ij")
    ext = np.stack([np.full(A1.shape, -np.inf), np.zeros(A1.shape), np.exp(A1), np.exp(A1) + np.exp(A2),
                    np.full(A1.shape, np.inf)], axis=-1)
    upper = stats.norm.cdf(ext[..., codes + 1] - eta)
    lower = stats.norm.cdf(ext[..., codes] - eta)
    with np.errstate(divide="ignore"):  # far corners of the grid have probability 0
        logp = np.log(upper - lower).sum(-1) + stats.norm.logpdf(A1) + stats.norm.logpdf(A2)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    assert w[0].sum() + w[-1].sum() + w[:, 0].sum() + w[:, -1].sum() < 1e-6  # the grid holds the mass
    exact_mean = np.array([(w * A1).sum(), (w * A2).sum()])
    exact_sd = np.sqrt(np.array([(w * A1**2).sum(), (w * A2**2).sum()]) - exact_mean**2)

    o = ordm.initial_ordinal(codes, 4, rng)
    for _ in range(300):  # burn-in with tuning
        ordm.ordinal_step(rng, o, codes, eta, adapt=True)
    draws, zs = [], []
    for _ in range(6000):
        z = ordm.ordinal_step(rng, o, codes, eta, adapt=False)
        draws.append(o.alpha.copy())
        zs.append(z[0])
    draws = np.array(draws)
    acc = o.accepted / o.proposed
    assert 0.1 < acc < 0.7
    import arviz as az

    for j in range(2):
        ess = float(az.ess(draws[None, :, j]))
        assert abs(draws[:, j].mean() - exact_mean[j]) < 4 * exact_sd[j] / np.sqrt(ess), j
        assert abs(draws[:, j].std() - exact_sd[j]) < 0.1 * exact_sd[j], j
    # the latent rating of rating 0 lies in its level's interval at its cut-points
    lo, hi = ordm._bounds(codes[:1], eta[:1], o.cuts)
    assert lo[0] + eta[0] <= zs[-1] <= hi[0] + eta[0]


def test_ordinal_levels_validation_names_column_and_values():
    levels, codes = ordm.ordinal_levels([1, 3, 5, 2], scale=(1, 5))
    np.testing.assert_array_equal(levels, [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(codes, [0, 2, 4, 1])
    with pytest.raises(ValueError, match=r"'stars'.*3\.5"):
        ordm.ordinal_levels([1, 3.5, 4], name="stars")
    with pytest.raises(ValueError, match="2 to 20"):
        ordm.ordinal_levels(np.arange(30))


def test_star_sets_and_summaries():
    """Greedy highest-probability sets, median star and mean from level probabilities."""
    p = np.array([[0.05, 0.10, 0.50, 0.30, 0.05], [0.45, 0.10, 0.05, 0.05, 0.35]])
    sets = star_sets(p, 0.9)
    np.testing.assert_array_equal(sets, [[False, True, True, True, False], [True, True, False, False, True]])
    assert (p * sets).sum(1).min() >= 0.9 - 1e-12
    out = summarise(p, np.arange(1.0, 6.0), 0.9)
    np.testing.assert_allclose(out["mean"], p @ np.arange(1, 6))
    np.testing.assert_array_equal(out["median"], [3, 2])
    np.testing.assert_array_equal(out["lo"], [2, 1])
    np.testing.assert_array_equal(out["hi"], [4, 5])
    assert list(out["stars"]) == ["2,3,4", "1,2,5"]


@pytest.fixture(scope="module")
def fitted():
    df = ordinal_frame()
    est = GibbsPMF(2, prior="adaptive", likelihood="ordinal", draws=200, tune=100, chains=2, cores=1,
                   target_ess=50, random_seed=1)
    with pytest.warns(Warning):  # 200 draws are short of the default convergence targets
        est.fit(df)
    return est, df


def test_ordinal_fit_records_cutpoints_and_predicts_stars(fitted):
    est, df = fitted
    post = est.result_["posterior"]
    cuts = post["cutpoints"]
    assert cuts.dims == ("chain", "draw", "cutpoint") and cuts.sizes["cutpoint"] == 4
    assert np.all(cuts.isel(cutpoint=0) == 0) and np.all(cuts.diff("cutpoint") > 0)
    assert np.all(post["sigma"] == 1.0)  # the latent noise sd is held at 1
    assert "cutpoints" in est.convergence_.index
    proba = est.predict_proba(df.iloc[:20])
    levels = [1.0, 2.0, 3.0, 4.0, 5.0]
    np.testing.assert_allclose(proba[levels].sum(axis=1), 1.0)
    pred = est.predict(df.iloc[:20], interval=0.9)
    np.testing.assert_allclose(pred["mean"], proba[levels].to_numpy() @ np.arange(1, 6))
    assert set(pred["median"]) <= set(levels) and np.all(pred["lo"] <= pred["hi"])
    draws = est.predict_draws(df.iloc[:20], max_draws=100)
    assert set(np.unique(draws)) <= set(levels) and draws.shape == (1, 100, 20)
    # the star draws follow the probabilities (the mean over 100 draws within a few sds)
    se = pred["sd"].to_numpy() / np.sqrt(100)
    assert np.mean(np.abs(draws.mean(("chain", "draw")).to_numpy() - pred["mean"].to_numpy()) < 4 * se) > 0.9
    # the model is informative: better than the training marginal on its own training data
    p_obs = proba[levels].to_numpy()[np.arange(20), (df["rating"].to_numpy()[:20] - 1).astype(int)]
    marginal = np.bincount(df["rating"].astype(int) - 1, minlength=5) / len(df)
    assert np.mean(np.log(p_obs)) > np.mean(np.log(marginal[(df["rating"].to_numpy()[:20] - 1).astype(int)]))


def test_ordinal_rejects_non_integer_ratings_and_a_fixed_sigma():
    df = ordinal_frame().assign(rating=lambda d: d["rating"] + 0.5 * (d.index == 3))
    with pytest.raises(ValueError, match="integer star ratings.*'rating'.*3.5|integer star ratings"):
        GibbsPMF(2, likelihood="ordinal", draws=10, tune=5, chains=1).fit(df)
    with pytest.raises(ValueError, match="sigma"):
        GibbsPMF(2, likelihood="ordinal", sigma=1.0, draws=10, tune=5, chains=1).fit(ordinal_frame())
    with pytest.raises(ValueError, match="likelihood"):
        GibbsPMF(2, likelihood="poisson", draws=10, tune=5, chains=1).fit(ordinal_frame())
    with pytest.raises(ValueError, match="ordinal"):
        GibbsPMF(2, draws=10, tune=5, chains=1).fit(ordinal_frame()).predict_proba(ordinal_frame())


@pytest.mark.parametrize("options", [dict(prior="bpmf", implicit="both"), dict(prior="fixed", biases=False),
                                     dict(prior="adaptive", backend="numpy")])
def test_ordinal_composes_with_priors_and_features(options):
    """Every prior, biases on or off, implicit features and both kernel families run the ordinal
    model and give probabilities that sum to one."""
    df = ordinal_frame(n_users=25, n_items=20)
    est = GibbsPMF(2, likelihood="ordinal", draws=30, tune=20, chains=2, cores=1, random_seed=0, **options)
    with pytest.warns(Warning):
        est.fit(df)
    proba = est.predict_proba(df.iloc[:10])
    np.testing.assert_allclose(proba[[1.0, 2.0, 3.0, 4.0, 5.0]].sum(axis=1), 1.0)
    assert np.isfinite(est.result_["posterior"]["cutpoints"]).all()


@pytest.mark.slow
def test_ordinal_gibbs_agrees_with_its_pymc_ordered_probit_twin():
    """NUTS on the PyMC twin (pm.OrderedProbit, same priors) and the Gibbs sampler agree on the
    cut-points' posterior means and sds and on the predicted probability of each training pair's own
    level (within 4 joint MCSE).  The whole sweep is checked: cut-point move, latent draws and the
    Gaussian core with tau = 1."""
    import arviz as az
    import pymc as pm

    from bayes_mf.gibbs.ordinal_predict import level_probabilities
    from bayes_mf.gibbs.twin import pymc_model

    df = ordinal_frame(n_users=18, n_items=14, density=0.5, seed=4)
    gibbs = GibbsPMF(1, prior="adaptive", likelihood="ordinal", draws=1500, tune=200, chains=4, cores=1,
                     random_seed=2)
    with pymc_model(gibbs, df):
        idata = pm.sample(draws=600, tune=600, chains=2, random_seed=1, progressbar=False,
                          target_accept=0.95, compute_convergence_checks=False)
    import warnings

    from bayes_mf.diagnostics import ConvergenceWarning

    with warnings.catch_warnings():  # the comparison below uses the MCSE, whatever the ESS reached
        warnings.simplefilter("ignore", ConvergenceWarning)
        gibbs.fit(df)
    pg, pn = gibbs.result_["posterior"], idata["posterior"]
    assert int(idata["sample_stats"]["diverging"].sum()) <= 5
    for j in (1, 2, 3):
        a, b = pg["cutpoints"].isel(cutpoint=j), pn["cutpoints"].isel(cutpoint=j)
        err = np.hypot(float(az.mcse(a)), float(az.mcse(b)))
        assert abs(float(a.mean()) - float(b.mean())) <= 4 * err, j
        err_sd = np.hypot(float(az.mcse(a, method="sd")), float(az.mcse(b, method="sd")))
        assert abs(float(a.std()) - float(b.std())) <= 4 * err_sd, j
    codes = df["rating"].to_numpy().astype(int) - 1
    u, i = df["user"].to_numpy(), df["item"].to_numpy()

    def own_level_prob(post):
        eta = np.einsum("cdpk,cdpk->cdp", post["U"].to_numpy()[:, :, u], post["V"].to_numpy()[:, :, i])
        eta += post["mu"].to_numpy()[..., None] + post["user_bias"].to_numpy()[:, :, u]
        eta += post["item_bias"].to_numpy()[:, :, i]
        c, d = eta.shape[:2]
        p = level_probabilities(eta.reshape(c * d, -1), post["cutpoints"].to_numpy().reshape(c * d, -1))
        return p[:, np.arange(len(codes)), codes].reshape(c, d, -1)

    eg, en = own_level_prob(pg), own_level_prob(pn)
    mcse = np.hypot(az.mcse(eg), az.mcse(en))
    assert np.mean(np.abs(eg.mean((0, 1)) - en.mean((0, 1))) <= 4 * mcse) >= 0.95


def test_ordinal_metrics_by_hand():
    """Log score, RPS (the CRPS of unit-spaced stars), accuracy, median MAE and star-set coverage."""
    from bayes_mf.evaluate import log_score, ordinal_scores, ranked_probability_score

    levels = np.array([1.0, 2.0, 3.0])
    p = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    y = np.array([3.0, 1.0])
    assert log_score(y, p, levels) == pytest.approx(np.mean(np.log([0.3, 0.6])))
    # RPS: (F1 - 0)^2 + (F2 - 0)^2 for y = 3; (F1 - 1)^2 + (F2 - 1)^2 for y = 1
    rps = ((0.2**2 + 0.7**2) + (0.4**2 + 0.1**2)) / 2
    assert ranked_probability_score(y, p, levels) == pytest.approx(rps)
    # the CRPS of the discrete predictive, by its integral definition on a fine grid
    grid = np.linspace(0.0, 4.0, 400001)
    pos = np.searchsorted(levels, grid, "right") - 1  # the highest level <= each grid point (-1: none)
    crps = np.mean([np.trapezoid((np.where(pos >= 0, np.cumsum(p[n])[np.maximum(pos, 0)], 0.0)
                                  - (grid >= y[n])) ** 2, grid) for n in range(2)])
    assert crps == pytest.approx(rps, abs=1e-4)
    s = ordinal_scores(y, p, levels, interval=0.7)
    assert s["accuracy"] == 0.5 and s["mae_median"] == pytest.approx((1 + 0) / 2)
    assert s["coverage"] == 1.0  # {2, 3} holds 3 and {1, 2} holds 1
    with pytest.raises(ValueError, match="levels"):
        log_score([2.5, 1.0], p, levels)


def test_star_ppc_and_its_plot(fitted):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayes_mf.evaluate import star_ppc
    from bayes_mf.plots import plot_star_ppc

    est, df = fitted
    t = star_ppc(est, df, max_draws=100)
    assert list(t["level"]) == [1, 2, 3, 4, 5] and t["observed"].sum() == len(df)
    assert t["expected"].sum() == pytest.approx(len(df))
    assert np.all(t["lo"] <= t["hi"])
    # on its own training data the fitted model reproduces the star histogram
    assert np.all((t["observed"] >= t["lo"] - 0.1 * len(df)) & (t["observed"] <= t["hi"] + 0.1 * len(df)))
    fig, ax = plt.subplots()
    assert plot_star_ppc(est, df, max_draws=50, ax=ax) is ax
    assert len(ax.patches) == 5 and "stars" in ax.get_xlabel()
    plt.close(fig)


def test_compare_row_of_gibbs_ordinal():
    """The gibbs-ordinal method of compare: its row carries the ordinal metrics; JSON keeps them."""
    import json

    from bayes_mf.compare import make_estimator, run, to_json
    from bayes_mf.data import Ratings

    df = ordinal_frame(n_users=30, n_items=25, seed=2)
    train = Ratings.from_frame(df.iloc[: int(0.8 * len(df))])
    test = Ratings.from_frame(df.iloc[int(0.8 * len(df)):])
    est = make_estimator("gibbs-ordinal", 2, 0, draws=60, tune=30, chains=2, cores=1)
    assert est.likelihood == "ordinal"
    with pytest.warns(Warning):
        comp = run(train, test, ["gibbs-ordinal"], n_factors=2, estimators={"gibbs-ordinal": est})
    row = comp.table.iloc[0]
    assert row["log_score"] < 0 and 0 < row["rps"] < 4 and 0 <= row["accuracy"] <= 1
    assert 0 <= row["coverage"] <= 1 and row["lpd"] == row["log_score"]
    doc = json.loads(to_json(comp.table, data="toy", fold=None))
    assert {"log_score", "rps", "rhat_max", "ess_min", "converged"} <= set(doc["results"][0])


@pytest.mark.slow
@pytest.mark.parametrize("link", ["probit", "logistic"])
def test_pymc_ordinal_twin_runs_map_and_advi(link):
    """The PyMC twin (OrderedProbit, or OrderedLogistic) is an ordinary PyMC model: MAP and ADVI run on it
    and give increasing cut-points from 0 (fixed prior scales: a joint mode over learned scales collapses)."""
    import pymc as pm

    from bayes_mf.gibbs.twin import pymc_model

    df = ordinal_frame(n_users=20, n_items=15, density=0.5, seed=4)
    est = GibbsPMF(2, prior="fixed", likelihood="ordinal")
    with pymc_model(est, df, ordinal_link=link) as model:
        dt = pm.find_MAP(progressbar=False, random_seed=0, return_inferencedata=True, jitter=False,
                         maxiter=300)
        approx = pm.fit(300, method="advi", progressbar=False, random_seed=0)
    assert "cutpoints" in model.named_vars and model["rating"] in model.observed_RVs
    cuts = dt["posterior"]["cutpoints"].to_numpy().ravel()
    assert cuts[0] == 0 and np.all(np.diff(cuts) > 0) and cuts[-1] < 10
    assert np.isfinite(approx.hist).all() and approx.hist[-50:].mean() < approx.hist[:50].mean()
    with pytest.raises(ValueError, match="ordinal_link"):
        pymc_model(est, df, ordinal_link="cauchit")


@pytest.mark.parametrize("options", [dict(prior="bpmf", implicit="both"), dict(prior="adaptive"),
                                     dict(prior="bpmf", implicit="user", implicit_bias=True),
                                     dict(prior="fixed", biases=False, global_mean=False)])
def test_joint_rescaling_prior_terms_match_the_log_prior(options):
    """The g-dependent prior terms of the rescaling move (A, Q, L) equal the brute-force change of the
    log prior of mu, own biases, own factors and feature vectors under T_g, and T_g multiplies every
    linear predictor by g (so the probit likelihood sees g * (gamma - eta))."""
    from bayes_mf.gibbs import chain
    from bayes_mf.gibbs.moves import MU_PRIOR_PREC

    df = ordinal_frame(n_users=15, n_items=12, seed=3)
    from bayes_mf.data import Ratings

    # the settings and problem a fit would give its chains
    est = GibbsPMF(2, likelihood="ordinal", **options)
    est.rating_unit_, est._side_features = 1.0, {"user": None, "item": None}
    r = Ratings.from_frame(df)
    st = est._settings("numpy", r)
    problem, _ = est._problem(r)
    s = chain.initial_state(problem, st, 1)
    sw = chain.Sweeper(problem, st)
    for _ in range(3):
        sw.sweep(s)  # a state away from the start, hyper-parameters drawn
    k, ub = sw.k, sw.ub

    def log_prior(state):
        total = -0.5 * MU_PRIOR_PREC * state.mu**2
        for side in ("user", "item"):
            f = sw.feats[side]
            own = state.X[side] - (f.A @ state.W[side] if f is not None else 0.0)
            dev = own[:, :k] - state.m_f[side]
            total -= 0.5 * np.einsum("ik,kl,il->", dev, state.Lam_f[side], dev)
            if ub:
                total -= 0.5 * state.lam_b[side] * own[:, k] @ own[:, k]
            if f is not None:
                prec = state.prec_feat[side][f.groups]
                total -= 0.5 * np.sum(prec[:, : k + ub] * state.W[side][:, : k + ub] ** 2)
        return total

    import copy

    eta0 = sw.linear_predictor(s)
    prior = ordm._scale_prior(sw, s)
    g = 1.37
    moved = copy.deepcopy(s)
    ordm._rescale(sw, moved, g)
    np.testing.assert_allclose(sw.linear_predictor(moved), g * eta0, rtol=1e-12, atol=1e-12)
    expected = -0.5 * prior.A * (g * g - 1) - 0.5 * prior.Q * (g - 1) + prior.L * (np.sqrt(g) - 1)
    assert log_prior(moved) - log_prior(s) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # every row's coordinates, and the feature vectors' factors and free bias coordinates
    n_coords = int(st.global_mean) + sum(s.X[side].shape[0] * (ub + 0.5 * k) for side in ("user", "item"))
    n_coords += sum(s.W[side].shape[0] * 0.5 * k + ub * int(sw.feats[side].bias_cols.sum())
                    for side in ("user", "item") if s.W[side] is not None)
    assert prior.D == pytest.approx(n_coords)


def test_compiled_and_numpy_probit_likelihoods_agree():
    from bayes_mf.gibbs import ordinal_kernels as ok

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, 2000)
    eta = rng.normal(0.0, 20.0, 2000)  # far tails on both sides
    cuts = np.array([0.0, 0.7, 1.9, 2.4])
    for g in (1.0, 0.2, 4.0):
        a, b = ok.loglik_sum(codes, eta, cuts, g, True), ok.loglik_sum(codes, eta, cuts, g, False)
        assert a == pytest.approx(b, rel=1e-12)
    X_u, X_i = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    u, i = rng.integers(0, 7, 30), rng.integers(0, 5, 30)
    np.testing.assert_allclose(ok.linear_predictor(u, i, 0.3, X_u, X_i, 2, True, True),
                               ok.linear_predictor(u, i, 0.3, X_u, X_i, 2, True, False), rtol=1e-12)


def test_ordinal_fit_saves_and_loads(fitted, tmp_path):
    """A saved ordinal fit predicts the same star probabilities after loading (levels ride in the result)."""
    from bayes_mf import io

    est, df = fitted
    io.save(est, tmp_path / "ord")
    back = io.load(tmp_path / "ord")
    assert back.likelihood == "ordinal"
    np.testing.assert_array_equal(back.levels_, est.levels_)
    pd.testing.assert_frame_equal(back.predict_proba(df.iloc[:10]), est.predict_proba(df.iloc[:10]))


@pytest.mark.slow
def test_ordinal_sbc_ranks_are_uniform():
    """Simulation-based calibration of the whole ordinal sweep on data from its exact prior: ranks of a
    bias scale, a bias, the last cut-point and a held-out predictor among thinned draws are uniform
    (chi-square, 5 bins, 100 replications; about 100 s)."""
    from bayes_mf.gibbs.simulate import rank_uniformity, sbc_ranks

    ranks = sbc_ranks(100, draws=49, thin=5, burn_in=100, random_seed=0, likelihood="ordinal", n_levels=4,
                      n_users=12, n_items=10, n_factors=1, density=0.5, prior="adaptive", global_mean=False)
    assert set(ranks.columns) == {"sigma_b", "user_bias[0]", "cutpoints[-1]", "heldout[0]"}
    p = rank_uniformity(ranks, bins=5)
    assert (p > 1e-3).all(), p


def test_cli_compare_gibbs_ordinal_json(tmp_path, capsys):
    """``bayes-mf compare --methods gibbs-ordinal --json`` on a ratings file: the row has the ordinal keys."""
    import json

    from bayes_mf.cli import main

    path = tmp_path / "stars.csv"
    ordinal_frame(n_users=25, n_items=20, seed=5).to_csv(path, index=False)
    out = tmp_path / "r.json"
    with pytest.warns(Warning):  # 30 draws do not converge
        rc = main(["compare", "--data", str(path), "--methods", "gibbs-ordinal", "--rank", "2",
                   "--draws", "30", "--tune", "20", "--chains", "2", "--cores", "1", "--json", str(out)])
    assert rc == 0
    row = json.loads(out.read_text())["results"][0]
    assert row["method"] == "gibbs-ordinal" and row["log_score"] < 0 and row["rps"] > 0
    assert "log score" in capsys.readouterr().out
