"""Threaded Gibbs sweeps (GibbsPMF(threads=N)) and the counter-based normals behind them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayes_mf.datasets import simulate_pmf
from bayes_mf.gibbs import HAVE_NUMBA, GibbsPMF, _Settings, _Side, run_chain
from bayes_mf.gibbs.counter import STREAMS, chain_key, normals, philox4x32
from bayes_mf.gibbs.kernels import numba_threads

needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
BACKENDS = ["numpy", pytest.param("numba", marks=needs_numba)]


@pytest.fixture(scope="module")
def sim():
    return simulate_pmf(70, 50, 3, density=0.3, noise_sd=0.5, global_mean=3.0, bias_sd=0.3,
                        random_seed=2)


# ----------------------------------------------------------------------------- the generator
@pytest.mark.parametrize("ctr, key, want", [
    # Random123's known-answer vectors (kat_vectors): counter words, key words, output words
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_known_answers(ctr, key, want):
    out = philox4x32(*(np.array([c], dtype=np.uint64) for c in ctr), *key)
    assert [int(o[0]) for o in out] == list(want)


@needs_numba
def test_compiled_and_numpy_normals_agree():
    key = chain_key(np.random.SeedSequence(7).spawn(3)[2])
    for stream, sweep, n, d in ((0, 0, 300, 11), (3, 2**40 + 5, 17, 4), (1, 9, 5, 1)):
        a = normals(key, stream, sweep, n, d, backend="numba")
        b = normals(key, stream, sweep, n, d, backend="numpy")
        # the same Philox words; only log/cos/sin of the two libraries may differ in the last bit
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_normals_are_reproducible_and_independent_of_the_row_split(backend):
    key = chain_key(11)
    whole = normals(key, STREAMS["item"], 4, 1000, 7, backend=backend)
    np.testing.assert_array_equal(whole, normals(chain_key(11), STREAMS["item"], 4, 1000, 7, backend=backend))
    parts = [normals(key, STREAMS["item"], 4, e - s, 7, row0=s, backend=backend)
             for s, e in ((0, 1), (1, 433), (433, 1000))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # fewer components are a prefix of more: a row's numbers do not depend on d beyond its length
    np.testing.assert_array_equal(normals(key, STREAMS["item"], 4, 1000, 6, backend=backend), whole[:, :6])
    with numba_threads(1):
        one = normals(key, STREAMS["item"], 4, 1000, 7, backend=backend)
    with numba_threads(2):
        two = normals(key, STREAMS["item"], 4, 1000, 7, backend=backend)
    np.testing.assert_array_equal(one, whole)
    np.testing.assert_array_equal(two, whole)


@pytest.mark.parametrize("backend", BACKENDS)
def test_normals_are_standard_normal_and_uncorrelated(backend):
    key = chain_key(0)
    z = normals(key, STREAMS["user"], 3, 10_000, 10, backend=backend)
    x = z.ravel()  # 1e5 draws in the order rows x components
    assert abs(x.mean()) < 0.015  # sd of the mean 0.0032
    assert abs(x.var() - 1.0) < 0.02  # sd of the variance 0.0045
    ks = stats.kstest(x, "norm")
    assert ks.statistic < 0.0075 and ks.pvalue > 1e-3  # a uniform, a shifted or a scaled sample fails
    assert abs(stats.kurtosis(x)) < 0.1
    r = np.corrcoef(x[:-1], x[1:])[0, 1]  # successive draws (Box-Muller pairs included)
    assert abs(r) < 0.015
    assert abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]) < 0.015  # neighbouring rows
    assert abs(np.corrcoef((x[:-1] ** 2), (x[1:] ** 2))[0, 1]) < 0.015  # pairs share a radius
    # other sweeps, streams and chains give other numbers, uncorrelated with these
    for other in (normals(key, STREAMS["user"], 4, 10_000, 10, backend=backend),
                  normals(key, STREAMS["item"], 3, 10_000, 10, backend=backend),
                  normals(chain_key(1), STREAMS["user"], 3, 10_000, 10, backend=backend)):
        assert abs(np.corrcoef(x, other.ravel())[0, 1]) < 0.015


def test_chain_keys_differ_and_do_not_depend_on_the_seed_type():
    seeds = np.random.SeedSequence(5).spawn(4)
    keys = {tuple(chain_key(s)) for s in seeds}
    assert len(keys) == 4
    np.testing.assert_array_equal(chain_key(5), chain_key(np.random.SeedSequence(5)))
    assert chain_key(5).dtype == np.uint32 and chain_key(5).shape == (2,)


# ----------------------------------------------------------------------------- threaded sweeps
def _posterior(sim, threads, **kw):
    kw = dict(draws=6, tune=3, chains=2, cores=1, random_seed=4, backend="numba") | kw
    return GibbsPMF(3, threads=threads, **kw).fit(sim.ratings).result_["posterior"]


@needs_numba
@pytest.mark.parametrize("implicit", [False, "both"])
@pytest.mark.parametrize("prior", ["bpmf", "adaptive"])
def test_two_threads_give_bit_identical_draws(sim, implicit, prior):
    a = _posterior(sim, 1, implicit=implicit, prior=prior)
    b = _posterior(sim, 2, implicit=implicit, prior=prior)
    names = [v for v in ("U", "V", "user_bias", "item_bias", "sigma", "mu", "mu_u", "sigma_b", "pred_check")
             if v in a]
    assert "U" in names and "user_bias" in names
    for name in names:
        np.testing.assert_array_equal(a[name].to_numpy(), b[name].to_numpy(), err_msg=name)
    assert not np.array_equal(a["U"].to_numpy()[0], a["U"].to_numpy()[1])  # chains differ


@needs_numba
def test_outer_products_formed_per_rating_give_the_same_draws(sim, monkeypatch):
    """Past the cache-sized table of packed outer products (large data) the kernel forms them per rating."""
    import bayes_mf.gibbs.kernels as kernels

    packed = _posterior(sim, 1)
    monkeypatch.setattr(kernels, "_PACKED_MAX_BYTES", 0)
    for threads in (1, 2):
        fresh = _posterior(sim, threads)
        for name in ("U", "V", "user_bias", "sigma"):
            np.testing.assert_array_equal(fresh[name].to_numpy(), packed[name].to_numpy(), err_msg=name)


@needs_numba
def test_threads_none_is_one_thread_and_more_threads_than_numba_has_are_capped(sim):
    import numba

    a = _posterior(sim, None)
    b = _posterior(sim, numba.config.NUMBA_NUM_THREADS + 3)
    np.testing.assert_array_equal(a["U"].to_numpy(), b["U"].to_numpy())
    before = numba.get_num_threads()
    with numba_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before  # restored after the block


@needs_numba
def test_threaded_numba_agrees_with_numpy(sim):
    a = _posterior(sim, 2, implicit="both")
    b = _posterior(sim, 1, implicit="both", backend="numpy")
    for name in ("U", "V", "user_bias", "sigma", "mu", "pred_check"):
        np.testing.assert_allclose(a[name].to_numpy(), b[name].to_numpy(), rtol=1e-7, atol=1e-9)


def _problem(r):
    return {"user": r.user, "item": r.item, "rating": r.rating, "n_users": r.n_users,
            "n_items": r.n_items, "check_user": r.user[:3].astype(np.int64),
            "check_item": r.item[:3].astype(np.int64), "user_features": None, "item_features": None}


@pytest.mark.parametrize("backend", BACKENDS)
def test_resumed_chain_equals_one_long_run(sim, backend):
    problem = _problem(sim.ratings)
    st = _Settings(3, "bpmf", True, True, None, 1.0, 1.0, 1.0, (1.0, 1.0), 0.1, backend, True, threads=2)
    seed = np.random.SeedSequence(9).spawn(2)[1]
    long, out_long = run_chain(problem, st, seed, 6)
    mid, out_a = run_chain(problem, st, seed, 4)
    assert mid.sweep == 4
    end, out_b = run_chain(problem, st, mid, 2)
    assert end.sweep == long.sweep == 6
    for side in ("user", "item"):
        np.testing.assert_array_equal(end.X[side], long.X[side])
    np.testing.assert_array_equal(np.r_[out_a["sigma"], out_b["sigma"]], out_long["sigma"])


def test_compact_layout_equals_the_index_layout(sim):
    r = sim.ratings
    if not HAVE_NUMBA:
        pytest.skip("the compact layout is built by a compiled kernel")
    for rows, cols, n_rows, n_cols in ((r.user, r.item, r.n_users, r.n_items),
                                       (r.item, r.user, r.n_items, r.n_users)):
        for order in (np.arange(rows.size), np.argsort(rows, kind="stable")):  # unsorted, sorted
            a = _Side(rows[order], cols[order], r.rating[order], n_rows, n_cols)
            b = _Side(rows[order], cols[order], r.rating[order], n_rows, n_cols, compact=True)
            np.testing.assert_array_equal(a.indptr, b.indptr)
            np.testing.assert_array_equal(a.cols, b.cols)
            np.testing.assert_array_equal(a.vals, b.vals)
            assert b.cols.dtype == np.int32 and b.index is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_threads_raise(sim, bad):
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        GibbsPMF(2, threads=bad, draws=2, tune=0, chains=1).fit(sim.ratings)


def test_threads_is_a_parameter_and_is_saved(sim, tmp_path):
    from sklearn.base import clone

    from bayes_mf import io

    m = GibbsPMF(2, threads=2)
    assert m.get_params()["threads"] == 2 and clone(m).threads == 2
    fit = GibbsPMF(2, threads=2, draws=2, tune=0, chains=1).fit(sim.ratings)
    assert fit.result_.attrs["threads"] == 2
    io.save(fit, tmp_path / "m")
    assert io.load(tmp_path / "m").threads == 2


def test_automatic_processes_leave_room_for_the_threads(monkeypatch):
    import os

    from bayes_mf.gibbs.parallel import n_processes
    from bayes_mf.gibbs.schedule import Plan

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    plan = Plan(burn_in=100, n_samples=None)
    assert n_processes(4, None, 10**6, 0, plan) == 4
    assert n_processes(4, None, 10**6, 0, plan, threads=2) == 4
    assert n_processes(4, None, 10**6, 0, plan, threads=4) == 2
    assert n_processes(4, None, 10**6, 0, plan, threads=16) == 1
    assert n_processes(4, 3, 10**6, 0, plan, threads=4) == 3  # cores given: as asked
