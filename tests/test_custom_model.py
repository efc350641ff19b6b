"""PyMC round trip: a changed build_model model (Student-t likelihood) fitted through PMF.from_model."""

from dataclasses import replace

import numpy as np
import pymc as pm
import pytest

import bayes_mf as bmf
from bayes_mf.data import UnseenIdsWarning
from bayes_mf.inference.nuts import stored_vars


def student_t(mean, sigma, observed, **kw):
    nu = pm.Gamma("nu", 2.0, 0.1)
    return pm.StudentT("rating", nu=nu, mu=mean, sigma=sigma, observed=observed, **kw)


@pytest.fixture(scope="module")
def heavy():
    """Small PMF data whose noise is heavy-tailed (Student-t, 2 degrees of freedom)."""
    r = bmf.datasets.simulate_pmf(n_users=40, n_items=30, n_factors=2, density=0.5, noise_sd=0.1,
                                  random_seed=3).ratings
    rng = np.random.default_rng(0)
    return replace(r, rating=r.rating + 0.3 * rng.standard_t(2.0, size=len(r)))


def test_eta_is_a_named_deterministic_not_stored_by_samplers(heavy):
    m = bmf.models.build_model(heavy, 2)
    assert "eta" in {v.name for v in m.deterministics}
    assert m.named_vars_to_dims["eta"] == ("obs",)
    assert "eta" not in stored_vars(m) and "U" in stored_vars(m)
    # the non-centred model stores each factor and offset once, not also its standard-normal piece
    nc = set(stored_vars(bmf.models.build_model(heavy, 2, parametrization="noncentered")))
    assert {"U", "V", "user_bias", "sigma_c", "sigma_u"} <= nc
    assert not {"U_z", "V_z", "user_bias_z", "item_bias_z"} & nc


@pytest.fixture(scope="module")
def advi_fits(heavy):
    m = bmf.models.build_model(heavy, 2, priors="adaptive", likelihood=student_t)
    kw = dict(method="advi", advi_iterations=1500, draws=100, chains=2, progressbar=False)
    return m, bmf.PMF.from_model(m, **kw).fit(heavy), bmf.PMF(2, **kw).fit(heavy)


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")
def test_student_t_fit_keeps_format_and_predicts_heavier_tails(heavy, advi_fits):
    m, t_fit, g_fit = advi_fits
    assert t_fit.n_factors == 2 and t_fit.model is m
    post = t_fit.result_["posterior"]
    assert {"U", "V", "mu", "sigma", "user_bias", "nu", "pred_check"} <= set(post.data_vars)
    assert "eta" not in post
    assert t_fit.result_.attrs["likelihood"] == "student_t"
    pairs = (heavy.user_ids[:40], heavy.item_ids[:40])
    widths = {}
    for name, fit in (("t", t_fit), ("normal", g_fit)):
        wide, narrow = fit.predict(pairs, interval=0.98), fit.predict(pairs, interval=0.5)
        assert np.isfinite(wide[["mean", "sd", "lo", "hi"]].to_numpy()).all()
        assert (wide["lo"] < wide["mean"]).all() and (wide["mean"] < wide["hi"]).all()
        widths[name] = np.median((wide["hi"] - wide["lo"]) / (narrow["hi"] - narrow["lo"]))
    # a Normal predictive has 98 % / 50 % width ratio about 3.4; the Student-t's tails are heavier
    assert widths["normal"] < 4.0 < widths["t"]
    # the stored log-likelihood is the model's own (Student-t), so az.loo judges what was fitted
    import arviz as az

    assert t_fit.result_["log_likelihood"]["rating"].shape[-1] == len(heavy)
    assert np.isfinite(az.loo(t_fit.result_).elpd)
    rec = t_fit.recommend(heavy.user_ids[0], n=3, strategy="ucb")
    assert len(rec) == 3 and np.isfinite(rec[["mean", "lo", "hi"]].to_numpy()).all()


# the joint mode of the Student-t model (noise scale and nu free) is slow for L-BFGS-B to settle
@pytest.mark.filterwarnings("ignore:The optimizer did not converge:UserWarning")
def test_custom_map_has_no_fake_spread(heavy):
    m = bmf.models.build_model(heavy, 2, likelihood=student_t)
    fit = bmf.PMF.from_model(m, method="map").fit(heavy)
    assert "nu" in fit.result_["posterior"]
    pred = fit.predict((heavy.user_ids[:5], heavy.item_ids[:5]))
    assert np.isfinite(pred["mean"]).all() and pred["sd"].isna().all()


def test_custom_model_errors(heavy, advi_fits, tmp_path):
    m, t_fit, _ = advi_fits
    with pytest.raises(TypeError, match="pymc.Model"):
        bmf.PMF.from_model(object())
    with pytest.raises(ValueError, match="bayes_mf_spec"):
        bmf.PMF.from_model(pm.Model())
    with pytest.raises(ValueError, match="differ"):
        bmf.PMF.from_model(m, n_factors=5)
    with pytest.raises(ValueError, match="method"):
        bmf.PMF.from_model(m, method="gibbs").fit(heavy)
    with pytest.raises(ValueError, match="other ratings"):
        bmf.PMF.from_model(m, method="map").fit(replace(heavy, rating=heavy.rating + 1.0))
    with pytest.raises(TypeError, match="from_model"):
        bmf.PMF(2).fit(heavy, model=m)
    with pytest.raises(ValueError, match="unseen='drop'"), pytest.warns(UnseenIdsWarning):
        t_fit.predict(([heavy.user_ids[0]], ["no such item"]))
    with pytest.warns(UnseenIdsWarning):
        assert len(t_fit.predict(([heavy.user_ids[0]], ["no such item"]), unseen="drop")) == 0
    with pytest.raises(TypeError, match="cannot be saved"):
        bmf.io.save(t_fit, tmp_path / "fit")
    with pytest.raises(ValueError, match="'rating'"):
        bmf.models.build_model(heavy, 2, likelihood=lambda mean, sigma, observed, **kw: None)
