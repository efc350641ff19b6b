r"""Laplace approximation of :class:`~bayes_mf.inference.PMF`: a Gaussian at the plug-in mode.

The rung between MAP and the variational methods.  With every scale at its
type-II value (the plug-in model of :mod:`.gaussian`), the posterior is
approximated by :math:`N(\hat\theta, H^{-1})`, :math:`\hat\theta` the mode
and :math:`H = -\nabla^2\log p(\hat\theta\mid R)`.

The dense Hessian of u1 (rank 10, ~28 000 parameters) would take 6 GB, so
:math:`H` is replaced by its **block diagonal**: one block per user row
:math:`(U_i, b_i)`, one per item row :math:`(V_j, c_j)` and one for
:math:`\mu`.  Each block is the *exact* conditional precision of that row
given all others,

.. math::
    A_i = \frac1{\sigma^2}\sum_{j\in\Omega_i} (V_j, 1)(V_j, 1)^\top
          + \mathrm{blockdiag}(P_U, \sigma_b^{-2}),

so draws are exact draws of each row's conditional at the mode, taken
independently.  The dropped cross-blocks (user rows with the item rows they
rated) make every marginal variance a *conditional* one -- too small; the
fidelity table of :func:`bayes_mf.fidelity.fidelity_table` measures by how much.

The mode is that of the plug-in (type-II) prior, not the MAP's validated
stronger factor prior: the approximation is of the posterior, started from
the MAP point.
"""

from __future__ import annotations

import numpy as np

from ..data import Ratings
from .gaussian import lbfgs, n_draws, plug_in, require_plug_in, row_precisions, store_draws

__all__ = ["fit_laplace", "laplace_draws"]


def laplace_draws(m, mode: np.ndarray, n: int, random_seed=None) -> np.ndarray:
    r"""``n`` draws (n x size) of the block-diagonal Laplace approximation at ``mode``.

    Each row block: :math:`a = \hat a + L^{-\top} z`, :math:`LL^\top = A`,
    :math:`z \sim N(0, I)`.
    """
    rng = np.random.default_rng(random_seed)
    prec = row_precisions(m, mode)
    p = m.unpack(mode)
    k = m.k
    out = np.empty((n, m.size))
    o = (m.n_users + m.n_items) * k
    for side, F, bias, start_f, start_b in (
            ("user", p["U"], p.get("user_bias"), 0, o),
            ("item", p["V"], p.get("item_bias"), m.n_users * k, o + m.n_users)):
        A = prec[side]
        rows, d = A.shape[0], A.shape[-1]
        Linv = np.linalg.inv(np.linalg.cholesky(A))  # (rows, d, d), lower
        z = rng.standard_normal((n, rows, d))
        # L^{-T} z: covariance L^{-T} L^{-1} = A^{-1}
        x = np.einsum("rba,srb->sra", Linv, z)
        out[:, start_f:start_f + rows * k] = (F[None] + x[..., :k]).reshape(n, -1)
        if m.biases:
            out[:, start_b:start_b + rows] = bias[None] + x[..., k]
    if m.biases:
        out[:, -1] = p["mu"] + rng.standard_normal(n) / np.sqrt(prec["mu"])
    return out


def fit_laplace(est, r: Ratings) -> None:
    """Fit the block-diagonal Laplace approximation for ``est`` (a :class:`~bayes_mf.inference.PMF`).

    Parameters
    ----------
    est : PMF
        Past its MAP step; gets ``laplace_mode_`` (the plug-in mode, flat),
        ``model_`` and ``result_`` (``draws * chains`` draws, one chain).
    r : Ratings
        Training ratings.
    """
    from threadpoolctl import threadpool_limits

    require_plug_in(est, "laplace")
    m = plug_in(est, r)
    with threadpool_limits(1, user_api="blas"):
        res = lbfgs(m, m.pack(est.map_point_), maxiter=int(est.map_maxiter), ftol=float(est.map_ftol))
        est.laplace_mode_ = res.x
        thetas = laplace_draws(m, res.x, n_draws(est), est.random_seed)
    attrs = {"approximation": "Laplace at the plug-in mode; block-diagonal precision: exact conditional "
                              "precision per user row (U_i, b_i), per item row (V_j, c_j) and of mu; "
                              "user-item cross blocks dropped",
             "mode_iterations": int(res.nit), "init": "MAP point"}
    store_draws(est, r, m, thetas, method="laplace", attrs=attrs)
