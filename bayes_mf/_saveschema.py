"""What a saved estimator may hold, and the checks :func:`bayes_mf.io.load` runs on it.

The allow-list :data:`FITTED` names, per class, every fitted attribute a
save may carry; :func:`bayes_mf.io.load` refuses any other name (a saved file
must never be able to set, say, ``predict`` on the estimator).  The checks
here look at the content itself -- types, dtypes, ranks, shapes that agree
with the id maps and the rank, finiteness, unique ids -- so that a damaged
save fails with a :class:`CorruptSaveError` even where the checksums of the
manifest cannot tell (a save of format 1, or a manifest rewritten too).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

__all__ = ["CorruptSaveError", "CLASSES", "FITTED", "check_fitted", "check_arrays", "check_result"]


class CorruptSaveError(ValueError):
    """A saved estimator is damaged, changed after saving, or holds what the estimator cannot have."""


CLASSES = {
    "ALS": "bayes_mf.als",
    "GradientDescentMF": "bayes_mf.gd",
    "GlobalMean": "bayes_mf.baselines",
    "BiasBaseline": "bayes_mf.baselines",
    "PMF": "bayes_mf.inference",
    "GibbsPMF": "bayes_mf.gibbs",
}


def _real(v):
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)


def _int(v):
    return isinstance(v, Integral) and not isinstance(v, bool) and v >= 0


def _scale(v):
    return v is None or (isinstance(v, list) and len(v) == 2 and all(_real(x) for x in v) and v[0] < v[1])


#: scalar fitted attributes (stored in estimator.json) and the test their value must pass
SCALARS = {
    "scale_": (_scale, "null or a pair [low, high] of finite numbers, low < high"),
    "global_mean_": (_real, "a finite number"),
    "n_train_": (_int, "a non-negative integer"),
    "fit_seconds_": (_real, "a finite number"),
    "n_iter_": (_int, "a non-negative integer"),
    "train_rmse_": (_real, "a finite number"),
    "loss_curve_": (lambda v: isinstance(v, list) and all(isinstance(x, Real) for x in v),
                    "a list of numbers"),
    "compile_seconds_": (_real, "a finite number"),
    "n_sweeps_": (_int, "a non-negative integer"),
    "sweep_seconds_": (_real, "a finite number"),
    "converged_": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
    "shrink_": (_real, "a finite number"),
    "reg_": (_real, "a finite number"),
    "rating_unit_": (lambda v: _real(v) and v > 0, "a positive number"),
    "time_range_": (lambda v: isinstance(v, list) and len(v) == 2 and all(
        isinstance(x, Integral) and not isinstance(x, bool) for x in v) and v[0] <= v[1],
        "a pair [first, last] of whole Unix seconds, first <= last"),
}

#: array fitted attributes (stored in arrays.npz): dtype kinds, shape in terms of the sizes below
ARRAYS = {
    "train_user_codes_": ("iu", ("n_train",)),
    "train_item_codes_": ("iu", ("n_train",)),
    "U_": ("f", ("n_users", "k")),
    "V_": ("f", ("n_items", "k")),
    "user_bias_": ("f", ("n_users",)),
    "item_bias_": ("f", ("n_items",)),
    "U_mean_": ("f", ("n_users", "k")),
    "V_mean_": ("f", ("n_items", "k")),
    "elbo_": ("f", (None,)),
    "time_keys_user_": ("i", (None,)),  # GibbsPMF(time_effects=): the levels' keys (gibbs.effects.TimeCoding)
    "time_keys_item_": ("i", (None,)),
}

_COMMON = {"scale_", "global_mean_", "n_train_", "train_user_codes_", "train_item_codes_"}
_POINT = {"U_", "V_", "user_bias_", "item_bias_"}
#: per class: (attributes a save must have, attributes it may have in addition)
_SCHEMA = {
    "GlobalMean": (_COMMON, {"fit_seconds_"}),
    "BiasBaseline": (_COMMON | {"user_bias_", "item_bias_"}, {"fit_seconds_"}),
    "ALS": (_COMMON | _POINT, {"fit_seconds_", "loss_curve_", "n_iter_", "train_rmse_", "reg_"}),
    "GradientDescentMF": (_COMMON | _POINT, {"fit_seconds_", "loss_curve_", "n_iter_", "train_rmse_"}),
    "GibbsPMF": (_COMMON | {"U_mean_", "V_mean_"},
                 {"fit_seconds_", "compile_seconds_", "n_sweeps_", "sweep_seconds_", "converged_",
                  "time_range_", "time_keys_user_", "time_keys_item_"}),
    "PMF": (_COMMON, {"fit_seconds_", "shrink_", "elbo_", "compile_seconds_", "n_sweeps_",
                      "sweep_seconds_", "converged_", "U_mean_", "V_mean_"}),
}
#: every fitted name a save of each class may carry (the allow-list); rating_unit_ is informative
#: only (the saved arrays and posterior are in rating units already), and older saves lack it
FITTED = {cls: req | opt | {"rating_unit_"} for cls, (req, opt) in _SCHEMA.items()}
#: classes whose predictions come from result.zarr
_NEEDS_RESULT = {"GibbsPMF", "PMF"}


def check_fitted(cls: str, fitted, where) -> dict:
    """The scalar fitted attributes of estimator.json, checked against the schema."""
    if not isinstance(fitted, dict):
        raise CorruptSaveError(f"{where}: 'fitted' must be an object, got {type(fitted).__name__}")
    allowed = FITTED[cls]
    unknown = sorted(set(fitted) - (allowed & set(SCALARS)))
    if unknown:
        raise CorruptSaveError(f"{where}: {cls} has no fitted attribute(s) {unknown} (unknown keys "
                               "are refused: a save may only set what the class declares)")
    missing = sorted((_SCHEMA[cls][0] & set(SCALARS)) - set(fitted))
    if missing:
        raise CorruptSaveError(f"{where}: fitted attribute(s) {missing} are missing")
    out = {}
    for name, value in fitted.items():
        ok, what = SCALARS[name]
        if not ok(value):
            raise CorruptSaveError(f"{where}: fitted attribute {name!r} must be {what}, got {value!r}")
        out[name] = tuple(float(x) for x in value) if name == "scale_" and value is not None else value
    return out


def _ids(arrays, name, where):
    if name not in arrays:
        raise CorruptSaveError(f"{where}: the {name} id array is missing")
    ids = arrays[name]
    if ids.ndim != 1 or ids.dtype.kind not in "iufU" or len(ids) == 0:
        raise CorruptSaveError(f"{where}: {name} must be a non-empty 1-d array of int, float or str ids, "
                               f"got dtype {ids.dtype} and shape {ids.shape}")
    if ids.dtype.kind == "f" and not np.isfinite(ids).all():
        raise CorruptSaveError(f"{where}: {name} holds NaN or infinite ids")
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        raise CorruptSaveError(f"{where}: {name} holds duplicate ids, e.g. {uniq[counts > 1][0].item()!r}")
    return ids


def check_arrays(cls: str, arrays: dict, fitted: dict, est, where) -> dict:
    """The arrays of arrays.npz, checked: known names, dtype kinds, shapes, finite values, codes in range."""
    unknown = sorted(set(arrays) - (FITTED[cls] & set(ARRAYS)) - {"users", "items"})
    if unknown:
        raise CorruptSaveError(f"{where}: {cls} has no fitted array(s) {unknown} (unknown names are "
                               "refused: a save may only set what the class declares)")
    missing = sorted((_SCHEMA[cls][0] & set(ARRAYS)) - set(arrays))
    if missing:
        raise CorruptSaveError(f"{where}: fitted array(s) {missing} are missing")
    users, items = _ids(arrays, "users", where), _ids(arrays, "items", where)
    k = getattr(est, "n_factors", None)
    sizes = {"n_users": len(users), "n_items": len(items), "n_train": fitted["n_train_"],
             "k": k if isinstance(k, Integral) and not isinstance(k, bool) else None}
    for name, a in arrays.items():
        if name in ("users", "items"):
            continue
        kinds, dims = ARRAYS[name]
        if a.dtype.kind not in kinds:
            want = "integer" if kinds == "iu" else "float"
            raise CorruptSaveError(f"{where}: {name} must hold {want}s, got dtype {a.dtype}")
        if a.ndim != len(dims):
            raise CorruptSaveError(f"{where}: {name} must have {len(dims)} dimension(s), got shape {a.shape}")
        for axis, (dim, n) in enumerate(zip(dims, a.shape, strict=True)):
            if dim is not None and sizes[dim] is not None and n != sizes[dim]:
                raise CorruptSaveError(f"{where}: {name} has {n} along axis {axis}, expected {sizes[dim]} "
                                       f"({dim}, from the ids and the parameters)")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CorruptSaveError(f"{where}: {name} holds {int((~np.isfinite(a)).sum())} NaN or "
                                   "infinite value(s)")
    for name, n in (("train_user_codes_", sizes["n_users"]), ("train_item_codes_", sizes["n_items"])):
        codes = arrays[name]
        if codes.size and (codes.min() < 0 or codes.max() >= n):
            raise CorruptSaveError(f"{where}: {name} holds codes outside 0..{n - 1}")
    return arrays


def check_result(cls: str, result, arrays: dict, est, where) -> None:
    """The posterior of a sampled or PyMC fit: present where needed, sizes agreeing, finite."""
    if result is None:
        if cls in _NEEDS_RESULT:
            raise CorruptSaveError(f"{where}: result.zarr is missing; a {cls} predicts from its posterior")
        return
    if "posterior" not in result.children:
        raise CorruptSaveError(f"{where}: result.zarr has no posterior group")
    post = result["posterior"]
    sizes = {"user": len(arrays["users"]), "item": len(arrays["items"])}
    k = getattr(est, "n_factors", None)
    if isinstance(k, Integral) and not isinstance(k, bool):
        sizes["factor"] = k
    for dim, n in sizes.items():
        if dim in post.sizes and post.sizes[dim] != n:
            raise CorruptSaveError(f"{where}: the posterior has {post.sizes[dim]} along '{dim}', "
                                   f"expected {n} (from the ids and the parameters)")
    for name in ("U", "V", "mu", "sigma", "user_bias", "item_bias"):
        if name in post.data_vars:
            values = post[name].values
            if values.dtype.kind != "f" or not np.isfinite(values).all():
                raise CorruptSaveError(f"{where}: posterior variable {name!r} holds NaN, infinite or "
                                       "non-float values")
