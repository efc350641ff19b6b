r"""PyMC models of the PMF family, built over the observed index arrays only.

Every model is assembled by :func:`build_model` from one small function per
idea of Salakhutdinov & Mnih (2007, 2008), so that the ideas compose instead
of being copied into variants:

===================  ======================================================
idea                 building block
===================  ======================================================
factor priors        :func:`factor_prior` -- ``"fixed"``, ``"adaptive"``,
                     ``"bpmf"``
biases               :func:`bias_terms` -- global mean + user/item offsets
constrained PMF      :func:`constrained_user_factors`
link                 :func:`link_mean` -- identity or logistic
noise                :func:`noise_scale`
===================  ======================================================

The generative model (all options on) is

.. math::
    R_{ij} \sim N\bigl(g(\eta_{ij}),\ \sigma^2\bigr),\qquad
    \eta_{ij} = \mu + b_i + c_j + U_i^\top V_j ,

over the observed pairs :math:`(i, j)\in\Omega` only: the linear predictor is
``(U[user_idx] * V[item_idx]).sum(-1)`` on index arrays held in ``pm.Data``;
no users x items matrix is ever formed, so the cost of one log-density
gradient is :math:`O(|\Omega| k)`.

Model scale
    With the identity link the model works on the raw ratings; the global
    mean :math:`\mu` is the training mean (plain PMF, "ratings centred on
    the training mean") or a free parameter centred there (with biases).
    With the logistic link ratings are mapped to :math:`[0, 1]` by
    :math:`t(x) = (x - 1)/(K - 1)` for a scale ``(1, K)``, :math:`g` is the
    logistic function and :math:`\sigma` lives on that unit scale.

Variable names
    Are those of :mod:`bayes_mf.results` (``U``, ``V``, ``sigma``, ``mu``,
    ``user_bias``, ``item_bias``, ``sigma_u``, ``sigma_v``, ``sigma_b``,
    ``sigma_c``), so the posterior converts to the shared result format by
    selection.  Constants (fixed scales, a fixed mean) are stored as
    ``pm.Deterministic`` so that every method reports the same variables.

Data
    ``user_idx``, ``item_idx`` and ``rating_data`` are ``pm.Data`` over the
    ``obs`` dim: ``pm.set_data({...}, coords={"obs": ...})`` followed by
    ``pm.sample_posterior_predictive`` predicts new pairs of known ids.
    (:meth:`bayes_mf.inference.PMF.predict` does the same in NumPy, in
    chunks, and also handles unseen ids.)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ._offsets import bias_terms, sheared_offsets
from ._parametrize import _normal
from ._scales import paired_scales
from .data import Ratings

__all__ = [
    "PRIORS",
    "LINKS",
    "PARAMETRIZATIONS",
    "build_model",
    "default_scales",
    "to_model_scale",
    "factor_prior",
    "bias_terms",
    "constrained_user_factors",
    "noise_scale",
    "link_mean",
]

PRIORS = ("fixed", "adaptive", "bpmf")
LINKS = ("identity", "logistic")
PARAMETRIZATIONS = ("centered", "noncentered")

#: names of the scale parameters, per role
SCALE_NAMES = ("sigma", "sigma_u", "sigma_v", "sigma_b", "sigma_c")


# --------------------------------------------------------------------- checks
def check_options(*, n_factors, priors, link, scale=None) -> None:
    """Validate model options; raise ``ValueError`` naming the argument."""
    if isinstance(n_factors, bool) or not isinstance(n_factors, int | np.integer) or n_factors < 1:
        raise ValueError(f"n_factors must be an integer >= 1, got {n_factors!r}")
    if priors not in PRIORS:
        raise ValueError(f"priors must be one of {PRIORS}, got {priors!r}")
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    if link == "logistic":
        if scale is None:
            raise ValueError(
                "link='logistic' needs a rating scale (low, high) to map ratings to [0, 1]; "
                "the ratings declare none: pass scale=(low, high) or use link='identity'"
            )
        lo, hi = scale
        if not hi > lo:
            raise ValueError(f"scale must satisfy high > low, got {scale!r}")


def to_model_scale(rating: np.ndarray, link: str, scale) -> np.ndarray:
    r"""Ratings on the model's scale: raw (identity) or :math:`t(x) = (x - lo)/(hi - lo)` (logistic)."""
    rating = np.asarray(rating, dtype=float)
    if link == "logistic":
        lo, hi = scale
        return (rating - lo) / (hi - lo)
    return rating


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def default_scales(y: np.ndarray, n_factors: int) -> dict:
    r"""Rough moment-based scales, used only where nothing better is given.

    :math:`\sigma` is the sd of the (model-scale) ratings; :math:`\sigma_U =
    \sigma_V` are set so that the prior variance of :math:`U_i^\top V_j`,
    :math:`k\sigma_U^2\sigma_V^2`, is a quarter of the rating variance, and
    the bias scales to half the rating sd.  The estimator replaces them by
    type-II (empirical Bayes) estimates, see :mod:`bayes_mf.inference`.
    """
    sd = float(np.std(y)) or 1.0
    su = (0.25 * sd**2 / n_factors) ** 0.25
    return {"sigma": sd, "sigma_u": su, "sigma_v": su, "sigma_b": sd / 2, "sigma_c": sd / 2}


