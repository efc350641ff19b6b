r"""The two sides' factor scales, sampled as their log product and log ratio.

With non-centred factors, :math:`U = Z_U C_U^\top \mathrm{diag}(s_U)` and likewise
:math:`V` (:math:`Z` standard normal, :math:`C` a correlation's Cholesky factor, :math:`s`
the sds), the likelihood sees factor :math:`a` only through the product
:math:`s_{U,a}\,s_{V,a}` of the two sides' scales (given the standard-normal
:math:`Z` and the correlations): :math:`U_{ia}V_{ja}` is unchanged by
:math:`s_{U,a}\to\lambda s_{U,a}`, :math:`s_{V,a}\to s_{V,a}/\lambda`.  Only the two
hyperpriors pin that ratio, so in the coordinates :math:`(\log s_U, \log s_V)` the
posterior is a long, thin ridge (the product is pinned by 80 000 ratings, the ratio by
two HalfNormals), which a diagonal mass matrix crosses in tiny steps.

:func:`paired_scales` samples instead

.. math::
    p_a = \log s_{U,a} + \log s_{V,a}, \qquad r_a = \log s_{U,a} - \log s_{V,a},

with the density of the same priors (:math:`s \sim \mathrm{HalfNormal}(h)`, and for BPMF
an LKJ(2) correlation per side): a linear map of the log scales, with the constant
Jacobian :math:`1/2` per factor, so the model is unchanged.  In these coordinates the
data pin :math:`p` and leave :math:`r` to the prior, two directions a diagonal mass
matrix scales separately.
"""

from __future__ import annotations

import numpy as np

__all__ = ["paired_scales", "paired_start"]

#: the free variables of the paired scales
LOG_PRODUCT, LOG_RATIO = "log_scale_product", "log_scale_ratio"


def _halfnormal_logp(s, h: float):
    """log HalfNormal(s; h) plus log s, the log-Jacobian of sampling log s."""
    import pytensor.tensor as pt

    return (np.log(2.0 / np.sqrt(2.0 * np.pi) / h) - s**2 / (2.0 * h**2) + pt.log(s)).sum()


def paired_scales(priors: str, k: int, hyper_u: float | None, hyper_v: float | None):
    r"""Factor scales of the user and item sides, free as log product and log ratio.

    Parameters
    ----------
    priors : {"adaptive", "bpmf"}
        ``"adaptive"``: one scale per side, :math:`s \sim \mathrm{HalfNormal}(h)` (``h`` =
        ``hyper_u``/``hyper_v`` or 1), returned as scalars.  ``"bpmf"``: the sds of the
        LKJ(2) covariance of :func:`~bayes_mf.models.factor_prior` (HalfNormal(1) each),
        returned as the Cholesky factors :math:`\mathrm{diag}(s)\,C` with :math:`C` the free
        ``corr_u``/``corr_v`` (:class:`pymc.LKJCorr`, Cholesky form).
    k : int
        Rank.
    hyper_u, hyper_v : float, optional
        Hyperprior scales of the adaptive prior.

    Returns
    -------
    (scale_u, scale_v)
        Scalar tensors (adaptive) or Cholesky factors (bpmf).
    """
    import pymc as pm
    import pytensor.tensor as pt

    if priors == "adaptive":
        shape = ()
        hu, hv = (1.0 if h is None else float(h) for h in (hyper_u, hyper_v))
    else:
        shape, hu, hv = (k,), 1.0, 1.0
    # no initial values here (they start at 1, and the estimator at its MAP point): a model
    # with initial values cannot be cloned into a graph (PMF.from_model)
    p = pm.Flat(LOG_PRODUCT, shape=shape)
    r = pm.Flat(LOG_RATIO, shape=shape)
    s_u, s_v = pt.exp(0.5 * (p + r)), pt.exp(0.5 * (p - r))
    # (p, r) -> (log s_u, log s_v) has Jacobian 1/2 per factor
    pm.Potential("scale_prior", _halfnormal_logp(s_u, hu) + _halfnormal_logp(s_v, hv)
                 + np.log(0.5) * int(np.prod(shape)))
    if priors == "adaptive":
        return s_u, s_v
    # LKJ's support point would compile with the C backend: an explicit identity instead
    eye = np.eye(k)
    c_u = pm.LKJCorr("corr_u", n=k, eta=2.0, initval=eye)
    c_v = pm.LKJCorr("corr_v", n=k, eta=2.0, initval=eye)
    return s_u[:, None] * c_u, s_v[:, None] * c_v


def paired_start(point: dict, priors: str) -> dict:
    """Start values of :func:`paired_scales`' free variables from a point with the plain ones
    (``sigma_u``/``sigma_v`` for adaptive, packed ``chol_u``/``chol_v`` for bpmf)."""
    if priors == "adaptive":
        su, sv = (float(np.asarray(point[k])) for k in ("sigma_u", "sigma_v"))
        return {LOG_PRODUCT: np.asarray(np.log(su * sv)), LOG_RATIO: np.asarray(np.log(su / sv))}
    out, logs = {}, []
    for side in ("u", "v"):
        packed = np.asarray(point[f"chol_{side}"], dtype=float)
        k = int(round((np.sqrt(8 * packed.size + 1) - 1) / 2))
        L = np.zeros((k, k))
        L[np.tril_indices(k)] = packed
        sd = np.sqrt((L**2).sum(axis=1))
        out[f"corr_{side}"] = L / sd[:, None]
        logs.append(np.log(sd))
    out[LOG_PRODUCT], out[LOG_RATIO] = logs[0] + logs[1], logs[0] - logs[1]
    return out
