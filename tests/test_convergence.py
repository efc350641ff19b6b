"""Convergence by default: exact moves, dispersed starts, rounds until R-hat/ESS pass, honest warnings."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_mf import diagnostics
from bayes_mf.datasets import simulate_pmf
from bayes_mf.diagnostics import ConvergenceWarning
from bayes_mf.gibbs import GibbsPMF
from bayes_mf.gibbs.chain import Sweeper, _Settings, initial_state
from bayes_mf.gibbs.layout import _implicit_matrix
from bayes_mf.gibbs.simulate import rank_uniformity, sbc_ranks, simulate_prior


@pytest.fixture(scope="module")
def sim():
    return simulate_pmf(40, 30, 2, density=0.4, noise_sd=0.5, global_mean=3.0, bias_sd=0.3, random_seed=3)


def _problem(r, implicit: bool):
    feats = (_implicit_matrix(r.user, r.item, r.n_users, r.n_items), np.zeros(r.n_items, np.int64))
    return {"user": r.user.astype(np.int64), "item": r.item.astype(np.int64),
            "rating": r.rating.astype(float), "n_users": r.n_users, "n_items": r.n_items,
            "check_user": r.user[:3].astype(np.int64), "check_item": r.item[:3].astype(np.int64),
            "user_features": feats if implicit else None, "item_features": None}


def _eta(sw: Sweeper, s) -> np.ndarray:
    k = sw.k
    Xu, Xv = s.X["user"], s.X["item"]
    return s.mu + Xu[sw.user, k] + Xv[sw.item, k] + np.einsum("nk,nk->n", Xu[sw.user, :k], Xv[sw.item, :k])


@pytest.mark.parametrize("prior", ["bpmf", "adaptive", "fixed"])
@pytest.mark.parametrize("implicit", [False, True])
def test_invariant_moves_keep_every_prediction(sim, prior, implicit):
    """Translation, factor-scale and feature moves change the state but no predicted rating."""
    problem = _problem(sim.ratings, implicit)
    st = _Settings(2, prior, True, True, None, 1.0, 1.0, 1.0, (1.0, 1.0), 0.1, "numpy", False)
    s = initial_state(problem, st, 4)
    sw = Sweeper(problem, st)
    for _ in range(3):
        sw.sweep(s)
    own = {side: s.X[side] - (sw.feats[side].A @ s.W[side] if sw.feats[side] is not None else 0.0)
           for side in ("user", "item")}
    before, mu0, X0 = _eta(sw, s), s.mu, s.X["item"].copy()
    sw.invariant_moves(s, own)
    np.testing.assert_allclose(_eta(sw, s), before, rtol=0, atol=1e-9)
    assert s.mu != mu0 and not np.allclose(s.X["item"], X0)  # the moves did move
    # the own parts stay consistent with the effective rows and the feature vectors
    for side in ("user", "item"):
        f = sw.feats[side]
        expect = s.X[side] - (f.A @ s.W[side] if f is not None else 0.0)
        np.testing.assert_allclose(own[side], expect, atol=1e-9)


def test_moves_leave_the_posterior_unchanged(sim):
    """With and without the moves, long chains agree on every identifiable quantity (within 4 MCSE)."""
    import arviz as az

    kw = dict(prior="bpmf", implicit="user", draws=1500, tune=300, chains=4, cores=1, random_seed=2)
    fits = {mv: GibbsPMF(2, moves=mv, **kw).fit(sim.ratings) for mv in (True, False)}
    for v in ("sigma", "mu", "sigma_b", "sigma_c", "user_bias", "pred_check"):
        a, b = (fits[mv].result_["posterior"].to_dataset()[[v]] for mv in (True, False))
        diff = np.abs(a[v].mean(("chain", "draw")) - b[v].mean(("chain", "draw"))).to_numpy()
        mcse = np.sqrt(np.asarray(az.mcse(a)[v]) ** 2 + np.asarray(az.mcse(b)[v]) ** 2)
        assert np.mean(diff <= 4 * mcse) >= 0.95, (v, np.max(diff / mcse))
    # and they are the reason mu mixes: its ESS per draw with the moves is far higher
    ess = {mv: float(np.asarray(az.ess(fits[mv].result_["posterior"].to_dataset()[["mu"]])["mu"]))
           for mv in (True, False)}
    assert ess[True] > 2 * ess[False], ess


def test_sbc_default_prior_is_calibrated():
    """Ranks of the truth among posterior draws are uniform on data from the sampler's own prior."""
    ranks = sbc_ranks(80, draws=39, thin=5, burn_in=100, random_seed=11, n_users=12, n_items=10)
    assert set(ranks.columns) == {"sigma", "mu", "sigma_b", "user_bias[0]", "heldout[0]"}
    assert ranks.to_numpy().min() >= 0 and ranks.to_numpy().max() <= 39
    p = rank_uniformity(ranks, bins=4)
    assert (p > 0.001).all(), p.to_dict()


