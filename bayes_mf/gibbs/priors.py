r"""Hyperparameter conditionals: Gamma precisions and BPMF's Normal-Wishart.

With ``prior="bpmf"`` the factor prior is :math:`N(\mu_U, \Lambda_U^{-1})`,
:math:`(\mu_U, \Lambda_U) \sim NW(\mu_0 = 0, \beta_0, W_0 = I, \nu_0 = k)`;
every other precision has a :math:`\mathrm{Gamma}(a_0, b_0)` prior (module
docstring of :mod:`bayes_mf.gibbs`, step 5).
"""

from __future__ import annotations

import numpy as np

#: Normal-Wishart prior strength of the factor mean (Salakhutdinov & Mnih 2008)
BETA0 = 2.0


def _gamma_precision(rng, a0, b0, sumsq, n):
    return rng.gamma(a0 + 0.5 * n, 1.0 / (b0 + 0.5 * sumsq))


def _wishart_draw(rng, Winv, nu):
    """Draw Lambda ~ Wishart(W = Winv^-1, nu) by the Bartlett decomposition."""
    k = Winv.shape[0]
    Winv = 0.5 * (Winv + Winv.T)
    # chol of W = Winv^-1 without forming an explicit inverse of an ill-conditioned matrix
    Li = np.linalg.cholesky(Winv)
    Linv = np.linalg.solve(Li, np.eye(k))
    Lw = np.linalg.cholesky(Linv.T @ Linv)
    A = np.zeros((k, k))
    A[np.diag_indices(k)] = np.sqrt(rng.chisquare(nu - np.arange(k)))
    A[np.tril_indices(k, -1)] = rng.standard_normal(k * (k - 1) // 2)
    LA = Lw @ A
    return LA @ LA.T


def _wishart(rng, X):
    """Draw Lambda | X for X_i ~ N(0, Lambda^-1), Lambda ~ W(I, k): the zero-mean BPMF prior."""
    n, k = X.shape
    return _wishart_draw(rng, np.eye(k) + X.T @ X, float(k) + n)


def _normal_wishart(rng, X):
    """Draw (mu, Lambda) from the Normal-Wishart conditional of BPMF (module docstring, step 5)."""
    n, k = X.shape
    beta0, nu0 = BETA0, float(k)
    xbar = X.mean(axis=0)
    D = X - xbar
    Winv = np.eye(k) + D.T @ D + (beta0 * n / (beta0 + n)) * np.outer(xbar, xbar)
    Lam = _wishart_draw(rng, Winv, nu0 + n)
    beta = beta0 + n
    mu_star = n * xbar / beta
    Ll = np.linalg.cholesky(beta * Lam)
    mu = mu_star + np.linalg.solve(Ll.T, rng.standard_normal(k))
    return mu, Lam
