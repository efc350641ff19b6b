"""Shared fixtures: small data sets drawn from the PMF model, with known truth."""

from __future__ import annotations

import os

import pytest

from bayes_mf.data import train_test_split
from bayes_mf.datasets import DataNotFoundError, movielens_path, simulate_pmf


@pytest.fixture(scope="session")
def sim_small():
    """Biased PMF data, 120 users x 80 items, rank 2, continuous ratings."""
    return simulate_pmf(120, 80, 2, density=0.25, noise_sd=0.5, sigma_u=1.0, sigma_v=1.0,
                        global_mean=3.0, bias_sd=0.5, random_seed=11)


@pytest.fixture(scope="session")
def sim_split(sim_small):
    return train_test_split(sim_small.ratings, 0.2, random_seed=3)


@pytest.fixture(scope="session")
def tiny_ratings():
    """15 users x 12 items, rank 2: for checks of the PyMC models' coordinates."""
    return simulate_pmf(n_users=15, n_items=12, n_factors=2, density=0.6, noise_sd=0.3,
                        random_seed=5).ratings


@pytest.fixture(scope="session")
def model_values():
    """``f(model, names, point)``: the values of named model variables at a point of its
    free (transformed) variables."""
    def values(model, names, point):
        outs = model.replace_rvs_by_values([model[n] for n in names])
        return model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")(point)

    return values


@pytest.fixture(scope="session")
def movielens_dir():
    """The MovieLens 100K folder; in CI its absence is a failure, never a skip."""
    try:
        return movielens_path("100k", download=False)
    except DataNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"MovieLens 100K must be available in CI: {exc}")
        pytest.skip(f"MovieLens 100K not available: {exc}")
