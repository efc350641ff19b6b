"""Data sets: MovieLens (local folder -> cache -> verified download) and
ratings simulated from the PMF generative model (the built-in default).

MovieLens files are never shipped or committed (their licence forbids
redistribution).  :func:`movielens_path` looks for them, in this order,

1. ``$BAYES_MF_DATA/ml-100k`` (or ``ml-1m``),
2. the user cache ``$BAYES_MF_CACHE`` or ``~/.cache/bayes_mf``,
3. a download of the official GroupLens archive into the cache, checked
   against a known sha256 before use.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._util import rowdot
from .data import Ratings

__all__ = [
    "DataNotFoundError",
    "movielens_path",
    "load_movielens",
    "movielens_fold",
    "movielens_items",
    "simulate_pmf",
    "SimulatedPMF",
]

_ARCHIVES = {
    "100k": {
        "folder": "ml-100k",
        "url": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "ratings": "u.data",
        # sha256 of u.data from the official archive (shared/data/README.md)
        "sha256": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    },
    "1m": {
        "folder": "ml-1m",
        "url": "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "ratings": "ratings.dat",
        "sha256": None,  # no published digest we could verify; size is checked instead
        "n_ratings": 1_000_209,
    },
}


class DataNotFoundError(FileNotFoundError):
    """MovieLens files are neither local, cached, nor downloadable."""


def _cache_dir() -> Path:
    env = os.environ.get("BAYES_MF_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bayes_mf"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _spec(variant: str) -> dict:
    try:
        return _ARCHIVES[str(variant).lower()]
    except KeyError:
        raise ValueError(
            f"unknown MovieLens variant {variant!r}; choose one of {sorted(_ARCHIVES)}"
        ) from None


def _download(url: str, dest: Path, *, quiet: bool = False) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            buf = io.BytesIO()
            done = 0
            while chunk := resp.read(1 << 16):
                buf.write(chunk)
                done += len(chunk)
                if not quiet and total:
                    print(f"\rdownloading {url}: {done / total:6.1%} of {total / 1e6:.1f} MB",
                          end="", file=sys.stderr)
            if not quiet:
                print(file=sys.stderr)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataNotFoundError(str(exc)) from exc
    with zipfile.ZipFile(buf) as zf:
        zf.extractall(dest)


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
            _download(spec["url"], cache)
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


def _verify(path: Path, spec: dict) -> None:
    if spec["sha256"] is not None:
        digest = _sha256(path)
        if digest != spec["sha256"]:
            raise DataNotFoundError(
                f"{path} has sha256 {digest}, expected {spec['sha256']}: the file is corrupt or "
                "not the official release. Delete it to download it again."
            )


def _read_100k(path: Path) -> pd.DataFrame:
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
        if len(frame) != spec["n_ratings"]:
            raise DataNotFoundError(f"{folder / spec['ratings']} has {len(frame)} ratings, "
                                    f"expected {spec['n_ratings']}: delete it to download again")
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
        items = pd.read_csv(folder / "u.item", sep="|", header=None, names=cols, encoding="latin-1")
        items = items.drop(columns=["video_release_date", "url"])
    else:
        items = pd.read_csv(folder / "movies.dat", sep="::", engine="python", header=None,
                            names=["item", "title", "genres"], encoding="latin-1")
    return items.set_index("item")


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
