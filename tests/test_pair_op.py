"""The pair predictor Op: the same values and gradients as PyTensor's own indexing, on every backend."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayes_mf._pair_op import pair_eta


def _problem(seed=0, n=400, nu=13, ni=17, k=3):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, nu, n)
    i = rng.integers(0, ni, n)
    # every id at least once, and some pairs repeated, as in real data
    u[:nu], i[:ni] = np.arange(nu), np.arange(ni)
    vals = (rng.normal(size=(nu, k)), rng.normal(size=(ni, k)), rng.normal(size=nu), rng.normal(size=ni))
    return vals, u, i, rng.normal(size=n)


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_values_and_gradients_match_indexing(mode):
    (Uv, Vv, bv, cv), u, i, w = _problem()
    U, V = pt.matrix("U"), pt.matrix("V")
    b, c = pt.vector("b"), pt.vector("c")
    ui, ii = pytensor.shared(u), pytensor.shared(i)
    ours = pair_eta(U, V, b, c, ui, ii)
    ref = (U[ui] * V[ii]).sum(-1) + b[ui] + c[ii]
    outs = []
    for eta in (ours, ref):
        # a non-linear loss, so the gradient's weights differ pair by pair
        loss = (w * pt.sin(eta)).sum()
        outs.append(pytensor.function([U, V, b, c], [eta, *pytensor.grad(loss, [U, V, b, c])], mode=mode)(
            Uv, Vv, bv, cv))
    for a, r in zip(*outs, strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)
    # the gradient is not trivially zero
    assert np.abs(outs[0][1]).max() > 0.1


def test_verify_grad():
    (Uv, Vv, bv, cv), u, i, _ = _problem(seed=1, n=60, nu=5, ni=6, k=2)
    pytensor.gradient.verify_grad(lambda U, V, b, c: pair_eta(U, V, b, c, u, i), [Uv, Vv, bv, cv],
                                  rng=np.random.default_rng(2))


def test_jax_matches_numba():
    pytest.importorskip("jax")
    from bayes_mf._pair_op import register_jax

    register_jax()
    (Uv, Vv, bv, cv), u, i, _ = _problem()
    U, V = pt.matrix("U"), pt.matrix("V")
    b, c = pt.vector("b"), pt.vector("c")
    eta = pair_eta(U, V, b, c, u, i)
    vals = [pytensor.function([U, V, b, c], eta, mode=m)(Uv, Vv, bv, cv) for m in ("JAX", "NUMBA")]
    np.testing.assert_allclose(vals[0], vals[1], rtol=1e-10)


def test_second_derivatives_match_indexing():
    # Laplace's Hessian: the gradient Op must itself be differentiable
    (Uv, Vv, bv, cv), u, i, w = _problem(seed=3, n=80, nu=6, ni=7, k=2)
    flat = pt.vector("flat")
    ends = np.cumsum([0, Uv.size, Vv.size, bv.size, cv.size])
    parts = [flat[a:e] for a, e in zip(ends[:-1], ends[1:], strict=True)]
    args = [parts[0].reshape(Uv.shape), parts[1].reshape(Vv.shape), parts[2], parts[3]]
    x = np.concatenate([Uv.ravel(), Vv.ravel(), bv, cv])
    hess = []
    for eta in (pair_eta(*args, u, i), (args[0][u] * args[1][i]).sum(-1) + args[2][u] + args[3][i]):
        loss = (w * pt.sin(eta)).sum()
        hess.append(pytensor.function([flat], pytensor.gradient.hessian(loss, flat))(x))
    np.testing.assert_allclose(hess[0], hess[1], rtol=1e-10, atol=1e-10)
    assert np.abs(hess[0]).max() > 0.1


def test_numba_cache_salt_follows_the_kernel_source(monkeypatch):
    # PyTensor keys its on-disk numba cache on the Op's type and props: an edited kernel must
    # change the salt, or the old compiled code keeps running
    import inspect

    from bayes_mf import _pair_op

    base = _pair_op._kernel_version()
    assert base == _pair_op._kernel_version()
    real = inspect.getsource
    monkeypatch.setattr(inspect, "getsource", lambda f: real(f) + "# edited\n")
    assert _pair_op._kernel_version() != base
