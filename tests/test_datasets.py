import numpy as np
import pandas as pd
import pytest

from bayes_mf import datasets
from bayes_mf.datasets import DataNotFoundError, simulate_pmf


def test_simulate_pmf_truth_and_seed():
    s = simulate_pmf(50, 40, 3, density=0.2, noise_sd=0.3, global_mean=3.0, bias_sd=0.2, random_seed=5)
    r = s.ratings
    assert s.U.shape == (50, 3) and s.V.shape == (40, 3) and s.sigma == 0.3
    assert (r.counts("user") > 0).all() and (r.counts("item") > 0).all()
    assert len(r) == len(set(zip(r.user, r.item, strict=True)))  # no duplicate pairs
    resid = r.rating - s.mean(r.user, r.item)
    assert resid.std() == pytest.approx(0.3, rel=0.15)
    s2 = simulate_pmf(50, 40, 3, density=0.2, noise_sd=0.3, global_mean=3.0, bias_sd=0.2, random_seed=5)
    np.testing.assert_array_equal(r.rating, s2.ratings.rating)
    assert len(r) == pytest.approx(0.2 * 50 * 40, rel=0.2)


def test_simulate_pmf_rejects_bad_density():
    with pytest.raises(ValueError, match="density"):
        simulate_pmf(density=0)


@pytest.mark.movielens
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_movielens_folds_match_files_row_for_row(movielens_dir, k):
    train, test = datasets.movielens_fold("100k", k)
    for part, name in ((train, "base"), (test, "test")):
        raw = pd.read_csv(movielens_dir / f"u{k}.{name}", sep="\t", header=None,
                          names=["user", "item", "rating", "timestamp"])
        got = part.to_frame()
        np.testing.assert_array_equal(got["user"].to_numpy(), raw["user"].to_numpy())
        np.testing.assert_array_equal(got["item"].to_numpy(), raw["item"].to_numpy())
        np.testing.assert_array_equal(got["rating"].to_numpy(), raw["rating"].to_numpy())
        np.testing.assert_array_equal(part.meta["timestamp"], raw["timestamp"].to_numpy())
    assert len(train) == 80_000 and len(test) == 20_000 and train.scale == (1.0, 5.0)
    assert test.meta["n_unseen"] >= 0


@pytest.mark.movielens
def test_load_movielens_and_items(movielens_dir):
    r = datasets.load_movielens("100k")
    assert (len(r), r.n_users, r.n_items) == (100_000, 943, 1682)
    items = datasets.movielens_items("100k")
    assert items.loc[1, "title"] == "Toy Story (1995)" and items.loc[1, "Animation"] == 1


def test_lookup_order_cache_and_checksum(tmp_path, monkeypatch):
    bad = tmp_path / "data" / "ml-100k"
    bad.mkdir(parents=True)
    (bad / "u.data").write_text("1\t1\t5\t0\n")
    monkeypatch.setenv("BAYES_MF_DATA", str(tmp_path / "data"))
    with pytest.raises(DataNotFoundError, match="sha256"):
        datasets.movielens_path("100k", download=False)
    monkeypatch.setenv("BAYES_MF_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("BAYES_MF_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError, match="BAYES_MF_DATA"):
        datasets.movielens_path("100k", download=False)


def test_offline_download_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYES_MF_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("BAYES_MF_CACHE", str(tmp_path / "cache"))

    def refuse(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", refuse)
    with pytest.raises(DataNotFoundError, match="download .* failed.*network unreachable"):
        datasets.movielens_path("100k")


def test_unknown_variant_and_fold():
    with pytest.raises(ValueError, match="unknown MovieLens variant"):
        datasets.movielens_path("50m")
    with pytest.raises(ValueError, match="fold must be 1..5"):
        datasets.movielens_fold("100k", 7)


# ---------------------------------------------------------------- integrity of every file read (issue 11)

def _copy_100k(src, tmp_path, monkeypatch):
    import shutil

    dst = tmp_path / "data" / "ml-100k"
    shutil.copytree(src, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    monkeypatch.setenv("BAYES_MF_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("BAYES_MF_CACHE", str(tmp_path / "cache"))
    return dst


@pytest.mark.parametrize("name, read", [
    ("u1.base", lambda: datasets.movielens_fold("100k", 1, download=False)),
    ("u3.test", lambda: datasets.movielens_fold("100k", 3, download=False)),
    ("u.item", lambda: datasets.movielens_items("100k", download=False)),
    ("u.user", lambda: datasets.movielens_users("100k", download=False)),
])
def test_truncated_or_edited_files_are_refused(movielens_dir, tmp_path, monkeypatch, name, read):
    dst = _copy_100k(movielens_dir, tmp_path, monkeypatch)
    data = (dst / name).read_bytes()
    (dst / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(datasets.DataIntegrityError, match=f"{name} has sha256 .*truncated, edited"):
        read()
    # one edited rating (same length) is caught too
    (dst / name).write_bytes(data.replace(b"\t5\t", b"\t4\t", 1) if b"\t5\t" in data else data[:-2] + b"X\n")
    with pytest.raises(datasets.DataIntegrityError, match=name):
        read()
    (dst / name).unlink()
    with pytest.raises(datasets.DataIntegrityError, match="missing"):
        read()


def test_every_file_read_has_a_recorded_checksum():
    assert {"u.data", "u.item", "u.user"} <= set(datasets._SHA256_100K)
    assert {f"u{k}.{s}" for k in range(1, 6) for s in ("base", "test")} <= set(datasets._SHA256_100K)


class _Response:
    def __init__(self, body, length=None):
        import io as _io

        self._buf = _io.BytesIO(body)
        self.headers = {"Content-Length": str(len(body) if length is None else length)}

    def read(self, n=-1):
        return self._buf.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _fake_download(monkeypatch, tmp_path, body, length=None):
    monkeypatch.setenv("BAYES_MF_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("BAYES_MF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda *a, **k: _Response(body, length))


def test_download_of_an_html_page_is_a_data_error(tmp_path, monkeypatch):
    _fake_download(monkeypatch, tmp_path, b"<!DOCTYPE html><html><body>Please log in</body></html>")
    with pytest.raises(DataNotFoundError, match="did not return a zip archive.*DOCTYPE"):
        datasets.movielens_path("100k")
    assert not (tmp_path / "cache" / "ml-100k").exists()


def test_download_size_is_checked_before_reading(tmp_path, monkeypatch):
    _fake_download(monkeypatch, tmp_path, b"PK\x03\x04", length=10**9)
    with pytest.raises(DataNotFoundError, match="more than the 20 MB"):
        datasets.movielens_path("100k")


def test_download_with_a_wrong_file_is_not_extracted(tmp_path, monkeypatch):
    import io as _io
    import zipfile

    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in datasets._SHA256_100K:
            zf.writestr(f"ml-100k/{name}", "1\t1\t5\t0\n")
    _fake_download(monkeypatch, tmp_path, buf.getvalue())
    with pytest.raises(DataNotFoundError, match="does not match the official release's sha256"):
        datasets.movielens_path("100k")
    assert not (tmp_path / "cache" / "ml-100k").exists()
    assert not [p for p in (tmp_path / "cache").iterdir()]  # no temporary files left