# ---------------------------------------------------------------- components
def noise_scale(priors: str, value: float | None, y_sd: float):
    r"""Noise sd :math:`\sigma`: a constant for ``"fixed"`` priors, else
    :math:`\sigma \sim \mathrm{HalfNormal}(s)` with :math:`s` = ``value`` or
    the sd of the ratings (a weak, scale-aware hyperprior)."""
    import pymc as pm

    if priors == "fixed":
        return pm.Deterministic("sigma", pm.math.constant(float(value)))
    return pm.HalfNormal("sigma", sigma=float(value) if value is not None else float(y_sd))


def factor_prior(
    name: str,
    dim: str,
    *,
    priors: str,
    scale_name: str,
    scale: float | None = None,
    mean: np.ndarray | None = None,
    cov: np.ndarray | None = None,
    noncentered: bool = False,
    factor_mean: bool = True,
    centred_rows: np.ndarray | None = None,
    given=None,
):
    r"""Latent factors of one side, ``name`` with dims ``(dim, "factor")``.

    ``"fixed"``
        :math:`F_r \sim N(0, s^2 I)` with the constant :math:`s` = ``scale``
        (PMF, section 2 of the paper).
    ``"adaptive"``
        :math:`s \sim \mathrm{HalfNormal}(h)`, :math:`F_r \sim N(0, s^2 I)`
        with :math:`h` = ``scale`` or 1: the scale is learned (automatic
        complexity control, section 3), no hand-tuned :math:`\lambda`.
    ``"bpmf"``
        :math:`F_r \sim N(m, \Lambda^{-1})` with :math:`m \sim N(0, I)` and
        :math:`\Lambda^{-1} = LL^\top`, :math:`L` the Cholesky factor of an
        LKJ(2) correlation times HalfNormal(1) sds -- the PyMC counterpart
        of BPMF's Normal-Wishart (initial sds ``scale`` or 0.5, no
        correlation).  If ``mean`` and ``cov`` are given they
        are used as constants instead (a type-II plug-in).  The scalar
        ``scale_name`` is recorded as :math:`\sqrt{\mathrm{tr}\,\Lambda^{-1}/k}`
        (used only to draw factors of unseen ids, which then ignore :math:`m`
        and the correlations).  With ``factor_mean=False`` the hierarchical
        mean is fixed at :math:`m = 0`: with biases in the model it only
        duplicates them (:math:`m_U^\top V_j` is an item offset, :math:`U_i^\top
        m_V` a user offset, :math:`m_U^\top m_V` the global mean), a ridge NUTS
        cannot cross.

    ``noncentered`` draws standard-normal ``{name}_z`` and sets ``name`` to
    the scaled (and shifted) deterministic, except the ``centred_rows``,
    see :func:`bayes_mf._parametrize._normal`.  ``given`` replaces the learned scale
    (``"adaptive"``) or Cholesky factor (``"bpmf"``) by a tensor built elsewhere
    (:func:`bayes_mf._scales.paired_scales`).

    Returns the factor tensor.
    """
    import pymc as pm
    import pytensor.tensor as pt

    dims = (dim, "factor")
    if priors == "fixed":
        s = pm.Deterministic(scale_name, pm.math.constant(float(scale)))
        return _normal(name, dims, s, noncentered, centred_rows=centred_rows)
    if priors == "adaptive":
        s = (pm.HalfNormal(scale_name, sigma=1.0 if scale is None else float(scale)) if given is None
             else pm.Deterministic(scale_name, given))
        return _normal(name, dims, s, noncentered, centred_rows=centred_rows)
    k = len(pm.modelcontext(None).coords["factor"])
    if mean is not None and cov is not None:
        chol = np.linalg.cholesky(np.asarray(cov, float))
        pm.Deterministic(scale_name, pm.math.constant(float(np.sqrt(np.trace(cov) / k))))
        return _normal(name, dims, None, noncentered, mean=np.asarray(mean, float),
                       chol=pm.math.constant(chol), centred_rows=centred_rows)
    m = pm.Normal(f"mu_{name.lower()}", 0.0, 1.0, dims="factor") if factor_mean else pm.math.zeros(k)
    if given is None:
        s0 = 0.5 if scale is None else float(scale)
        # an explicit initial value: PyMC's default (the LKJ support point) is
        # computed by a graph compiled with the C backend, slow and BLAS-bound
        packed = pm.LKJCholeskyCov(
            f"chol_{name.lower()}", n=k, eta=2.0, sd_dist=pm.HalfNormal.dist(1.0, shape=k),
            compute_corr=False, initval=s0 * np.eye(k)[np.tril_indices(k)],
        )
        chol = pm.math.expand_packed_triangular(k, packed, lower=True)
    else:
        chol = given
    # sds are the row norms of the Cholesky factor: tr(LL^T)/k = sum(L^2)/k
    pm.Deterministic(scale_name, pt.sqrt(pt.sum(chol**2) / k))
    return _normal(name, dims, None, noncentered, mean=m if factor_mean else None, chol=chol,
                   centred_rows=centred_rows)


