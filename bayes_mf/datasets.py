"""Data sets: MovieLens 100K to 32M and the Netflix prize (local folder -> cache ->
verified download), and simulated ratings (:func:`simulate_pmf`, :func:`synthetic`).

MovieLens files are never shipped or committed (their licence forbids
redistribution).  :func:`movielens_path` looks for them, in this order,

1. ``$BAYES_MF_DATA/<folder>`` (``ml-100k``, ``ml-1m``, ``ml-10M100K``, ``ml-20m``, ``ml-25m``,
   ``ml-32m``),
2. the user cache ``$BAYES_MF_CACHE`` or ``~/.cache/bayes_mf``,
3. a download of the official GroupLens archive into the cache.

What is checked, and against what:

- **100K**: every file read (``u.data``, the fold files ``u1..u5.base/test``,
  ``u.item``, ``u.user``) against its sha256 from the official release, at
  every first read in a process.
- **1M, 10M, 20M, 25M, 32M**: the downloaded archive against the md5 GroupLens
  publishes next to it (``ml-25m.zip.md5`` etc.; the values in
  :data:`_ARCHIVES` are those published digests, as recorded by many
  independent projects, not computed here: no copy of these archives was
  available offline), before anything is unpacked; and at every load the
  ratings file's row count against the release's documented count
  (1,000,209; 10,000,054; 20,000,263; 25,000,095; 32,000,204).  A per-file
  sha256 is verified too wherever one is recorded in a spec's ``sha256`` map
  (none is, for these releases, yet).
- **Netflix prize** (:func:`load_netflix`): no longer distributed by Netflix,
  so never downloaded; no digest is recorded (``_NETFLIX["sha256"]`` is empty
  and checked when filled).  The 100,480,507 ratings, 480,189 users and
  17,770 movies of the training set are checked at every load.

Large files are streamed in blocks (:mod:`bayes_mf._streaming`): ``int32``
ids, ``float32`` ratings and ``int32`` timestamps, parsed with no Python loop
per rating; a malformed line is a :class:`DataIntegrityError` naming the file
and line.

A download is streamed to a temporary file (never held whole in memory),
refused past a size limit, checked to be a zip archive (an HTML error page
is a clear :class:`DataNotFoundError`, not ``BadZipFile``) and against its
published md5, extracted into a temporary folder and moved into the cache
only once its files' checksums match.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ._files import md5_file, sha256_file
from ._releases import _ARCHIVES, _NETFLIX, _SHA256_100K  # noqa: F401 (tests read _SHA256_100K)
from ._streaming import LAYOUTS, DataIntegrityError, DataNotFoundError, RatingArrays, read_ratings, to_ratings
from ._synthetic import NETFLIX_SHAPE, SimulatedPMF, observed_pairs, simulate_pmf, synthetic
from .data import Ratings

__all__ = [
    "DataNotFoundError",
    "DataIntegrityError",
    "movielens_path",
    "load_movielens",
    "movielens_fold",
    "movielens_items",
    "movielens_users",
    "load_netflix",
    "netflix_files",
    "read_ratings",
    "RatingArrays",
    "LAYOUTS",
    "simulate_pmf",
    "SimulatedPMF",
    "observed_pairs",
    "synthetic",
    "NETFLIX_SHAPE",
]

def _cache_dir() -> Path:
    env = os.environ.get("BAYES_MF_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bayes_mf"


def _spec(variant: str) -> dict:
    try:
        return _ARCHIVES[str(variant).lower()]
    except KeyError:
        raise ValueError(
            f"unknown MovieLens variant {variant!r}; choose one of {sorted(_ARCHIVES)}"
        ) from None


#: (path, size, mtime) of files already verified in this process: hashing once is enough
_VERIFIED: set = set()


def _checked(folder: Path, name: str, spec: dict) -> Path:
    """``folder / name`` after checking it against its recorded sha256 (if one is known).

    Raises
    ------
    DataIntegrityError
        The file is missing or its digest differs (truncated, edited, another release).
    """
    path = folder / name
    if not path.is_file():
        raise DataIntegrityError(f"{path} is missing: the MovieLens folder {folder} is incomplete. "
                                 "Restore the official files (or delete the folder to download again).")
    expected = spec["sha256"].get(name)
    if expected is None:
        return path
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return path
    digest = sha256_file(path)
    if digest != expected:
        raise DataIntegrityError(
            f"{path} has sha256 {digest}, expected {expected}: the file is truncated, edited or not "
            "the official release. Restore it (or delete it to download it again)."
        )
    _VERIFIED.add(key)
    return path


def _verify(path: Path, spec: dict) -> None:
    _checked(path.parent, path.name, spec)


def _download(url: str, dest: Path, spec: dict | None = None, *, quiet: bool = False) -> None:
    """Download the archive at ``url`` and unpack its folder into ``dest`` once it is checked."""
    spec = spec or {"max_bytes": 100_000_000, "sha256": {}, "folder": None}
    limit = spec["max_bytes"]
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmpd:
        archive = Path(tmpd) / "archive.zip"
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(archive, "wb") as fh:
                total = int(resp.headers.get("Content-Length") or 0)
                if total > limit:
                    raise DataNotFoundError(f"{url} announces {total / 1e6:.1f} MB, more than the "
                                            f"{limit / 1e6:.0f} MB the archive can be: refusing it")
                done = 0
                while chunk := resp.read(1 << 16):
                    done += len(chunk)
                    if done > limit:
                        raise DataNotFoundError(f"{url} sent more than {limit / 1e6:.0f} MB, more than the "
                                                "archive can be: download stopped")
                    fh.write(chunk)
                    if not quiet and total:
                        print(f"\rdownloading {url}: {done / total:6.1%} of {total / 1e6:.1f} MB",
                              end="", file=sys.stderr)
                if not quiet:
                    print(file=sys.stderr)
        except DataNotFoundError:
            raise
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise DataNotFoundError(str(exc)) from exc
        with open(archive, "rb") as fh:
            head = fh.read(64)
        if not head.startswith(b"PK\x03\x04") or not zipfile.is_zipfile(archive):
            shown = head[:40].decode("latin-1").strip()
            raise DataNotFoundError(f"{url} did not return a zip archive (it starts with {shown!r}: an "
                                    "HTML error or login page, or a proxy?)")
        expected_md5 = spec.get("md5")
        if expected_md5 and md5_file(archive) != expected_md5:
            raise DataNotFoundError(f"{url}: the archive's md5 is not the published {expected_md5} "
                                    "(a damaged or changed download); nothing was extracted")
        unpacked = Path(tmpd) / "unpacked"
        try:
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
                bad = [n for n in names if Path(n).is_absolute() or ".." in Path(n).parts]
                if bad:
                    raise DataNotFoundError(f"{url}: the archive holds unsafe path {bad[0]!r}")
                if sum(i.file_size for i in zf.infolist()) > 20 * limit:
                    raise DataNotFoundError(f"{url}: the archive unpacks to more than "
                                            f"{20 * limit / 1e6:.0f} MB")
                zf.extractall(unpacked)
        except zipfile.BadZipFile as exc:
            raise DataNotFoundError(f"{url}: damaged zip archive ({exc})") from None
        folder = spec["folder"]
        if folder is None:
            for item in unpacked.iterdir():
                os.replace(item, dest / item.name)
            return
        if not (unpacked / folder).is_dir():
            raise DataNotFoundError(f"{url}: the archive has no {folder}/ folder")
        for name in spec["sha256"]:
            try:
                _checked(unpacked / folder, name, spec)
            except DataIntegrityError:
                raise DataNotFoundError(
                    f"{url}: {folder}/{name} in the downloaded archive is missing or does not match "
                    "the official release's sha256; nothing was extracted") from None
        target = dest / folder
        target.mkdir(exist_ok=True)
        for item in (unpacked / folder).iterdir():
            if (target / item.name).is_dir():
                shutil.rmtree(target / item.name)
            os.replace(item, target / item.name)


def movielens_path(variant: str = "100k", *, download: bool = True) -> Path:
    """Folder holding the files of a MovieLens release (``"100k"``, ``"1m"``, ``"10m"``, ``"20m"``,
    ``"25m"`` or ``"32m"``): ``$BAYES_MF_DATA/<folder>``, the cache, or a verified download.

    Raises
    ------
    DataNotFoundError
        When the files are absent and cannot be downloaded; the message says
        where to put them.
    """
    spec = _spec(variant)
    folder, fname = spec["folder"], spec["ratings"]
    candidates = []
    if os.environ.get("BAYES_MF_DATA"):
        candidates.append(Path(os.environ["BAYES_MF_DATA"]).expanduser() / folder)
    cache = _cache_dir()
    candidates.append(cache / folder)
    for cand in candidates:
        if (cand / fname).is_file():
            _verify(cand / fname, spec)
            return cand
    if download:
        try:
            _download(spec["url"], cache, spec)
        except DataIntegrityError:
            raise
        except DataNotFoundError as exc:
            raise DataNotFoundError(
                f"MovieLens {variant} not found in {[str(c) for c in candidates]} and the download "
                f"of {spec['url']} failed ({exc}). Put the unpacked '{folder}/' folder under a "
                f"directory and set BAYES_MF_DATA to it, or into {cache}."
            ) from exc
        if (cache / folder / fname).is_file():
            _verify(cache / folder / fname, spec)
            return cache / folder
    raise DataNotFoundError(
        f"MovieLens {variant} not found in {[str(c) for c in candidates]}. Put the unpacked "
        f"'{folder}/' folder under a directory and set BAYES_MF_DATA to it, or into {cache}."
    )


def _read_100k(path: Path) -> pd.DataFrame:
    _checked(path.parent, path.name, _ARCHIVES["100k"])
    return pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "timestamp"],
                       dtype={"user": np.int64, "item": np.int64, "rating": np.float64,
                              "timestamp": np.int64})


def _to_ratings(frame: pd.DataFrame) -> Ratings:
    r = Ratings.from_frame(frame, scale=(1.0, 5.0))
    r.meta["timestamp"] = frame["timestamp"].to_numpy()
    return r


def load_movielens(variant: str = "100k", *, download: bool = True, check_duplicates: bool = True,
                   block_bytes: int = 32 << 20) -> Ratings:
    """All ratings of a MovieLens release.

    Parameters
    ----------
    variant : {"100k", "1m", "10m", "20m", "25m", "32m"}
        Scale 1-5 in whole stars (100K, 1M) or half stars from 0.5 (10M and later).
    download : bool
        Download the official archive into the cache when it is not found locally.
    check_duplicates : bool
        Refuse a repeated (user, item) pair (one sort of the pairs; about 10 s at 32M).
    block_bytes : int
        Bytes parsed at once for 1M and larger (they are streamed, see :func:`read_ratings`).

    Returns
    -------
    Ratings
        Ids are the data set's own integer ids, rows in file order; ``meta["timestamp"]``
        holds Unix seconds (``int64`` for 100K, ``int32`` for the streamed releases).
        ``rating`` is ``float64``, the dtype :class:`~bayes_mf.data.Ratings` documents and
        every estimator computes in (the streamed columns are ``int32``/``float32`` until then;
        :func:`read_ratings` returns them as they are, 16 bytes per rating).

    Raises
    ------
    DataIntegrityError
        A file that fails its checksum or row count, or a malformed line (file and line named).
    DataNotFoundError
        The release is neither local nor downloadable.
    """
    spec = _spec(variant)
    folder = movielens_path(variant, download=download)
    if spec["ratings"] == "u.data":
        return _to_ratings(_read_100k(folder / "u.data"))
    name = spec["ratings"]
    path = _checked(folder, name, spec)
    arrays = read_ratings(path, spec["layout"], scale=spec["scale"], step=spec["step"],
                          n_rows=spec["n_rows"].get(name), block_bytes=block_bytes)
    r = to_ratings(arrays, spec["scale"], check_duplicates=check_duplicates, where=str(path))
    r.meta["source"] = f"MovieLens {variant.lower()}"
    return r


def netflix_files(folder) -> list[Path]:
    """The Netflix training files in ``folder``: ``combined_data_*.txt``, else ``training_set/mv_*.txt``."""
    folder = Path(folder)
    combined = sorted(folder.glob("combined_data_*.txt"))
    if combined:
        return combined
    return sorted((folder / "training_set").glob("mv_*.txt")) or sorted(folder.glob("mv_*.txt"))


def load_netflix(path=None, *, check_duplicates: bool = True, check_counts: bool = True,
                 block_bytes: int = 32 << 20) -> Ratings:
    """The Netflix prize training set (100,480,507 ratings, 1-5 stars), from local files.

    Netflix no longer distributes the data, so nothing is downloaded.  Both
    layouts of the release are read: the original ``training_set/mv_0000001.txt``
    ... files (a ``MovieID:`` line, then ``CustomerID,Rating,YYYY-MM-DD`` lines)
    and the ``combined_data_1..4.txt`` files (the same blocks, concatenated).

    Parameters
    ----------
    path : path, optional
        The folder holding either layout; default ``$BAYES_MF_DATA/netflix``,
        then ``<cache>/netflix``.
    check_duplicates : bool
        Refuse a repeated (customer, movie) pair (one sort of the pairs, about 10 s).
    check_counts : bool
        Require the release's 100,480,507 ratings, 480,189 customers and 17,770
        movies (no published checksum of these files is known to us, so the counts
        are the integrity check; per-file sha256 values added to ``_NETFLIX["sha256"]``
        are verified too).  Turn it off for a subset in the same layout.
    block_bytes : int
        Bytes parsed at once.

    Returns
    -------
    Ratings
        Customer and movie ids as given, ``meta["timestamp"]``: ``int32`` Unix seconds of
        the rating's date (midnight UTC).
    """
    spec = _NETFLIX
    if path is not None:
        folders = [Path(path).expanduser()]
    else:
        folders = [Path(os.environ["BAYES_MF_DATA"]).expanduser() / spec["folder"]] \
            if os.environ.get("BAYES_MF_DATA") else []
        folders.append(_cache_dir() / spec["folder"])
    for folder in folders:
        files = netflix_files(folder)
        if files:
            break
    else:
        raise DataNotFoundError(
            f"no Netflix prize files (combined_data_*.txt or training_set/mv_*.txt) in "
            f"{[str(f) for f in folders]}. Netflix no longer distributes them: put your copy in one "
            "of these folders or pass its path.")
    for f in files:
        _checked(f.parent, f.name, spec)
    arrays = read_ratings(files, "netflix", scale=spec["scale"], step=spec["step"],
                          n_rows=spec["n_rows"] if check_counts else None, block_bytes=block_bytes)
    r = to_ratings(arrays, spec["scale"], check_duplicates=check_duplicates, where=str(folder),
                   names=("customer", "movie", "rating"))
    if check_counts and (r.n_users, r.n_items) != (spec["n_users"], spec["n_items"]):
        raise DataIntegrityError(f"{folder}: {r.n_users:,} customers x {r.n_items:,} movies, expected "
                                 f"{spec['n_users']:,} x {spec['n_items']:,}: not the official release")
    r.meta["source"] = "Netflix prize training set"
    return r


def movielens_fold(variant: str = "100k", k: int = 1, *, download: bool = True) -> tuple[Ratings, Ratings]:
    """Canonical MovieLens 100K fold ``k`` (1-5): ``(train, test)`` from ``u{k}.base``/``u{k}.test``.

    Row order is the files' own.  Test rows whose item never appears in the
    fold's training file are kept (the split is canonical); their number is
    ``test.meta["n_unseen"]`` and estimators predict them by their unseen-id
    policy, with a warning.
    """
    if str(variant).lower() != "100k":
        raise ValueError("canonical folds exist only for MovieLens 100K")
    if k not in (1, 2, 3, 4, 5):
        raise ValueError(f"fold must be 1..5, got {k!r}")
    folder = movielens_path(variant, download=download)
    train = _to_ratings(_read_100k(folder / f"u{k}.base"))
    test = _to_ratings(_read_100k(folder / f"u{k}.test"))
    unseen = ~np.isin(test.user_ids, train.users) | ~np.isin(test.item_ids, train.items)
    test.meta["n_unseen"] = int(unseen.sum())
    test.meta["unseen_policy"] = "prior"
    train.meta["fold"] = test.meta["fold"] = k
    return train, test


_GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def movielens_items(variant: str = "100k", *, download: bool = True) -> pd.DataFrame:
    """Item table indexed by item id: ``title`` and genres (100K: one 0/1 column per genre;
    later releases: one ``genres`` string, ``|``-separated)."""
    spec = _spec(variant)
    folder = movielens_path(variant, download=download)
    if spec["folder"] == "ml-100k":
        cols = ["item", "title", "release_date", "video_release_date", "url", *_GENRES_100K]
        items = pd.read_csv(_checked(folder, "u.item", spec), sep="|", header=None, names=cols,
                            encoding="latin-1")
        items = items.drop(columns=["video_release_date", "url"])
    elif spec["layout"] == "movielens-dat":
        items = pd.read_csv(_checked(folder, "movies.dat", spec), sep="::", engine="python", header=None,
                            names=["item", "title", "genres"], encoding="latin-1")
        _check_rows(items, folder / "movies.dat", spec)
    else:
        items = pd.read_csv(_checked(folder, "movies.csv", spec), encoding="utf-8")
        items = items.rename(columns={"movieId": "item"})
    return items.set_index("item")


def movielens_users(variant: str = "100k", *, download: bool = True) -> pd.DataFrame:
    """User table of MovieLens 100K indexed by user id: ``age``, ``gender``, ``occupation``, ``zip``."""
    spec = _spec(variant)
    if spec["folder"] != "ml-100k":
        raise ValueError("movielens_users reads the 100K user table (u.user)")
    folder = movielens_path(variant, download=download)
    users = pd.read_csv(_checked(folder, "u.user", spec), sep="|", header=None,
                        names=["user", "age", "gender", "occupation", "zip"], encoding="latin-1")
    return users.set_index("user")


def _check_rows(frame: pd.DataFrame, path: Path, spec: dict) -> None:
    """Files with no recorded sha256 (ML-1M ``movies.dat``) are checked by their row counts."""
    expected = spec.get("n_rows", {}).get(path.name)
    if expected is not None and len(frame) != expected:
        raise DataIntegrityError(f"{path} has {len(frame)} rows, expected {expected}: the file is "
                                 "truncated or not the official release. Delete it to download it again.")
