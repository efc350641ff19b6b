"""MAP fit of :class:`~bayes_mf.inference.PMF`: type-II scales, validated shrinkage, the mode.

The scales come from :func:`~bayes_mf.inference.typeii.empirical_bayes`;
the factor prior is strengthened by
:func:`~bayes_mf.inference.typeii.validate_shrinkage`; the mode is found by
exact alternating updates (identity link) and finished by L-BFGS-B
(``pm.find_MAP``).  NUTS and ADVI reuse the start point stored here.
"""

from __future__ import annotations

import time

import numpy as np

from ..data import Ratings
from ..models import build_model
from .typeii import (
    TypeII,
    _logistic_scales,
    _logit_of_mean,
    _scaled_moments,
    _with_scales,
    posterior_mode,
    validate_shrinkage,
)

__all__ = ["fit_map"]


def fit_map(est, r: Ratings, *, store: bool = True) -> None:
    """Fit the MAP of ``est`` (a :class:`~bayes_mf.inference.PMF`) to ``r``.

    Parameters
    ----------
    est : PMF
        The estimator; gets ``type2_``, ``shrink_``, ``validation_rmse_``,
        ``map_timing_``, ``map_point_`` and ``_map_scales`` (and, with
        ``store``, ``model_`` and ``result_``).
    r : Ratings
        Training ratings.
    store : bool
        Store the model and the result; ``False`` when NUTS or ADVI only
        need the start point.
    """
    from threadpoolctl import threadpool_limits

    # one BLAS thread: the work is batched small matrices and long vector
    # operations, where OpenBLAS threads only spin (two busy cores: 2-10x slower)
    with threadpool_limits(1, user_api="blas"):
        _fit_map(est, r, store)


def _fit_map(est, r: Ratings, store: bool) -> None:
    timing = {}
    tic = time.perf_counter()
    t2 = est._type2(r)
    est.type2_ = t2
    _lap(timing, "type2", tic)
    t2, shrink, val_scores = _mode_prior(est, r, t2)
    _lap(timing, "validation", tic)
    scales, point = _mode_start(est, r, t2, shrink)
    # NUTS/ADVI start their learned scales at the type-II values (the mode
    # uses the validated, stronger factor prior)
    est._map_scales = dict(scales)
    model = _mode_model(est, r, t2, scales, shrink)
    free = {rv.name for rv in model.free_RVs}
    initvals = {k: np.asarray(v, dtype=float) for k, v in point.items() if k in free}
    _lap(timing, "numpy_mode", tic)
    if est.link == "identity" and not est.constrained:
        # the same mode, by L-BFGS-B on the NumPy log density: nothing to compile
        post, opt = _numpy_map(est, r, initvals, scales, shrink)
    else:
        dt = _find_map(est, model, initvals)
        post = dt["posterior"].to_dataset()
        opt = dt["optimizer_result"].to_dataset() if "optimizer_result" in dt.children else None
    _lap(timing, "lbfgs", tic)
    est.map_timing_ = timing
    _set_start_point(est, post, t2)
    if not store:
        return
    est.model_ = model
    est._store(post, r, method="map", sample_stats=None, attrs=_map_attrs(opt, t2, shrink, val_scores))


def _lap(timing: dict, name: str, tic: float) -> None:
    """Record under ``name`` the time since ``tic`` not yet attributed to an earlier step."""
    timing[name] = time.perf_counter() - tic - sum(timing.values())


def _mode_prior(est, r: Ratings, t2: TypeII) -> tuple[TypeII, float, dict]:
    """The type-II estimates with the user's scales, and the factor-prior shrink for the mode.

    Returns ``(t2, shrink, {shrink: validation RMSE})``; sets ``est.shrink_``
    and ``est.validation_rmse_``.
    """
    given = {name: v for name, v in est._given_scales().items() if v is not None and name in t2.scales}
    if est.priors == "fixed" and given:  # the user's scales win; type-II fills the rest
        t2 = _with_scales(t2, given, est.link, est._scale)
    user_fixed = est.priors == "fixed" and {"sigma_u", "sigma_v"} <= set(given)
    if user_fixed:
        shrink, val_scores = 1.0, {}
    else:
        shrink, val_scores = validate_shrinkage(r, t2, random_seed=est.random_seed)
    est.shrink_, est.validation_rmse_ = shrink, val_scores
    return t2, shrink, val_scores


def _mode_start(est, r: Ratings, t2: TypeII, shrink: float) -> tuple[dict, dict]:
    """Type-II scales and the start point for L-BFGS-B, both on the model scale.

    For the identity link the start is the exact mode at the shrunk prior;
    for the logistic link the type-II means, mapped by the delta method.
    """
    k = int(est.n_factors)
    if est.link == "identity":
        A, B = posterior_mode(r, t2, shrink=shrink, sweeps=30)
        t2_mode = TypeII(U=A[:, :k], V=B[:, :k],
                         user_bias=A[:, k] if est.biases else t2.user_bias,
                         item_bias=B[:, k] if est.biases else t2.item_bias,
                         mu=t2.mu, scales=t2.scales, moments=t2.moments, n_iter=t2.n_iter)
    else:
        t2_mode = t2
    if est.link == "logistic":
        scales, point = _logistic_scales(t2_mode, est._scale)
    else:
        scales = dict(t2.scales)
        point = {"U": t2_mode.U, "V": t2_mode.V}
        if est.biases:
            point["user_bias"], point["item_bias"] = t2_mode.user_bias, t2_mode.item_bias
    if est.biases:
        point["mu"] = t2.mu if est.link == "identity" else _logit_of_mean(r, est._scale)
    if est.constrained:
        point["Y"] = point.pop("U")
        point["W"] = np.zeros_like(point["V"])
    return scales, point


