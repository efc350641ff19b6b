"""The Dask backend of the Gibbs sampler (GibbsPMF(backend="dask")) on a 2-worker LocalCluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (extra 'dask')")

from bayes_mf.datasets import simulate_pmf  # noqa: E402
from bayes_mf.gibbs import HAVE_NUMBA, GibbsPMF  # noqa: E402
from bayes_mf.gibbs.distributed import DaskSweeper, _bounds, resolve_client  # noqa: E402

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="the Dask backend runs the numba kernels")

KW = dict(draws=8, tune=4, chains=2, cores=1, random_seed=4)
NAMES = ("U", "V", "user_bias", "item_bias", "sigma", "mu", "mu_u", "sigma_b", "pred_check")


@pytest.fixture(scope="module")
def cluster():
    # worker processes, as on a real cluster (each imports bayes_mf and loads the compiled kernels)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as lc:
        yield lc


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def sim():
    return simulate_pmf(70, 50, 3, density=0.3, noise_sd=0.5, global_mean=3.0, bias_sd=0.3, random_seed=2)


def _fit(sim, **kw):
    return GibbsPMF(3, **(KW | kw)).fit(sim.ratings)


def _assert_same(a, b, sim):
    pa, pb = a.result_["posterior"], b.result_["posterior"]
    names = [v for v in NAMES if v in pa]
    assert "U" in names and "sigma" in names
    for name in names:
        diff = np.max(np.abs(pa[name].to_numpy() - pb[name].to_numpy()))
        assert diff <= 1e-10, (name, diff)
    pairs = sim.ratings.to_frame().iloc[:200]
    ma = a.predict(pairs)["mean"].to_numpy()
    mb = b.predict(pairs)["mean"].to_numpy()
    assert np.isfinite(ma).all()
    assert np.max(np.abs(ma - mb)) <= 1e-10  # posterior means of predictions
    np.testing.assert_allclose(a.U_mean_, b.U_mean_, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kw", [{}, {"prior": "adaptive", "biases": False},
                                {"prior": "fixed", "global_mean": False, "threads": 2},
                                {"implicit": "both"}, {"implicit": "user", "interweave": False}])
def test_dask_gives_the_single_process_numbers(sim, client, kw):
    one = _fit(sim, backend="numba", **kw)
    dask = _fit(sim, backend="dask", client=client, **kw)
    _assert_same(one, dask, sim)
    assert dask.result_.attrs["backend"] == "dask"
    assert dask.n_sweeps_ == one.n_sweeps_ == 12


def test_dask_with_side_features_gives_the_single_process_numbers(sim, client):
    """Feature steps run on the client from the rows' Gram matrices the workers send back."""
    rng = np.random.default_rng(0)
    users = pd.DataFrame({"a": rng.normal(size=len(sim.ratings.users)),
                          "g": rng.integers(0, 2, len(sim.ratings.users))}, index=sim.ratings.users)
    items = pd.DataFrame({"b": rng.normal(size=len(sim.ratings.items))}, index=sim.ratings.items)
    fits = [GibbsPMF(3, backend=backend, client=client if backend == "dask" else None, implicit="item",
                     **KW).fit(sim.ratings, user_features=users, item_features=items)
            for backend in ("numba", "dask")]
    model = fits[1].result_.attrs["model"]
    assert "user features" in model and "item features" in model
    _assert_same(*fits, sim)  # U, V: the effective rows, feature vectors included


def test_scheduler_address_and_default_client(sim, cluster, client):
    one = _fit(sim, backend="numba")
    by_address = _fit(sim, backend="dask", client=cluster.scheduler_address)
    _assert_same(one, by_address, sim)
    # client=None: the client of this process (the fixture's, the default one)
    by_default = _fit(sim, backend="dask")
    _assert_same(one, by_default, sim)


