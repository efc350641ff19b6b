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
``observed_data`` / ``constant_data``
    ``rating`` and ``user_code``/``item_code`` over ``obs``.

attrs record ``method``, ``model``, ``n_factors``, ``random_seed``,
``fit_seconds``, ``link``, ``scale`` and package versions.

U and V are identified only up to rotation, sign and permutation: keep them
for prediction, never diagnose them (see :mod:`bayes_mf.diagnostics`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import numpy as np

from .data import Ratings
from .predict import PosteriorDraws

__all__ = ["VAR_DIMS", "build_result", "draws_from_result", "package_versions"]

VAR_DIMS = {
    "U": ["user", "factor"],
    "V": ["item", "factor"],
    "user_bias": ["user"],
    "item_bias": ["item"],
}


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
):
    """Assemble the DataTree of a fit.

    Parameters
    ----------
    posterior : dict of name -> array with leading (chain, draw) axes
    ratings : Ratings
        The training data (coords and observed/constant data come from it).
    sample_stats : dict of name -> (chain, draw) arrays, optional
    extra_dims : dims of variables not in :data:`VAR_DIMS`.
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
        "scale": "none" if scale is None else f"{float(scale[0])!r},{float(scale[1])!r}",
        **{f"version_{k}": v for k, v in package_versions().items()},
    }
    if attrs:
        meta.update(attrs)
    dt = az.from_dict(groups, coords={k: v for k, v in coords.items() if k in used or k == "obs"},
                      dims=dims, check_conventions=False)
    dt.attrs.update(meta)
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
    )
