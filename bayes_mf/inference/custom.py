r"""Fitting a user's changed PyMC model through :class:`~bayes_mf.inference.PMF` (``PMF.from_model``).

The round trip::

    import pymc as pm
    import bayes_mf as bmf

    def student_t(mean, sigma, observed, **kw):
        nu = pm.Gamma("nu", 2.0, 0.1)
        return pm.StudentT("rating", nu=nu, mu=mean, sigma=sigma, observed=observed, **kw)

    m = bmf.models.build_model(train, 5, priors="adaptive", likelihood=student_t)
    with m:                        # further changes: new priors, deterministics ...
        ...
    fit = bmf.PMF.from_model(m, method="nuts").fit(train)
    fit.predict(test)              # intervals from the Student-t posterior predictive

What each method does with the model
    A fit starts where the package's own fits start: the type-II scales and
    the Gaussian MAP point of the model's options (its ``bayes_mf_spec``),
    mapped onto the model's free variables; variables the user added start
    at PyMC's initial point.  ``"nuts"`` samples the model exactly as given
    (every scale learned).  ``"map"`` and ``"advi"``, like the package's
    own, hold the factor and bias scales (``sigma_u``, ``sigma_v``,
    ``sigma_b``, ``sigma_c``; BPMF's means and Cholesky factors) at their
    type-II values by :func:`pymc.do` (MAP: with the validated shrink of the
    factor prior) -- the joint mode over the scales collapses -- and leave
    the noise scale ``sigma`` and every variable the user added free:
    ``"map"`` is ``pm.find_MAP``, ``"advi"`` mean-field ADVI.

What is stored
    ``result_`` has the format of every fit (:mod:`bayes_mf.results`):
    ``U``, ``V``, ``mu``, biases, scales, ``pred_check``, plus every scalar
    or per-user/per-item variable the user added (e.g. ``nu``).  Its
    ``posterior_predictive`` and ``log_likelihood`` (thinned, as for every
    fit) come from the model's own observed variable, so ``az.loo`` and
    ``az.plot_ppc_dist`` judge the likelihood that was fitted.  ``attrs``:
    ``likelihood`` (the hook's name) and ``custom_model = 1``.

What ``predict`` does
    For a sampled fit: ``pm.sample_posterior_predictive`` of the model's
    ``rating`` at the requested pairs (``pm.set_data`` on a copy of the model,
    at most :data:`PREDICTIVE_DRAWS` posterior draws, or ``max_draws``): ``sd``,
    ``lo``, ``hi`` are those of the model's predictive distribution (with
    ``include_noise=False``: of the mean function :math:`g(\eta)`), and
    ``mean`` is the posterior mean of :math:`g(\eta)` -- the predictive mean
    whenever the likelihood is centred on it (Normal, Student-t with
    :math:`\nu > 1`).  Users or items unseen in training raise a
    ``ValueError`` (the prior path of :mod:`bayes_mf.predict` assumes the
    package's model): pass ``unseen="drop"``.  A MAP fit has no spread:
    ``mean`` is :math:`g(\eta)` at the mode, ``sd``/``lo``/``hi`` missing.
    ``recommend`` ranks by the same means and intervals.  Such a fit cannot
    be saved (:func:`bayes_mf.io.save`): the model is code.
"""

from __future__ import annotations

import numpy as np

from ..data import Ratings
from ..models import to_model_scale

__all__ = ["check_model", "check_data", "held_model", "fit_map_custom", "extra_vars",
           "set_predictive", "model_predictive", "PREDICTIVE_DRAWS"]

#: posterior draws (all chains) kept for the model's posterior predictive
PREDICTIVE_DRAWS = 200
#: what every model of :func:`bayes_mf.models.build_model` holds
_REQUIRED = ("U", "V", "mu", "sigma", "eta", "rating", "user_idx", "item_idx", "rating_data")
#: the options of the model that the estimator's parameters must repeat
SPEC_PARAMS = ("n_factors", "priors", "biases", "link", "constrained")
#: scales held at type-II values by MAP and ADVI (name -> key of ``_map_scales``)
_HELD = {"sigma_u": "sigma_u", "sigma_v": "sigma_v", "sigma_b": "sigma_b", "sigma_c": "sigma_c",
         "sigma_y": "sigma_u", "sigma_w": "sigma_u"}


