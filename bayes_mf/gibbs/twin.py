r"""The PyMC model whose posterior :class:`~bayes_mf.gibbs.GibbsPMF` samples.

:func:`pymc_model` writes the Gibbs model (module docstring of
:mod:`bayes_mf.gibbs`) as a ``pymc.Model``, so that any PyMC method (NUTS,
ADVI, Pathfinder) can fit exactly what the Gibbs sampler fits and the two can
be compared draw for draw:

.. math::
    R_{ij}/u \sim N(\mu + b_i + c_j + U_i^\top V_j,\ \tau^{-1}),\quad
    U_i \sim N(0, \lambda_U^{-1} I),\ b_i \sim N(0, \lambda_b^{-1}),\quad
    \mu \sim N(0, 100^2),

with :math:`u` the fit's rating unit, every precision :math:`\lambda,
\tau \sim \mathrm{Gamma}(a_0, b_0)` (``gamma_prior``) for
``prior="adaptive"`` or the constants of ``sigma_*`` for ``prior="fixed"``.
The variables carry the result names (``sigma`` = :math:`\tau^{-1/2}`,
``sigma_u`` = :math:`\lambda_U^{-1/2}`, ``sigma_b``, ``sigma_c``), on the
fit's standardised scale (multiply by :math:`u`; 1 for star ratings).

With ``likelihood="ordinal"`` the observed variable is the star code
(``0 .. K-1``) under ``pm.OrderedProbit(eta, cutpoints, sigma=1)`` (or
``pm.OrderedLogistic`` with ``ordinal_link="logistic"``: the same structure
with a logistic latent error, *not* what the Gibbs sampler samples), with
cut-points :math:`\gamma = (0, \gamma_1 + e^{\alpha_2}, \dots)` and log gaps
:math:`\alpha \sim N(0, 1)` (``log_gaps``), as in :mod:`bayes_mf.gibbs.ordinal`;
``cutpoints`` is a deterministic over the ``cutpoint`` dim.  MAP, ADVI and
NUTS all run on it (``pm.find_MAP``, ``pm.fit``, ``pm.sample``).

BPMF's Normal-Wishart prior, the implicit/side features, the time effects and
heteroscedastic noise have no twin
here: they raise ``NotImplementedError``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .._parametrize import _normal
from ..data import Ratings
from ..models import PARAMETRIZATIONS
from .moves import MU_PRIOR_PREC

__all__ = ["pymc_model"]


def pymc_model(est, ratings, *, parametrization: str = "noncentered", ordinal_link: str = "probit"):
    """The PyMC twin of ``est``'s model for ``ratings``.

    Parameters
    ----------
    est : GibbsPMF
        Fitted or not; its ``prior`` must be ``"fixed"`` or ``"adaptive"``
        and it must use no implicit or side features.
    ratings : Ratings, DataFrame or path
        The training ratings.
    parametrization : {"noncentered", "centered"}
        How the factors and biases depend on their scales (the same model;
        non-centred is what NUTS samples well).
    ordinal_link : {"probit", "logistic"}
        Latent error of ``likelihood="ordinal"``: ``pm.OrderedProbit`` (the
        Gibbs model) or ``pm.OrderedLogistic``.

    Returns
    -------
    pymc.Model
        Coords ``user``, ``item``, ``factor``, ``obs``; the observed
        variable is ``rating`` (on the standardised scale ``R / u``).
    """
    import pymc as pm

    if est.prior not in ("fixed", "adaptive"):
        raise NotImplementedError(f"no PyMC twin of prior={est.prior!r}: only 'fixed' and 'adaptive'")
    if est.implicit:
        raise NotImplementedError("no PyMC twin of a model with implicit feedback features")
    if getattr(est, "time_effects", None) not in (None, False, "none"):
        raise NotImplementedError("no PyMC twin of a model with time effects (tests/test_time_effects.py "
                                  "checks them against a brute-force posterior instead)")
    if getattr(est, "heteroscedastic", False):
        raise NotImplementedError("no PyMC twin of heteroscedastic noise (tests/test_noise.py checks it "
                                  "by SBC and against the written-out conditionals instead)")
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    from sklearn.base import clone

    r = Ratings.coerce(ratings)
    unit = est._rating_unit(r)
    # the settings in the fit's standardised units, as fit() would make them, from an unfitted copy
    work = clone(est)
    work.rating_unit_ = unit
    st = work._settings("numpy", r if unit == 1.0 else replace(r, rating=r.rating / unit, meta=dict(r.meta)))
    nc = parametrization == "noncentered"
    a0, b0 = (float(v) for v in est.gamma_prior)
    k = int(est.n_factors)
    coords = {"user": r.users.to_numpy(), "item": r.items.to_numpy(), "factor": np.arange(k),
              "obs": np.arange(len(r))}

    def scale(name, fixed_sd):
        if st.prior == "fixed":
            return pm.Deterministic(name, pm.math.constant(float(fixed_sd)))
        lam = pm.Gamma(f"lambda_{name[6:] or 'noise'}", alpha=a0, beta=b0)
        return pm.Deterministic(name, lam**-0.5)

    with pm.Model(coords=coords) as model:
        U = _normal("U", ("user", "factor"), scale("sigma_u", st.sigma_u), nc)
        V = _normal("V", ("item", "factor"), scale("sigma_v", st.sigma_v), nc)
        eta = (U[r.user] * V[r.item]).sum(axis=-1)
        if st.global_mean:
            eta = eta + pm.Normal("mu", 0.0, MU_PRIOR_PREC**-0.5)
        if st.biases:
            b = _normal("user_bias", "user", scale("sigma_b", st.sigma_bias), nc)
            c = _normal("item_bias", "item", scale("sigma_c", st.sigma_bias), nc)
            eta = eta + b[r.user] + c[r.item]
        if st.likelihood == "ordinal":
            _ordinal_likelihood(r, eta, ordinal_link)
            return model
        if st.sigma is not None:
            sigma = pm.Deterministic("sigma", pm.math.constant(float(st.sigma)))
        else:
            sigma = pm.Deterministic("sigma", pm.Gamma("tau", alpha=a0, beta=b0) ** -0.5)
        pm.Normal("rating", eta, sigma, observed=r.rating / unit, dims="obs")
    return model


def _ordinal_likelihood(r: Ratings, eta, link: str) -> None:
    """Cut-points (log gaps, first at 0) and the ordered-probit/logistic observation, in the open model."""
    import pymc as pm
    import pytensor.tensor as pt

    from .ordinal import GAP_PRIOR_SD, ordinal_levels

    if link not in ("probit", "logistic"):
        raise ValueError(f"ordinal_link must be 'probit' or 'logistic', got {link!r}")
    levels, codes = ordinal_levels(r.rating, r.scale, name=r.names[2])
    model = pm.modelcontext(None)
    model.add_coord("cutpoint", np.arange(levels.size - 1))
    alpha = pm.Normal("log_gaps", 0.0, GAP_PRIOR_SD, shape=levels.size - 2)
    cuts = pm.Deterministic("cutpoints", pt.concatenate([pt.zeros(1), pt.cumsum(pt.exp(alpha))]),
                            dims="cutpoint")
    if link == "probit":
        pm.OrderedProbit("rating", eta, cuts, sigma=1.0, compute_p=False, observed=codes, dims="obs")
    else:
        pm.OrderedLogistic("rating", eta, cuts, compute_p=False, observed=codes, dims="obs")
