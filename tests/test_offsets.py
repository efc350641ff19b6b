"""The sheared offsets of the non-centred PyMC model are the same model in other coordinates."""

import numpy as np
import pytest

import bayes_mf as bmf
from bayes_mf.inference.sampling import _sheared


@pytest.mark.parametrize("priors", ["adaptive", "bpmf", "fixed"])
def test_sheared_offsets_keep_the_log_density_and_every_deterministic(tiny_ratings, model_values, priors):
    kw = {"priors": priors, "parametrization": "noncentered"}
    plain = bmf.models.build_model(tiny_ratings, 2, shear_offsets=False, **kw)
    shear = bmf.models.build_model(tiny_ratings, 2, **kw)
    assert shear.bayes_mf_spec["sheared"] and not plain.bayes_mf_spec["sheared"]
    assert {"user_bias_s", "item_bias_s"} <= {v.name for v in shear.free_RVs}
    rng = np.random.default_rng(1)
    ip = plain.initial_point()
    for _ in range(3):
        # a random point of the plain coordinates, mapped to the sheared ones
        x = {k: v + 0.7 * rng.standard_normal(np.shape(v)) for k, v in ip.items()}
        names = ("U", "V", "user_bias", "item_bias", "mu", "sigma_b", "sigma_c")
        det = model_values(plain, (*names, "eta"), x)
        point = dict(zip(names, det[:7], strict=True))
        y = {k: v for k, v in x.items() if k in shear.initial_point()}
        moved = _sheared(point)
        y.update(user_bias_s=moved["user_bias_s"], item_bias_s=moved["item_bias_s"],
                 mu_total=moved["mu_total"])
        assert set(y) == set(shear.initial_point())
        # unit Jacobian: the joint log density is the same number at the same point of the model
        np.testing.assert_allclose(shear.compile_logp()(y), plain.compile_logp()(x), rtol=1e-10)
        again = model_values(shear, ("U", "V", "user_bias", "item_bias", "mu", "eta"), y)
        for a, b in zip(again, det[:5] + det[7:], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


def test_shear_only_where_it_applies(tiny_ratings):
    centred = bmf.models.build_model(tiny_ratings, 2, parametrization="centered")
    no_bias = bmf.models.build_model(tiny_ratings, 2, parametrization="noncentered", biases=False)
    rows = {"user_bias": np.arange(tiny_ratings.n_users) < 3}
    mixed = bmf.models.build_model(tiny_ratings, 2, parametrization="noncentered", centred_rows=rows)
    for m in (centred, no_bias, mixed):
        assert not m.bayes_mf_spec["sheared"]
        assert "user_bias_s" not in {v.name for v in m.free_RVs}
