"""Interweaved feature draws (GibbsPMF(interweave=)): the rows-held conditional, both kernel families,
and that the posterior does not change."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bayes_mf.datasets import simulate_pmf
from bayes_mf.gibbs import GibbsPMF, kernels
from bayes_mf.gibbs.simulate import rank_uniformity, sbc_ranks

FAMILIES = ["numpy"] + (["numba"] if kernels.HAVE_NUMBA else [])


@pytest.fixture(scope="module")
def sim():
    return simulate_pmf(40, 30, 2, density=0.4, noise_sd=0.5, global_mean=3.0, bias_sd=0.3, random_seed=3)


def _problem(seed=1, n=12, n_feat=6, d=3):
    rng = np.random.default_rng(seed)
    A = sp.random(n, n_feat, density=0.5, random_state=seed, format="csc")
    A.data = rng.uniform(0.2, 1.0, A.nnz)
    A.sort_indices()
    B = rng.normal(size=(d, d))
    return dict(A=A, X=rng.normal(size=(n, d)), W=rng.normal(size=(n_feat, d)), P=B @ B.T + d * np.eye(d),
                m=rng.normal(size=d), prec=rng.uniform(0.5, 2.0, (n_feat, d)))


def _step(family, pr, W, z, alpha=0.0, dims=None):
    A = pr["A"]
    kern = kernels._feature_step_centred_numba if family == "numba" else kernels._feature_step_centred_numpy
    dims = np.full(W.shape[0], W.shape[1], dtype=np.int64) if dims is None else dims
    ok = kern(A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data.astype(np.float64), pr["X"], W,
              pr["P"], pr["m"], pr["prec"], z, dims, alpha)
    assert ok is None or ok


@pytest.mark.parametrize("family", FAMILIES)
def test_rows_held_draw_is_the_exact_conditional(family):
    """W_0 given the effective rows: mean and covariance written out from the own parts' prior."""
    pr = _problem()
    A, X, W, P, m = pr["A"].toarray(), pr["X"], pr["W"], pr["P"], pr["m"]
    a = A[:, 0]
    rest = X - m - A @ W + np.outer(a, W[0])  # own parts minus their mean, without W_0's share
    Q = np.diag(pr["prec"][0]) + (a @ a) * P
    mean = np.linalg.solve(Q, P @ (a @ rest))
    d = W.shape[1]
    W0 = W.copy()
    _step(family, pr, W0, np.zeros_like(W))
    np.testing.assert_allclose(W0[0], mean, rtol=1e-10, atol=1e-12)
    # the noise enters as L^-T z: the covariance over unit z's is Q^-1
    cov = np.zeros((d, d))
    for j in range(d):
        z = np.zeros_like(W)
        z[0, j] = 1.0
        Wj = W.copy()
        _step(family, pr, Wj, z)
        cov += np.outer(Wj[0] - mean, Wj[0] - mean)
    np.testing.assert_allclose(cov, np.linalg.inv(Q), rtol=1e-10, atol=1e-12)
    # the effective rows stay; only the own parts X - A W move
    np.testing.assert_array_equal(pr["X"], X)


@pytest.mark.parametrize("family", FAMILIES)
def test_factor_only_vectors_keep_their_bias_coordinate_at_zero(family):
    """dims[l] = d - 1: W_0's leading block is drawn from its conditional given W_0[-1] = 0, in both steps."""
    pr = _problem(seed=4)
    A, X, W, P, m = pr["A"].toarray(), pr["X"], pr["W"].copy(), pr["P"], pr["m"]
    W[:, -1] = 0.0
    k = W.shape[1] - 1
    dims = np.full(len(W), k, dtype=np.int64)
    a = A[:, 0]
    rest = X - m - A @ W + np.outer(a, W[0])
    Q = np.diag(pr["prec"][0]) + (a @ a) * P
    mean = np.linalg.solve(Q[:k, :k], (P @ (a @ rest))[:k])
    W1 = W.copy()
    _step(family, pr, W1, np.ones_like(W) * 0.0, dims=dims)
    np.testing.assert_allclose(W1[0, :k], mean, rtol=1e-10, atol=1e-12)
    W2 = W.copy()
    _step(family, pr, W2, np.random.default_rng(1).normal(size=W.shape), alpha=-0.7, dims=dims)
    assert (W1[:, -1] == 0).all() and (W2[:, -1] == 0).all() and not np.allclose(W2[:, :k], W1[:, :k])
    # step 2 (own parts held): the bias coordinate stays at 0 and the rows do not move along it
    rng = np.random.default_rng(6)
    B = rng.normal(size=(A.shape[0], k + 1, k + 1))
    G = np.einsum("npq,nrq->npr", B, B) + np.eye(k + 1)
    G = 0.5 * (G + np.swapaxes(G, 1, 2))
    h = rng.normal(size=(A.shape[0], k + 1))
    kern = kernels._feature_step_numba if family == "numba" else kernels._feature_step_numpy
    Xo, Wo = X.copy(), W.copy()
    csc = pr["A"]
    kern(csc.indptr.astype(np.int64), csc.indices.astype(np.int64), csc.data.astype(np.float64), G, h, Xo, Wo,
         pr["prec"], rng.normal(size=W.shape), dims, -0.7)
    assert (Wo[:, -1] == 0).all() and np.array_equal(Xo[:, -1], X[:, -1]) and not np.allclose(Wo, W)


