"""Data sets: MovieLens (local folder -> cache -> verified download) and
ratings simulated from the PMF generative model (the built-in default).

MovieLens files are never shipped or committed (their licence forbids
redistribution).  :func:`movielens_path` looks for them, in this order,

1. ``$BAYES_MF_DATA/ml-100k`` (or ``ml-1m``),
2. the user cache ``$BAYES_MF_CACHE`` or ``~/.cache/bayes_mf``,
3. a download of the official GroupLens archive into the cache.

Every file the package reads is checked before it is read: for 100K each
file (``u.data``, the fold files ``u1..u5.base/test``, ``u.item``,
``u.user``) against its sha256 from the official release, so a truncated or
edited file is a :class:`DataIntegrityError`, never a silently smaller data
set.  No checksum of the 1M release could be verified here (no local copy,
no digest published by GroupLens that we could check), so ML-1M files are
checked by their row counts instead.

A download is streamed to a temporary file (never held whole in memory),
refused past a size limit, checked to be a zip archive (an HTML error page
is a clear :class:`DataNotFoundError`, not ``BadZipFile``), extracted into a
temporary folder and moved into the cache only once its files' checksums
match.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._files import sha256_file
from ._util import rowdot
from .data import Ratings

__all__ = [
    "DataNotFoundError",
    "DataIntegrityError",
    "movielens_path",
    "load_movielens",
    "movielens_fold",
    "movielens_items",
    "movielens_users",
    "simulate_pmf",
    "SimulatedPMF",
]

#: sha256 of every ML-100K file the package reads, computed from the official release
#: (the copy described in shared/data/README.md; u.data's digest is the one published there)
_SHA256_100K = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
}

_ARCHIVES = {
    "100k": {
        "folder": "ml-100k",
        "url": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "ratings": "u.data",
        "sha256": _SHA256_100K,
        "max_bytes": 20_000_000,  # the archive is about 5 MB; anything far larger is not it
    },
    "1m": {
        "folder": "ml-1m",
        "url": "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "ratings": "ratings.dat",
        # no published digest we could verify: row counts (from the release's README) instead
        "sha256": {},
        "n_rows": {"ratings.dat": 1_000_209, "movies.dat": 3_883},
        "max_bytes": 30_000_000,  # about 6 MB
    },
}


class DataNotFoundError(FileNotFoundError):
    """MovieLens files are neither local, cached, nor downloadable."""


class DataIntegrityError(DataNotFoundError):
    """A MovieLens file is present but truncated, edited or not the official release."""


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
    """Folder holding the MovieLens files (``ml-100k`` or ``ml-1m``).

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


def load_movielens(variant: str = "100k", *, download: bool = True) -> Ratings:
    """All ratings of MovieLens 100K (``"100k"``) or 1M (``"1m"``), scale 1-5.

    Ids are the data set's own integer ids; timestamps are in ``meta``.
    """
    spec = _spec(variant)
    folder = movielens_path(variant, download=download)
    if spec["ratings"] == "u.data":
        frame = _read_100k(folder / "u.data")
    else:
        frame = pd.read_csv(folder / spec["ratings"], sep="::", engine="python", header=None,
                            names=["user", "item", "rating", "timestamp"])
        _check_rows(frame, folder / spec["ratings"], spec)
    return _to_ratings(frame)


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
    """Item table indexed by item id: ``title`` (and genres for 100K)."""
    spec = _spec(variant)
    folder = movielens_path(variant, download=download)
    if spec["folder"] == "ml-100k":
        cols = ["item", "title", "release_date", "video_release_date", "url", *_GENRES_100K]
        items = pd.read_csv(_checked(folder, "u.item", spec), sep="|", header=None, names=cols,
                            encoding="latin-1")
        items = items.drop(columns=["video_release_date", "url"])
    else:
        items = pd.read_csv(folder / "movies.dat", sep="::", engine="python", header=None,
                            names=["item", "title", "genres"], encoding="latin-1")
        _check_rows(items, folder / "movies.dat", spec)
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
    """ML-1M files have no verified checksum: their row counts are checked instead."""
    expected = spec.get("n_rows", {}).get(path.name)
    if expected is not None and len(frame) != expected:
        raise DataIntegrityError(f"{path} has {len(frame)} rows, expected {expected}: the file is "
                                 "truncated or not the official release. Delete it to download it again.")


