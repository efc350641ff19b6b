"""Save a fitted estimator to one folder and load it back with identical predictions.

Layout of ``PATH/``::

    estimator.json   class, constructor parameters, scalar fitted attributes, format version
    arrays.npz       fitted arrays (factors, biases, id maps, training codes)
    result.zarr/     the posterior DataTree (zarr: ArviZ 1 no longer ships a netCDF engine)
    manifest.json    sha256 and size of every file above, shapes and dtypes of the arrays

Ids are stored as integer, float or string arrays; other id types raise at save
time rather than coming back changed.  Nothing is pickled, so loading a file
runs no code from it, and :func:`load` sets only the attribute names the
estimator's class declares (:data:`bayes_mf._saveschema.FITTED`), never a
name read from the files.

Saving never loses data: the new save is written into a temporary sibling
folder and moved into place only once it is complete; with ``overwrite=True``
only the four entries above (the ones the package writes) are replaced, and
any other file in the folder is kept.

Loading checks the manifest first (a deleted zarr chunk, an edited number, a
truncated ``arrays.npz`` all change a checksum), then the content itself
(types, shapes, ranks, finiteness, unique ids), and raises
:class:`CorruptSaveError` naming the file and the problem.  Saves written
before the manifest existed (format 1) still load, with the content checks
only and an :class:`UnverifiedSaveWarning`.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from ._files import sha256_file, tree_digests
from ._saveschema import CLASSES, CorruptSaveError, check_arrays, check_fitted, check_result

__all__ = ["save", "load", "CorruptSaveError", "UnverifiedSaveWarning"]

FORMAT = 2
#: formats this version reads; 1 had no manifest
_READABLE = (1, 2)
#: every name the package writes into a save folder; nothing else there is ever touched
ENTRIES = ("estimator.json", "arrays.npz", "result.zarr", "manifest.json")
_CLASSES = CLASSES
#: scalar fitted attributes whose None is a value (not converged-checked, no scale), not "absent"
_MAY_BE_NONE = ("converged_", "scale_")


class UnverifiedSaveWarning(UserWarning):
    """A save without a manifest (an older version's) was loaded: checksums could not be verified."""


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


def _is_save(path: Path) -> bool:
    return path.is_dir() and (path / "estimator.json").is_file()


def save(estimator, path, *, overwrite: bool = False) -> Path:
    """Write a fitted estimator to the folder ``path``; returns the path.

    Parameters
    ----------
    estimator : fitted estimator
    path : str or Path
        Folder to create.  An empty folder is used as it is.
    overwrite : bool
        Replace an earlier save in ``path``.  Only the entries the package
        writes (:data:`ENTRIES`) are replaced, and only after the new save
        has been written completely; other files in the folder are kept.

    Raises
    ------
    FileExistsError
        ``path`` holds a save and ``overwrite`` is False, or ``path`` is a
        file or a non-empty folder that is not a save.
    """
    estimator._check_fitted()
    cls = type(estimator).__name__
    if cls not in _CLASSES:
        raise TypeError(f"saving {cls} is not supported; supported: {sorted(_CLASSES)}")
    if getattr(estimator, "model", None) is not None:
        raise TypeError("a fit of a custom PyMC model (PMF.from_model) cannot be saved: the model is code, "
                        "and a loaded fit could not predict from its likelihood")
    path = Path(path)
    if path.exists():
        if path.is_dir() and not any(path.iterdir()):
            pass  # an empty folder: nothing can be lost
        elif not _is_save(path):
            # never replace anything that is not a saved estimator
            raise FileExistsError(f"{path} exists and is not a saved bayes_mf estimator: "
                                  "refusing to overwrite it")
        elif not overwrite:
            raise FileExistsError(f"{path} exists: pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.saving-"))
    try:
        _write(estimator, cls, tmp)
        if path.exists():
            _swap_in(tmp, path)
        else:
            # mkdtemp makes the folder private (0700); give it the mode a plain mkdir would
            umask = os.umask(0)
            os.umask(umask)
            tmp.chmod(0o777 & ~umask)
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _write(estimator, cls: str, folder: Path) -> None:
    """Write every entry of a save into ``folder`` (a fresh temporary folder), manifest last."""
    from ._saveschema import ARRAYS, FITTED, SCALARS

    allowed = FITTED[cls]
    arrays = {"users": _id_array(estimator.users_, "user"), "items": _id_array(estimator.items_, "item")}
    scalars = {}
    # only declared names are written, so that load() can refuse any other name
    for name in sorted(allowed):
        value = getattr(estimator, name, None)
        if name in ARRAYS and isinstance(value, np.ndarray):
            arrays[name] = value
        elif name in SCALARS and hasattr(estimator, name) and (value is not None or name in _MAY_BE_NONE):
            scalars[name] = _jsonable(value)
    # a save that load() would refuse must fail now, while the fitted estimator is still at hand
    check_fitted(cls, scalars, f"saving {cls}")
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
    np.savez(folder / "arrays.npz", **arrays)
    written = ["arrays.npz"]
    if getattr(estimator, "result_", None) is not None:
        # consolidated metadata is not part of the zarr v3 spec (zarr warns); not needed here
        estimator.result_.to_zarr(folder / "result.zarr", consolidated=False)
        written.append("result.zarr")
    (folder / "estimator.json").write_text(json.dumps(meta, indent=2))
    written.append("estimator.json")
    manifest = {
        "format": FORMAT,
        "package": "bayes_mf",
        "version": __version__,
        "class": cls,
        "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()},
        "files": tree_digests(folder, written),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _swap_in(tmp: Path, path: Path) -> None:
    """Move the complete save in ``tmp`` into the existing folder ``path``.

    Only the package's own entries (:data:`ENTRIES`) of an earlier save are
    replaced (moved aside first, deleted once the new ones are in place);
    anything else in ``path`` is never touched.
    """
    backup = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
    moved_old, moved_new = [], []
    try:
        for name in ENTRIES:
            if (path / name).exists():
                os.replace(path / name, backup / name)
                moved_old.append(name)
        for name in ENTRIES:
            if (tmp / name).exists():
                os.replace(tmp / name, path / name)
                moved_new.append(name)
    except BaseException:
        # put the old save back as it was: a failed overwrite must not lose it
        for name in moved_new:
            if (path / name).is_dir():
                shutil.rmtree(path / name, ignore_errors=True)
            else:
                (path / name).unlink(missing_ok=True)
        for name in moved_old:
            os.replace(backup / name, path / name)
        backup.rmdir()
        raise
    shutil.rmtree(backup)


# ---------------------------------------------------------------------------- load


def _read_json(path: Path, what: str) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptSaveError(f"{path}: {what} is not readable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CorruptSaveError(f"{path}: {what} must hold a JSON object, found {type(doc).__name__}")
    return doc


def _verify_manifest(path: Path) -> dict:
    """Check every file the manifest lists (size, sha256) and that the zarr store has no others."""
    man_file = path / "manifest.json"
    if not man_file.is_file():
        raise CorruptSaveError(f"{path}: manifest.json is missing, so the save cannot be verified "
                               "(a format-2 save always has one)")
    man = _read_json(man_file, "manifest.json")
    files = man.get("files")
    if man.get("package") != "bayes_mf" or not isinstance(files, dict) or "estimator.json" not in files:
        raise CorruptSaveError(f"{man_file}: not a bayes_mf manifest (no 'files' with estimator.json)")
    for rel, entry in files.items():
        f = path / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or rel.split("/")[0] not in ENTRIES:
            raise CorruptSaveError(f"{man_file}: lists {rel!r}, which is not a file a save holds")
        if not f.is_file():
            raise CorruptSaveError(f"{path}: {rel} is missing (deleted or moved after saving)")
        if not isinstance(entry, dict) or f.stat().st_size != entry.get("size") \
                or sha256_file(f) != entry.get("sha256"):
            raise CorruptSaveError(f"{path}: {rel} does not match its checksum in manifest.json: "
                                   "it was changed, truncated or damaged after saving")
    zarr = path / "result.zarr"
    if zarr.exists():
        extra = sorted(q.relative_to(path).as_posix() for q in zarr.rglob("*")
                       if q.is_file() and q.relative_to(path).as_posix() not in files)
        if extra:
            raise CorruptSaveError(f"{path}: {extra[0]} (and {len(extra) - 1} more) is not in manifest.json: "
                                   "files were added to the saved posterior")
    elif any(rel.startswith("result.zarr/") for rel in files):
        raise CorruptSaveError(f"{path}: result.zarr is missing (the save had a posterior)")
    return man


def load(path):
    """Load an estimator written by :func:`save`.

    Raises
    ------
    FileNotFoundError
        ``path`` holds no ``estimator.json``.
    CorruptSaveError
        A file is missing, changed after saving, or holds content the
        estimator cannot have (message names the file and the problem).
    """
    import xarray as xr

    path = Path(path)
    meta_file = path / "estimator.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a saved bayes_mf estimator (no estimator.json)")
    meta = _read_json(meta_file, "estimator.json")
    fmt = meta.get("format")
    if fmt not in _READABLE:
        raise CorruptSaveError(f"{path}: unsupported format {fmt!r} (this version reads {list(_READABLE)})")
    if fmt == 1:
        warnings.warn(f"{path} was saved by an older version without a manifest: its checksums cannot "
                      "be verified, only its content is checked; save it again to add one",
                      UnverifiedSaveWarning, stacklevel=2)
    else:
        man = _verify_manifest(path)
        if man.get("class") != meta.get("class"):
            raise CorruptSaveError(f"{path}: manifest says class {man.get('class')!r}, estimator.json "
                                   f"{meta.get('class')!r}")
    unknown = sorted(set(meta) - {"format", "class", "params", "fitted", "names"})
    if unknown:
        raise CorruptSaveError(f"{meta_file}: unknown key(s) {unknown}")
    if meta.get("class") not in _CLASSES:
        raise CorruptSaveError(f"{path}: unknown estimator class {meta.get('class')!r}; "
                               f"this version reads {sorted(_CLASSES)}")
    cls_name = meta["class"]
    cls = getattr(importlib.import_module(_CLASSES[cls_name]), cls_name)
    names = meta.get("names")
    if not (isinstance(names, list) and len(names) == 3 and all(isinstance(n, str) for n in names)):
        raise CorruptSaveError(f"{meta_file}: 'names' must be 3 column names (user, item, rating), "
                               f"got {names!r}")
    est = _construct(cls, meta.get("params"), meta_file)
    fitted = check_fitted(cls_name, meta.get("fitted"), meta_file)
    npz_file = path / "arrays.npz"
    if not npz_file.is_file():
        raise CorruptSaveError(f"{path}: arrays.npz is missing")
    try:
        # our own handle: np.load leaks its file when a truncated archive makes it raise
        with open(npz_file, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CorruptSaveError(f"{npz_file} is damaged or truncated ({type(exc).__name__}: {exc})") from None
    arrays = check_arrays(cls_name, arrays, fitted, est, npz_file)
    result = None
    if (path / "result.zarr").exists():
        try:
            result = xr.open_datatree(path / "result.zarr", engine="zarr", consolidated=False).load()
        except Exception as exc:  # noqa: BLE001 - any reader failure is a damaged store
            raise CorruptSaveError(f"{path / 'result.zarr'} cannot be read ({type(exc).__name__}: "
                                   f"{exc})") from None
    check_result(cls_name, result, arrays, est, path)
    # only names the schema declared reach the estimator (check_fitted / check_arrays refuse others)
    for name, value in {**arrays, **fitted}.items():
        if name not in ("users", "items"):
            setattr(est, name, value)
    est.users_ = pd.Index(arrays["users"], name=names[0])
    est.items_ = pd.Index(arrays["items"], name=names[1])
    est._names = tuple(names)
    if result is not None:
        est.result_ = result
    if hasattr(est, "_after_load"):  # state rebuilt from what was loaded (GibbsPMF's time coding)
        try:
            est._after_load()
        except ValueError as exc:
            raise CorruptSaveError(f"{path}: {exc}") from None
    return est


#: parameters added after saves existed, with the value every earlier save was fitted with
_IMPLIED = {"GibbsPMF": {"implicit_bias": True}}  # implicit vectors had a bias coordinate until then


def _construct(cls, params, meta_file: Path):
    """The estimator from its saved constructor parameters (names checked against the signature)."""
    import inspect

    if not isinstance(params, dict):
        raise CorruptSaveError(f"{meta_file}: 'params' must be an object, got {type(params).__name__}")
    declared = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - declared)
    if unknown:
        raise CorruptSaveError(f"{meta_file}: {cls.__name__} has no parameter(s) {unknown}")
    for k, v in params.items():
        if not isinstance(v, (int, float, str, bool, list, type(None))):
            raise CorruptSaveError(f"{meta_file}: parameter {k!r} has a value of type {type(v).__name__}")
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()}
    params = {**_IMPLIED.get(cls.__name__, {}), **params}
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise CorruptSaveError(f"{meta_file}: parameters rejected by {cls.__name__} ({exc})") from None