def _mode_model(est, r: Ratings, t2: TypeII, scales: dict, shrink: float):
    """The fixed-scale (or fixed-moment BPMF) model whose mode MAP finds."""
    f = 1.0 / np.sqrt(shrink)
    moments = None
    if est.priors == "bpmf":
        moments = _scaled_moments(t2, scales["sigma_u"], f)
    # NUTS/ADVI start at the type-II scales, while the mode uses the
    # validated, stronger factor prior
    scales = dict(scales, sigma_u=scales["sigma_u"] * f, sigma_v=scales["sigma_v"] * f)
    return build_model(
        r, int(est.n_factors), priors="bpmf" if est.priors == "bpmf" else "fixed",
        biases=est.biases, link=est.link, constrained=est.constrained,
        sigma=scales["sigma"], sigma_u=scales["sigma_u"], sigma_v=scales["sigma_v"],
        sigma_b=scales.get("sigma_b"), sigma_c=scales.get("sigma_c"),
        sigma_w=scales["sigma_u"], factor_moments=moments, scale=est._scale,
    )


def _find_map(est, model, initvals: dict):
    """L-BFGS-B from ``initvals``; returns PyMC's DataTree (posterior = the mode)."""
    import pymc as pm

    with model:
        # jitter=False: the start is the mode found above, not PyMC's U = V = 0 saddle
        return pm.find_MAP(initvals=initvals, method="L-BFGS-B", jitter=False,
                           return_inferencedata=True, progressbar=False,
                           random_seed=est.random_seed, maxiter=int(est.map_maxiter),
                           ftol=float(est.map_ftol))


def _numpy_map(est, r: Ratings, initvals: dict, scales: dict, shrink: float):
    """The mode of the identity-link mode model by L-BFGS-B on :mod:`.gaussian`'s log density.

    Returns the posterior Dataset (one chain x one draw, the variables of
    ``pm.find_MAP``'s) and the optimiser's ``nit``, ``success`` and ``fun``.
    """
    import xarray as xr

    from .gaussian import lbfgs, plug_in

    m = plug_in(est, r, shrink=shrink)
    res = lbfgs(m, m.pack(initvals), maxiter=int(est.map_maxiter), ftol=float(est.map_ftol))
    point = {key: np.asarray(v, dtype=float) for key, v in m.unpack(res.x).items()}
    f = 1.0 / np.sqrt(shrink)
    consts = {"sigma": scales["sigma"], "sigma_u": scales["sigma_u"] * f, "sigma_v": scales["sigma_v"] * f}
    if est.biases:
        consts.update(sigma_b=scales["sigma_b"], sigma_c=scales["sigma_c"])
    dims = {"U": ["user", "factor"], "V": ["item", "factor"], "user_bias": ["user"], "item_bias": ["item"]}
    data = {key: (["chain", "draw", *dims.get(key, [])], np.asarray(v, float)[None, None])
            for key, v in {**point, **consts}.items()}
    opt = {"nit": int(res.nit), "success": bool(res.success), "fun": float(res.fun)}
    return xr.Dataset(data), opt


def _set_start_point(est, post, t2: TypeII) -> None:
    """``est.map_point_``: the mode plus start values of the scales NUTS may learn."""
    k = int(est.n_factors)
    est.map_point_ = {name: np.asarray(post[name].to_numpy())[0, 0] for name in post.data_vars}
    # start values for the adaptive/hierarchical models: the type-II scales
    est.map_point_.update({key: np.asarray(v) for key, v in est._map_scales.items()})
    if est.constrained:
        est.map_point_["sigma_y"] = np.asarray(est._map_scales["sigma_u"])
        est.map_point_["sigma_w"] = np.asarray(est._map_scales["sigma_u"])
    if est.priors == "bpmf":
        # the hierarchical mean and covariance start at their type-II values
        # (unshrunk: the sampler integrates over them)
        g2 = (est._map_scales["sigma_u"] / t2.scales["sigma_u"]) ** 2
        tril = np.tril_indices(k)
        u_name, v_name = ("y", "v") if est.constrained else ("u", "v")
        for key, name in (("U", u_name), ("V", v_name)):
            mean, cov = t2.moments[key]
            est.map_point_[f"mu_{name}"] = mean * np.sqrt(g2)
            est.map_point_[f"chol_{name}"] = np.linalg.cholesky(cov * g2)[tril]


def _map_attrs(opt, t2: TypeII, shrink: float, val_scores: dict) -> dict:
    """Result attrs of a MAP fit: how the scales were set and what the optimiser reported."""
    attrs = {"hyperparameters": "type-II (mean-field variational EM); factor prior "
                                "precision x shrink, chosen on a 5% validation slice",
             "em_iterations": int(t2.n_iter), "shrink": float(shrink),
             "validation_rmse": ", ".join(f"{m:g}: {v:.4f}" for m, v in val_scores.items())}
    if opt is not None:
        for key in ("nit", "success", "fun"):
            if key in opt:
                val = np.asarray(opt[key])
                attrs[f"optimizer_{key}"] = val.item() if val.size == 1 else str(val)
    return attrs
