"""The models NUTS and ADVI fit, and their start values at the MAP point."""

from __future__ import annotations

import numpy as np

from .._scales import LOG_PRODUCT, paired_start
from ..data import Ratings
from ..models import build_model
from .typeii import _scaled_moments

__all__ = ["sampling_model", "initvals"]

_SCALES = ("sigma", "sigma_u", "sigma_v", "sigma_b", "sigma_c")


def sampling_model(est, r: Ratings, batch_size=None, *, plug_in: bool = False, **model_kw):
    """The PyMC model that NUTS or ADVI fits for ``est`` (a fitted-MAP :class:`~bayes_mf.inference.PMF`).

    Parameters
    ----------
    est : PMF
        Needs ``_map_scales`` and ``type2_`` (set by the MAP step).
    r : Ratings
        Training ratings.
    batch_size : int, optional
        Minibatch size (ADVI).
    plug_in : bool
        Hold the scales at their type-II values instead of learning them.
    **model_kw
        Passed on to :func:`~bayes_mf.models.build_model` (e.g. ``pair_op=False``).

    Returns
    -------
    pymc.Model
    """
    if getattr(est, "model", None) is not None:
        # a user's model (PMF.from_model): as given for NUTS, its scales held for ADVI
        from .custom import held_model

        return held_model(est) if plug_in else est.model
    given = est._given_scales()
    scales = dict(est._map_scales)
    if plug_in:
        # the scales (BPMF: factor means and covariances) as constants at
        # their type-II values
        moments = None
        if est.priors == "bpmf":
            moments = _scaled_moments(est.type2_, scales["sigma_u"])
        return build_model(r, int(est.n_factors), priors="bpmf" if moments else "fixed",
                           biases=est.biases, link=est.link, constrained=est.constrained,
                           scale=est._scale, batch_size=batch_size, factor_moments=moments,
                           sigma_w=scales["sigma_u"], **{k: scales.get(k) for k in _SCALES}, **model_kw)
    if est.priors == "fixed":
        kw = {k: scales.get(k) for k in _SCALES}
        kw["sigma_w"] = scales["sigma_u"]
    else:
        # hyperprior scales: the user's, else weakly informative ones wide
        # around the type-II values (HalfNormal(2s) has its median near 1.35 s)
        kw = {k: (given[k] if given[k] is not None else 2.0 * scales[k]) if k in scales else None
              for k in _SCALES}
        kw["sigma_w"] = kw["sigma_u"]
    return build_model(r, int(est.n_factors), priors=est.priors, biases=est.biases,
                       link=est.link, constrained=est.constrained, scale=est._scale,
                       batch_size=batch_size,
                       parametrization="centered" if est.parametrization == "centered" else "noncentered",
                       factor_means=learn_factor_means(est), centred_rows=centred_rows(est, r),
                       **kw, **model_kw)


def centred_rows(est, r: Ratings) -> dict | None:
    r"""Rows the non-centred NUTS model keeps centred: those the data inform more than the prior.

    A row's data precision against its prior precision, at the type-II scales:
    :math:`n_i\sigma_b^2/\sigma^2` for a bias, :math:`n_i\sigma_U^2\sigma_V^2/\sigma^2`
    for a factor row (its ratings times the other side's factor variance over
    the noise).  Above 1 the posterior is data-dominated and the centred form
    mixes better; below, the non-centred (Papaspiliopoulos, Roberts & Sköld 2007).

    Not the default: on u1 (2 chains x (1 000 + 1 000), ``benchmarks/bench_nuts.py``) a
    variant that split only the offsets had not finished after 23 minutes, against 11 for
    ``"noncentered"``, and ``"mixed"`` itself (at ``target_accept=0.9``) was stopped
    unfinished after 12; both were stopped, so their diagnostics are unknown.
    """
    if est.parametrization != "mixed":
        return None
    s = est._map_scales
    noise = float(s["sigma"]) ** 2
    counts = {"user": np.bincount(r.user, minlength=r.n_users),
              "item": np.bincount(r.item, minlength=r.n_items)}
    out = {}
    if est.biases:
        out["user_bias"] = counts["user"] * float(s["sigma_b"]) ** 2 / noise > 1.0
        out["item_bias"] = counts["item"] * float(s["sigma_c"]) ** 2 / noise > 1.0
    if not est.constrained:
        product = float(s["sigma_u"]) ** 2 * float(s["sigma_v"]) ** 2 / noise
        out["U"] = counts["user"] * product > 1.0
        out["V"] = counts["item"] * product > 1.0
    return out


