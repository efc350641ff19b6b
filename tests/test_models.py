"""PyMC model builders: structure, coords, data containers and option checks (no sampling)."""

import numpy as np
import pandas as pd
import pytest

pm = pytest.importorskip("pymc")

from bayes_mf.data import Ratings  # noqa: E402
from bayes_mf.datasets import simulate_pmf  # noqa: E402
from bayes_mf.models import (  # noqa: E402
    build_model,
    default_scales,
    model_name,
    to_model_scale,
)


@pytest.fixture(scope="module")
def sim():
    return simulate_pmf(12, 9, 2, density=0.5, noise_sd=0.5, global_mean=3.0, bias_sd=0.3, random_seed=3)


@pytest.fixture(scope="module")
def scaled(sim):
    r = sim.ratings
    return Ratings(r.user, r.item, np.clip(np.round(r.rating), 1, 5), r.users, r.items, scale=(1.0, 5.0))


def free_names(model):
    return {rv.name for rv in model.free_RVs}


def test_coords_and_data_are_the_observed_pairs(sim):
    r = sim.ratings
    m = build_model(r, 2)
    assert list(m.coords["user"]) == list(r.users)
    assert list(m.coords["item"]) == list(r.items)
    assert list(m.coords["factor"]) == [0, 1]
    assert len(m.coords["obs"]) == len(r)
    np.testing.assert_array_equal(m["user_idx"].get_value(), r.user)
    np.testing.assert_array_equal(m["item_idx"].get_value(), r.item)
    np.testing.assert_allclose(m["rating_data"].get_value(), r.rating)
    assert m.named_vars_to_dims["U"] == ("user", "factor")
    assert m.named_vars_to_dims["V"] == ("item", "factor")
    assert m.named_vars_to_dims["rating"] == ("obs",)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"priors": "fixed", "biases": False}, {"U", "V"}),
        ({"priors": "adaptive", "biases": False}, {"U", "V", "sigma", "sigma_u", "sigma_v"}),
        ({"priors": "adaptive"}, {"U", "V", "sigma", "sigma_u", "sigma_v", "mu", "user_bias",
                                  "item_bias", "sigma_b", "sigma_c"}),
        ({"priors": "fixed"}, {"U", "V", "mu", "user_bias", "item_bias"}),
        ({"priors": "bpmf", "biases": False}, {"U", "V", "sigma", "mu_u", "chol_u", "mu_v", "chol_v"}),
        ({"priors": "adaptive", "constrained": True, "biases": False},
         {"Y", "W", "V", "sigma", "sigma_y", "sigma_w", "sigma_v"}),
    ],
)
def test_free_variables_per_variant(sim, kw, expected):
    m = build_model(sim.ratings, 2, **kw)
    assert free_names(m) == expected
    # every variant reports the shared result variables (constants as deterministics)
    for name in ("U", "V", "sigma", "mu", "sigma_u", "sigma_v"):
        assert name in m.named_vars
    logp = m.compile_logp(mode="FAST_COMPILE")
    assert np.isfinite(logp(m.initial_point()))


def test_fixed_scales_are_constants(sim):
    m = build_model(sim.ratings, 2, priors="fixed", sigma=0.7, sigma_u=0.3, sigma_v=0.4, sigma_b=0.2,
                    sigma_c=0.1)
    fn = m.compile_fn([m["sigma"], m["sigma_u"], m["sigma_v"], m["sigma_b"], m["sigma_c"]],
                      point_fn=False, on_unused_input="ignore",
                      mode="FAST_COMPILE")
    np.testing.assert_allclose(fn(), [0.7, 0.3, 0.4, 0.2, 0.1])


def test_fixed_defaults_are_moment_based(sim):
    y = sim.ratings.rating
    d = default_scales(y, 2)
    assert d["sigma"] == pytest.approx(np.std(y))
    # prior variance of U_i . V_j is a quarter of the rating variance
    assert 2 * d["sigma_u"] ** 2 * d["sigma_v"] ** 2 == pytest.approx(0.25 * np.var(y))


