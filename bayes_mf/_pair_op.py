r"""The linear predictor over the observed pairs as one PyTensor Op with a hand-written gradient.

:math:`\eta_n = b_{u_n} + c_{i_n} + U_{u_n}^\top V_{i_n}` for the ``n``-th observed
pair.  Written with PyTensor's indexing, the forward pass gathers two
(pairs × rank) arrays and the gradient scatters two back; on MovieLens u1 that
made one log-density gradient of the PyMC model cost ~8 ms.  Here both passes are
single numba loops over the pairs that touch each factor row in place, so NUTS (whose
cost is almost all gradients) gets the same numbers several times faster.  The Op
has a NumPy-callable ``perform`` (C/Python backends), a numba implementation
(nutpie and PyMC's default backend) and, when JAX is used, a JAX one
(:func:`register_jax`; JAX differentiates that itself).
"""

from __future__ import annotations

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

__all__ = ["pair_eta"]


#: reassociation lets LLVM vectorise the rank loops; no ``nnan``/``ninf``: a NUTS trajectory
#: that diverges must still see its infinities
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@numba.njit(cache=True, nogil=True, boundscheck=False, fastmath=_FASTMATH)
def _eta_kernel(U, V, b, c, u, i):
    n, k = u.shape[0], U.shape[1]
    out = np.empty(n)
    for p in range(n):
        a, j = u[p], i[p]
        e = 0.0
        for d in range(k):
            e += U[a, d] * V[j, d]
        out[p] = e + b[a] + c[j]
    return out


@numba.njit(cache=True, nogil=True, boundscheck=False, fastmath=_FASTMATH)
def _eta_grad_kernel(U, V, u, i, g, n_b, n_c):
    # n_b / n_c: the lengths of the bias vectors (those of U and V when there are no biases).
    # Two passes, one per side: with both scatters in one loop the compiler cannot rule out
    # that dU and dV overlap and keeps the rank loop scalar (~20 % slower on u1)
    k = U.shape[1]
    dU = np.zeros_like(U)
    dV = np.zeros_like(V)
    db = np.zeros(n_b)
    dc = np.zeros(n_c)
    for p in range(u.shape[0]):
        a, j, gp = u[p], i[p], g[p]
        db[a] += gp
        for d in range(k):
            dU[a, d] += gp * V[j, d]
    for p in range(u.shape[0]):
        a, j, gp = u[p], i[p], g[p]
        dc[j] += gp
        for d in range(k):
            dV[j, d] += gp * U[a, d]
    return dU, dV, db, dc


class PairEta(Op):
    """``eta = b[u] + c[i] + (U[u] * V[i]).sum(-1)``; inputs ``U, V, b, c, u, i``."""

    __props__ = ()

    def make_node(self, U, V, b, c, u, i):
        U, V, b, c = (pt.as_tensor_variable(x).astype("float64") for x in (U, V, b, c))
        u, i = (pt.as_tensor_variable(x).astype("int64") for x in (u, i))
        return Apply(self, [U, V, b, c, u, i], [pt.vector(dtype="float64", shape=(u.type.shape[0],))])

    def perform(self, node, inputs, outputs):
        U, V, b, c, u, i = (np.ascontiguousarray(x) for x in inputs)
        outputs[0][0] = _eta_kernel(U, V, b, c, u, i)

    def infer_shape(self, node, shapes):
        return [(shapes[4][0],)]

    def pullback(self, inputs, outputs, cotangents):
        U, V, b, c, u, i = inputs
        dU, dV, db, dc = PairEtaGrad()(U, V, b, c, u, i, cotangents[0])
        return [dU, dV, db, dc, grad_undefined(self, 4, u), grad_undefined(self, 5, i)]


class PairEtaGrad(Op):
    """Vector-Jacobian product of :class:`PairEta`: ``(dU, dV, db, dc)`` for an output gradient ``g``."""

    __props__ = ()

    def make_node(self, U, V, b, c, u, i, g):
        ins = [pt.as_tensor_variable(x) for x in (U, V, b, c, u, i, g)]
        return Apply(self, ins, [x.type() for x in ins[:4]])

    def perform(self, node, inputs, outputs):
        U, V, b, c, u, i, g = (np.ascontiguousarray(x) for x in inputs)
        for out, value in zip(outputs, _eta_grad_kernel(U, V, u, i, g, b.shape[0], c.shape[0]), strict=True):
            out[0] = value

    def infer_shape(self, node, shapes):
        return shapes[:4]

    def pullback(self, inputs, outputs, cotangents):
        # (dU, dV) is bilinear in (g, V) and (g, U), and (db, dc) linear in g: the pullback is two
        # more passes of the same kernels (Laplace's Hessian-vector products need it)
        U, V, b, c, u, i, g = inputs
        gU, gV, gb, gc = (pt.zeros_like(x) if isinstance(ct.type, DisconnectedType) else ct
                          for x, ct in zip(inputs[:4], cotangents, strict=True))
        to_U, to_V, _, _ = PairEtaGrad()(gU, gV, b, c, u, i, g)
        to_g = pair_eta(gU, V, gb, gc, u, i) + pair_eta(U, gV, pt.zeros_like(b), pt.zeros_like(c), u, i)
        return [to_U, to_V, pt.zeros_like(b), pt.zeros_like(c),
                grad_undefined(self, 4, u), grad_undefined(self, 5, i), to_g]


def pair_eta(U, V, b, c, u, i):
    r""":math:`b_{u_n} + c_{i_n} + U_{u_n}^\top V_{i_n}` for every pair ``n`` (a PyTensor vector).

    Pass zero vectors for ``b`` and ``c`` in a model without biases.
    """
    return PairEta()(U, V, b, c, u, i)


def _kernel_version() -> int:
    """A salt for PyTensor's on-disk numba cache, from the kernels' source: its key is the Op's
    type and props only, so without it an edited kernel would keep running its old compiled code."""
    import inspect
    import zlib

    try:
        source = "".join(inspect.getsource(f.py_func) for f in (_eta_kernel, _eta_grad_kernel))
    except OSError:  # no source shipped: the package version is the next best salt
        from . import __version__ as source
    return zlib.crc32(source.encode()) + 1


def _register_numba() -> None:
    version = _kernel_version()

    from pytensor.link.numba.dispatch import basic as numba_basic
    from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

    @register_funcify_default_op_cache_key(PairEta)
    def _funcify_eta(op, node=None, **kwargs):
        @numba_basic.numba_njit
        def eta(U, V, b, c, u, i):
            return _eta_kernel(np.ascontiguousarray(U), np.ascontiguousarray(V), b, c, u, i)

        return eta, version

    @register_funcify_default_op_cache_key(PairEtaGrad)
    def _funcify_grad(op, node=None, **kwargs):
        @numba_basic.numba_njit
        def grad(U, V, b, c, u, i, g):
            return _eta_grad_kernel(np.ascontiguousarray(U), np.ascontiguousarray(V), u, i, g,
                                    b.shape[0], c.shape[0])

        return grad, version


_register_numba()


def register_jax() -> None:
    """Give :class:`PairEta` a JAX implementation (for ``nuts_sampler="numpyro"``); JAX
    differentiates it itself, so the gradient Op is never converted."""
    from pytensor.link.jax.dispatch import jax_funcify

    if PairEta in jax_funcify.registry:
        return

    @jax_funcify.register(PairEta)
    def _jax_eta(op, **kwargs):
        def eta(U, V, b, c, u, i):
            return b[u] + c[i] + (U[u] * V[i]).sum(axis=-1)

        return eta
