"""Saving never loses data; loading a damaged or tampered save is a clear, named error (issue 11)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import bayes_mf as bmf
from bayes_mf import io
from bayes_mf._files import tree_digests
from bayes_mf.io import CorruptSaveError, UnverifiedSaveWarning


@pytest.fixture(scope="module")
def small():
    return bmf.datasets.simulate_pmf(40, 30, 2, density=0.3, global_mean=3.0, bias_sd=0.3, random_seed=2)


@pytest.fixture(scope="module")
def als(small):
    return bmf.ALS(2).fit(small.ratings)


@pytest.fixture(scope="module")
def gibbs(small):
    return bmf.GibbsPMF(2, draws=10, tune=5, chains=2, cores=1, progressbar=False).fit(small.ratings)


def _reseal(path):
    """Rewrite the manifest so that it matches the tampered files: only the content checks remain."""
    man = json.loads((path / "manifest.json").read_text())
    man["files"] = tree_digests(path, [e for e in io.ENTRIES[:3] if (path / e).exists()])
    (path / "manifest.json").write_text(json.dumps(man))


def _edit_npz(path, edit):
    with np.load(path / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    edit(arrays)
    np.savez(path / "arrays.npz", **arrays)


def _edit_json(path, edit):
    meta = json.loads((path / "estimator.json").read_text())
    edit(meta)
    (path / "estimator.json").write_text(json.dumps(meta))


# ------------------------------------------------------------------ overwrite keeps what is not ours

def test_overwrite_keeps_user_files_and_replaces_only_package_entries(gibbs, als, tmp_path):
    m = tmp_path / "m"
    io.save(gibbs, m)
    (m / "notes.txt").write_text("keep me")
    io.save(als, m, overwrite=True)
    assert (m / "notes.txt").read_text() == "keep me"
    # the old posterior went with the old save: it must not be loaded as the new model's
    assert not (m / "result.zarr").exists()
    assert type(io.load(m)).__name__ == "ALS"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_failed_overwrite_keeps_the_old_save(gibbs, als, tmp_path, monkeypatch):
    m = tmp_path / "m"
    io.save(als, m)
    (m / "notes.txt").write_text("keep me")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(type(gibbs.result_), "to_zarr", boom)
    with pytest.raises(OSError, match="disk full"):
        io.save(gibbs, m, overwrite=True)
    assert (m / "notes.txt").exists()
    pd.testing.assert_frame_equal(io.load(m).predict((als.users_[:3], als.items_[:3])),
                                  als.predict((als.users_[:3], als.items_[:3])))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_refuses_files_and_foreign_folders_but_uses_an_empty_one(als, tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(FileExistsError, match="not a saved"):
        io.save(als, tmp_path / "f", overwrite=True)
    assert (tmp_path / "f").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    io.save(als, tmp_path / "empty")
    assert (tmp_path / "empty" / "manifest.json").is_file()


# ------------------------------------------------------------------ tampering


@pytest.fixture
def saved(gibbs, als, tmp_path):
    def make(which="als"):
        path = tmp_path / which
        io.save(gibbs if which == "gibbs" else als, path)
        return path
    return make


def test_deleted_zarr_chunk(saved):
    path = saved("gibbs")
    chunk = next(p for p in sorted((path / "result.zarr" / "posterior" / "U").rglob("*"))
                 if p.is_file() and p.name != "zarr.json")
    chunk.unlink()
    with pytest.raises(CorruptSaveError, match="missing"):
        io.load(path)
    _reseal(path)
    with pytest.raises(CorruptSaveError, match="posterior variable 'U'"):
        io.load(path)


def test_gibbs_save_without_result(saved):
    path = saved("gibbs")
    shutil.rmtree(path / "result.zarr")
    with pytest.raises(CorruptSaveError, match="result.zarr"):
        io.load(path)
    _reseal(path)
    with pytest.raises(CorruptSaveError, match="result.zarr is missing"):
        io.load(path)


@pytest.mark.parametrize("case, edit, match", [
    ("n_factors", lambda m: m["params"].update(n_factors=3), "along axis 1"),
    ("unknown key", lambda m: m.update(extra=1), "unknown key"),
    ("names short", lambda m: m.update(names=["user"]), "'names'"),
    ("shadow a method", lambda m: m["fitted"].update(predict=1), "no fitted attribute"),
    ("bad param", lambda m: m["params"].update(evil="x"), "no parameter"),
    ("scale", lambda m: m["fitted"].update(scale_=[5, 1]), "scale_"),
    ("global mean nan", lambda m: m["fitted"].update(global_mean_="nan"), "global_mean_"),
])
def test_edited_estimator_json(saved, case, edit, match):
    path = saved()
    _edit_json(path, edit)
    with pytest.raises(CorruptSaveError, match="checksum"):
        io.load(path)
    _reseal(path)
    with pytest.raises(CorruptSaveError, match=match):
        io.load(path)


def test_edited_global_mean_is_caught_by_the_checksum(saved):
    path = saved()
    _edit_json(path, lambda m: m["fitted"].update(global_mean_=m["fitted"]["global_mean_"] + 1))
    with pytest.raises(CorruptSaveError, match="estimator.json does not match its checksum"):
        io.load(path)


@pytest.mark.parametrize("case, edit, match", [
    ("int8", lambda a: a.update(U_=a["U_"].astype(np.int8)), "must hold floats"),
    ("strings", lambda a: a.update(U_=a["U_"].astype(str)), "must hold floats"),
    ("wrong rank", lambda a: a.update(U_=a["U_"][:, :1]), "along axis 1"),
    ("1-d", lambda a: a.update(U_=a["U_"][:, 0]), "dimension"),
    ("all nan", lambda a: a.update(U_=np.full_like(a["U_"], np.nan)), "NaN"),
    ("row short", lambda a: a.update(U_=a["U_"][:-1]), "along axis 0"),
    ("bias missing", lambda a: a.pop("user_bias_"), "missing"),
    ("duplicate ids", lambda a: a["users"].__setitem__(1, a["users"][0]), "duplicate"),
    ("shadow a method", lambda a: a.update(predict=np.zeros(3)), "no fitted array"),
    ("codes", lambda a: a["train_user_codes_"].__setitem__(0, 999), "outside"),
])
def test_edited_arrays(saved, case, edit, match):
    path = saved()
    _edit_npz(path, edit)
    with pytest.raises(CorruptSaveError, match="checksum"):
        io.load(path)
    _reseal(path)
    with pytest.raises(CorruptSaveError, match=match):
        io.load(path)


def test_reordered_users_and_truncated_npz(saved):
    path = saved()
    _edit_npz(path, lambda a: a.update(users=a["users"][::-1].copy()))
    with pytest.raises(CorruptSaveError, match="arrays.npz does not match"):
        io.load(path)
    path = saved("als2")
    data = (path / "arrays.npz").read_bytes()
    (path / "arrays.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptSaveError, match="arrays.npz"):
        io.load(path)
    _reseal(path)
    with pytest.raises(CorruptSaveError, match="damaged or truncated"):
        io.load(path)


def test_manifest_missing_or_garbled(saved):
    path = saved()
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptSaveError, match="manifest.json"):
        io.load(path)
    (path / "manifest.json").unlink()
    with pytest.raises(CorruptSaveError, match="manifest.json is missing"):
        io.load(path)


def test_old_save_without_manifest_loads_with_a_warning(saved, als):
    path = saved()
    (path / "manifest.json").unlink()
    _edit_json(path, lambda m: m.update(format=1))
    with pytest.warns(UnverifiedSaveWarning, match="older version without a manifest"):
        back = io.load(path)
    pairs = (als.users_[:5], als.items_[:5])
    pd.testing.assert_frame_equal(back.predict(pairs), als.predict(pairs))


def test_a_save_from_before_implicit_bias_loads_as_the_model_it_was(saved):
    """Saves made before GibbsPMF(implicit_bias=) existed were fitted with the bias coordinate: True."""
    path = saved("gibbs")
    assert io.load(path).implicit_bias is False  # saved now: the value it was fitted with
    _edit_json(path, lambda m: m["params"].pop("implicit_bias"))
    _reseal(path)
    assert io.load(path).implicit_bias is True