def test_plain_pmf_is_centred_on_training_mean(sim):
    m = build_model(sim.ratings, 2, priors="fixed", biases=False)
    fn = m.compile_fn(m["mu"], point_fn=False, on_unused_input="ignore",
                      mode="FAST_COMPILE")
    assert float(fn()) == pytest.approx(sim.ratings.rating.mean())


def test_logistic_link_maps_ratings_to_unit_interval(scaled):
    m = build_model(scaled, 2, link="logistic")
    y = m["rating_data"].get_value()
    assert y.min() >= 0 and y.max() <= 1
    np.testing.assert_allclose(y, (scaled.rating - 1) / 4)
    np.testing.assert_allclose(to_model_scale(np.array([1.0, 3.0, 5.0]), "logistic", (1, 5)), [0, 0.5, 1])


def test_constrained_user_factors_average_rated_items(sim):
    r = sim.ratings
    m = build_model(r, 2, priors="fixed", constrained=True, biases=False)
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(r.n_users, 2))
    W = rng.normal(size=(r.n_items, 2))
    [U_of_values] = m.replace_rvs_by_values([m["U"]])
    fn = m.compile_fn(U_of_values, inputs=[m.rvs_to_values[m["Y"]], m.rvs_to_values[m["W"]]],
                      point_fn=False, mode="FAST_COMPILE")
    U = fn(Y, W)
    i = 0
    rated = r.item[r.user == i]
    np.testing.assert_allclose(U[i], Y[i] + W[rated].mean(0))


def test_bpmf_with_plugged_in_moments_is_fixed(sim):
    k = 2
    mom = {"U": (np.zeros(k), 0.2 * np.eye(k)), "V": (np.ones(k), 0.3 * np.eye(k))}
    m = build_model(sim.ratings, k, priors="bpmf", factor_moments=mom, sigma=0.5, sigma_b=0.3, sigma_c=0.2)
    assert "chol_u" not in m.named_vars and "mu_u" not in m.named_vars
    # a plug-in: the scales are constants as well
    assert free_names(m) == {"U", "V", "mu", "user_bias", "item_bias"}


def test_set_data_predicts_new_pairs(sim):
    m = build_model(sim.ratings, 2, priors="fixed")
    with m:
        pm.set_data({"user_idx": np.array([0, 1, 2]), "item_idx": np.array([3, 4, 5]),
                     "rating_data": np.zeros(3)}, coords={"obs": np.arange(3)})
        prior = pm.sample_prior_predictive(draws=4, var_names=["rating"], random_seed=1)
    assert prior["prior_predictive"]["rating"].shape == (1, 4, 3)


def test_minibatch_model_rescales_likelihood(sim):
    r = sim.ratings
    m = build_model(r, 2, batch_size=10)
    from pymc.variational.minibatch_rv import MinibatchRandomVariable

    rating = m["rating"]
    assert isinstance(rating.owner.op, MinibatchRandomVariable)
    assert "rating" not in m.named_vars_to_dims


