"""Heteroscedastic noise (GibbsPMF(heteroscedastic=True), bayes_mf.gibbs.noise): kernels, moves, SBC, fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import gamma

from bayes_mf.gibbs import GibbsPMF, kernels
from bayes_mf.gibbs.layout import _Side
from bayes_mf.gibbs.noise import SHAPE_PRIOR, _scale_logp, _shape_logp, _swap_logp
from bayes_mf.gibbs.simulate import rank_uniformity, sbc_ranks, simulate_prior


def _weighted_conditional(rows, cols, vals, w, n_rows, F, b, P, pm, mu, tau):
    """Mean and precision of each row's conditional under weights w, written out from the model."""
    X = np.c_[F, np.ones(len(F))]
    out = []
    for r in range(n_rows):
        sel = rows == r
        Xr, y, wr = X[cols[sel]], vals[sel] - mu - b[cols[sel]], w[sel]
        G = P + tau * (Xr * wr[:, None]).T @ Xr
        out.append((np.linalg.solve(G, P @ pm[r] + tau * Xr.T @ (wr * y)), G))
    return out


@pytest.mark.parametrize("family", ["numba", "numba-unpacked", "numpy"])
def test_weighted_side_step_is_the_weighted_conditional(family, monkeypatch):
    """With per-rating weights w the row draw is N(G^-1 h, G^-1), G = P + tau sum w x x^T, in both kernels
    (the compiled one with and without its table of packed outer products)."""
    if family != "numpy" and not kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    if family == "numba-unpacked":
        monkeypatch.setattr(kernels, "_PACKED_MAX_BYTES", 0)
        family = "numba"
    rng = np.random.default_rng(0)
    n_rows, n_other, k = 5, 7, 2
    rows = np.repeat(np.arange(n_rows), 4)
    rng.shuffle(rows)  # input order differs from the CSR order: the weights must follow the ratings
    cols = rng.integers(0, n_other, rows.size)
    vals = rng.normal(3.0, 1.0, rows.size)
    w = rng.gamma(2.0, 0.5, rows.size)
    F, b = rng.normal(size=(n_other, k)), rng.normal(size=n_other)
    A = rng.normal(size=(k + 1, k + 1))
    P, pm, z = A @ A.T + np.eye(k + 1), rng.normal(size=(n_rows, k + 1)), rng.normal(size=(n_rows, k + 1))
    mu, tau = 0.4, 1.7
    side = _Side(rows, cols, vals, n_rows, n_other, compact=False)
    side.set_wts(w)
    if family == "numba":
        out = np.zeros((n_rows, k + 1))
        assert kernels._side_step_numba(side.indptr, side.cols, side.vals, F, b, mu, 1, P, pm, tau, z, out,
                                        False, np.empty((1, 1, 1)), np.empty((1, 1)), 0.0, side.wts)
    else:
        out = kernels._side_step_numpy(side, F, b, mu, 1, P, pm, tau, z, None, None, wts=side.wts_obs)
    for r, (m, G) in enumerate(_weighted_conditional(rows, cols, vals, w, n_rows, F, b, P, pm, mu, tau)):
        L = np.linalg.cholesky(G)
        np.testing.assert_allclose(out[r], m + np.linalg.solve(L.T, z[r]), rtol=1e-10, atol=1e-12)
    # and the weights matter: unit weights give another draw
    if family == "numba":
        plain = np.zeros((n_rows, k + 1))
        kernels._side_step_numba(side.indptr, side.cols, side.vals, F, b, mu, 1, P, pm, tau, z, plain,
                                 False, np.empty((1, 1, 1)), np.empty((1, 1)), 0.0)
        assert not np.allclose(plain, out)