def test_rank_uniformity_detects_a_biased_sampler():
    """The check can fail: ranks piled at one end give a tiny p-value."""
    import pandas as pd

    ranks = pd.DataFrame({"x": np.r_[np.zeros(60, int), np.arange(20)]})
    ranks.attrs["draws"] = 39
    assert rank_uniformity(ranks, bins=4)["x"] < 1e-6


def test_simulate_prior_shapes():
    d = simulate_prior(15, 12, 2, prior="adaptive", implicit="both", n_heldout=3, random_seed=0)
    r = d.ratings
    assert r.n_users == 15 and r.n_items == 12 and d.heldout_eta.shape == (3,)
    observed = set(zip(r.user.tolist(), r.item.tolist(), strict=True))
    assert not observed & set(zip(d.heldout_user.tolist(), d.heldout_item.tolist(), strict=True))
    assert {"sigma", "mu", "sigma_b", "sigma_c", "user_bias", "item_bias"} <= set(d.truth)


def test_chains_start_dispersed(sim):
    problem = _problem(sim.ratings, False)
    st = _Settings(2, "bpmf", True, True, None, 1.0, 1.0, 1.0, (1.0, 1.0), 0.1, "numpy", False)
    a, b = (initial_state(problem, st, seed) for seed in (0, 1))
    assert a.mu != b.mu and a.tau != b.tau and a.lam_b["user"] != b.lam_b["user"]
    assert not np.allclose(a.X["user"][:, 2], b.X["user"][:, 2])  # biases differ too


def test_default_fit_runs_until_converged(sim):
    """draws=None: rounds until every identifiable quantity passes; the stored draws say so too."""
    model = GibbsPMF(2, chains=4, cores=1, random_seed=0).fit(sim.ratings)
    assert model.converged_ is True
    assert model.convergence_["ok"].all()
    table = diagnostics.convergence(model.result_, warn=False)
    assert (table["rhat_max"] <= 1.01).all() and (table[["ess_bulk_min", "ess_tail_min"]] >= 400).all().all()
    attrs = model.result_.attrs
    assert attrs["converged"] == "true" and attrs["sweeps_per_chain"] == model.n_sweeps_
    assert model.result_["posterior"].sizes["draw"] <= model.max_draws


def test_budget_exhausted_warns_and_says_what_to_change(sim):
    with pytest.warns(ConvergenceWarning, match="max_seconds=1"):
        model = GibbsPMF(2, chains=2, cores=1, target_ess=1e7, max_seconds=1.0,
                         random_seed=0).fit(sim.ratings)
    assert model.converged_ is False
    assert model.result_.attrs["stopped"] == "budget"


def test_explicit_length_is_exact_and_warns_when_short(sim):
    with pytest.warns(ConvergenceWarning, match="pass draws=None"):
        model = GibbsPMF(2, draws=7, tune=3, chains=2, cores=1).fit(sim.ratings)
    assert model.result_["posterior"].sizes["draw"] == 7 and model.n_sweeps_ == 10
    assert model.converged_ is False


def test_same_seed_same_numbers_whatever_the_cores(sim):
    """Rounds, thinning and stopping depend on the draws only, never on where the chains ran."""
    kw = dict(chains=2, random_seed=5, target_ess=100)
    a = GibbsPMF(2, cores=1, **kw).fit(sim.ratings)
    b = GibbsPMF(2, cores=2, **kw).fit(sim.ratings)
    assert a.n_sweeps_ == b.n_sweeps_
    np.testing.assert_array_equal(a.result_["posterior"]["pred_check"].to_numpy(),
                                  b.result_["posterior"]["pred_check"].to_numpy())


