"""The vectorised R-hat/ESS/MCSE equal ArviZ's, quantity by quantity."""

import numpy as np
import pytest
from arviz_stats.base import array_stats

from bayes_mf._mcmc_stats import _ranks, diagnose


@pytest.fixture(scope="module")
def chains():
    rng = np.random.default_rng(1)
    c, d, n = 4, 301, 40  # an odd number of draws: split chains drop the middle one
    x = np.empty((c, d, n))
    phi = rng.uniform(-0.3, 0.995, n)
    x[:, 0] = rng.normal(size=(c, n))
    for t in range(1, d):
        x[:, t] = phi * x[:, t - 1] + rng.normal(size=(c, n))
    x[1, :, 1] += 3.0  # one chain stuck elsewhere
    x[:, :, 2] = np.round(x[:, :, 2])  # ties
    x[:, :, 3] = 2.0  # constant
    return x


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # ArviZ's R-hat of the constant
def test_equal_to_arviz(chains):
    got = diagnose(chains)
    ref = {
        "rhat": array_stats.rhat(chains, chain_axis=0, draw_axis=1, method="rank"),
        "ess_bulk": array_stats.ess(chains, chain_axis=0, draw_axis=1, method="bulk"),
        "ess_tail": array_stats.ess(chains, chain_axis=0, draw_axis=1, method="tail", prob=0.05),
        "mcse_mean": array_stats.mcse(chains, chain_axis=0, draw_axis=1, method="mean"),
    }
    for key, want in ref.items():
        np.testing.assert_allclose(got[key], np.asarray(want), rtol=1e-10, atol=1e-12, err_msg=key)
    assert got["rhat"][1] > 1.1 and got["ess_bulk"][1] < 100  # the stuck chain is seen


def test_average_ranks_with_ties():
    from scipy import stats

    a = np.random.default_rng(0).integers(0, 5, (7, 40)).astype(float)
    np.testing.assert_array_equal(_ranks(a), stats.rankdata(a, axis=1))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_blocks_on_threads_change_nothing(chains, monkeypatch):
    import bayes_mf._mcmc_stats as ms

    monkeypatch.setattr(ms, "CHUNK", 7)  # 40 quantities: six blocks, the last one short
    whole = diagnose(chains)
    one = ms.diagnose_chunked(chains, workers=1)
    two = ms.diagnose_chunked(chains, workers=3)
    for key, want in whole.items():
        np.testing.assert_allclose(one[key], want, rtol=1e-12, atol=1e-14, err_msg=key)
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)  # thread count: bit for bit
    assert one["rhat"][1] > 1.1  # the stuck chain is seen in its block