def check_model(model) -> dict:
    """The ``bayes_mf_spec`` of ``model``, after checking that the package can fit it.

    Raises
    ------
    TypeError
        ``model`` is not a ``pymc.Model``.
    ValueError
        It was not built by :func:`bayes_mf.models.build_model`, lacks one of
        its variables, or observes minibatches.
    """
    import pymc as pm

    if not isinstance(model, pm.Model):
        raise TypeError(f"model must be a pymc.Model built by bayes_mf.models.build_model, got "
                        f"{type(model).__name__}")
    spec = getattr(model, "bayes_mf_spec", None)
    if spec is None:
        raise ValueError("model has no bayes_mf_spec: build it with bayes_mf.models.build_model (pass "
                         "likelihood= to change the observation model) and change it inside `with model:`")
    missing = [name for name in _REQUIRED if name not in model.named_vars]
    if missing:
        raise ValueError(f"model lacks {missing}: PMF.from_model needs the variables of build_model")
    if model["rating"] not in model.observed_RVs:
        raise ValueError("model's 'rating' must be its observed variable")
    if spec.get("batch_size") is not None:
        raise ValueError("model observes minibatches (batch_size): build it without batch_size to fit it")
    return spec


def check_data(model, r: Ratings) -> None:
    """Raise ``ValueError`` unless ``r`` are the ratings ``model`` was built on."""
    spec = model.bayes_mf_spec
    same = (list(model.coords["user"]) == list(r.users) and list(model.coords["item"]) == list(r.items)
            and len(model.coords["obs"]) == len(r))
    if same:
        data = {name: model[name].get_value() for name in ("user_idx", "item_idx", "rating_data")}
        same = (np.array_equal(data["user_idx"], r.user) and np.array_equal(data["item_idx"], r.item)
                and np.allclose(data["rating_data"], to_model_scale(r.rating, spec["link"], spec["scale"])))
    if not same:
        raise ValueError("the model was built on other ratings than those passed to fit: a model given to "
                         "PMF.from_model fits the ratings it holds, so pass the same table to fit")


def held_model(est, *, shrink: float = 1.0):
    """``est.model`` with its factor and bias scales held at their type-II values (:func:`pymc.do`).

    ``shrink`` divides the factor-prior variances (MAP's validated shrink).
    A model with no such free scale is returned as it is.
    """
    import pymc as pm

    model = est.model
    free = {rv.name: rv for rv in model.free_RVs}
    held = {}
    f = 1.0 / np.sqrt(shrink)
    for name, key in _HELD.items():
        if name in free and key in est._map_scales:
            factor = f if name in ("sigma_u", "sigma_v", "sigma_y") else 1.0
            held[name] = float(est._map_scales[key]) * factor
    for name in free:
        if name.startswith(("mu_", "chol_")) and name in est.map_point_:
            held[name] = np.asarray(est.map_point_[name], dtype=float)
    if not held:
        return model
    new = pm.do(model, {name: np.asarray(v, dtype=free[name].dtype) for name, v in held.items()})
    new.bayes_mf_spec = model.bayes_mf_spec
    new.bayes_mf_held = held
    return new


def fit_map_custom(est, r: Ratings) -> None:
    """``pm.find_MAP`` of the held model from the package's MAP point; stores the result."""
    import pymc as pm

    model = held_model(est, shrink=getattr(est, "shrink_", 1.0))
    est.model_ = model
    with model:
        dt = pm.find_MAP(initvals=est._initvals(model), method="L-BFGS-B", jitter=False,
                         return_inferencedata=True, progressbar=False, random_seed=est.random_seed,
                         maxiter=int(est.map_maxiter), ftol=float(est.map_ftol))
    post = dt["posterior"].to_dataset()
    attrs = {"hyperparameters": "factor and bias scales held at type-II values (pymc.do); the rest "
                                "of the model's variables at their joint mode", "shrink": float(est.shrink_)}
    est._store(post, r, method="map", sample_stats=None, attrs=attrs)


def extra_vars(model, post) -> tuple[dict, dict]:
    """Variables the user added (not made by ``build_model``, not over ``obs``): values and dims."""
    from .stats import RESULT_VARS

    package = model.bayes_mf_spec.get("package_vars", set())
    values, dims = {}, {}
    for name in post.data_vars:
        da = post[name]
        if name in package or name in RESULT_VARS or name == "pred_check" or "obs" in da.dims:
            continue
        values[name] = np.asarray(da.to_numpy(), dtype=float)
        dims[name] = list(da.dims[2:])
    return values, dims


def _held_values(model, post) -> dict:
    """Held scales (constants after :func:`pymc.do`) as (chain, draw) arrays."""
    n = (post.sizes["chain"], post.sizes["draw"])
    return {k: np.broadcast_to(np.asarray(v, float), n + np.shape(v)).copy()
            for k, v in getattr(model, "bayes_mf_held", {}).items() if k not in post}