def constrained_user_factors(
    prior_kw: dict, user_code: np.ndarray, item_code: np.ndarray, n_users: int, n_items: int
):
    r"""Constrained PMF: :math:`U_i = Y_i + \sum_k I_{ik} W_k / \sum_k I_{ik}`.

    :math:`I_{ik} = 1` when user :math:`i` rated item :math:`k` in training,
    so users who rated similar sets of items get similar factors even with
    few ratings.  :math:`Y` gets the user-factor prior, :math:`W` (items x
    factors) the same family with its own scale ``sigma_w``.  The average
    is a scatter-add over the observed pairs (a constant of the model, not
    of the data being predicted), never a dense indicator matrix.

    Returns the effective :math:`U`, stored as the deterministic ``U``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    Y = factor_prior("Y", "user", scale_name="sigma_y", **prior_kw["Y"])
    W = factor_prior("W", "item", scale_name="sigma_w", **prior_kw["W"])
    counts = np.maximum(np.bincount(user_code, minlength=n_users), 1).astype(float)
    summed = pt.inc_subtensor(pt.zeros((n_users, W.shape[1]))[np.asarray(user_code, np.int64)],
                              W[np.asarray(item_code, np.int64)])
    U = pm.Deterministic("U", Y + summed / counts[:, None], dims=("user", "factor"))
    # the scale used for unseen users: Y's (an unseen user has no rated set)
    pm.Deterministic("sigma_u", pm.modelcontext(None)["sigma_y"])
    return U


def link_mean(eta, link: str):
    r"""Mean rating on the model scale: :math:`\eta` or :math:`g(\eta) = 1/(1 + e^{-\eta})`."""
    import pymc as pm

    return pm.math.sigmoid(eta) if link == "logistic" else eta


# --------------------------------------------------------------------- model
def build_model(
    ratings: Ratings,
    n_factors: int = 10,
    *,
    priors: Literal["fixed", "adaptive", "bpmf"] = "adaptive",
    biases: bool = True,
    link: Literal["identity", "logistic"] = "identity",
    constrained: bool = False,
    sigma: float | None = None,
    sigma_u: float | None = None,
    sigma_v: float | None = None,
    sigma_b: float | None = None,
    sigma_c: float | None = None,
    sigma_w: float | None = None,
    factor_moments: dict | None = None,
    scale: tuple[float, float] | None = None,
    batch_size: int | None = None,
    parametrization: Literal["centered", "noncentered"] = "centered",
    factor_means: bool = True,
    centred_rows: dict | None = None,
    likelihood=None,
    pair_op: bool = True,
    shear_offsets: bool = True,
    pair_scales: bool = True,
):
    r"""The PyMC model of the PMF family for training ratings.

    Parameters
    ----------
    ratings : Ratings
        Training data; codes index the factors, ids label the coords.
    n_factors : int
        Rank :math:`k`.
    priors : {"fixed", "adaptive", "bpmf"}
        See :func:`factor_prior`.  With ``"fixed"`` the scale arguments are
        the scales themselves (missing ones fall back to
        :func:`default_scales`); otherwise they are the scales of the
        HalfNormal hyperpriors (default 1, the rating sd for ``sigma``).
    biases : bool
        Add :math:`\mu + b_i + c_j` with learned scales (:func:`bias_terms`);
        without, :math:`\mu` is the constant training mean.
    link : {"identity", "logistic"}
        See :func:`link_mean`; ``"logistic"`` needs ``scale``.
    constrained : bool
        Constrained PMF user factors (:func:`constrained_user_factors`).
    sigma, sigma_u, sigma_v, sigma_b, sigma_c, sigma_w : float, optional
        Scales (fixed) or hyperprior scales (adaptive); on the model scale.
    factor_moments : dict, optional
        For ``priors="bpmf"``: ``{"U": (mean, cov), "V": (mean, cov)}``
        constants replacing the hierarchical mean and covariance (type-II
        plug-in, as used by MAP and ADVI); the noise and bias scales are then
        constants too, as with ``"fixed"``.
    scale : (low, high), optional
        Rating scale; defaults to ``ratings.scale``.
    batch_size : int, optional
        Observe random minibatches of this many ratings (for ADVI), the
        likelihood rescaled by ``total_size``.  Not for sampling.
    parametrization : {"centered", "noncentered"}
        How factors and offsets depend on their scales (:func:`~bayes_mf._parametrize._normal`).
        The two define the same model; ``"noncentered"`` is the geometry
        NUTS samples well when the scales are learned.  Either way the
        posterior holds ``U``, ``V``, ``user_bias``, ``item_bias``.
    factor_means : bool
        ``priors="bpmf"`` only: learn the hierarchical factor means
        :math:`m_U, m_V`; ``False`` fixes them at 0, which removes the
        mean rating's duplicate homes when ``biases=True``
        (:func:`factor_prior`).
    centred_rows : dict, optional
        With ``parametrization="noncentered"``: boolean masks over users or
        items, keyed ``"U"``, ``"V"``, ``"user_bias"``, ``"item_bias"``, of
        the rows kept centred (:func:`~bayes_mf._parametrize._normal`).
    likelihood : callable, optional
        The observation model, called inside the model as
        ``likelihood(mean, sigma, observed, **kw)`` with ``mean`` the
        link-mapped linear predictor, ``sigma`` the noise scale, ``observed``
        the model-scale ratings and ``kw`` the ``dims``/``total_size`` to
        pass on; it must create and return the observed variable named
        ``"rating"`` (e.g. ``pm.StudentT("rating", nu=nu, mu=mean,
        sigma=sigma, observed=observed, **kw)``, with ``nu`` a new prior).
        Default: ``pm.Normal("rating", mean, sigma, ...)``.  Fit such a model
        with :meth:`bayes_mf.PMF.from_model`.
    pair_op : bool
        The pairs' linear predictor as one numba Op (:mod:`bayes_mf._pair_op`); ``False``: PyTensor's
        indexing, same numbers, several times the cost per gradient (``bench_nuts.py --gradient``).
    shear_offsets : bool
        Non-centred with biases and no ``centred_rows``: sample the mean and offsets in the
        sheared coordinates of :func:`~bayes_mf._offsets.sheared_offsets` (the same model);
        ``False``: :func:`bias_terms`'s.
    pair_scales : bool
        Non-centred, adaptive or BPMF, not constrained, no ``centred_rows``: sample the two
        sides' factor scales as log product and log ratio
        (:func:`~bayes_mf._scales.paired_scales`, the same model).

    Returns
    -------
    pymc.Model
        With coords ``user``, ``item``, ``factor``, ``obs``, data
        ``user_idx``, ``item_idx``, ``rating_data`` and the linear predictor
        :math:`\eta` of the observed pairs as the deterministic ``eta``
        (over ``obs``; the package's samplers do not store it per draw).
    """
    import pymc as pm

    from ._pair_op import pair_eta

    scale = ratings.scale if scale is None else tuple(scale)
    check_options(n_factors=n_factors, priors=priors, link=link, scale=scale)
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    noncentered = parametrization == "noncentered"
    rows = {k: np.asarray(v, dtype=bool) for k, v in (centred_rows or {}).items()}
    for key, mask in rows.items():
        n = ratings.n_users if key in ("U", "user_bias") else ratings.n_items
        if key not in ("U", "V", "user_bias", "item_bias") or mask.shape != (n,):
            raise ValueError(f"centred_rows[{key!r}] must be a boolean mask of length {n} "
                             "(keys 'U', 'V', 'user_bias', 'item_bias')")
    if batch_size is not None and (int(batch_size) < 1 or int(batch_size) > len(ratings)):
        raise ValueError(f"batch_size must be in [1, {len(ratings)}], got {batch_size!r}")
    y = to_model_scale(ratings.rating, link, scale)
    y_mean = float(y.mean())
    center = _logit(y_mean) if link == "logistic" else y_mean
    given = {"sigma": sigma, "sigma_u": sigma_u, "sigma_v": sigma_v, "sigma_b": sigma_b,
             "sigma_c": sigma_c}
    # with plugged-in BPMF moments every scale is a constant, as for "fixed"
    scale_priors = "fixed" if factor_moments is not None else priors
    if scale_priors == "fixed":
        dflt = default_scales(y, n_factors)
        given = {k: (dflt[k] if v is None else float(v)) for k, v in given.items()}
        if sigma_w is None:
            sigma_w = given["sigma_v"]
    moments = factor_moments or {}

    coords = {
        "user": ratings.users.to_numpy(),
        "item": ratings.items.to_numpy(),
        "factor": np.arange(int(n_factors)),
        "obs": np.arange(len(ratings)),
    }
    sheared = False
    with pm.Model(coords=coords) as model:
        user_idx = pm.Data("user_idx", ratings.user.astype(np.int64), dims="obs")
        item_idx = pm.Data("item_idx", ratings.item.astype(np.int64), dims="obs")
        rating_data = pm.Data("rating_data", y, dims="obs")

        paired = {}
        if pair_scales and noncentered and scale_priors != "fixed" and not constrained and not rows:
            # the likelihood sees only the product of the two sides' scales
            paired = dict(zip("UV", paired_scales(priors, int(n_factors), given["sigma_u"], given["sigma_v"]),
                              strict=True))

        def side_kw(value, key):
            mean, cov = moments.get(key, (None, None))
            return {"priors": priors, "scale": value, "mean": mean, "cov": cov,
                    "noncentered": noncentered, "factor_mean": bool(factor_means),
                    "centred_rows": rows.get(key), "given": paired.get(key)}

        if constrained:
            U = constrained_user_factors(
                {"Y": side_kw(given["sigma_u"], "U"),
                 "W": side_kw(sigma_w, "W")},
                ratings.user, ratings.item, ratings.n_users, ratings.n_items,
            )
        else:
            U = factor_prior("U", "user", scale_name="sigma_u", **side_kw(given["sigma_u"], "U"))
        V = factor_prior("V", "item", scale_name="sigma_v", **side_kw(given["sigma_v"], "V"))
        sheared = biases and noncentered and shear_offsets and not rows
        if sheared:
            mu, b, c, U, V = sheared_offsets(U, V, scale_priors, center, given["sigma_b"], given["sigma_c"])
        elif biases:
            mu, b, c = bias_terms(scale_priors, center, given["sigma_b"], given["sigma_c"], noncentered, rows)
        else:
            mu = pm.Deterministic("mu", pm.math.constant(center))
        s = noise_scale(scale_priors, given["sigma"], float(np.std(y)) or 1.0)

        if batch_size is not None:
            u_obs, i_obs, y_obs = pm.Minibatch(user_idx, item_idx, rating_data, batch_size=int(batch_size))
            obs_kw = {"total_size": len(ratings)}
        else:
            u_obs, i_obs, y_obs = user_idx, item_idx, rating_data
            obs_kw = {"dims": "obs"}
        if pair_op:
            # one numba loop over the pairs (and one for its gradient), not gathers and scatters
            zeros = (pm.math.zeros(ratings.n_users), pm.math.zeros(ratings.n_items))
            eta = mu + pair_eta(U, V, *((b, c) if biases else zeros), u_obs, i_obs)
        else:
            eta = mu + (U[u_obs] * V[i_obs]).sum(axis=-1)
            if biases:
                eta = eta + b[u_obs] + c[i_obs]
        eta = pm.Deterministic("eta", eta, dims="obs" if batch_size is None else None)
        package_vars = set(model.named_vars)
        if likelihood is None:
            pm.Normal("rating", mu=link_mean(eta, link), sigma=s, observed=y_obs, **obs_kw)
        else:
            _custom_likelihood(likelihood, link_mean(eta, link), s, y_obs, obs_kw)
    model.bayes_mf_spec = {
        "n_factors": int(n_factors), "priors": priors, "biases": bool(biases), "link": link,
        "constrained": bool(constrained), "scale": scale, "center": center,
        "parametrization": parametrization, "factor_means": bool(factor_means), "sheared": sheared,
        "paired_scales": bool(paired),
        "centred_rows": {k: v.copy() for k, v in rows.items()},
        "batch_size": None if batch_size is None else int(batch_size),
        "likelihood": "normal" if likelihood is None else getattr(likelihood, "__name__", "custom"),
        "package_vars": package_vars,
    }
    return model


def _custom_likelihood(likelihood, mean, sigma, observed, obs_kw) -> None:
    """Call a user's ``likelihood`` hook and check that it made the observed ``"rating"``."""
    import pymc as pm

    if not callable(likelihood):
        raise TypeError(f"likelihood must be a callable (mean, sigma, observed, **kw) -> observed RV, "
                        f"got {likelihood!r}")
    rv = likelihood(mean, sigma, observed, **obs_kw)
    model = pm.modelcontext(None)
    named = model.named_vars
    if "rating" not in named or named["rating"] not in model.observed_RVs or rv is not named["rating"]:
        raise ValueError("the likelihood hook must create and return the observed variable named 'rating' "
                         "(e.g. pm.StudentT('rating', ..., observed=observed, **kw))")


def model_name(priors: str, biases: bool, link: str, constrained: bool) -> str:
    """Short label of a model variant, e.g. ``"adaptive+biases"``."""
    parts = [priors]
    if biases:
        parts.append("biases")
    if constrained:
        parts.append("constrained")
    if link != "identity":
        parts.append(link)
    return "+".join(parts)
