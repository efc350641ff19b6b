"""Tests of the blocked Gibbs sampler (bayes_mf.gibbs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_mf import BiasBaseline, UnseenIdsWarning
from bayes_mf.data import Ratings
from bayes_mf.datasets import simulate_pmf
from bayes_mf.evaluate import rmse
from bayes_mf.gibbs import (
    HAVE_NUMBA,
    GibbsPMF,
    _feature_step_numpy,
    _implicit_matrix,
    _Side,
    _side_step_numpy,
)

needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
BACKENDS = ["numpy", pytest.param("numba", marks=needs_numba)]

FAST = dict(draws=60, tune=30, chains=2, cores=1)


def _split(r: Ratings, frac=0.2, seed=0):
    rng = np.random.default_rng(seed)
    test = rng.random(len(r)) < frac
    # keep every user and item in training so that held-out pairs are all "seen"
    test &= np.bincount(r.user, minlength=r.n_users)[r.user] > 3
    test &= np.bincount(r.item, minlength=r.n_items)[r.item] > 3
    return r.subset(~test, compact=False), r.subset(test, compact=False)


@pytest.fixture(scope="module")
def sim():
    return simulate_pmf(100, 80, 3, density=0.3, noise_sd=0.5, global_mean=3.0, bias_sd=0.3,
                        random_seed=1)


@pytest.fixture(scope="module")
def fitted(sim):
    train, test = _split(sim.ratings)
    model = GibbsPMF(3, **FAST, random_seed=1).fit(train)
    return model, train, test


# ----------------------------------------------------------------------------- result format
def test_result_structure(fitted):
    model, train, _ = fitted
    dt = model.result_
    post = dt["posterior"]
    assert dt.attrs["method"] == "gibbs"
    assert dt.attrs["n_factors"] == 3
    assert dt.attrs["sweeps_per_chain"] == 90
    assert dict(post.sizes)["chain"] == 2 and dict(post.sizes)["draw"] == 60
    assert post["U"].dims == ("chain", "draw", "user", "factor")
    assert post["V"].dims == ("chain", "draw", "item", "factor")
    for name in ("sigma", "mu", "sigma_u", "sigma_v", "sigma_b", "sigma_c"):
        assert post[name].dims == ("chain", "draw"), name
    assert post["user_bias"].dims == ("chain", "draw", "user")
    assert post["mu_u"].dims == ("chain", "draw", "factor")
    assert post["pred_check"].dims == ("chain", "draw", "check")
    assert post.sizes["check"] == 50
    # the check pairs are labelled with training ids and are training observations (in constant_data:
    # extra coordinates in the posterior break az.summary)
    const = dt["constant_data"]
    obs = const["check_obs"].to_numpy()
    np.testing.assert_array_equal(const["check_user"].to_numpy(), train.users.to_numpy()[train.user[obs]])
    np.testing.assert_array_equal(const["check_item"].to_numpy(), train.items.to_numpy()[train.item[obs]])
    assert not set(post.coords) & {"check_obs", "check_user", "check_item"}
    np.testing.assert_array_equal(post["user"].to_numpy(), train.users.to_numpy())
    assert dt["sample_stats"]["train_rmse"].dims == ("chain", "draw")
    assert np.all(post["sigma"].to_numpy() > 0)


def test_pred_check_is_the_mean_of_its_pairs(fitted):
    model, train, _ = fitted
    post = model.result_["posterior"]
    check = model.result_["constant_data"]["check_obs"].to_numpy()
    u, i = train.user[check], train.item[check]
    U, V = post["U"].to_numpy(), post["V"].to_numpy()
    eta = (post["mu"].to_numpy()[..., None] + post["user_bias"].to_numpy()[:, :, u]
           + post["item_bias"].to_numpy()[:, :, i] + np.einsum("cdpk,cdpk->cdp", U[:, :, u], V[:, :, i]))
    np.testing.assert_allclose(post["pred_check"].to_numpy(), eta, rtol=1e-10, atol=1e-10)


def test_diagnostics_on_identifiable_quantities(fitted):
    import arviz as az

    post = fitted[0].result_["posterior"]
    rhat = az.rhat(post["pred_check"])
    assert float(rhat.max()) < 1.2
    assert float(az.ess(post["sigma"])) > 10


def test_beats_bias_baseline(fitted):
    model, train, test = fitted
    pred = model.predict(test)
    base = BiasBaseline().fit(train).predict(test)
    assert rmse(test.rating, pred["mean"]) < 0.9 * rmse(test.rating, base["mean"])
    assert {"mean", "sd", "lo", "hi", "rating"} <= set(pred.columns)
    assert (pred["lo"] <= pred["mean"]).all() and (pred["mean"] <= pred["hi"]).all()


def test_unseen_ids_predicted_from_prior(fitted):
    model, *_ = fitted
    pairs = pd.DataFrame({"user": [0, 10_000], "item": [10_000, 0]})
    with pytest.warns(UnseenIdsWarning):
        pred = model.predict(pairs)
    assert np.isfinite(pred[["mean", "sd", "lo", "hi"]].to_numpy()).all()


# ----------------------------------------------------------------------------- reproducibility
def test_same_seed_identical(sim):
    r = sim.ratings
    kw = dict(draws=5, tune=2, chains=2, random_seed=7)
    a = GibbsPMF(2, cores=1, **kw).fit(r).result_["posterior"]
    b = GibbsPMF(2, cores=1, **kw).fit(r).result_["posterior"]
    c = GibbsPMF(2, cores=1, **{**kw, "random_seed": 8}).fit(r).result_["posterior"]
    for name in ("U", "sigma", "pred_check", "mu_u"):
        np.testing.assert_array_equal(a[name].to_numpy(), b[name].to_numpy())
    assert not np.array_equal(a["sigma"].to_numpy(), c["sigma"].to_numpy())
    # chains differ from each other
    assert not np.array_equal(a["sigma"].to_numpy()[0], a["sigma"].to_numpy()[1])


def test_same_seed_regardless_of_cores(sim):
    kw = dict(draws=5, tune=2, chains=2, random_seed=7)
    a = GibbsPMF(2, cores=1, **kw).fit(sim.ratings).result_["posterior"]
    b = GibbsPMF(2, cores=2, **kw).fit(sim.ratings).result_["posterior"]
    np.testing.assert_array_equal(a["U"].to_numpy(), b["U"].to_numpy())
    np.testing.assert_array_equal(a["sigma"].to_numpy(), b["sigma"].to_numpy())


# ----------------------------------------------------------------------------- recovery
@pytest.mark.parametrize("prior", ["bpmf", "adaptive"])
def test_recovery_on_data_from_the_model(prior):
    sim = simulate_pmf(120, 90, 2, density=0.35, noise_sd=0.5, global_mean=1.0, bias_sd=0.3,
                       random_seed=11)
    train, test = _split(sim.ratings, seed=3)
    model = GibbsPMF(2, prior=prior, draws=100, tune=50, chains=2, cores=1, clip=False,
                     random_seed=2).fit(train)
    pred = model.predict(test, interval=0.9)
    cover = np.mean((test.rating >= pred["lo"]) & (test.rating <= pred["hi"]))
    assert 0.85 <= cover <= 0.95, cover
    sig = model.result_["posterior"]["sigma"].to_numpy().ravel()
    lo, hi = np.quantile(sig, [0.05, 0.95])
    assert lo <= sim.sigma <= hi, (lo, hi)
    # the posterior mean is close to the noise-free truth
    truth = sim.mean(test.user, test.item)
    assert rmse(truth, pred["mean"]) < 0.35


def test_fixed_noise_is_kept(sim):
    model = GibbsPMF(2, sigma=0.7, draws=3, tune=1, chains=1).fit(sim.ratings)
    np.testing.assert_allclose(model.result_["posterior"]["sigma"].to_numpy(), 0.7)
    assert model.result_.attrs["noise"] == "fixed 0.7"


# ----------------------------------------------------------------------------- exact conditionals
def _tiny(seed=0, n_users=5, n_items=4, k=2):
    rng = np.random.default_rng(seed)
    pairs = [(u, i) for u in range(n_users) for i in range(n_items) if rng.random() < 0.7 or u == i]
    user = np.array([p[0] for p in pairs], dtype=np.int64)
    item = np.array([p[1] for p in pairs], dtype=np.int64)
    rating = rng.normal(3.0, 1.0, len(pairs))
    return rng, user, item, rating


def _side_step(backend, side, other_F, other_b, mu, use_bias, P, pm, tau, z, store=False):
    n_rows, d = pm.shape
    G_store = np.zeros((n_rows, d, d)) if store else np.empty((1, 1, 1))
    h_store = np.zeros((n_rows, d)) if store else np.empty((1, 1))
    if backend == "numpy":
        out = _side_step_numpy(side, other_F, other_b, mu, use_bias, P, pm, tau, z,
                               G_store if store else None, h_store if store else None)
    else:
        from bayes_mf.gibbs import _side_step_numba

        out = np.zeros((n_rows, d))
        assert _side_step_numba(side.indptr, side.cols, side.vals, other_F, other_b, mu, use_bias, P, pm,
                                tau, z, out, store, G_store, h_store)
    return out, G_store, h_store


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("use_bias", [0, 1])
def test_user_conditional_matches_dense_solve(backend, use_bias):
    """Mean and covariance of the per-user draw equal those of the dense Gaussian conditional."""
    rng, user, item, rating = _tiny()
    n_users, n_items, k = 5, 4, 2
    d = k + use_bias
    side = _Side(user, item, rating, n_users, n_items)
    F = rng.normal(size=(n_items, k))
    cb = rng.normal(size=n_items)
    mu, tau = 0.4, 2.5
    A = rng.normal(size=(d, d))
    P = A @ A.T + d * np.eye(d)
    pm = rng.normal(size=(n_users, d))
    mean, *_ = _side_step(backend, side, F, cb, mu, use_bias, P, pm, tau, np.zeros((n_users, d)))
    for u in range(n_users):
        rows = user == u
        X = F[item[rows]]
        y = rating[rows] - mu
        if use_bias:
            X = np.c_[X, np.ones(rows.sum())]
            y = y - cb[item[rows]]
        prec = P + tau * X.T @ X
        cond_mean = np.linalg.solve(prec, P @ pm[u] + tau * X.T @ y)
        np.testing.assert_allclose(mean[u], cond_mean, rtol=1e-10, atol=1e-12)
        # x = m + L^-T e_j for unit noise vectors e_j: sum of outer products = prec^-1
        cov = np.zeros((d, d))
        for j in range(d):
            z = np.zeros((n_users, d))
            z[u, j] = 1.0
            x, *_ = _side_step(backend, side, F, cb, mu, use_bias, P, pm, tau, z)
            cov += np.outer(x[u] - mean[u], x[u] - mean[u])
        np.testing.assert_allclose(cov, np.linalg.inv(prec), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_feature_conditional_matches_dense_solve(backend):
    """The first implicit-feedback vector W_0 is drawn from its exact Gaussian conditional."""
    rng, user, item, rating = _tiny(seed=4)
    n_users, n_items, k = 5, 4, 2
    d = k + 1
    mu, tau = 0.2, 1.7
    side = _Side(user, item, rating, n_users, n_items)
    A = _implicit_matrix(user, item, n_users, n_items)
    csc = A.tocsc()
    csc.sort_indices()
    f_indptr, f_rows, f_vals = csc.indptr.astype(np.int64), csc.indices.astype(np.int64), csc.data
    F = rng.normal(size=(n_items, k))
    cb = rng.normal(size=n_items)
    W = rng.normal(size=(n_items, d))
    X = rng.normal(size=(n_users, d)) + A @ W  # effective user vectors (own part + A W)
    prec = np.abs(rng.normal(size=(n_items, d))) + 0.5
    P = np.eye(d)
    _, G_store, h_store = _side_step("numpy", side, F, cb, mu, 1, P, np.zeros((n_users, d)), tau,
                                     np.zeros((n_users, d)), store=True)
    # dense conditional of W_0 given everything else: eta_n is linear in W_0
    xi = np.c_[F[item], np.ones(len(item))]
    a = A.toarray()[user, 0]
    const = mu + cb[item] + np.einsum("nd,nd->n", X[user] - a[:, None] * W[0], xi)
    D = a[:, None] * xi
    Q = np.diag(prec[0]) + tau * D.T @ D
    cond_mean = np.linalg.solve(Q, tau * D.T @ (rating - const))

    X1, W1 = X.copy(), W.copy()
    z = np.zeros((n_items, d))
    if backend == "numpy":
        _feature_step_numpy(f_indptr, f_rows, f_vals, G_store, h_store, X1, W1, prec, z, np.full(n_items, d))
    else:
        from bayes_mf.gibbs import _feature_step_numba

        assert _feature_step_numba(f_indptr, f_rows, f_vals, G_store, h_store, X1, W1, prec, z,
                                   np.full(n_items, d, dtype=np.int64), 0.0)
    # W_0 is updated first, so its value is the conditional mean (z = 0) given the initial state
    Xw = X.copy()
    Xw += np.outer(A.toarray()[:, 0], cond_mean - W[0])
    np.testing.assert_allclose(W1[0], cond_mean, rtol=1e-9, atol=1e-12)
    # and the effective vectors stay equal to own part + A W
    np.testing.assert_allclose(X1 - A @ W1, X - A @ W, rtol=1e-9, atol=1e-12)


@needs_numba
@pytest.mark.parametrize("implicit", [False, "both"])
def test_numpy_and_numba_backends_agree(sim, implicit):
    kw = dict(draws=4, tune=2, chains=1, implicit=implicit, random_seed=3)
    a = GibbsPMF(3, backend="numpy", **kw).fit(sim.ratings).result_["posterior"]
    b = GibbsPMF(3, backend="numba", **kw).fit(sim.ratings).result_["posterior"]
    for name in ("U", "V", "user_bias", "sigma", "mu", "pred_check"):
        np.testing.assert_allclose(a[name].to_numpy(), b[name].to_numpy(), rtol=1e-7, atol=1e-9)


# ----------------------------------------------------------------------------- model options
def test_implicit_and_side_features(sim):
    train, test = _split(sim.ratings)
    feats = pd.DataFrame({"g1": (np.arange(train.n_items) % 2).astype(float),
                          "g2": (np.arange(train.n_items) % 3 == 0).astype(float)},
                         index=train.items)
    model = GibbsPMF(3, implicit="both", **FAST).fit(train, item_features=feats)
    assert "implicit=both" in model.result_.attrs["model"]
    assert "item features" in model.result_.attrs["model"]
    pred = model.predict(test)
    base = BiasBaseline().fit(train).predict(test)
    assert rmse(test.rating, pred["mean"]) < rmse(test.rating, base["mean"])
    with pytest.raises(ValueError, match="item_features"):
        GibbsPMF(2, draws=2, tune=0, chains=1).fit(train, item_features=np.ones((3, 2)))
    with pytest.raises(ValueError, match="numeric"):
        GibbsPMF(2, draws=2, tune=0, chains=1).fit(
            train, user_features=pd.DataFrame({"x": ["a"] * train.n_users}, index=train.users))


@pytest.mark.parametrize("prior", ["fixed", "adaptive", "bpmf"])
def test_priors_without_biases(sim, prior):
    model = GibbsPMF(2, prior=prior, biases=False, global_mean=False, draws=5, tune=2,
                     chains=1).fit(sim.ratings)
    post = model.result_["posterior"]
    assert "user_bias" not in post and "mu" not in post
    if prior == "fixed":
        np.testing.assert_allclose(post["sigma_u"].to_numpy(), 1.0)


def test_store_factors_false_keeps_means_only(sim):
    model = GibbsPMF(2, store_factors=False, draws=5, tune=2, chains=2).fit(sim.ratings)
    assert "U" not in model.result_["posterior"]
    assert model.U_mean_.shape == (sim.ratings.n_users, 2)
    with pytest.raises(ValueError, match="store_factors"):
        model.predict(pd.DataFrame({"user": [0], "item": [0]}))


def test_thinning_and_sweep_count(sim):
    model = GibbsPMF(2, draws=4, tune=3, thin=3, chains=1).fit(sim.ratings)
    assert model.result_["posterior"].sizes["draw"] == 4
    assert model.result_.attrs["sweeps_per_chain"] == 15


@pytest.mark.parametrize("kw, match", [
    (dict(n_factors=0), "n_factors"),
    (dict(n_factors=2.5), "n_factors"),
    (dict(prior="wishart"), "prior"),
    (dict(draws=0), "draws"),
    (dict(tune=-1), "tune"),
    (dict(thin=0), "thin"),
    (dict(chains=0), "chains"),
    (dict(cores=0), "cores"),
    (dict(sigma=-1.0), "sigma"),
    (dict(sigma_u=0.0), "sigma_u"),
    (dict(implicit="users"), "implicit"),
    (dict(backend="cuda"), "backend"),
    (dict(gamma_prior=(1.0, -1.0)), "gamma_prior"),
    (dict(n_check=-1), "n_check"),
])
def test_bad_params_raise(sim, kw, match):
    with pytest.raises(ValueError, match=match):
        GibbsPMF(**kw).fit(sim.ratings)


# ----------------------------------------------------------------------------- Gibbs vs NUTS
def test_gibbs_agrees_with_nuts():
    """Posterior-predictive means of Gibbs and NUTS agree within 3 MCSE for >= 95 % of pairs.

    Same model on both sides: fixed priors U, V ~ N(0, 1), known noise sd, no
    biases, no global mean; 30 users x 20 items, rank 2.
    """
    import arviz as az
    import pymc as pm
    import xarray as xr

    sim = simulate_pmf(30, 20, 2, density=0.5, noise_sd=0.5, random_seed=5)
    r = sim.ratings
    sigma = 0.5
    gibbs = GibbsPMF(2, prior="fixed", biases=False, global_mean=False, sigma=sigma, sigma_u=1.0,
                     sigma_v=1.0, draws=1000, tune=200, chains=4, cores=1, random_seed=1).fit(r)
    with pm.Model():
        U = pm.Normal("U", 0.0, 1.0, shape=(r.n_users, 2))
        V = pm.Normal("V", 0.0, 1.0, shape=(r.n_items, 2))
        pm.Normal("R", (U[r.user] * V[r.item]).sum(axis=1), sigma, observed=r.rating)
        idata = pm.sample(draws=500, tune=500, chains=2, cores=1, nuts_sampler="pymc", random_seed=1,
                          progressbar=False, compute_convergence_checks=False)
    # every (user, item) pair of the grid: mean rating U_i . V_j per draw
    uu, ii = np.meshgrid(np.arange(r.n_users), np.arange(r.n_items), indexing="ij")
    uu, ii = uu.ravel(), ii.ravel()

    def eta(post):
        Ud, Vd = post["U"].to_numpy(), post["V"].to_numpy()
        return xr.DataArray(np.einsum("cdpk,cdpk->cdp", Ud[:, :, uu], Vd[:, :, ii]),
                            dims=("chain", "draw", "pair"))

    eg, en = eta(gibbs.result_["posterior"]), eta(idata["posterior"])
    diff = np.abs(eg.mean(("chain", "draw")) - en.mean(("chain", "draw"))).to_numpy()
    mcse = np.sqrt(az.mcse(eg).to_numpy() ** 2 + az.mcse(en).to_numpy() ** 2)
    frac = np.mean(diff <= 3 * mcse)
    assert frac >= 0.95, frac
    # the posterior spread too (more power against a wrong conditional than the mean alone)
    sd_diff = np.abs(eg.std(("chain", "draw")) - en.std(("chain", "draw"))).to_numpy()
    sd_mcse = np.sqrt(az.mcse(eg, method="sd").to_numpy() ** 2 + az.mcse(en, method="sd").to_numpy() ** 2)
    sd_frac = np.mean(sd_diff <= 3 * sd_mcse)
    assert sd_frac >= 0.95, sd_frac


def test_gibbs_agrees_with_its_pymc_twin():
    """The public PyMC twin of the adaptive prior with biases: NUTS on it and Gibbs agree on the
    scales, the mean and every pair's mean rating (within 4 joint MCSE)."""
    import arviz as az
    import pymc as pm

    from bayes_mf.gibbs.twin import pymc_model

    sim = simulate_pmf(30, 20, 2, density=0.5, noise_sd=0.5, global_mean=3.0, bias_sd=0.3, random_seed=5)
    r = sim.ratings
    gibbs = GibbsPMF(2, prior="adaptive", draws=1000, tune=200, chains=4, cores=1, random_seed=1)
    with pymc_model(gibbs, r):
        idata = pm.sample(draws=1000, tune=1000, chains=2, random_seed=1, progressbar=False,
                          target_accept=0.95, compute_convergence_checks=False)
    gibbs.fit(r)
    pg, pn = gibbs.result_["posterior"], idata["posterior"]
    assert int(idata["sample_stats"]["diverging"].sum()) == 0
    for name in ("sigma", "mu", "sigma_b", "sigma_c", "sigma_u", "sigma_v"):
        a, b = pg[name], pn[name]
        err = np.hypot(float(az.mcse(a)), float(az.mcse(b)))
        assert abs(float(a.mean()) - float(b.mean())) <= 4 * err, name
    pairs = np.arange(0, len(r), 7)

    def eta(post):
        U, V = post["U"].to_numpy(), post["V"].to_numpy()
        e = np.einsum("cdpk,cdpk->cdp", U[:, :, r.user[pairs]], V[:, :, r.item[pairs]])
        e += post["mu"].to_numpy()[..., None]
        e += post["user_bias"].to_numpy()[:, :, r.user[pairs]]
        return e + post["item_bias"].to_numpy()[:, :, r.item[pairs]]

    eg, en = eta(pg), eta(pn)
    mcse = np.hypot(az.mcse(eg), az.mcse(en))
    assert np.mean(np.abs(eg.mean((0, 1)) - en.mean((0, 1))) <= 4 * mcse) >= 0.95
    with pytest.raises(NotImplementedError, match="bpmf"):
        pymc_model(GibbsPMF(2), r)


def test_runs_without_numba(sim, monkeypatch):
    """Where numba is not installed, "auto" falls back to the NumPy kernels; "numba" says why it can't."""
    import bayes_mf.gibbs.kernels as kernels

    monkeypatch.setattr(kernels, "HAVE_NUMBA", False)
    model = GibbsPMF(2, backend="auto", draws=3, tune=1, chains=1).fit(sim.ratings)
    assert model.result_.attrs["backend"] == "numpy"
    assert model.compile_seconds_ == 0.0
    with pytest.raises(ValueError, match="numba is not installed"):
        GibbsPMF(2, backend="numba").fit(sim.ratings)


def test_progressbar(sim, capsys):
    GibbsPMF(2, draws=3, tune=1, chains=1, progressbar=True).fit(sim.ratings)
    assert "chain 0" in capsys.readouterr().err