def test_orbit_densities_match_the_joint():
    """The slice steps' log densities differ from the brute-force joint (with Jacobians) by a constant."""
    rng = np.random.default_rng(1)
    a0, b0 = 1.0, 1.0
    alpha, beta, tau, au, av = rng.gamma(3.0, 0.3, 9), rng.gamma(2.0, 0.5, 6), 1.3, 2.5, 4.0
    ts = np.array([-0.7, -0.1, 0.0, 0.4, 1.1])

    def logg(x, a):
        return float(gamma.logpdf(x, a, scale=1.0 / a).sum())

    # (tau, alpha) -> (tau / g, g alpha): log pi + (n - 1) t (Jacobian g^(n-1), Haar measure dt)
    brute = [float(gamma.logpdf(tau * math.exp(-t), a0, scale=1 / b0)) + logg(alpha * math.exp(t), au)
             + (alpha.size - 1) * t for t in ts]
    ours = [_scale_logp(t, alpha.size, au, alpha.sum(), tau, a0, b0) for t in ts]
    np.testing.assert_allclose(np.diff(brute), np.diff(ours), rtol=1e-10)
    # (alpha, beta) -> (g alpha, beta / g)
    brute = [logg(alpha * math.exp(t), au) + logg(beta * math.exp(-t), av) + (alpha.size - beta.size) * t
             for t in ts]
    ours = [_swap_logp(t, alpha.size, au, alpha.sum(), beta.size, av, beta.sum()) for t in ts]
    np.testing.assert_allclose(np.diff(brute), np.diff(ours), rtol=1e-10)


def test_collapsed_shape_density_integrates_the_multipliers_out():
    """log p(t = log a | residuals): each row's multiplier integrated out by quadrature; prior, Jacobian."""
    from scipy.integrate import quad
    from scipy.stats import norm

    rng = np.random.default_rng(2)
    rows = [rng.normal(0.0, 0.8, n) for n in (1, 3, 6)]  # residuals e_ij of three rows
    c = [rng.gamma(4.0, 0.3, e.size) for e in rows]  # tau * beta_j of each rating
    p, q = SHAPE_PRIOR

    def brute(t):
        a, total = math.exp(t), 0.0
        for e, cj in zip(rows, c, strict=True):
            def f(x, e=e, cj=cj, a=a):
                return math.exp(float(norm.logpdf(e, 0.0, 1.0 / np.sqrt(cj * x)).sum())
                                + float(gamma.logpdf(x, a, scale=1 / a)))
            total += math.log(quad(f, 0.0, np.inf, limit=200)[0])
        return total + float(gamma.logpdf(a, p, scale=1 / q)) + t

    counts = np.array([e.size for e in rows], float)
    S = np.array([float(cj @ (e * e)) for e, cj in zip(rows, c, strict=True)])
    ts = [-0.5, 0.3, 1.0, 2.0]
    ours = [_shape_logp(t, counts, S) for t in ts]
    np.testing.assert_allclose(np.diff([brute(t) for t in ts]), np.diff(ours), rtol=1e-6)


def test_sbc_heteroscedastic_is_calibrated():
    """SBC with per-user and per-item noise: sigma, mu, a bias, a shape and a held-out mean."""
    ranks = sbc_ranks(80, draws=39, thin=5, burn_in=100, random_seed=21, n_users=12, n_items=10,
                      heteroscedastic=True)
    assert "noise_shape_user" in ranks.columns and "sigma" in ranks.columns
    p = rank_uniformity(ranks, bins=4)
    assert (p > 0.001).all(), p.to_dict()


@pytest.fixture(scope="module")
def noisy():
    """Ratings where user 0 is ten times noisier than the others."""
    sim = simulate_prior(30, 25, 2, density=0.6, sigma=0.3, random_seed=4)
    r = sim.ratings
    rating = np.array(r.rating, float)
    rng = np.random.default_rng(0)
    sel = r.user == 0
    rating[sel] += rng.normal(0.0, 3.0, int(sel.sum()))
    from bayes_mf.data import Ratings

    return Ratings(r.user, r.item, rating, r.users, r.items)