@pytest.mark.parametrize("family", FAMILIES)
def test_rows_held_overrelaxed_draw_is_the_adler_update(family):
    pr = _problem(seed=2)
    A, X, W, P, m = pr["A"].toarray(), pr["X"], pr["W"], pr["P"], pr["m"]
    rng = np.random.default_rng(0)
    z = rng.normal(size=W.shape)
    W1 = W.copy()
    _step(family, pr, W1, z, alpha=-0.7)
    a = A[:, 0]
    rest = X - m - A @ W + np.outer(a, W[0])
    Q = np.diag(pr["prec"][0]) + (a @ a) * P
    mean = np.linalg.solve(Q, P @ (a @ rest))
    L = np.linalg.cholesky(Q)
    expect = mean - 0.7 * (W[0] - mean) + np.sqrt(1 - 0.49) * np.linalg.solve(L.T, z[0])
    np.testing.assert_allclose(W1[0], expect, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_own_held_feature_draw_is_overrelaxed_too(family):
    """overrelax= also over-relaxes step 2: W_0' = m + alpha (W_0 - m) + sqrt(1 - alpha^2) L^-T z."""
    pr = _problem(seed=3)
    A, d = pr["A"], pr["W"].shape[1]
    rng = np.random.default_rng(5)
    B = rng.normal(size=(A.shape[0], d, d))
    G = np.einsum("npq,nrq->npr", B, B) + np.eye(d)
    G = 0.5 * (G + np.swapaxes(G, 1, 2))  # exactly symmetric, as the side step stores it
    h = rng.normal(size=(A.shape[0], d))
    kern = kernels._feature_step_numba if family == "numba" else kernels._feature_step_numpy
    args = (A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data.astype(np.float64), G, h)

    def first(z, alpha):
        X, W = pr["X"].copy(), pr["W"].copy()
        kern(*args, X, W, pr["prec"], z, np.full(len(W), d, dtype=np.int64), alpha)
        return W[0]

    zero = np.zeros_like(pr["W"])
    mean = first(zero, 0.0)
    LinvT = np.column_stack([first(np.eye(1, d * len(pr["W"]), j).reshape(pr["W"].shape), 0.0) - mean
                             for j in range(d)])  # column j: L^-T e_j
    z = rng.normal(size=pr["W"].shape)
    expect = mean - 0.7 * (pr["W"][0] - mean) + np.sqrt(1 - 0.49) * LinvT @ z[0]
    np.testing.assert_allclose(first(z, -0.7), expect, rtol=1e-10, atol=1e-12)


def test_numba_and_numpy_agree_with_interweaving(sim):
    if not kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    kw = dict(draws=30, tune=5, chains=2, cores=1, random_seed=4, implicit="both", interweave=True,
              overrelax=0.7)
    a, b = (GibbsPMF(2, backend=be, **kw).fit(sim.ratings) for be in ("numba", "numpy"))
    for v in ("sigma", "mu", "user_bias", "item_bias", "pred_check"):
        np.testing.assert_allclose(a.result_["posterior"][v].to_numpy(), b.result_["posterior"][v].to_numpy(),
                                   rtol=1e-7, atol=1e-9)


def test_interweaving_changes_the_draws_not_the_posterior(sim):
    """interweave=True and False agree on every identifiable quantity (within 4 MCSE)."""
    import arviz as az

    kw = dict(implicit="both", draws=1500, tune=300, chains=4, cores=1, random_seed=2)
    fits = {w: GibbsPMF(2, interweave=w, **kw).fit(sim.ratings) for w in (False, True)}
    a0 = fits[False].result_["posterior"]["sigma"].to_numpy()
    assert not np.array_equal(a0, fits[True].result_["posterior"]["sigma"].to_numpy())
    for v in ("sigma", "mu", "sigma_b", "sigma_c", "user_bias", "item_bias", "pred_check"):
        a, b = (fits[w].result_["posterior"].to_dataset()[[v]] for w in (False, True))
        diff = np.abs(a[v].mean(("chain", "draw")) - b[v].mean(("chain", "draw"))).to_numpy()
        mcse = np.sqrt(np.asarray(az.mcse(a)[v]) ** 2 + np.asarray(az.mcse(b)[v]) ** 2)
        assert np.mean(diff <= 4 * mcse) >= 0.95, (v, np.max(diff / mcse))


def test_sbc_with_interweaving_is_calibrated():
    ranks = sbc_ranks(80, draws=39, thin=5, burn_in=100, random_seed=17, n_users=12, n_items=10,
                      implicit="both", interweave=True)
    p = rank_uniformity(ranks, bins=4)
    assert (p > 0.001).all(), p.to_dict()


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_bad_interweave(sim, bad):
    with pytest.raises(ValueError, match="interweave"):
        GibbsPMF(2, interweave=bad, draws=5, tune=0, chains=2).fit(sim.ratings)
