"""Loaders of the large releases (ML-1M..32M, Netflix) on small files in the same layouts, and
the Netflix-shaped generator.  No network: every file is written here."""

import io
import time
import zipfile

import numpy as np
import pytest

from bayes_mf import datasets
from bayes_mf.datasets import DataIntegrityError, read_ratings, synthetic

# (user, item, rating, timestamp); ML-10M and later have half stars
_ROWS = [(1, 10, 5.0, 978300760), (1, 20, 3.0, 978302109), (2, 10, 4.0, 978301968),
         (7, 31, 1.0, 978824291), (3, 20, 2.0, 978300000)]
_HALF = [(u, i, r - 0.5 if k % 2 else r, t) for k, (u, i, r, t) in enumerate(_ROWS)]


def _dat(rows):
    return "".join(f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in rows)


def _csv(rows):
    return "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r:g},{t}\n" for u, i, r, t in rows)


def _install(tmp_path, monkeypatch, variant, text, n_rows=None):
    spec = datasets._ARCHIVES[variant]
    folder = tmp_path / "data" / spec["folder"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / spec["ratings"]).write_text(text)
    monkeypatch.setenv("BAYES_MF_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("BAYES_MF_CACHE", str(tmp_path / "cache"))
    if n_rows is not None:
        monkeypatch.setitem(spec["n_rows"], spec["ratings"], n_rows)
    return folder / spec["ratings"]


@pytest.mark.parametrize("variant, rows, fmt", [
    ("1m", _ROWS, _dat), ("10m", _HALF, _dat), ("20m", _HALF, _csv), ("25m", _HALF, _csv),
    ("32m", _HALF, _csv),
])
def test_each_release_loads_its_layout(tmp_path, monkeypatch, variant, rows, fmt):
    path = _install(tmp_path, monkeypatch, variant, fmt(rows), n_rows=len(rows))
    r = datasets.load_movielens(variant, download=False)
    u, i, y, t = (np.array(c) for c in zip(*rows, strict=True))
    np.testing.assert_array_equal(r.user_ids, u)
    np.testing.assert_array_equal(r.item_ids, i)
    np.testing.assert_array_equal(r.rating, y)
    np.testing.assert_array_equal(r.meta["timestamp"], t)
    assert r.user.dtype == np.int32 and r.meta["timestamp"].dtype == np.int32 and r.rating.dtype == np.float64
    assert list(r.users) == sorted(set(u)) and r.scale == datasets._ARCHIVES[variant]["scale"]
    raw = read_ratings(path, datasets._ARCHIVES[variant]["layout"], scale=(0.5, 5), step=0.5)
    assert raw.user.dtype == raw.item.dtype == np.int32 and raw.rating.dtype == np.float32
    # the release's own count: a small file is refused, naming both counts
    monkeypatch.undo()
    _install(tmp_path, monkeypatch, variant, fmt(rows))
    n = datasets._ARCHIVES[variant]["n_rows"][datasets._ARCHIVES[variant]["ratings"]]
    with pytest.raises(DataIntegrityError, match=f"hold 5 ratings, expected {n:,}"):
        datasets.load_movielens(variant, download=False)


def test_every_large_release_has_a_published_md5_and_count():
    for v in ("1m", "10m", "20m", "25m", "32m"):
        spec = datasets._ARCHIVES[v]
        assert len(spec["md5"]) == 32 and spec["n_rows"][spec["ratings"]] > 1_000_000


@pytest.mark.parametrize("text, match", [
    (_dat(_ROWS)[:-12], r"ratings.dat, line 5: field 'timestamp' is missing"),  # truncated mid-line
    (_dat(_ROWS).replace("::3::", "::3.5::"), r"line 2: rating 3.5 is outside \[1, 5\] or not a multiple"),
    (_dat(_ROWS).replace("::3::", "::6::"), r"line 2: rating 6 is outside"),
    (_dat(_ROWS).replace("2::10::4", "2::x::4"), r"line 3: field 'item' is missing or not a number"),
    (_dat(_ROWS).replace("::978302109", "::978302109::9"), r"line 2: more than 4 fields"),
    (_dat(_ROWS).replace("1::10::5", "1::10::5::1::2", 1), r"line 1: more than 4 fields"),
    (_dat(_ROWS) + _dat(_ROWS[:1]), r"1 repeated \(user, item\) pair\(s\), first \(1, 10\)"),
])
def test_edited_or_truncated_files_are_refused_with_file_and_line(tmp_path, monkeypatch, text, match):
    _install(tmp_path, monkeypatch, "1m", text, n_rows=len(text.splitlines()))
    with pytest.raises(DataIntegrityError, match=match):
        datasets.load_movielens("1m", download=False)


def test_csv_header_is_checked_and_duplicates_can_be_allowed(tmp_path, monkeypatch):
    _install(tmp_path, monkeypatch, "25m", _csv(_HALF).replace("userId", "user"), n_rows=5)
    with pytest.raises(DataIntegrityError, match="line 1: expected the header"):
        datasets.load_movielens("25m", download=False)
    _install(tmp_path, monkeypatch, "25m", _csv(_HALF + _HALF[:1]), n_rows=6)
    assert len(datasets.load_movielens("25m", download=False, check_duplicates=False)) == 6


def test_blocks_split_anywhere_give_the_same_arrays(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(int(u), int(i), float(r), int(t)) for u, i, r, t in zip(
        rng.integers(1, 50, 400), rng.integers(1, 90, 400), rng.integers(1, 11, 400) / 2,
        rng.integers(9e8, 1.6e9, 400), strict=True)]
    path = tmp_path / "ratings.csv"
    path.write_text(_csv(rows).rstrip("\n"))  # no newline after the last line, too
    whole = read_ratings(path, "movielens-csv", scale=(0.5, 5), step=0.5)
    for block in (7, 64, 1000):
        part = read_ratings(path, "movielens-csv", scale=(0.5, 5), step=0.5, block_bytes=block)
        for a, b in zip((whole.user, whole.item, whole.rating, whole.timestamp),
                        (part.user, part.item, part.rating, part.timestamp), strict=True):
            np.testing.assert_array_equal(a, b)
    assert len(whole) == 400 and whole.rating[0] == rows[0][2]


# ---------------------------------------------------------------- Netflix prize layouts
_NETFLIX = {1: [(6, 3, "2005-09-06"), (7, 5, "2004-01-31")], 2: [(6, 4, "1999-12-31")],
            3: [(8, 1, "2005-01-01"), (7, 2, "2003-03-03")]}


def _netflix_text(movies):
    return "".join(f"{m}:\n" + "".join(f"{c},{r},{d}\n" for c, r, d in _NETFLIX[m]) for m in movies)


@pytest.mark.parametrize("layout", ["training_set", "combined"])
def test_netflix_both_layouts(tmp_path, layout):
    if layout == "training_set":
        (tmp_path / "training_set").mkdir()
        for m in _NETFLIX:
            (tmp_path / "training_set" / f"mv_{m:07d}.txt").write_text(_netflix_text([m]))
    else:
        (tmp_path / "combined_data_1.txt").write_text(_netflix_text([1, 2]))
        (tmp_path / "combined_data_2.txt").write_text(_netflix_text([3]))
    r = datasets.load_netflix(tmp_path, check_counts=False, block_bytes=16)
    np.testing.assert_array_equal(r.item_ids, [1, 1, 2, 3, 3])
    np.testing.assert_array_equal(r.user_ids, [6, 7, 6, 8, 7])
    np.testing.assert_array_equal(r.rating, [3, 5, 4, 1, 2])
    days = np.array(["2005-09-06", "2004-01-31", "1999-12-31", "2005-01-01", "2003-03-03"], "M8[D]")
    np.testing.assert_array_equal(r.meta["timestamp"], days.astype("M8[s]").astype(np.int64))
    assert r.names == ("customer", "movie", "rating") and r.scale == (1.0, 5.0)
    with pytest.raises(DataIntegrityError, match="hold 5 ratings, expected 100,480,507"):
        datasets.load_netflix(tmp_path)


@pytest.mark.parametrize("text, match", [
    ("6,3,2005-09-06\n1:\n7,5,2004-01-31\n", "line 1: a rating before the first 'MovieID:' line"),
    ("1:\n6,3,2005-09-06\n7,5,2004-01", r"line 3: field 'd' is missing"),  # truncated
    ("1:\n6,3,2005-09-06\n7,5\n", r"line 3: field 'y' is missing"),
    ("1:,5\n6,3,2005-09-06\n", "line 1: a 'MovieID:' line with more fields"),
    ("1:\n6,7,2005-09-06\n", r"line 2: rating 7 is outside"),
    ("1:\n6,3,2005-13-06\n", "line 2: date 2005-13-6 is not a YYYY-MM-DD date"),
])
def test_netflix_malformed_lines_are_refused(tmp_path, text, match):
    (tmp_path / "combined_data_1.txt").write_text(text)
    with pytest.raises(DataIntegrityError, match=f"combined_data_1.txt, {match}"):
        datasets.load_netflix(tmp_path, check_counts=False)


def test_netflix_absent_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYES_MF_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("BAYES_MF_CACHE", str(tmp_path / "cache"))
    with pytest.raises(datasets.DataNotFoundError, match="Netflix no longer distributes"):
        datasets.load_netflix()


def test_download_with_the_wrong_md5_is_not_extracted(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-10M100K/ratings.dat", _dat(_HALF))
    body = buf.getvalue()

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(body))}

    monkeypatch.setenv("BAYES_MF_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("BAYES_MF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.urllib.request, "urlopen", lambda *a, **k: Response(body))
    with pytest.raises(datasets.DataNotFoundError, match="md5 is not the published ce571fd5"):
        datasets.movielens_path("10m")
    assert not [p for p in (tmp_path / "cache").iterdir()]


