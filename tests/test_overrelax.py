"""Over-relaxed row draws (GibbsPMF(overrelax=)): the algebra, both kernel families, and invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayes_mf.datasets import simulate_pmf
from bayes_mf.gibbs import GibbsPMF, kernels
from bayes_mf.gibbs.layout import _Side
from bayes_mf.gibbs.simulate import rank_uniformity, sbc_ranks


@pytest.fixture(scope="module")
def sim():
    return simulate_pmf(40, 30, 2, density=0.4, noise_sd=0.5, global_mean=3.0, bias_sd=0.3, random_seed=3)


def _tiny(seed=0):
    rng = np.random.default_rng(seed)
    n_rows, n_other, k = 5, 7, 2
    rows = np.repeat(np.arange(n_rows), 4)
    cols = rng.integers(0, n_other, rows.size)
    vals = rng.normal(3.0, 1.0, rows.size)
    other_F, other_b = rng.normal(size=(n_other, k)), rng.normal(size=n_other)
    d = k + 1
    A = rng.normal(size=(d, d))
    P, pm = A @ A.T + np.eye(d), rng.normal(size=(n_rows, d))
    return rows, cols, vals, n_rows, n_other, other_F, other_b, P, pm, rng.normal(size=(n_rows, d)), \
        rng.normal(size=(n_rows, d))


def _conditional(rows, cols, vals, n_rows, other_F, other_b, P, pm, mu, tau):
    """Mean and Cholesky factor of each row's Gaussian conditional, written out from the model."""
    X = np.c_[other_F, np.ones(len(other_F))]
    means, chols = [], []
    for r in range(n_rows):
        sel = rows == r
        Xr, y = X[cols[sel]], vals[sel] - mu - other_b[cols[sel]]
        G = P + tau * Xr.T @ Xr
        means.append(np.linalg.solve(G, P @ pm[r] + tau * Xr.T @ y))
        chols.append(np.linalg.cholesky(G))
    return means, chols


@pytest.mark.parametrize("family", ["numba", "numpy"])
@pytest.mark.parametrize("alpha", [0.0, -0.7])
def test_overrelaxed_draw_is_the_adler_update(family, alpha):
    """x' = m + alpha (x - m) + sqrt(1 - alpha^2) L^-T z for every row, in both kernel families."""
    if family == "numba" and not kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    rows, cols, vals, n_rows, n_other, F, b, P, pm, z, x_old = _tiny()
    mu, tau = 0.4, 1.7
    side = _Side(rows, cols, vals, n_rows, n_other, compact=False)
    if family == "numba":
        out = x_old.copy()
        assert kernels._side_step_numba(side.indptr, side.cols, side.vals, F, b, mu, 1, P, pm, tau, z, out,
                                        False, np.empty((1, 1, 1)), np.empty((1, 1)), alpha)
    else:
        out = kernels._side_step_numpy(side, F, b, mu, 1, P, pm, tau, z, None, None, x_old, alpha)
    means, chols = _conditional(rows, cols, vals, n_rows, F, b, P, pm, mu, tau)
    for r in range(n_rows):
        expect = means[r] + alpha * (x_old[r] - means[r]) + math.sqrt(1 - alpha**2) * np.linalg.solve(
            chols[r].T, z[r])
        np.testing.assert_allclose(out[r], expect, rtol=1e-10, atol=1e-12)


def test_overrelaxation_keeps_the_conditional():
    """Iterating the update from a conditional draw keeps mean and covariance (Monte Carlo, 20 000 rows)."""
    rows, cols, vals, n_rows, n_other, F, b, P, pm, _, _ = _tiny(1)
    side = _Side(rows, cols, vals, n_rows, n_other, compact=False)
    means, chols = _conditional(rows, cols, vals, n_rows, F, b, P, pm, 0.0, 1.0)
    rng = np.random.default_rng(2)
    m, L = means[0], chols[0]
    x = m + np.linalg.solve(L.T, rng.normal(size=(3, 20000))).T
    for _ in range(3):  # each step: every sample moved by the row-0 update with fresh noise
        z = rng.normal(size=x.shape)
        x = m + (-0.8) * (x - m) + math.sqrt(1 - 0.64) * np.linalg.solve(L.T, z.T).T
    cov = np.linalg.inv(L @ L.T)
    np.testing.assert_allclose(x.mean(axis=0), m, atol=4 * np.sqrt(np.diag(cov) / 20000).max())
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.05 * np.abs(cov).max())
    # and the kernel's own update of row 0 matches that formula (checked exactly above), so this
    # invariance is the kernel's
    assert side.indptr[1] == 4


def test_numba_and_numpy_agree_with_overrelaxation(sim):
    if not kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    kw = dict(draws=30, tune=5, chains=2, cores=1, overrelax=0.7, random_seed=4, implicit="user")
    a, b = (GibbsPMF(2, backend=be, **kw).fit(sim.ratings) for be in ("numba", "numpy"))
    for v in ("sigma", "mu", "user_bias", "pred_check"):
        np.testing.assert_allclose(a.result_["posterior"][v].to_numpy(), b.result_["posterior"][v].to_numpy(),
                                   rtol=1e-7, atol=1e-9)


def test_overrelaxation_leaves_the_posterior_unchanged(sim):
    """overrelax=0.7 and plain Gibbs agree on every identifiable quantity (within 4 MCSE)."""
    import arviz as az

    kw = dict(implicit="user", draws=1500, tune=300, chains=4, cores=1, random_seed=2)
    fits = {o: GibbsPMF(2, overrelax=o, **kw).fit(sim.ratings) for o in (0.0, 0.7)}
    for v in ("sigma", "mu", "sigma_b", "sigma_c", "user_bias", "pred_check"):
        a, b = (fits[o].result_["posterior"].to_dataset()[[v]] for o in (0.0, 0.7))
        diff = np.abs(a[v].mean(("chain", "draw")) - b[v].mean(("chain", "draw"))).to_numpy()
        mcse = np.sqrt(np.asarray(az.mcse(a)[v]) ** 2 + np.asarray(az.mcse(b)[v]) ** 2)
        assert np.mean(diff <= 4 * mcse) >= 0.95, (v, np.max(diff / mcse))


def test_sbc_with_overrelaxation_is_calibrated():
    ranks = sbc_ranks(80, draws=39, thin=5, burn_in=100, random_seed=13, n_users=12, n_items=10,
                      overrelax=0.7)
    p = rank_uniformity(ranks, bins=4)
    assert (p > 0.001).all(), p.to_dict()


@pytest.mark.parametrize("bad", [-0.1, 1.0, "0.5", True])
def test_bad_overrelax(sim, bad):
    with pytest.raises(ValueError, match="overrelax"):
        GibbsPMF(2, overrelax=bad, draws=5, tune=0, chains=2).fit(sim.ratings)