@dataclass(frozen=True)
class SimulatedPMF:
    """Ratings drawn from the PMF model together with the truth that made them.

    ``ratings`` holds the observed triplets (ids are 0..n-1, equal to codes);
    ``mean(u, i)`` gives the noise-free mean of any pairs.
    """

    ratings: Ratings
    U: np.ndarray
    V: np.ndarray
    sigma: float
    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray

    def mean(self, user, item) -> np.ndarray:
        r"""Noise-free mean :math:`\mu + b_i + c_j + U_i \cdot V_j` of pairs (codes)."""
        user = np.asarray(user)
        item = np.asarray(item)
        return (self.global_mean + self.user_bias[user] + self.item_bias[item]
                + rowdot(self.U, self.V, user, item))


def observed_pairs(rng: np.random.Generator, n_users: int, n_items: int,
                   density: float) -> tuple[np.ndarray, np.ndarray]:
    """A random set of (user, item) codes with expected fraction ``density`` of all pairs.

    Every user and every item gets at least one pair; the pairs are sampled
    without ever forming the users x items matrix.
    """
    n_cells = n_users * n_items
    target = int(round(density * n_cells))
    if density > 0.5:
        flat = rng.choice(n_cells, size=target, replace=False)
    else:
        # oversample and de-duplicate: O(n_obs) memory, never O(n_users * n_items)
        draw = rng.integers(0, n_cells, size=int(target * 1.05) + 16)
        flat = np.unique(draw)
        if flat.size > target:
            flat = rng.choice(flat, size=target, replace=False)
    cover = np.concatenate([
        np.arange(n_users, dtype=np.int64) * n_items + rng.integers(0, n_items, n_users),
        rng.integers(0, n_users, n_items).astype(np.int64) * n_items + np.arange(n_items),
    ])
    flat = np.unique(np.concatenate([flat, cover]))
    flat = flat[rng.permutation(flat.size)]
    user = (flat // n_items).astype(np.int32)
    item = (flat % n_items).astype(np.int32)
    return user, item


def simulate_pmf(
    n_users: int = 300,
    n_items: int = 200,
    n_factors: int = 3,
    density: float = 0.1,
    noise_sd: float = 0.5,
    *,
    sigma_u: float = 1.0,
    sigma_v: float = 1.0,
    global_mean: float = 0.0,
    bias_sd: float = 0.0,
    random_seed: int | None = 0,
) -> SimulatedPMF:
    r"""Draw ratings from the PMF generative model (Salakhutdinov & Mnih 2007).

    .. math::
        U_i \sim N(0, \sigma_U^2 I),\quad V_j \sim N(0, \sigma_V^2 I),\quad
        R_{ij} \sim N(\mu + b_i + c_j + U_i^\top V_j,\ \sigma^2)

    over a random set of observed pairs with expected fraction ``density``
    (each user and each item gets at least one rating).  Biases
    ``b, c ~ N(0, bias_sd²)`` and ``global_mean`` default to 0, the plain PMF.
    Ratings are continuous (no scale is declared); the pairs are sampled
    without ever forming the users x items matrix.
    """
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if min(n_users, n_items, n_factors) < 1:
        raise ValueError("n_users, n_items and n_factors must be >= 1")
    rng = np.random.default_rng(random_seed)
    U = rng.normal(0.0, sigma_u, size=(n_users, n_factors))
    V = rng.normal(0.0, sigma_v, size=(n_items, n_factors))
    b = rng.normal(0.0, bias_sd, size=n_users) if bias_sd > 0 else np.zeros(n_users)
    c = rng.normal(0.0, bias_sd, size=n_items) if bias_sd > 0 else np.zeros(n_items)

    user, item = observed_pairs(rng, n_users, n_items, density)
    mean = global_mean + b[user] + c[item] + rowdot(U, V, user, item)
    rating = mean + rng.normal(0.0, noise_sd, size=user.size)
    ratings = Ratings(user, item, rating, pd.RangeIndex(n_users, name="user"),
                      pd.RangeIndex(n_items, name="item"))
    return SimulatedPMF(ratings, U, V, float(noise_sd), float(global_mean), b, c)
