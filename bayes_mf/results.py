"""The one result format every fit returns: an ArviZ ``xarray.DataTree``.

Groups
------
``posterior``
    dims ``(chain, draw, ...)``; a point estimate is one chain x one draw.
    Variable names are shared by all methods so that prediction,
    diagnostics and plots need no per-method branch:

    ========== ================== ===========================================
    name       dims               meaning
    ========== ================== ===========================================
    U          user, factor       user factors (effective ones for cPMF)
    V          item, factor       item factors
    sigma      --                 noise sd (model scale)
    mu         --                 global mean (model scale)
    user_bias  user               :math:`b_i`
    item_bias  item               :math:`c_j`
    sigma_u    --                 prior sd of U (``sigma_v`` for V)
    sigma_b    --                 prior sd of user biases (``sigma_c`` items)
    ========== ================== ===========================================

``sample_stats``
    Sampler health with normalised names (``diverging``, ``tree_depth``,
    ``step_size``, ``energy``, ``lp``; ``elbo`` for ADVI), when the method has them.
``observed_data``
    ``rating`` over ``obs`` (every training rating), with the original ids
    as coordinates ``obs_user``/``obs_item`` on ``obs`` (named apart from the
    posterior's ``user``/``item`` dims, so that groups never clash).
``constant_data``
    ``user_code``/``item_code`` over ``obs``; ``check_obs``, ``check_user``,
    ``check_item`` over ``check``: which training pairs ``pred_check`` holds
    (kept out of the posterior, where extra coordinates break ``az.summary``).
``posterior_predictive`` / ``log_likelihood`` (posteriors only)
    ``rating`` over ``(chain, draw, obs)``: a replicated rating (noise
    included) and the pointwise Normal log density of the observed rating,
    for the same thinned draws -- at most :data:`PREDICTIVE_DRAWS` in all,
    evenly spaced in every chain (``draw`` keeps the posterior's draw
    numbers) -- and at most :data:`PREDICTIVE_PAIRS` training pairs (a
    seeded random subset beyond that; ``obs`` keeps their positions).
    Memory: draws x pairs floats each (u1, 80 000 ratings: 128 MB each).
    With them ``az.loo``, ``az.compare`` and ``az.plot_ppc_dist`` work on
    the result as it is; :func:`add_predictive` recomputes them with other
    limits.  ``az.loo`` takes its relative efficiency from the whole
    posterior, an approximation for thinned draws;
    :func:`bayes_mf.diagnostics.loo` thins the posterior to match.
    Point estimates (one draw) and Gibbs fits without stored factors have
    neither group.

attrs record ``method``, ``model``, ``n_factors``, ``random_seed``,
``fit_seconds``, ``link``, ``scale``, ``rating_unit`` and package versions.

Units: every estimator fits ``ratings / rating_unit`` (a power of ten, 1
for star ratings; :func:`bayes_mf.base.rating_unit`) and
:func:`to_rating_units` expresses its result back in rating units: ``sigma``,
``mu``, biases, their prior sds and ``pred_check`` carry the unit, ``U``,
``V``, their prior sds and BPMF's ``mu_u``/``mu_v`` its square root (so that
:math:`U_i^\top V_j` carries it once).  Sampler internals in
``sample_stats`` (``lp``, ``energy``, ``step_size``) stay those of the
standardised model; ``train_rmse`` and ``elbo`` are converted.

U and V are identified only up to rotation, sign and permutation: keep them
for prediction, never diagnose them (see :mod:`bayes_mf.diagnostics`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import numpy as np

from .data import Ratings
from .predict import PosteriorDraws, _to_rating_scale, linear_predictor, noise_sd

__all__ = ["VAR_DIMS", "PREDICTIVE_DRAWS", "PREDICTIVE_PAIRS", "UNIT_POWERS", "add_predictive",
           "build_result", "draws_from_result", "package_versions", "pointwise_log_likelihood",
           "to_rating_units"]

#: draws (all chains together) kept in ``posterior_predictive`` and ``log_likelihood``
PREDICTIVE_DRAWS = 200
#: training pairs kept in ``posterior_predictive`` and ``log_likelihood`` (a seeded subset beyond)
PREDICTIVE_PAIRS = 100_000
_PREDICTIVE_SEED = 0x5050  # the replicated ratings' own stream: they never touch a sampler's draws

VAR_DIMS = {
    "U": ["user", "factor"],
    "V": ["item", "factor"],
    "user_bias": ["user"],
    "item_bias": ["item"],
}


#: the power of the rating unit each posterior variable carries (identity link)
UNIT_POWERS = {
    "sigma": 1.0, "mu": 1.0, "user_bias": 1.0, "item_bias": 1.0, "sigma_b": 1.0, "sigma_c": 1.0,
    "pred_check": 1.0, "sigma_time_item": 1.0, "sigma_time_user": 1.0, "time_item": 1.0, "time_user": 1.0,
    "U": 0.5, "V": 0.5, "sigma_u": 0.5, "sigma_v": 0.5, "mu_u": 0.5, "mu_v": 0.5,
}


def _scale_attr(scale) -> str:
    return "none" if scale is None else f"{float(scale[0])!r},{float(scale[1])!r}"


def to_rating_units(dt, unit: float, ratings: Ratings):
    """Express, in place, a result fitted on ``ratings.rating / unit`` in the units of ``ratings``.

    Posterior variables are multiplied by ``unit ** power``
    (:data:`UNIT_POWERS`); ``observed_data`` gets the original ratings,
    ``posterior_predictive`` is multiplied by ``unit`` and the log density
    of ``log_likelihood`` loses ``log(unit)`` (the density of a rating, not
    of a standardised rating); ``sample_stats`` ``train_rmse`` is multiplied by
    ``unit`` and ``elbo`` loses ``n log(unit)``.  The ``scale`` attribute is
    mapped back and ``rating_unit`` records ``unit``.  With the logistic
    link the model itself is free of units (the declared scale maps ratings
    to [0, 1]; ``sigma`` lives there and ``mu``, biases and factors on the
    logit scale), so only ``pred_check``, the data and the predictive
    groups change.

    Returns
    -------
    xarray.DataTree
        ``dt``.
    """
    unit = float(unit)
    powers = UNIT_POWERS if dt.attrs.get("link", "identity") == "identity" else {"pred_check": 1.0}
    post = dt["posterior"].to_dataset()
    dt["posterior"] = post.assign({name: post[name] * unit**p for name, p in powers.items() if name in post})
    obs = dt["observed_data"].to_dataset()
    dt["observed_data"] = obs.assign(rating=obs["rating"].copy(data=np.asarray(ratings.rating, float)))
    log_unit = float(np.log(unit))
    for group, fn in (("posterior_predictive", lambda a: a * unit),
                      ("log_likelihood", lambda a: a - log_unit)):
        if group in dt.children:
            ds = dt[group].to_dataset()
            dt[group] = ds.assign(rating=fn(ds["rating"]))
    if "sample_stats" in dt.children:
        ss = dt["sample_stats"].to_dataset()
        new = {}
        if "train_rmse" in ss:
            new["train_rmse"] = ss["train_rmse"] * unit
        if "elbo" in ss:
            new["elbo"] = ss["elbo"] - len(ratings) * log_unit
        if new:
            dt["sample_stats"] = ss.assign(new)
    scale = dt.attrs.get("scale", "none")
    if scale != "none":
        lo, hi = (float(x) * unit for x in scale.split(","))
        # the exact original values where the scale was the declared or the observed one
        for cand in (ratings.scale, (float(ratings.rating.min()), float(ratings.rating.max()))):
            if cand is not None and np.allclose((lo, hi), cand, rtol=1e-9, atol=0.0):
                lo, hi = cand
        dt.attrs["scale"] = _scale_attr((lo, hi))
    dt.attrs["rating_unit"] = unit
    return dt


def package_versions() -> dict:
    out = {}
    for pkg in ("bayes_mf", "numpy", "scipy", "pandas", "pymc", "pytensor", "arviz", "nutpie", "xarray"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def build_result(
    posterior: dict,
    ratings: Ratings,
    *,
    method: str,
    model: str,
    n_factors: int,
    random_seed,
    fit_seconds: float,
    sample_stats: dict | None = None,
    extra_dims: dict | None = None,
    link: str = "identity",
    scale=None,
    attrs: dict | None = None,
    check=None,
    predictive: bool = True,
):
    """Assemble the DataTree of a fit.

    Parameters
    ----------
    posterior : dict of name -> array with leading (chain, draw) axes
    ratings : Ratings
        The training data (coords and observed/constant data come from it).
    sample_stats : dict of name -> (chain, draw) arrays, optional
    extra_dims : dims of variables not in :data:`VAR_DIMS`.
    check : int array, optional
        Positions of the training pairs behind ``pred_check`` (stored in
        ``constant_data`` over ``check``).
    predictive : bool
        Add the Normal ``posterior_predictive`` and ``log_likelihood``
        (:func:`add_predictive`); ``False`` when the caller adds its own.

    Returns
    -------
    xarray.DataTree
        With ``posterior_predictive`` and ``log_likelihood`` when the
        posterior has more than one draw and factor draws (:func:`add_predictive`).
    """
    import arviz as az

    dims = dict(VAR_DIMS)
    if extra_dims:
        dims.update(extra_dims)
    coords = {
        "user": ratings.users.to_numpy(),
        "item": ratings.items.to_numpy(),
        "factor": np.arange(int(n_factors)),
        "obs": np.arange(len(ratings)),
    }
    groups = {
        "posterior": {k: np.asarray(v) for k, v in posterior.items()},
        "observed_data": {"rating": ratings.rating},
        "constant_data": {"user_code": ratings.user, "item_code": ratings.item},
    }
    if check is not None:
        check = np.asarray(check, dtype=np.int64)
        groups["constant_data"].update(check_obs=check, check_user=ratings.user_ids[check],
                                       check_item=ratings.item_ids[check])
        dims.update({"check_obs": ["check"], "check_user": ["check"], "check_item": ["check"]})
    if sample_stats:
        groups["sample_stats"] = {k: np.asarray(v) for k, v in sample_stats.items()}
    dims.update({"rating": ["obs"], "user_code": ["obs"], "item_code": ["obs"]})
    used = {d for name in dims for d in dims[name]}
    meta = {
        "method": method,
        "model": model,
        "n_factors": int(n_factors),
        "random_seed": -1 if random_seed is None else int(random_seed),
        "fit_seconds": float(fit_seconds),
        "link": link,
        "scale": _scale_attr(scale),
        "rating_unit": 1.0,
        **{f"version_{k}": v for k, v in package_versions().items()},
    }
    if attrs:
        meta.update(attrs)
    dt = az.from_dict(groups, coords={k: v for k, v in coords.items() if k in used or k == "obs"},
                      dims=dims, check_conventions=False)
    dt.attrs.update(meta)
    dt["observed_data"] = dt["observed_data"].to_dataset().assign_coords(
        obs_user=("obs", ratings.user_ids), obs_item=("obs", ratings.item_ids))
    post = dt["posterior"]
    if predictive and "U" in post and "sigma" in post and post.sizes["chain"] * post.sizes["draw"] > 1:
        dt = add_predictive(dt)
    return dt


def pointwise_log_likelihood(d: PosteriorDraws, ucode, icode, y) -> tuple[np.ndarray, np.ndarray]:
    r"""Log density of observed ratings per draw, and the predictive mean on the model scale.

    :math:`\log N(t(R_n) \mid \mathrm{link}(\eta_n), \sigma_n^2)` (:math:`\sigma_n`: the pair's
    noise sd, :func:`~bayes_mf.predict.noise_sd`) plus the
    log-Jacobian of :math:`t` for the logistic link (ratings mapped to
    [0, 1]), so that it is the density of the rating itself.

    Returns
    -------
    ll, mean : (S, P) arrays
    """
    eta = linear_predictor(d, np.asarray(ucode, np.int64), np.asarray(icode, np.int64), None)
    sigma = noise_sd(d, ucode, icode)  # (S, 1), or per pair with heteroscedastic noise
    if d.link == "logistic":
        lo, hi = d.scale
        m = 1.0 / (1.0 + np.exp(-eta))
        z = (y - lo) / (hi - lo)
        jac = -np.log(hi - lo)
    else:
        m, z, jac = eta, y, 0.0
    return -0.5 * np.log(2 * np.pi * sigma**2) - 0.5 * ((z - m) / sigma) ** 2 + jac, m


def add_predictive(dt, *, max_draws: int = PREDICTIVE_DRAWS, max_pairs: int = PREDICTIVE_PAIRS,
                   random_seed=None):
    """Set the ``posterior_predictive`` and ``log_likelihood`` groups of a result (in place).

    Parameters
    ----------
    dt : xarray.DataTree
        A result of :func:`build_result` with factor draws.
    max_draws : int
        Draws kept, all chains together: ``max_draws // chains`` evenly
        spaced draws of every chain (at least one).
    max_pairs : int
        Training pairs kept; beyond it a seeded random subset (sorted).
    random_seed : int, optional
        Seeds the replicated ratings' noise and the subset; default: the
        fit's ``random_seed`` attribute.

    Returns
    -------
    xarray.DataTree
        ``dt``, whose new groups hold ``rating`` over ``(chain, draw, obs)``.
    """
    import xarray as xr

    if int(max_draws) < 1 or int(max_pairs) < 1:
        raise ValueError(f"max_draws and max_pairs must be >= 1, got {max_draws}, {max_pairs}")
    post = dt["posterior"]
    n_chain, n_draw = int(post.sizes["chain"]), int(post.sizes["draw"])
    per_chain = min(n_draw, max(1, int(max_draws) // n_chain))
    keep = np.unique(np.linspace(0, n_draw - 1, per_chain).round().astype(np.int64))
    sub = draws_from_result(dt).take((np.arange(n_chain)[:, None] * n_draw + keep[None, :]).ravel())
    seed = dt.attrs.get("random_seed", -1) if random_seed is None else random_seed
    rng = np.random.default_rng([_PREDICTIVE_SEED, max(int(seed), 0)])
    obs = dt["observed_data"]
    y_all = obs["rating"].to_numpy()
    pos = np.arange(y_all.size)
    if y_all.size > int(max_pairs):
        pos = np.sort(rng.choice(y_all.size, size=int(max_pairs), replace=False))
    users = dt["constant_data"]["user_code"].to_numpy()[pos]
    items = dt["constant_data"]["item_code"].to_numpy()[pos]
    y = y_all[pos]
    ll = np.empty((sub.n_draws, pos.size))
    rep = np.empty((sub.n_draws, pos.size))
    chunk = max(1, 8_000_000 // max(1, sub.n_draws * sub.U.shape[-1]))
    for s in range(0, pos.size, chunk):
        e = min(s + chunk, pos.size)
        ll[:, s:e], m = pointwise_log_likelihood(sub, users[s:e], items[s:e], y[s:e])
        sigma = noise_sd(sub, users[s:e], items[s:e])
        rep[:, s:e] = _to_rating_scale(sub, m + sigma * rng.standard_normal(m.shape))
    coords = {"chain": post["chain"].to_numpy(), "draw": post["draw"].to_numpy()[keep], "obs": pos,
              "obs_user": ("obs", obs["obs_user"].to_numpy()[pos]),
              "obs_item": ("obs", obs["obs_item"].to_numpy()[pos])}
    note = {"draws": f"{sub.n_draws} of {n_chain * n_draw} posterior draws, evenly spaced per chain",
            "pairs": f"{pos.size} of {y_all.size} training pairs"}
    shape = (n_chain, keep.size, pos.size)
    dims = ("chain", "draw", "obs")
    dt["posterior_predictive"] = xr.Dataset({"rating": (dims, rep.reshape(shape))}, coords=coords,
                                            attrs=note)
    dt["log_likelihood"] = xr.Dataset({"rating": (dims, ll.reshape(shape))}, coords=coords, attrs=note)
    return dt


def draws_from_result(dt) -> PosteriorDraws:
    """Flatten the posterior of a result into :class:`PosteriorDraws`."""
    post = dt["posterior"]

    def flat(name):
        if name not in post:
            return None
        a = post[name].to_numpy()
        return a.reshape((-1,) + a.shape[2:])

    scale = dt.attrs.get("scale", "none")
    scale = None if scale == "none" else tuple(float(x) for x in scale.split(","))
    return PosteriorDraws(
        U=flat("U"), V=flat("V"), sigma=flat("sigma"), mu=flat("mu"),
        user_bias=flat("user_bias"), item_bias=flat("item_bias"),
        sigma_u=flat("sigma_u"), sigma_v=flat("sigma_v"),
        sigma_b=flat("sigma_b"), sigma_c=flat("sigma_c"),
        link=dt.attrs.get("link", "identity"), scale=scale,
        user_noise=flat("user_noise"), item_noise=flat("item_noise"),
        noise_shape_user=flat("noise_shape_user"), noise_shape_item=flat("noise_shape_item"),
    )
