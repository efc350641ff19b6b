"""The approximation ladder: plug-in log density, Laplace, Pathfinder, low-rank ADVI, fidelity."""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pymc")

from bayes_mf.compare import compare, run  # noqa: E402
from bayes_mf.data import train_test_split  # noqa: E402
from bayes_mf.datasets import simulate_pmf  # noqa: E402
from bayes_mf.fidelity import fidelity, format_fidelity  # noqa: E402
from bayes_mf.inference import PMF  # noqa: E402
from bayes_mf.inference.gaussian import plug_in, row_precisions  # noqa: E402
from bayes_mf.inference.laplace import laplace_draws  # noqa: E402
from bayes_mf.inference.pathfinder import Pathfinder  # noqa: E402


@pytest.fixture(scope="module")
def data():
    sim = simulate_pmf(30, 20, 2, density=0.4, noise_sd=0.5, global_mean=3.0, bias_sd=0.3, random_seed=2)
    return train_test_split(sim.ratings, 0.2, random_seed=0)


@pytest.fixture(scope="module")
def map_fit(data):
    return PMF(2, priors="bpmf", method="map").fit(data[0])


def _pymc_point(model, m, theta):
    p = m.unpack(theta)
    return {name: np.asarray(p[name]) for name in model.initial_point()}


def test_plug_in_log_density_and_gradient_are_pymcs(data, map_fit):
    m = plug_in(map_fit, data[0])
    model = map_fit._sampling_model(data[0], plug_in=True)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    rng = np.random.default_rng(0)
    a, b = (m.pack(map_fit.map_point_) + 0.3 * rng.standard_normal(m.size) for _ in range(2))
    # equal up to the normalising constant
    assert logp(_pymc_point(model, m, a)) - logp(_pymc_point(model, m, b)) == pytest.approx(
        m.neg_logp_grad(b)[0] - m.neg_logp_grad(a)[0], rel=1e-9)
    # PyMC orders the gradient by value variables: U, V, mu, user_bias, item_bias
    g = dlogp(_pymc_point(model, m, a))
    p = m.unpack(-m.neg_logp_grad(a)[1])
    mine = np.concatenate([np.ravel(p["U"]), np.ravel(p["V"]), [p["mu"]], p["user_bias"], p["item_bias"]])
    names = [v.name for v in model.value_vars]
    assert names == ["U", "V", "mu", "user_bias", "item_bias"]
    np.testing.assert_allclose(g, mine, rtol=1e-8, atol=1e-8)


def test_map_numpy_mode_is_the_pymc_mode(data, map_fit):
    from bayes_mf.inference.gaussian import lbfgs

    # the NumPy objective at the validated shrink is PyMC's MAP model (same gradient) ...
    m = plug_in(map_fit, data[0], shrink=map_fit.shrink_)
    model = map_fit.model_
    theta = m.pack(map_fit.map_point_)
    g = model.compile_dlogp()(_pymc_point(model, m, theta))
    p = m.unpack(-m.neg_logp_grad(theta)[1])
    mine = np.concatenate([np.ravel(p["U"]), np.ravel(p["V"]), [p["mu"]], p["user_bias"], p["item_bias"]])
    np.testing.assert_allclose(g, mine, rtol=1e-8, atol=1e-10)
    # ... and the stored point is its mode: ftol=1e-6 stops on the per-step reduction, so allow
    # 1e-4 of the log density (0.01 here) to a run with tight tolerances
    tight = lbfgs(m, theta, ftol=1e-14, gtol=1e-10)
    assert 0 <= m.neg_logp_grad(theta)[0] - tight.fun < 1e-4 * abs(tight.fun)


def test_laplace_blocks_are_the_hessian_and_draws_have_their_inverse(data, map_fit):
    m = plug_in(map_fit, data[0])
    model = map_fit._sampling_model(data[0], plug_in=True)
    theta = m.pack(map_fit.map_point_)
    prec = row_precisions(m, theta)
    # PyMC's dense Hessian (tiny problem): the block of user 3's (U_3, b_3)
    H = -model.compile_d2logp(negate_output=False)(_pymc_point(model, m, theta))
    nu, ni, k = m.n_users, m.n_items, m.k
    i = 3
    idx = [i * k + f for f in range(k)] + [(nu + ni) * k + 1 + i]  # U_3 then user_bias_3 (mu comes first)
    np.testing.assert_allclose(prec["user"][i], H[np.ix_(idx, idx)], rtol=1e-8)
    assert prec["mu"] == pytest.approx(H[(nu + ni) * k, (nu + ni) * k], rel=1e-10)
    # and by finite differences of the NumPy gradient
    pos = [i * k + f for f in range(k)] + [(nu + ni) * k + i]
    fd = np.empty((k + 1, k + 1))
    for c, j in enumerate(pos):
        e = np.zeros(m.size)
        e[j] = 1e-5
        fd[:, c] = (m.neg_logp_grad(theta + e)[1][pos] - m.neg_logp_grad(theta - e)[1][pos]) / 2e-5
    np.testing.assert_allclose(prec["user"][i], fd, rtol=1e-5, atol=1e-6)
    # the draws of that row have covariance A_i^{-1}
    x = laplace_draws(m, theta, 20_000, random_seed=1)[:, pos]
    np.testing.assert_allclose(np.cov(x.T), np.linalg.inv(prec["user"][i]), rtol=0.05, atol=2e-4)
    np.testing.assert_allclose(x.mean(0), theta[pos], atol=4 * np.sqrt(np.diag(np.cov(x.T)) / 20_000).max())