@pytest.mark.parametrize("bad, match", [(dict(target_rhat=1.0), "target_rhat"),
                                        (dict(target_ess=0), "target_ess"),
                                        (dict(max_seconds=-1), "max_seconds"),
                                        (dict(max_draws=3), "max_draws")])
def test_bad_convergence_options(sim, bad, match):
    with pytest.raises(ValueError, match=match):
        GibbsPMF(2, **bad).fit(sim.ratings)


@pytest.mark.parametrize("bad, match", [(dict(density=0), "density"), (dict(n_users=0), "n_users"),
                                        (dict(prior="wishart"), "prior"), (dict(implicit="all"), "implicit")])
def test_simulate_prior_rejects_bad_options(bad, match):
    with pytest.raises(ValueError, match=match):
        simulate_prior(**bad)


def test_zero_factor_means_moves_keep_predictions_and_means_stay_zero(sim):
    """BPMF with factor_means=False: the translation acts on V itself (its prior is N(0, Lambda^-1))."""
    problem = _problem(sim.ratings, False)
    st = _Settings(2, "bpmf", True, True, None, 1.0, 1.0, 1.0, (1.0, 1.0), 0.1, "numpy", False,
                   factor_means=False)
    s = initial_state(problem, st, 4)
    sw = Sweeper(problem, st)
    for _ in range(3):
        sw.sweep(s)
    own = {side: s.X[side].copy() for side in ("user", "item")}
    before, X0 = _eta(sw, s), s.X["item"].copy()
    sw.invariant_moves(s, own)
    np.testing.assert_allclose(_eta(sw, s), before, rtol=0, atol=1e-9)
    assert not np.allclose(s.X["item"], X0)
    assert not np.any(s.m_f["user"]) and not np.any(s.m_f["item"])
    fit = GibbsPMF(2, factor_means=False, draws=20, tune=5, chains=2, cores=1).fit(sim.ratings)
    post = fit.result_["posterior"]
    assert "mu_u" not in post and "mu_v" not in post and "user_bias" in post


def test_sbc_zero_factor_means_is_calibrated():
    """SBC of the Wishart-only BPMF prior: the translation move with V's own prior is exact."""
    ranks = sbc_ranks(80, draws=39, thin=5, burn_in=100, random_seed=12, n_users=12, n_items=10,
                      factor_means=False)
    p = rank_uniformity(ranks, bins=4)
    assert (p > 0.001).all(), p.to_dict()


def test_factor_means_default_and_validation(sim):
    from bayes_mf.gibbs.inputs import factor_means_on

    assert GibbsPMF().factor_means is True
    assert factor_means_on(GibbsPMF(factor_means=None)) is False  # biases on: redundant, fixed at 0
    assert factor_means_on(GibbsPMF(factor_means=None, biases=False)) is True
    with pytest.raises(ValueError, match="factor_means"):
        GibbsPMF(factor_means="yes", draws=5, tune=0, chains=2).fit(sim.ratings)


class _FixedNormals:
    """A stand-in generator whose standard normals are given: the draw becomes a known function."""

    def __init__(self, z):
        self.z = np.asarray(z, float)

    def standard_normal(self, size=None):
        return self.z.copy()


