r"""Compiled twins of the ordinal sampler's passes over the ratings (numba, NumPy fallback).

Each Metropolis proposal of :mod:`bayes_mf.gibbs.ordinal` needs
:math:`\sum_n \log(\Phi(g(\gamma_{r_n} - \eta_n)) - \Phi(g(\gamma_{r_n-1} - \eta_n)))`
over every rating, and each sweep the linear predictor :math:`\eta_n`; in
NumPy those are a dozen passes over temporaries, compiled they are one loop.

:math:`\log\Phi(x)` is ``log(erfc(-x / sqrt 2) / 2)`` down to :math:`x = -30`
(``erfc`` keeps its relative accuracy there) and below it the asymptotic
series :math:`-x^2/2 - \log(-x) - \log\sqrt{2\pi} + \log(1 - x^{-2} + 3x^{-4}
- 15x^{-6} + 105x^{-8})`, whose next term is below :math:`10^{-12}`.  The
two twins therefore agree to rounding, and either is a fixed function of
the state, which is all a Metropolis target needs.
"""

from __future__ import annotations

import math

import numpy as np

from .kernels import HAVE_NUMBA, _numba

__all__ = ["loglik_sum", "loglik_obs", "linear_predictor"]

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _log_ndtr(x):
    if x == np.inf:
        return 0.0
    if x > -30.0:
        return math.log(0.5 * math.erfc(-x * _SQRT1_2))
    x2 = x * x
    return -0.5 * x2 - math.log(-x) - _LOG_SQRT_2PI + math.log1p(-1.0 / x2 + 3.0 / x2**2 - 15.0 / x2**3
                                                                 + 105.0 / x2**4)


def _log_interval(a, b):
    if a > 0.0:  # mirror above the median: the difference is then taken where it is not 1 - 1
        a, b = -b, -a
    lb = _log_ndtr(b)
    if a == -np.inf:
        return lb
    return lb + math.log1p(-math.exp(_log_ndtr(a) - lb))


def _loglik_sum_py(codes, eta, ext, g):
    total = 0.0
    for n in range(codes.shape[0]):
        c = codes[n]
        total += _log_interval(g * (ext[c] - eta[n]), g * (ext[c + 1] - eta[n]))
    return total


def _loglik_obs_py(codes, eta, ext, out):
    for n in range(codes.shape[0]):
        c = codes[n]
        out[n] = _log_interval(ext[c] - eta[n], ext[c + 1] - eta[n])
    return out


def _eta_py(user, item, mu, F_u, F_i, b_u, b_i, use_bias, out):
    k = F_u.shape[1]
    for n in range(user.shape[0]):
        u, i = user[n], item[n]
        acc = mu
        for f in range(k):
            acc += F_u[u, f] * F_i[i, f]
        if use_bias:
            acc += b_u[u] + b_i[i]
        out[n] = acc
    return out


if HAVE_NUMBA:
    _jit = _numba.njit(cache=True, nogil=True, fastmath=False)
    _log_ndtr = _jit(_log_ndtr)
    _log_interval = _jit(_log_interval)
    _loglik_sum_numba = _jit(_loglik_sum_py)
    _eta_numba = _jit(_eta_py)
    _loglik_obs_numba = _jit(_loglik_obs_py)


def loglik_sum(codes, eta, cuts, g: float = 1.0, use_numba: bool = False) -> float:
    """Probit log-likelihood of all ratings, cut-points and predictor times ``g`` (z integrated out)."""
    if use_numba and HAVE_NUMBA:
        ext = np.concatenate(([-np.inf], np.asarray(cuts, float), [np.inf]))
        return float(_loglik_sum_numba(codes, eta, ext, float(g)))
    from .ordinal import _bounds, log_interval

    lo, hi = _bounds(codes, eta, cuts)
    return float(np.sum(log_interval(g * lo, g * hi)))


def loglik_obs(codes, eta, cuts, use_numba: bool = False) -> np.ndarray:
    """Probit log-likelihood of each rating (z integrated out), one value per rating."""
    if use_numba and HAVE_NUMBA:
        ext = np.concatenate(([-np.inf], np.asarray(cuts, float), [np.inf]))
        return _loglik_obs_numba(codes, eta, ext, np.empty(codes.shape[0]))
    from .ordinal import _bounds, log_interval

    return log_interval(*_bounds(codes, eta, cuts))


def linear_predictor(user, item, mu, X_u, X_i, k: int, use_bias: bool, use_numba: bool = False):
    r""":math:`\eta_n = \mu + b_u + c_i + U_u^\top V_i` for every rating (rows of ``X`` are ``[F, b]``)."""
    if use_numba and HAVE_NUMBA:
        F_u, F_i = np.ascontiguousarray(X_u[:, :k]), np.ascontiguousarray(X_i[:, :k])
        b_u = np.ascontiguousarray(X_u[:, k]) if use_bias else np.zeros(1)
        b_i = np.ascontiguousarray(X_i[:, k]) if use_bias else np.zeros(1)
        return _eta_numba(user, item, float(mu), F_u, F_i, b_u, b_i, bool(use_bias), np.empty(user.shape[0]))
    eta = np.einsum("nk,nk->n", X_u[user, :k], X_i[item, :k]) + mu
    if use_bias:
        eta += X_u[user, k] + X_i[item, k]
    return eta