# ---------------------------------------------------------------- synthetic
def test_synthetic_shapes_unique_pairs_and_seed():
    t0 = time.perf_counter()
    s = synthetic(4_800, 178, 100_000, n_factors=5, random_seed=3)
    elapsed = time.perf_counter() - t0
    r = s.ratings
    assert (len(r), r.n_users, r.n_items) == (100_000, 4_800, 178)
    assert (r.counts("user") > 0).all() and (r.counts("item") > 0).all()
    key = r.user.astype(np.int64) * r.n_items + r.item
    assert np.unique(key).size == len(r)  # no repeated pair
    assert r.user.dtype == r.item.dtype == np.int32 and s.U.shape == (4_800, 5)
    assert set(np.unique(r.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0} and r.scale == (1.0, 5.0)
    counts = np.sort(r.counts("item"))
    assert counts[-1] > 5 * np.median(counts)  # heavy-tailed popularity
    again = synthetic(4_800, 178, 100_000, n_factors=5, random_seed=3).ratings
    np.testing.assert_array_equal(r.user, again.user)
    np.testing.assert_array_equal(r.rating, again.rating)
    other = synthetic(4_800, 178, 100_000, n_factors=5, random_seed=4).ratings
    assert not np.array_equal(r.item, other.item)
    assert elapsed < 10  # about 0.1 s; generous for loaded CI machines


def test_synthetic_continuous_and_checks():
    s = synthetic(300, 200, 5_000, discrete=False, noise_sd=0.3, random_seed=0)
    resid = s.ratings.rating - s.mean(s.ratings.user, s.ratings.item)
    assert resid.std() == pytest.approx(0.3, rel=0.1) and s.ratings.scale is None
    with pytest.raises(ValueError, match="fewer than n_users"):
        synthetic(300, 200, 400)
    with pytest.raises(ValueError, match="more than half"):
        synthetic(30, 20, 400)
    assert datasets.NETFLIX_SHAPE == (480_189, 17_770, 100_480_507)
