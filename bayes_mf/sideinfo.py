r"""Side information of MovieLens 100K as feature tables for :class:`~bayes_mf.gibbs.GibbsPMF`.

:func:`movielens_features` turns the user table ``u.user`` (age, gender,
occupation, zip code) and the item table ``u.item`` (release date, 19 genre
flags) into two numeric tables indexed by the original ids, with two-level
columns ``(group, level)``:

* users: ``age`` (one-hot bands, the MovieLens 1M bands by default: under 18,
  18-24, 25-34, 35-44, 45-49, 50-55, 56+), ``gender`` (one-hot), ``occupation``
  (one-hot, 21 levels), ``zip`` (one-hot first character: a digit for US zip
  codes, ``"other"`` for any non-numeric code, e.g. Canadian postcodes);
* items: ``genre`` (multi-hot over the 19 genres, each row divided by the root
  of its genre count -- the :math:`|N|^{-1/2}` normalisation of the implicit
  terms, so a film with many genres does not get a larger feature offset) and
  ``year`` (one-hot release-year band; a missing or unreadable date is its own
  level ``"unknown"``).

Passed to :meth:`GibbsPMF.fit <bayes_mf.gibbs.GibbsPMF.fit>` as
``user_features``/``item_features``, each *group* gets its own Gamma prior
precision per column of its feature vectors (:mod:`bayes_mf.gibbs`: row
:math:`i` gains :math:`\sum_l A_{il} W_l`, :math:`W_{lp} \sim N(0,
\lambda_{g(l),p}^{-1})`), so an informative group (genres) and a weak one
(zip) are shrunk separately.  One-hot groups are kept whole (no reference
level): the sum of a group's vectors trades with the own biases and factors,
an exact move of :mod:`bayes_mf.gibbs.moves` (``shift_features``) handles it.

:func:`attach_features` stores the tables in ``Ratings.meta``, where
``GibbsPMF(side_features=True)`` finds them (the comparison CLI's
``gibbs-side`` method).
"""

from __future__ import annotations

from os import PathLike

import numpy as np
import pandas as pd

__all__ = ["movielens_features", "user_feature_table", "item_feature_table", "attach_features",
           "read_user_table", "read_item_table", "AGE_EDGES", "YEAR_EDGES", "GENRES_100K"]

#: lower edges of the age bands after the first (the MovieLens 1M bands)
AGE_EDGES = (18, 25, 35, 45, 50, 56)
#: lower edges of the release-year bands after the first: ML-100K films cluster in 1993-1998
YEAR_EDGES = (1960, 1980, 1990, 1993, 1994, 1995, 1996, 1997, 1998)
GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
               "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
               "Romance", "Sci-Fi", "Thriller", "War", "Western"]
_USER_COLS = ["user", "age", "gender", "occupation", "zip"]
_ITEM_COLS = ["item", "title", "release_date", "video_release_date", "url", *GENRES_100K]


def read_user_table(path) -> pd.DataFrame:
    """A file in the ``u.user`` layout (``id|age|gender|occupation|zip``) indexed by user id."""
    users = pd.read_csv(path, sep="|", header=None, names=_USER_COLS, encoding="latin-1",
                        dtype={"zip": str}, keep_default_na=False)
    if users.shape[1] != len(_USER_COLS) or users["user"].duplicated().any():
        dup = users["user"][users["user"].duplicated()].tolist()[:3]
        raise ValueError(f"{path}: not a u.user table (repeated user ids {dup})")
    return users.set_index("user")


def read_item_table(path) -> pd.DataFrame:
    """A file in the ``u.item`` layout (id, title, dates, url, 19 genre flags) indexed by item id."""
    items = pd.read_csv(path, sep="|", header=None, names=_ITEM_COLS, encoding="latin-1")
    items = items.drop(columns=["video_release_date", "url"])
    if items["item"].duplicated().any():
        dup = items["item"][items["item"].duplicated()].tolist()[:3]
        raise ValueError(f"{path}: not a u.item table (repeated item ids {dup})")
    return items.set_index("item")


def _bands(values: np.ndarray, edges, labels_fmt) -> tuple[list, list]:
    """Band label of each value: ``<e0``, ``e0-e1``, ..., ``>=e_last`` (``labels_fmt`` names them)."""
    edges = list(edges)
    names = [labels_fmt(None, edges[0])] + [labels_fmt(a, b) for a, b in zip(edges[:-1], edges[1:],
                                                                          strict=True)]
    names.append(labels_fmt(edges[-1], None))
    return [names[int(np.searchsorted(edges, v, side="right"))] for v in values], names


def _band_name(a, b) -> str:
    if a is None:
        return f"<{b}"
    if b is None:
        return f"{a}+"
    return str(a) if b == a + 1 else f"{a}-{b - 1}"


def _one_hot(labels, levels, index, group: str) -> pd.DataFrame:
    """One column per level (in ``levels`` order), 1.0 where the row's label is that level."""
    cat = pd.Categorical(labels, categories=levels)
    if np.any(cat.codes < 0):
        bad = sorted({str(v) for v, c in zip(labels, cat.codes, strict=True) if c < 0})[:3]
        raise ValueError(f"{group}: values {bad} are not among the levels {list(levels)[:5]}...")
    out = np.zeros((len(labels), len(levels)))
    out[np.arange(len(labels)), cat.codes] = 1.0
    return pd.DataFrame(out, index=index, columns=pd.MultiIndex.from_product([[group], list(levels)]))


