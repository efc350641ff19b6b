"""The paired factor scales (log product, log ratio) are the same prior in other coordinates."""

import numpy as np
import pytensor
import pytest

import bayes_mf as bmf
from bayes_mf._scales import LOG_PRODUCT, LOG_RATIO, paired_scales, paired_start


@pytest.mark.parametrize("priors", ["adaptive", "bpmf"])
def test_paired_scales_are_the_halfnormal_lkj_prior(priors):
    import pymc as pm

    k, hu, hv = 3, 0.7, 1.3
    with pm.Model() as paired:
        paired_scales(priors, k, hu, hv)
    with pm.Model() as plain:
        shape = () if priors == "adaptive" else (k,)
        h = (hu, hv) if priors == "adaptive" else (1.0, 1.0)
        pm.HalfNormal("s_u", h[0], shape=shape)
        pm.HalfNormal("s_v", h[1], shape=shape)
        if priors == "bpmf":
            # an explicit initial value: the LKJ support point compiles with the C backend
            pm.LKJCorr("corr_u", n=k, eta=2.0, initval=np.eye(k))
            pm.LKJCorr("corr_v", n=k, eta=2.0, initval=np.eye(k))
    rng = np.random.default_rng(0)
    ip = plain.initial_point()
    for _ in range(4):
        x = {n: v + 0.8 * rng.standard_normal(np.shape(v)) for n, v in ip.items()}
        y = {LOG_PRODUCT: x["s_u_log__"] + x["s_v_log__"], LOG_RATIO: x["s_u_log__"] - x["s_v_log__"]}
        y.update({n: v for n, v in x.items() if n.startswith("corr")})
        # (p, r) = A (log s_u, log s_v) with |det A| = 2 per factor: densities differ by log(1/2) each
        n = int(np.prod(shape))
        np.testing.assert_allclose(paired.compile_logp()(y), plain.compile_logp()(x) + n * np.log(0.5),
                                   rtol=1e-10)


@pytest.mark.parametrize("priors", ["adaptive", "bpmf"])
def test_paired_model_keeps_factors_and_predictions(tiny_ratings, model_values, priors):
    kw = {"priors": priors, "parametrization": "noncentered"}
    plain = bmf.models.build_model(tiny_ratings, 2, pair_scales=False, **kw)
    paired = bmf.models.build_model(tiny_ratings, 2, **kw)
    assert paired.bayes_mf_spec["paired_scales"] and not plain.bayes_mf_spec["paired_scales"]
    free = {v.name for v in paired.free_RVs}
    assert {LOG_PRODUCT, LOG_RATIO} <= free and not {"sigma_u", "chol_u"} & free
    rng = np.random.default_rng(2)
    ip = plain.initial_point()
    names = ("U", "V", "eta", "sigma_u", "sigma_v")
    scale_names = ("sigma_u", "sigma_v") if priors == "adaptive" else ("chol_u", "chol_v")
    for _ in range(3):
        x = {n: v + 0.5 * rng.standard_normal(np.shape(v)) for n, v in ip.items()}
        want = model_values(plain, names, x)
        raw = model_values(plain, scale_names, x)
        y = {n: v for n, v in x.items() if n in paired.initial_point()}
        y.update(paired_start(dict(zip(scale_names, raw, strict=True)), priors))
        y = {n: (pytensor.function([], paired.rvs_to_transforms[paired[n]].forward(v), mode="NUMBA")()
                 if n.startswith("corr") else v) for n, v in y.items()}
        y = {(paired.rvs_to_values[paired[n]].name if n.startswith("corr") else n): v for n, v in y.items()}
        assert set(y) == set(paired.initial_point())
        for a, b in zip(model_values(paired, names, y), want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_pairing_only_where_it_applies(tiny_ratings):
    for kw in ({"priors": "bpmf", "parametrization": "centered"},
               {"priors": "fixed", "parametrization": "noncentered"},
               {"priors": "bpmf", "parametrization": "noncentered", "constrained": True},
               {"priors": "adaptive", "parametrization": "noncentered",
                "centred_rows": {"U": np.arange(tiny_ratings.n_users) < 3}}):
        m = bmf.models.build_model(tiny_ratings, 2, **kw)
        assert not m.bayes_mf_spec["paired_scales"]
        assert LOG_PRODUCT not in {v.name for v in m.free_RVs}


def test_paired_adaptive_model_can_be_cloned(tiny_ratings):
    # PMF.from_model clones the user's model; PyMC refuses models with initial values
    from pymc.model.fgraph import clone_model

    m = bmf.models.build_model(tiny_ratings, 2, priors="adaptive", parametrization="noncentered")
    assert m.bayes_mf_spec["paired_scales"]
    assert LOG_PRODUCT in {v.name for v in clone_model(m).free_RVs}