def thinned(post, max_draws: int = PREDICTIVE_DRAWS):
    """``post`` at most ``max_draws`` draws in all, evenly spaced in every chain."""
    n_chain, n_draw = int(post.sizes["chain"]), int(post.sizes["draw"])
    per_chain = min(n_draw, max(1, int(max_draws) // n_chain))
    return post.isel(draw=np.unique(np.linspace(0, n_draw - 1, per_chain).round().astype(np.int64)))


def _sample_rating(model, post, ucode, icode, y, random_seed) -> tuple[np.ndarray, np.ndarray]:
    """Replicated ``rating`` and ``eta`` draws (chain, draw, pair) of a copy of ``model`` at the pairs."""
    import pymc as pm
    from pymc.model.fgraph import clone_model

    m = clone_model(model)
    with m:
        pm.set_data({"user_idx": np.asarray(ucode, np.int64), "item_idx": np.asarray(icode, np.int64),
                     "rating_data": np.asarray(y, float)}, coords={"obs": np.arange(len(ucode))})
        # the posterior's draws are kept as they are (held scales are Data, not draws)
        dt = pm.sample_posterior_predictive(post, var_names=["rating", "eta"], predictions=True,
                                            freeze_vars=list(post.data_vars), random_seed=random_seed,
                                            progressbar=False)
    pred = dt["predictions"].to_dataset()
    return pred["rating"].to_numpy(), pred["eta"].to_numpy()


def _link(eta, link: str):
    return 1.0 / (1.0 + np.exp(-eta)) if link == "logistic" else eta


def _to_ratings(x, spec):
    if spec["link"] == "logistic":
        lo, hi = spec["scale"]
        return lo + (hi - lo) * x
    return x


def model_predictive(est, ucode, icode, *, interval: float = 0.9, include_noise: bool = True,
                     max_draws: int | None = None, random_seed=None, return_draws: bool = False) -> dict:
    """Predictive ``mean``, ``sd``, ``lo``, ``hi`` (and ``draws``) of pairs from the fitted model itself."""
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval}")
    ucode, icode = np.asarray(ucode, np.int64), np.asarray(icode, np.int64)
    if (ucode < 0).any() or (icode < 0).any():
        raise ValueError("a fit of a custom model (PMF.from_model) predicts pairs of training users and "
                         "items only (the prior path for unseen ids assumes the package's own model): "
                         "pass unseen='drop'")
    spec = est.model_.bayes_mf_spec
    post = thinned(est._pm_posterior, max_draws or PREDICTIVE_DRAWS)
    if ucode.size == 0:
        empty = np.empty(0)
        return {"mean": empty, "sd": empty, "lo": empty, "hi": empty,
                **({"draws": np.empty((0, 0))} if return_draws else {})}
    y, eta = _sample_rating(est.model_, post, ucode, icode, np.zeros(ucode.size), random_seed)
    S = y.shape[0] * y.shape[1]
    y, m = y.reshape(S, -1), _link(eta.reshape(S, -1), spec["link"])
    draws = _to_ratings(y if include_noise else m, spec)
    lo, hi = np.quantile(draws, [(1 - interval) / 2, (1 + interval) / 2], axis=0)
    out = {"mean": _to_ratings(m.mean(axis=0), spec), "sd": draws.std(axis=0, ddof=1), "lo": lo, "hi": hi}
    if return_draws:
        out["draws"] = draws
    return out


def set_predictive(est, dt, post, r: Ratings) -> None:
    """Thinned ``posterior_predictive`` and ``log_likelihood`` of the training pairs, from the model
    (in place)."""
    import pymc as pm
    import xarray as xr

    model = est.model_
    spec = model.bayes_mf_spec
    sub = thinned(post)
    seed = 0 if est.random_seed is None else int(est.random_seed)
    y = to_model_scale(r.rating, spec["link"], spec["scale"])
    rep, _ = _sample_rating(model, sub, r.user, r.item, y, seed)
    out = pm.compute_log_likelihood(xr.DataTree.from_dict({"posterior": sub}), var_names=["rating"],
                                    model=model, extend_inferencedata=False, progressbar=False)
    if "log_likelihood" in getattr(out, "children", {}):
        out = out["log_likelihood"]
    ll = np.asarray(out["rating"].to_numpy(), dtype=float)
    if spec["link"] == "logistic":  # the density of the rating itself, not of its [0, 1] image
        lo, hi = spec["scale"]
        ll = ll - np.log(hi - lo)
    obs = dt["observed_data"]
    coords = {"chain": sub["chain"].to_numpy(), "draw": sub["draw"].to_numpy(), "obs": np.arange(len(r)),
              "obs_user": ("obs", obs["obs_user"].to_numpy()),
              "obs_item": ("obs", obs["obs_item"].to_numpy())}
    note = {"draws": f"{rep.shape[0] * rep.shape[1]} posterior draws, evenly spaced per chain",
            "pairs": f"all {len(r)} training pairs", "likelihood": str(spec["likelihood"])}
    dims = ("chain", "draw", "obs")
    dt["posterior_predictive"] = xr.Dataset({"rating": (dims, _to_ratings(rep, spec))}, coords=coords,
                                            attrs=note)
    dt["log_likelihood"] = xr.Dataset({"rating": (dims, ll)}, coords=coords, attrs=note)