def user_feature_table(users: pd.DataFrame, *, age_edges=AGE_EDGES) -> pd.DataFrame:
    """Grouped one-hot features of a ``u.user`` table (module docstring).

    Parameters
    ----------
    users : DataFrame indexed by user id with columns ``age``, ``gender``,
        ``occupation``, ``zip`` (as :func:`read_user_table` or
        :func:`bayes_mf.datasets.movielens_users` give).
    age_edges : increasing ages at which a new band starts.

    Raises
    ------
    ValueError
        A missing column, or an age that is not a number (the user id is named).
    """
    missing = [c for c in ("age", "gender", "occupation", "zip") if c not in users.columns]
    if missing:
        raise ValueError(f"user table lacks column(s) {missing}; expected age, gender, occupation, zip")
    age = pd.to_numeric(users["age"], errors="coerce")
    if age.isna().any():
        bad = age.index[age.isna()][0]
        raise ValueError(f"user table: column 'age' of user {bad!r} is {users['age'].loc[bad]!r}, "
                         "not a number")
    age_labels, age_levels = _bands(age.to_numpy(), age_edges, _band_name)
    gender = users["gender"].astype(str).str.upper().to_numpy()
    occupation = users["occupation"].astype(str).str.strip().str.lower().to_numpy()
    first = users["zip"].astype(str).str.strip().str[:1]
    zip_labels = np.where(first.str.isdigit(), first, "other")
    blocks = [
        _one_hot(age_labels, age_levels, users.index, "age"),
        _one_hot(gender, sorted(set(gender)), users.index, "gender"),
        _one_hot(occupation, sorted(set(occupation)), users.index, "occupation"),
        _one_hot(zip_labels, [str(d) for d in range(10)] + ["other"], users.index, "zip"),
    ]
    out = pd.concat(blocks, axis=1)
    # a zip level no user has carries no information: drop the empty columns
    return out.loc[:, (out != 0).any(axis=0)]


def item_feature_table(items: pd.DataFrame, *, year_edges=YEAR_EDGES) -> pd.DataFrame:
    """Grouped features of a ``u.item`` table: normalised multi-hot genres and one-hot year bands.

    Parameters
    ----------
    items : DataFrame indexed by item id with ``release_date`` (``dd-Mon-yyyy``)
        and the 19 genre columns of :data:`GENRES_100K` (0/1).
    year_edges : increasing years at which a new band starts.

    Raises
    ------
    ValueError
        A missing column, or a genre flag other than 0/1 (the item and genre are named).
    """
    missing = [c for c in ["release_date", *GENRES_100K] if c not in items.columns]
    if missing:
        raise ValueError(f"item table lacks column(s) {missing[:5]}")
    flags = items[GENRES_100K].apply(pd.to_numeric, errors="coerce")
    bad = ~flags.isin([0, 1])
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise ValueError(f"item table: genre {GENRES_100K[col]!r} of item {items.index[row]!r} is "
                         f"{items[GENRES_100K[col]].iloc[row]}, expected 0 or 1")
    g = flags.to_numpy(dtype=float)
    n = g.sum(axis=1, keepdims=True)
    g = np.divide(g, np.sqrt(n), out=np.zeros_like(g), where=n > 0)
    genre = pd.DataFrame(g, index=items.index,
                         columns=pd.MultiIndex.from_product([["genre"], GENRES_100K]))
    dates = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce")
    year_labels, year_levels = _bands(dates.dt.year.fillna(0).to_numpy(), year_edges, _band_name)
    year_labels = np.where(dates.isna(), "unknown", year_labels)
    year = _one_hot(year_labels, year_levels + ["unknown"], items.index, "year")
    out = pd.concat([genre, year], axis=1)
    return out.loc[:, (out != 0).any(axis=0)]


def movielens_features(variant: str = "100k", *, download: bool = True, users=None,
                       items=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """User and item feature tables of MovieLens 100K, indexed by the original ids.

    Parameters
    ----------
    variant : "100k"
        The only release with user attributes and per-genre flags in this layout.
    download : bool
        As for :func:`bayes_mf.datasets.movielens_path`.
    users, items : path or DataFrame, optional
        A ``u.user``/``u.item`` file (read without the release checksum) or an
        already-read table instead of the release's own.

    Returns
    -------
    (user_features, item_features) : DataFrames with ``(group, level)``
        columns, ready for ``GibbsPMF.fit(user_features=..., item_features=...)``.
    """
    from . import datasets

    if users is None or items is None:
        if str(variant).lower() != "100k":
            raise ValueError(f"movielens_features reads the 100K tables (u.user, u.item), not {variant!r}")
        spec = datasets._spec(variant)
        folder = datasets.movielens_path(variant, download=download)
        # read here rather than by movielens_users: zip codes must stay strings ("01002")
        if users is None:
            users = read_user_table(datasets._checked(folder, "u.user", spec))
        if items is None:
            items = read_item_table(datasets._checked(folder, "u.item", spec))
    if isinstance(users, (str, PathLike)):
        users = read_user_table(users)
    if isinstance(items, (str, PathLike)):
        items = read_item_table(items)
    return user_feature_table(users), item_feature_table(items)


def attach_features(*ratings, variant: str = "100k", download: bool = True) -> None:
    """Store the MovieLens feature tables in each ``Ratings.meta`` (``user_features``, ``item_features``)."""
    uf, itf = movielens_features(variant, download=download)
    for r in ratings:
        r.meta["user_features"], r.meta["item_features"] = uf, itf
