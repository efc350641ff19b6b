r"""Single-path Pathfinder (Zhang, Carpenter, Gelman & Vehtari 2022) on the plug-in model.

Pathfinder runs L-BFGS on :math:`f = -\log p` from a random start and, at
every iterate :math:`x_l`, forms the Gaussian

.. math::
    q_l = N\bigl(x_l - \Sigma_l \nabla f(x_l),\ \Sigma_l\bigr),\qquad
    \Sigma_l = \mathrm{diag}(\alpha) + \beta\gamma\beta^\top,

the L-BFGS inverse-Hessian estimate in the compact form of Byrd, Nocedal &
Schnabel (1994) over the last :math:`J` update pairs
:math:`s = x_{l+1} - x_l`, :math:`y = \nabla f(x_{l+1}) - \nabla f(x_l)`:
:math:`\beta = (S, \mathrm{diag}(\alpha) Y)`,

.. math::
    \gamma = \begin{pmatrix} R^{-\top}(D + Y^\top \mathrm{diag}(\alpha) Y)R^{-1} & -R^{-\top}\\
                             -R^{-1} & 0\end{pmatrix},

:math:`R` the upper triangle of :math:`S^\top Y`, :math:`D` its diagonal,
and :math:`\alpha` the diagonal updated along the path (the paper's
Algorithm 3).  Draws use a thin QR of :math:`\mathrm{diag}(\alpha)^{-1/2}\beta
= QR_q` and :math:`LL^\top = I + R_q\gamma R_q^\top`:
:math:`\phi = \mu + \alpha^{1/2}\odot(u + Q(L - I)Q^\top u)`, with
:math:`\log\det\Sigma_l = \sum\log\alpha + 2\log\det L`.  The ELBO of every
:math:`q_l` is estimated with ``K`` draws, and the final draws come from
the best one.  Cost: one L-BFGS run plus ``K`` log densities per iterate
(u1: about a minute); memory :math:`O(NJ)`, never :math:`N^2`.

Choices made here (why this is not ``pymc-extras``):

- ``pymc-extras`` 0.15.1 declares ``pymc<6.4``: a plain install downgrades
  PyMC, and its multi-path Pathfinder compiles PyTensor graphs of the full
  model.  The algorithm is short, so it is written here against the NumPy
  log density of :mod:`.gaussian` (no compile; same seed, same numbers).
- Single path, no importance resampling: with ~28 000 dimensions the
  importance weights of multi-path Pathfinder are degenerate (one path
  takes all the weight), and the paper's single-path variant is what
  remains.
- The start is a draw from the plug-in prior (seeded), the analogue of the
  paper's uniform start in unconstrained space.
"""

from __future__ import annotations

import numpy as np

from ..data import Ratings
from .gaussian import lbfgs, n_draws, plug_in, require_plug_in, store_draws

__all__ = ["fit_pathfinder", "Pathfinder"]

#: L-BFGS history size J (the paper's default 6)
HISTORY = 6
#: draws per ELBO estimate K (the paper's default 5)
ELBO_DRAWS = 5


class Pathfinder:
    """The online part of Pathfinder: fed each L-BFGS iterate, keeps the best approximation.

    Parameters
    ----------
    f : callable
        ``theta -> (f, grad)`` of :math:`f = -\\log p`.
    x0 : ndarray
        The start; ``f(x0)`` is evaluated here.
    rng : numpy.random.Generator
    history, elbo_draws : int
    """

    def __init__(self, f, x0, rng, *, history: int = HISTORY, elbo_draws: int = ELBO_DRAWS):
        self.f, self.rng, self.J, self.K = f, rng, int(history), int(elbo_draws)
        self.x = np.asarray(x0, float).copy()
        self.g = f(self.x)[1]
        self.alpha = np.ones_like(self.x)
        self.S, self.Y = [], []
        self.best = None  # (elbo, mean, alpha, Q, L)
        self.elbos = []

    def update(self, x_new: np.ndarray, g_new: np.ndarray) -> None:
        """Take the next iterate: update the pairs and the diagonal, score the new ``q_l``."""
        s, y = x_new - self.x, g_new - self.g
        self.x, self.g = x_new.copy(), g_new.copy()
        sy = s @ y
        if not sy > 1e-12 * (y @ y):  # curvature condition: skip the pair, as L-BFGS does
            return
        self.alpha = _update_alpha(self.alpha, s, y)
        self.S.append(s)
        self.Y.append(y)
        if len(self.S) > self.J:
            self.S.pop(0)
            self.Y.pop(0)
        self.elbos.append(self._score())

    def _factors(self):
        """Mean, Q and L of ``q_l`` at the current iterate (``None`` if not positive definite)."""
        S, Y, a = np.array(self.S).T, np.array(self.Y).T, self.alpha
        m = S.shape[1]
        SY = S.T @ Y
        R = np.triu(SY)
        Rinv = np.linalg.inv(R)
        D = np.diag(np.diag(SY))
        gamma = np.zeros((2 * m, 2 * m))
        gamma[:m, :m] = Rinv.T @ (D + Y.T @ (a[:, None] * Y)) @ Rinv
        gamma[:m, m:] = -Rinv.T
        gamma[m:, :m] = -Rinv
        beta = np.c_[S, a[:, None] * Y]
        mean = self.x - (a * self.g + beta @ (gamma @ (beta.T @ self.g)))
        Q, Rq = np.linalg.qr(beta / np.sqrt(a)[:, None])
        try:
            # Q has min(N, 2m) columns (fewer than 2m only for tiny N)
            L = np.linalg.cholesky(np.eye(Rq.shape[0]) + Rq @ gamma @ Rq.T)
        except np.linalg.LinAlgError:
            return None
        return mean, Q, L

    def sample(self, n: int, factors=None):
        """``n`` draws of ``q_l`` and their log densities (the best ``q_l`` unless ``factors``)."""
        mean, alpha, Q, L = factors if factors is not None else self.best[1:]
        u = self.rng.standard_normal((n, mean.size))
        Qu = u @ Q
        phi = mean + np.sqrt(alpha) * (u + Qu @ (L - np.eye(L.shape[0])).T @ Q.T)
        logdet = np.sum(np.log(alpha)) + 2 * np.sum(np.log(np.diag(L)))
        logq = -0.5 * (mean.size * np.log(2 * np.pi) + logdet + np.sum(u * u, axis=1))
        return phi, logq

    def _score(self) -> float:
        fac = self._factors()
        if fac is None:
            return -np.inf
        mean, Q, L = fac
        factors = (mean, self.alpha.copy(), Q, L)
        phi, logq = self.sample(self.K, factors)
        elbo = float(np.mean([-self.f(p)[0] for p in phi] - logq))
        if np.isfinite(elbo) and (self.best is None or elbo > self.best[0]):
            self.best = (elbo, *factors)
        return elbo