@pytest.mark.parametrize("method", ["laplace", "pathfinder", "advi-lowrank"])
def test_rungs_store_draws_and_predict_with_intervals(data, map_fit, method):
    train, test = data
    kw = {"advi_iterations": 300} if method == "advi-lowrank" else {}
    est = PMF(2, priors="bpmf", method=method, draws=100, init=map_fit, **kw).fit(train)
    post = est.result_["posterior"]
    assert post.sizes["chain"] == 1 and post.sizes["draw"] == 200
    assert est.result_.attrs["method"] == method
    pred = est.predict(test)
    assert np.all(pred["sd"] > 0) and np.all(pred["lo"] < pred["hi"])
    again = PMF(2, priors="bpmf", method=method, draws=100, init=map_fit, **kw).fit(train)
    np.testing.assert_array_equal(again.predict(test)["mean"], pred["mean"])  # same seed, same numbers


def test_rungs_refuse_models_they_do_not_implement(data):
    with pytest.raises(NotImplementedError, match="identity"):
        PMF(2, method="laplace", constrained=True).fit(data[0])


def test_pathfinder_recovers_a_gaussian():
    rng = np.random.default_rng(0)
    n = 4
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = Q @ np.diag([1.0, 2.0, 5.0, 10.0]) @ Q.T
    mu = np.arange(n, dtype=float)

    def f(x):
        return 0.5 * (x - mu) @ A @ (x - mu), A @ (x - mu)

    from scipy.optimize import minimize

    x0 = rng.uniform(-2, 2, n)
    pf = Pathfinder(f, x0, np.random.default_rng(1))
    def step(intermediate_result):  # scipy passes the OptimizeResult to a parameter of this name
        pf.update(intermediate_result.x, f(intermediate_result.x)[1])

    minimize(f, x0, jac=True, method="L-BFGS-B", callback=step)
    phi, _ = pf.sample(20_000)
    np.testing.assert_allclose(phi.mean(0), mu, atol=0.05)
    # the covariance is L-BFGS's inverse-Hessian estimate from a few steps: close, not exact
    C, exact = np.cov(phi.T), np.linalg.inv(A)
    np.testing.assert_allclose(np.diag(C), np.diag(exact), rtol=0.25)
    assert np.linalg.norm(C - exact) < 0.25 * np.linalg.norm(exact)


def test_fidelity_of_a_posterior_to_itself_and_of_a_point(data, map_fit):
    train, test = data
    lap = PMF(2, priors="bpmf", method="laplace", draws=200, init=map_fit).fit(train)
    own = fidelity(lap, lap, test)
    assert own["mean_dist_median"] == 0 and own["sd_ratio_median"] == pytest.approx(1)
    assert own["ref_coverage"] == pytest.approx(0.9, abs=0.03)
    pt = fidelity(map_fit, lap, test)
    assert pt["mean_dist_median"] > 0 and np.isnan(pt["sd_ratio_median"]) and np.isnan(pt["ref_coverage"])


def test_compare_with_a_reference_and_its_report(data, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from bayes_mf.plots import cost_vs_fidelity
    from bayes_mf.report import write_report

    train, test = data
    table = compare(train, test, ["map", "pathfinder"], n_factors=2, reference="laplace")
    assert list(table["method"]) == ["laplace", "map", "pathfinder"]
    assert table.set_index("method")["fid_mean_dist_median"].notna().tolist() == [False, True, True]
    comp = run(train, test, ["map", "laplace"], n_factors=2, reference="laplace")
    assert list(comp.fidelity["method"]) == ["map"]
    ax = cost_vs_fidelity(comp.fidelity)
    assert ax.get_xscale() == "log"
    written = write_report(comp, tmp_path, data_desc="tiny")
    assert "cost_vs_fidelity" in written
    md = (tmp_path / "report.md").read_text()
    assert "## Fidelity to the laplace posterior" in md and "| map |" in md and "\\|dmean\\|" in md
    assert "map" in format_fidelity(comp.fidelity)
    with pytest.raises(ValueError, match="point estimate"):
        run(train, test, ["laplace"], n_factors=2, reference="map")
    assert isinstance(table, pd.DataFrame)


def test_cli_reference_must_be_a_method(capsys):
    from bayes_mf.cli import main

    assert main(["compare", "--methods", "map", "--reference", "nope"]) == 2
    assert "--reference" in capsys.readouterr().err


def test_a_rung_saves_and_loads_with_the_same_predictions(data, map_fit, tmp_path):
    from bayes_mf import io

    est = PMF(2, priors="bpmf", method="laplace", draws=50, init=map_fit).fit(data[0])
    io.save(est, tmp_path / "lap")
    back = io.load(tmp_path / "lap")
    np.testing.assert_array_equal(back.predict(data[1])["mean"], est.predict(data[1])["mean"])
    assert back.result_.attrs["method"] == "laplace"