def learn_factor_means(est) -> bool:
    """Whether the sampled BPMF model learns its factor means (``PMF.factor_means``)."""
    return (not est.biases) if est.factor_means is None else bool(est.factor_means)


def initvals(est, model) -> dict:
    """``est.map_point_`` restricted to the free variables of ``model`` whose shapes match.

    For a non-centred model the standard-normal ``{name}_z`` start where they
    reproduce the MAP's ``name`` under the start scales (``sigma_*``, or the
    BPMF mean and Cholesky factor): :math:`z = (F - m) L^{-\top}`; paired factor scales
    (:func:`bayes_mf._scales.paired_scales`) start at the MAP's.
    """
    free = {rv.name: rv for rv in model.free_RVs}
    ip = model.initial_point()
    out = {}
    point = dict(est.map_point_)
    point.update(_whitened(point, free, model))
    if LOG_PRODUCT in free:
        point.update(paired_start(point, model.bayes_mf_spec["priors"]))
    for name, value in point.items():
        if name in free:
            value = np.asarray(value, dtype=float)
            if np.shape(ip[model.rvs_to_values[free[name]].name]) == value.shape:
                out[name] = value
    return out


def _sheared(point: dict) -> dict:
    r"""Start values of the sheared offsets (:func:`bayes_mf._offsets.sheared_offsets`) from a
    centred point: :math:`s = (b + U\bar V)/\sigma_b`, :math:`t = (c + V\bar U)/\sigma_c`,
    :math:`m = \mu + \bar b + \bar c + \bar U^\top \bar V`."""
    U, V = (np.asarray(point[k], dtype=float) for k in ("U", "V"))
    b, c = (np.asarray(point[k], dtype=float) for k in ("user_bias", "item_bias"))
    u_mean, v_mean = U.mean(axis=0), V.mean(axis=0)
    out = {"user_bias_s": (b + U @ v_mean) / float(np.asarray(point["sigma_b"])),
           "item_bias_s": (c + V @ u_mean) / float(np.asarray(point["sigma_c"]))}
    if "mu" in point:
        out["mu_total"] = np.asarray(float(np.asarray(point["mu"])) + b.mean() + c.mean() + u_mean @ v_mean)
    return out


#: non-centred variable -> (its deterministic, its scale, the BPMF mean and Cholesky names)
_WHITENED = {
    "U_z": ("U", "sigma_u", "mu_u", "chol_u"),
    "Y_z": ("U", "sigma_y", "mu_y", "chol_y"),
    "V_z": ("V", "sigma_v", "mu_v", "chol_v"),
    "W_z": ("W", "sigma_w", "mu_w", "chol_w"),
    "user_bias_z": ("user_bias", "sigma_b", None, None),
    "item_bias_z": ("item_bias", "sigma_c", None, None),
}


def _whitened(point: dict, free: dict, model) -> dict:
    """Start values of the non-centred ``*_z`` (and centred ``*_c``) variables from a centred point."""
    rows = getattr(model, "bayes_mf_spec", {}).get("centred_rows", {})
    out = {}
    for zname, (name, sname, mname, cname) in _WHITENED.items():
        source = "Y" if zname == "Y_z" else name
        if zname not in free or source not in point:
            continue
        value = np.asarray(point[source], dtype=float)
        if cname in point and np.ndim(value) == 2:
            k = value.shape[1]
            L = np.zeros((k, k))
            L[np.tril_indices(k)] = np.asarray(point[cname], dtype=float)
            mean = np.asarray(point[mname], dtype=float) if mname in free else 0.0
            z = np.linalg.solve(L, (value - mean).T).T
        elif sname in point:
            z = value / float(np.asarray(point[sname]))
        else:
            continue
        mask = rows.get("U" if source == "Y" else source)
        if mask is not None and mask.any():
            out[f"{zname[:-2]}_c"] = value[mask]
            z = z[~mask]
        out[zname] = z
    if "user_bias_s" in free and all(k in point for k in ("U", "V", "user_bias", "item_bias",
                                                         "sigma_b", "sigma_c")):
        return {**out, **_sheared(point)}
    if "mu_total" in free and "mu" in point:
        # the non-centred model's free mean is mu + mean(b) + mean(c) (models.bias_terms)
        out["mu_total"] = np.asarray(float(np.asarray(point["mu"])) + sum(
            float(np.mean(point[k])) for k in ("user_bias", "item_bias") if k in point))
    return out