def test_model_name():
    assert model_name("adaptive", True, "identity", False) == "adaptive+biases"
    assert model_name("bpmf", False, "logistic", True) == "bpmf+constrained+logistic"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n_factors": 0}, "n_factors"),
        ({"n_factors": 2.5}, "n_factors"),
        ({"priors": "wishart"}, "priors"),
        ({"link": "probit"}, "link"),
        ({"link": "logistic"}, "scale"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_options_name_the_argument(sim, kw, match):
    kw = {"n_factors": 2, **kw}
    with pytest.raises(ValueError, match=match):
        build_model(sim.ratings, **kw)


def test_logistic_needs_increasing_scale(sim):
    with pytest.raises(ValueError, match="scale"):
        build_model(sim.ratings, 2, link="logistic", scale=(5, 1))


def test_ids_label_coords():
    frame = pd.DataFrame({"user": ["a", "b", "a", "c"], "item": ["x", "y", "y", "x"],
                          "rating": [1.0, 2.0, 3.0, 4.0]})
    r = Ratings.from_frame(frame)
    m = build_model(r, 1, priors="fixed")
    assert list(m.coords["user"]) == ["a", "b", "c"]
    assert list(m.coords["item"]) == ["x", "y"]


@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("priors", ["adaptive", "bpmf"])
def test_noncentred_model_is_the_centred_model(sim, priors, mixed):
    """Same density up to the Jacobian of F = m + z L^T (per non-centred row log|det L|; s per
    entry); the shear mu' = mu + mean(b) + mean(c) has unit Jacobian.  ``mixed``: some rows kept
    centred."""
    r = sim.ratings
    rng = np.random.default_rng(1)
    n = {"U": r.n_users, "user_bias": r.n_users, "V": r.n_items, "item_bias": r.n_items}
    rows = {k: rng.random(v) < 0.5 for k, v in n.items()} if mixed else {}
    kw = {"priors": priors, "factor_means": priors == "bpmf"}
    c = build_model(r, 2, **kw)
    # the plain offsets and scales; tests/test_offsets.py and tests/test_scales.py check the
    # default sheared offsets and paired scales against these
    nc = build_model(r, 2, parametrization="noncentered", centred_rows=rows, shear_offsets=False,
                     pair_scales=False, **kw)
    assert {"U_z", "V_z", "user_bias_z", "item_bias_z"} <= free_names(nc)
    assert not {"U", "V", "user_bias", "item_bias", "mu"} & free_names(nc)
    assert mixed == ({"U_c", "V_c", "user_bias_c", "item_bias_c"} <= free_names(nc))
    ip = nc.initial_point()
    point_nc = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in ip.items()}
    names = ("U", "V", "user_bias", "item_bias", "mu")
    fn = nc.compile_fn(nc.replace_rvs_by_values([nc[n] for n in names]), inputs=nc.value_vars,
                       on_unused_input="ignore")
    point_c = {k: v for k, v in point_nc.items() if not k.endswith(("_z", "_c")) and k != "mu_total"}
    point_c.update(dict(zip(names, fn(point_nc), strict=True)))
    diff = c.compile_logp()(point_c) - nc.compile_logp()(point_nc)
    free_rows = {k: n[k] - int(rows[k].sum()) if mixed else n[k] for k in n}
    sb, sc = np.exp(point_nc["sigma_b_log__"]), np.exp(point_nc["sigma_c_log__"])
    log_jac = free_rows["user_bias"] * np.log(sb) + free_rows["item_bias"] * np.log(sc)
    if priors == "adaptive":
        su, sv = np.exp(point_nc["sigma_u_log__"]), np.exp(point_nc["sigma_v_log__"])
        log_jac += 2 * (free_rows["U"] * np.log(su) + free_rows["V"] * np.log(sv))
    else:
        for side, key in (("u", "U"), ("v", "V")):
            chol = nc.replace_rvs_by_values([pm.math.expand_packed_triangular(2, nc[f"chol_{side}"])])
            L = nc.compile_fn(chol[0], inputs=nc.value_vars, on_unused_input="ignore")(point_nc)
            log_jac += free_rows[key] * np.log(abs(np.linalg.det(L)))
    np.testing.assert_allclose(diff, -log_jac, rtol=1e-9, atol=1e-8)


def test_bpmf_factor_means_can_be_dropped(sim):
    m = build_model(sim.ratings, 2, priors="bpmf", factor_means=False)
    assert not {"mu_u", "mu_v"} & free_names(m)
    assert {"mu_u", "mu_v"} <= free_names(build_model(sim.ratings, 2, priors="bpmf"))


def test_bad_parametrization_is_named(sim):
    with pytest.raises(ValueError, match="parametrization"):
        build_model(sim.ratings, 2, parametrization="whitened")