@pytest.mark.parametrize("kind", ["bpmf", "wishart", "iso"])
def test_translation_conditional_is_the_exact_gaussian(kind):
    """translate_factors draws a from N(Q^-1 h, Q^-1) of the orbit density pi(T_a x), checked numerically."""
    from bayes_mf.gibbs.moves import MU_PRIOR_PREC, translate_factors
    from bayes_mf.gibbs.priors import BETA0

    rng = np.random.default_rng(0)
    k, n, n_o = 3, 7, 9
    V = rng.normal(0.4, 1.0, (n, k))
    U, b = rng.normal(0.2, 1.0, (n_o, k)), rng.normal(0.0, 0.5, n_o)
    A = rng.normal(size=(k, k))
    Lam, mean, lam, lam_b, mu = A @ A.T + np.eye(k), rng.normal(size=k), 1.7, 3.0, 2.5
    prior = {"bpmf": ("bpmf", Lam, mean), "wishart": ("wishart", Lam), "iso": ("iso", lam)}[kind]
    m = U.mean(axis=0)

    def logp(a):  # every prior term the shift a touches (the likelihood does not see it)
        if kind == "bpmf":
            own = -0.5 * BETA0 * (mean + a) @ Lam @ (mean + a)
        elif kind == "wishart":
            own = -0.5 * np.einsum("nk,kl,nl->", V + a, Lam, V + a)
        else:
            own = -0.5 * lam * np.sum((V + a) ** 2)
        return own - 0.5 * lam_b * np.sum((b - (U - m) @ a) ** 2) - 0.5 * MU_PRIOR_PREC * (mu - m @ a) ** 2

    mode, _, _ = translate_factors(_FixedNormals(np.zeros(k)), V, prior, U, b, lam_b, mu)
    cols = [translate_factors(_FixedNormals(e), V, prior, U, b, lam_b, mu)[0] - mode for e in np.eye(k)]
    cov = np.array(cols).T @ np.array(cols)  # L^-T L^-1 = Q^-1
    eps, I = 1e-4, np.eye(k)
    grad = np.array([(logp(mode + eps * e) - logp(mode - eps * e)) / (2 * eps) for e in I])
    hess = np.array([[(logp(mode + eps * (e + f)) - logp(mode + eps * (e - f)) - logp(mode - eps * (e - f))
                       + logp(mode - eps * (e + f))) / (4 * eps**2) for f in I] for e in I])
    np.testing.assert_allclose(grad, 0.0, atol=1e-5 * np.abs(hess).max())
    np.testing.assert_allclose(cov, np.linalg.inv(-hess), rtol=1e-4)
    # the returned compensation moves the other side's biases and mu exactly along the orbit
    a, db, ma = translate_factors(np.random.default_rng(1), V, prior, U, b, lam_b, mu)
    np.testing.assert_allclose(db, -(U - m) @ a)
    assert ma == pytest.approx(m @ a)


def test_wishart_conditional_moments():
    """Lambda | X ~ W((I + X'X)^-1, k + n): the Monte Carlo mean matches nu W within 3 %."""
    from bayes_mf.gibbs.priors import _wishart

    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 3)) @ np.diag([1.0, 0.5, 2.0])
    draws = np.array([_wishart(rng, X) for _ in range(4000)])
    expect = (3 + 30) * np.linalg.inv(np.eye(3) + X.T @ X)
    np.testing.assert_allclose(draws.mean(axis=0), expect, atol=0.03 * np.abs(expect).max())


def _nuts_like_tree(diverging, **scalars):
    import xarray as xr

    post = xr.Dataset({k: (("chain", "draw"), v) for k, v in scalars.items()})
    stats = xr.Dataset({"diverging": (("chain", "draw"), diverging)})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


def test_divergence_locations_name_the_tail_the_divergences_sit_in():
    rng = np.random.default_rng(0)
    sigma_c = rng.gamma(20.0, 0.01, size=(2, 500))
    mu = rng.normal(3.5, 0.01, size=(2, 500))
    # divergences at the 30 smallest sigma_c draws (a funnel), unrelated to mu
    div = np.zeros(sigma_c.size, bool)
    div[np.argsort(sigma_c.ravel())[:30]] = True
    dt = _nuts_like_tree(div.reshape(2, 500), sigma_c=sigma_c, mu=mu)
    where = diagnostics.divergence_locations(dt)
    assert len(where) == 1 and where[0].startswith("sigma_c low")
    health = diagnostics.sampler_health(dt)
    assert health["divergences"] == 30 and sum(health["divergences_by_chain"]) == 30
    assert health["divergent_at"] == where
    # divergences at random draws point nowhere; none at all gives nothing to report
    rand = np.zeros(sigma_c.size, bool)
    rand[rng.choice(sigma_c.size, 30, replace=False)] = True
    assert diagnostics.divergence_locations(_nuts_like_tree(rand.reshape(2, 500), sigma_c=sigma_c)) == []
    none = _nuts_like_tree(np.zeros((2, 500), bool), sigma_c=sigma_c)
    assert diagnostics.divergence_locations(none) == []
    assert "divergent_at" not in diagnostics.sampler_health(none)