def test_ratings_are_partitioned_across_both_workers(sim, client):
    from bayes_mf.gibbs.chain import _Settings

    problem = {"user": sim.ratings.user.astype(np.int32), "item": sim.ratings.item.astype(np.int32),
               "rating": sim.ratings.rating.astype(float), "n_users": sim.ratings.n_users,
               "n_items": sim.ratings.n_items, "check_user": np.zeros(1, np.int64),
               "check_item": np.zeros(1, np.int64)}
    st = _Settings(3, "bpmf", True, True, None, 1.0, 1.0, 1.0, (1.0, 1.0), 0.1, "dask", False)
    sw = DaskSweeper(problem, st, client)
    try:
        workers = set(client.scheduler_info()["workers"])
        assert sw.by is None  # the client keeps no copy of the grouped ratings
        for side, n in (("user", problem["n_users"]), ("item", problem["n_items"])):
            held = {w for w, _, _ in sw.parts[side]}
            assert held == workers  # one partition per worker
            ranges = [r for _, r, _ in sw.parts[side]]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges[:-1], ranges[1:], strict=True))
            where = client.who_has([f for _, _, f in sw.parts[side]])
            for w, _, f in sw.parts[side]:
                assert list(where[f.key]) == [w]  # pinned where it was scattered
            total = sum(p.indptr[-1] for p in client.gather([f for _, _, f in sw.parts[side]]))
            assert total == len(sim.ratings)
    finally:
        sw.close()


def test_bounds_split_rows_by_ratings():
    assert _bounds(np.array([0, 10, 10, 11, 12, 30]), 2) == [(0, 4), (4, 5)]  # 12 and 18 ratings
    assert _bounds(np.arange(0, 101, 10), 3) == [(0, 3), (3, 6), (6, 10)]
    assert _bounds(np.array([0, 0, 0, 30]), 2) == [(0, 2), (2, 3)]
    assert _bounds(np.array([0, 30, 30, 30]), 2) == [(0, 1), (1, 3)]  # the first row holds all: by rows
    assert _bounds(np.array([0, 3]), 4) == [(0, 1)]  # never more ranges than rows


def test_bad_combinations_raise(sim, client):
    with pytest.raises(ValueError, match="client is used only with backend='dask'"):
        _fit(sim, backend="numba", client=client)
    with pytest.raises(ValueError, match="heteroscedastic noise or the ordinal likelihood"):
        _fit(sim, backend="dask", client=client, likelihood="ordinal")
    with pytest.raises(ValueError, match="does not support time effects, heteroscedastic noise"):
        _fit(sim, backend="dask", client=client, heteroscedastic=True)
    with pytest.raises(ValueError, match="does not support time effects"):
        _fit(sim, backend="dask", client=client, time_effects="user")
    with pytest.raises(ValueError, match="client must be None, a scheduler address or a distributed"):
        _fit(sim, backend="dask", client=42)
    with pytest.raises(ValueError, match="backend must be 'auto', 'numba', 'numpy' or 'dask'"):
        _fit(sim, backend="spark")


def test_no_default_client_is_a_clear_error(monkeypatch):
    def no_client():
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "get_client", no_client)
    with pytest.raises(ValueError, match="found no Dask client"):
        resolve_client(None)


def test_clone_shares_the_client_and_save_keeps_an_address(sim, cluster, client, tmp_path):
    from sklearn.base import clone

    from bayes_mf import io

    m = GibbsPMF(2, backend="dask", client=client)
    c = clone(m)  # a Client cannot be deep-copied: the clone shares it
    assert c.client is client and c.backend == "dask" and m.client is client
    address = cluster.scheduler_address
    assert clone(GibbsPMF(2, backend="dask", client=address)).client == address
    fit = GibbsPMF(2, backend="dask", client=address, draws=2, tune=0, chains=1).fit(sim.ratings)
    io.save(fit, tmp_path / "m")
    back = io.load(tmp_path / "m")
    assert back.backend == "dask" and back.client == address
