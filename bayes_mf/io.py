"""Save a fitted estimator to one folder and load it back with identical predictions.

Layout of ``PATH/``::

    estimator.json   class, constructor parameters, scalar fitted attributes, format version
    arrays.npz       fitted arrays (factors, biases, id maps, training codes)
    result.zarr/     the posterior DataTree (zarr: ArviZ 1 no longer ships a netCDF engine)

Ids are stored as integer, float or string arrays; other id types raise at save
time rather than coming back changed.  Nothing is pickled, so loading a file
runs no code from it.
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["save", "load"]

FORMAT = 1
_CLASSES = {
    "ALS": "bayes_mf.als",
    "GradientDescentMF": "bayes_mf.gd",
    "GlobalMean": "bayes_mf.baselines",
    "BiasBaseline": "bayes_mf.baselines",
    "PMF": "bayes_mf.inference",
    "GibbsPMF": "bayes_mf.gibbs",
}


def _id_array(index: pd.Index, what: str) -> np.ndarray:
    values = index.to_numpy()
    if values.dtype.kind in "iuf":
        return values
    if all(isinstance(v, str) for v in values):
        return values.astype(str)
    raise TypeError(f"cannot save {what} ids of type {values.dtype}: only int, float or str ids are "
                    "stored (convert them with astype(str) before fitting)")


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple):
        return list(v)
    return v


def save(estimator, path, *, overwrite: bool = False) -> Path:
    """Write a fitted estimator to the folder ``path``; returns the path."""
    estimator._check_fitted()
    cls = type(estimator).__name__
    if cls not in _CLASSES:
        raise TypeError(f"saving {cls} is not supported; supported: {sorted(_CLASSES)}")
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists: pass overwrite=True to replace it")
        # never delete anything that is not a saved estimator
        if not (path.is_dir() and (path / "estimator.json").is_file()):
            raise FileExistsError(f"{path} exists and is not a saved bayes_mf estimator: "
                                  "refusing to overwrite it")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    arrays = {"users": _id_array(estimator.users_, "user"), "items": _id_array(estimator.items_, "item")}
    scalars = {}
    for name, value in vars(estimator).items():
        if not name.endswith("_") or name.startswith("_") or name in ("users_", "items_", "result_"):
            continue
        if isinstance(value, np.ndarray):
            arrays[name] = value
        elif isinstance(value, (int, float, str, bool, np.generic, tuple, list, type(None))):
            scalars[name] = _jsonable(value)
    meta = {
        "format": FORMAT,
        "class": cls,
        # fit-time-only arguments that are objects (e.g. PMF(init=<fitted MAP>)) are not kept:
        # the saved estimator is already fitted
        "params": {k: _jsonable(v) for k, v in estimator.get_params(deep=False).items()
                   if isinstance(_jsonable(v), (int, float, str, bool, list, type(None)))},
        "fitted": scalars,
        "names": list(getattr(estimator, "_names", ("user", "item", "rating"))),
    }
    np.savez(path / "arrays.npz", **arrays)
    if getattr(estimator, "result_", None) is not None:
        # consolidated metadata is not part of the zarr v3 spec (zarr warns); not needed here
        estimator.result_.to_zarr(path / "result.zarr", consolidated=False)
    (path / "estimator.json").write_text(json.dumps(meta, indent=2))
    return path


def load(path):
    """Load an estimator written by :func:`save`."""
    import xarray as xr

    path = Path(path)
    meta_file = path / "estimator.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a saved bayes_mf estimator (no estimator.json)")
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported format {meta.get('format')!r} (this version reads {FORMAT})")
    if meta.get("class") not in _CLASSES:
        raise ValueError(f"{path}: unknown estimator class {meta.get('class')!r}; "
                         f"this version reads {sorted(_CLASSES)}")
    cls = getattr(importlib.import_module(_CLASSES[meta["class"]]), meta["class"])
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["params"].items()}
    est = cls(**params)
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        for name in npz.files:
            if name not in ("users", "items"):
                setattr(est, name, npz[name])
        est.users_ = pd.Index(npz["users"], name=meta["names"][0])
        est.items_ = pd.Index(npz["items"], name=meta["names"][1])
    for name, value in meta["fitted"].items():
        setattr(est, name, tuple(value) if name == "scale_" else value)
    est._names = tuple(meta["names"])
    if (path / "result.zarr").exists():
        est.result_ = xr.open_datatree(path / "result.zarr", engine="zarr", consolidated=False).load()
    return est