def test_noisy_user_gets_low_precision_and_wide_intervals(noisy):
    fit = GibbsPMF(2, heteroscedastic=True, draws=200, tune=100, chains=2, progressbar=False,
                   rating_unit=1.0, random_seed=0).fit(noisy)
    post = fit.result_["posterior"]
    assert post["user_noise"].dims == ("chain", "draw", "user")
    assert post["item_noise"].sizes["item"] == 25
    m = post["user_noise"].mean(("chain", "draw")).to_numpy()
    assert m[0] < 0.1 * np.median(m[1:])
    assert "heteroscedastic" in fit.result_.attrs["noise"]
    import pandas as pd

    pairs = pd.DataFrame({"user": [0, 1, 99], "item": [0, 0, 0]})  # 99: unseen, its multiplier from the prior
    with pytest.warns(UserWarning):
        pred = fit.predict(pairs)
    width = (pred["hi"] - pred["lo"]).to_numpy()
    assert width[0] > 3 * width[1] and np.isfinite(width[2])
    # the stored predictive and pointwise log likelihood use each pair's sd
    ll = fit.result_["log_likelihood"]["rating"].mean(("chain", "draw")).to_numpy()
    obs = fit.result_["log_likelihood"]["obs"].to_numpy()
    users = fit.result_["constant_data"]["user_code"].to_numpy()[obs]
    assert np.isfinite(ll).all() and ll[users == 0].mean() < ll[users != 0].mean() - 1.0


def test_heteroscedastic_same_seed_same_numbers_and_threads(noisy):
    kw = dict(heteroscedastic=True, draws=20, tune=10, chains=2, cores=1, progressbar=False, rating_unit=1.0,
              random_seed=3)
    a = GibbsPMF(2, threads=1, **kw).fit(noisy).result_["posterior"]
    b = GibbsPMF(2, threads=2, **kw).fit(noisy).result_["posterior"]
    for name in ("sigma", "user_noise", "noise_shape_item", "user_bias"):
        np.testing.assert_array_equal(a[name].to_numpy(), b[name].to_numpy())


def test_heteroscedastic_numpy_backend_agrees_in_distribution(noisy):
    kw = dict(heteroscedastic=True, draws=300, tune=100, chains=2, progressbar=False, rating_unit=1.0,
              random_seed=5)
    a = GibbsPMF(2, backend="numpy", **kw).fit(noisy).result_["posterior"]
    b = GibbsPMF(2, backend="numba", **kw).fit(noisy).result_["posterior"]
    for name in ("sigma", "mu"):
        assert abs(float(a[name].mean()) - float(b[name].mean())) < 4 * float(b[name].std()), name


def test_heteroscedastic_refuses_ordinal_and_dask(tiny_ratings):
    with pytest.raises(ValueError, match="likelihood='gaussian'"):
        GibbsPMF(heteroscedastic=True, likelihood="ordinal", draws=5, tune=0).fit(tiny_ratings)
    with pytest.raises(ValueError, match="heteroscedastic"):
        GibbsPMF(heteroscedastic="yes", draws=5, tune=0).fit(tiny_ratings)
    with pytest.raises(ValueError, match="heteroscedastic"):
        GibbsPMF(heteroscedastic=True, backend="dask", draws=5, tune=0).fit(tiny_ratings)


def test_heteroscedastic_fit_saves_and_loads(noisy, tmp_path):
    from bayes_mf import io

    fit = GibbsPMF(2, heteroscedastic=True, draws=30, tune=10, chains=2, progressbar=False, rating_unit=1.0,
                   random_seed=0).fit(noisy)
    path = tmp_path / "fit"
    io.save(fit, path)
    back = io.load(path)
    import pandas as pd

    pairs = pd.DataFrame({"user": [0, 1, 2], "item": [0, 1, 2]})
    a, b = fit.predict(pairs, random_seed=1), back.predict(pairs, random_seed=1)
    np.testing.assert_allclose(a[["mean", "lo", "hi"]].to_numpy(), b[["mean", "lo", "hi"]].to_numpy())
    assert back.heteroscedastic is True