def _update_alpha(alpha, s, y):
    """The paper's Algorithm 3: the diagonal of the inverse Hessian along the path (kept if not > 0)."""
    a = y @ (alpha * y)
    b = y @ s
    c = s @ (s / alpha)
    new = 1.0 / (a / (b * alpha) + y * y / b - a * s * s / (b * c * alpha**2))
    return new if np.all(np.isfinite(new) & (new > 0)) else alpha


def fit_pathfinder(est, r: Ratings) -> None:
    """Fit single-path Pathfinder for ``est`` (a :class:`~bayes_mf.inference.PMF` past its MAP step).

    Sets ``pathfinder_elbo_`` (the ELBO estimate of every ``q_l``), ``model_``
    and ``result_`` (``draws * chains`` draws of the best ``q_l``, one chain;
    ``sample_stats.elbo`` holds the path's ELBOs).
    """
    from threadpoolctl import threadpool_limits

    require_plug_in(est, "pathfinder")
    m = plug_in(est, r)
    rng = np.random.default_rng(est.random_seed)
    x0 = _prior_draw(m, rng)
    with threadpool_limits(1, user_api="blas"):
        cache = {}

        def f(theta):
            out = m.neg_logp_grad(theta)
            cache["x"], cache["g"] = theta.copy(), out[1]
            return out

        pf = Pathfinder(m.neg_logp_grad, x0, rng)

        def step(intermediate_result):
            x = intermediate_result.x
            g = cache["g"] if np.array_equal(cache.get("x"), x) else m.neg_logp_grad(x)[1]
            pf.update(x, g)

        res = lbfgs(_Wrapped(f, m), x0, maxiter=int(est.map_maxiter), ftol=1e-9, callback=step)
        if pf.best is None:
            raise RuntimeError("Pathfinder found no approximation with a finite ELBO along the path; "
                               "try another random_seed or method='laplace'")
        n = n_draws(est)
        # in chunks: the standard normals and the draws of 28 000 dims are each 224 MB at 1000 draws
        thetas = np.concatenate([pf.sample(min(100, n - s))[0] for s in range(0, n, 100)])
    est.pathfinder_elbo_ = np.asarray(pf.elbos)
    attrs = {"approximation": "single-path Pathfinder (Zhang et al. 2022): L-BFGS inverse-Hessian "
                              f"Gaussian, history {HISTORY}, best of the path by ELBO ({ELBO_DRAWS} draws)",
             "lbfgs_iterations": int(res.nit), "best_elbo": float(pf.best[0]),
             "init": "a draw from the plug-in prior"}
    store_draws(est, r, m, thetas, method="pathfinder", attrs=attrs, elbo=np.asarray(pf.elbos))


class _Wrapped:
    """``m`` with its objective replaced (so :func:`.gaussian.lbfgs` records the gradients)."""

    def __init__(self, f, m):
        self.neg_logp_grad = f
        self.m = m


def _prior_draw(m, rng) -> np.ndarray:
    """A draw from the plug-in prior (the start of the L-BFGS path)."""
    cu = np.linalg.cholesky(np.linalg.inv(m.prec_u))
    cv = np.linalg.cholesky(np.linalg.inv(m.prec_v))
    point = {"U": m.mean_u + rng.standard_normal((m.n_users, m.k)) @ cu.T,
             "V": m.mean_v + rng.standard_normal((m.n_items, m.k)) @ cv.T}
    if m.biases:
        point["user_bias"] = m.sigma_b * rng.standard_normal(m.n_users)
        point["item_bias"] = m.sigma_c * rng.standard_normal(m.n_items)
        point["mu"] = m.center
    return m.pack(point)
