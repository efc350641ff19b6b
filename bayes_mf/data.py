"""Ratings data layer: validation, id maps, splits and the unseen-id policy.

Everything downstream works on three aligned arrays -- ``user`` and ``item``
(contiguous ``int32`` codes) and ``rating`` (``float64``) -- one entry per
*observed* pair.  A dense users x items matrix is never built: the cost of
every operation grows with the number of ratings, not with their product.

The original (arbitrary, hashable) ids are kept in two :class:`pandas.Index`
objects, ``users`` and ``items``, whose positions are the codes, so that every
result can be labelled with the ids the user gave.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from os import PathLike
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._util import _id_kind, _py, _row_label

__all__ = [
    "Ratings",
    "RatingsError",
    "UnseenIdsWarning",
    "encode_pairs",
    "train_test_split",
    "per_user_split",
    "handle_unseen",
]

DuplicatePolicy = Literal["error", "mean", "last"]
UnseenPolicy = Literal["error", "drop", "prior"]


class RatingsError(ValueError):
    """Raised for invalid ratings input; the message names column, row and value."""


class UnseenIdsWarning(UserWarning):
    """Emitted when pairs hold users or items that the training data lacks."""


def _check_id_types(frame: pd.DataFrame, col: str) -> None:
    """Refuse an id column that mixes kinds: ``'0'`` and ``0`` would silently become two ids."""
    values = frame[col]
    if values.dtype != object:
        return  # a typed column holds one kind
    kinds = values.map(_id_kind)
    seen = kinds.drop_duplicates()
    if len(seen) > 1:
        first = [int(np.flatnonzero(kinds.to_numpy() == k)[0]) for k in seen]
        examples = ", ".join(f"{_py(values.iloc[pos])!r} ({k}, first at {_row_label(frame, pos)})"
                             for k, pos in zip(seen, first, strict=True))
        raise RatingsError(
            f"column {col!r} mixes id types: {examples}. Ids of different types are different ids "
            f"(e.g. '0' and 0); convert the column to one type first, e.g. frame[{col!r}].astype(str)"
        )


@dataclass(frozen=True, eq=False)
class Ratings:
    """Observed ratings as aligned code arrays plus the id maps.

    Build one with :meth:`from_frame` or :meth:`from_csv`; the constructor
    trusts its arguments and is meant for the library itself.

    Attributes
    ----------
    user, item : ndarray of int32, shape (n_obs,)
        Codes into :attr:`users` and :attr:`items`.
    rating : ndarray of float64, shape (n_obs,)
    users, items : pandas.Index
        Original ids; ``users[code]`` is the id of user ``code``.
    scale : tuple of float or None
        Declared ``(low, high)`` rating scale, used for validation and for
        clipping predictions.
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    users: pd.Index
    items: pd.Index
    scale: tuple[float, float] | None = None
    names: tuple[str, str, str] = ("user", "item", "rating")
    meta: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        user_col: str = "user",
        item_col: str = "item",
        rating_col: str = "rating",
        scale: tuple[float, float] | None = None,
        duplicates: DuplicatePolicy = "error",
    ) -> Ratings:
        """Validate a ratings table and encode its ids.

        Parameters
        ----------
        frame : DataFrame
            One row per (user, item, rating); other columns are ignored.
        user_col, item_col, rating_col : str
            Column names.
        scale : (low, high), optional
            Declared rating scale; ratings outside it raise.
        duplicates : {"error", "mean", "last"}
            What to do with repeated (user, item) pairs: raise (default),
            average them, or keep the last occurrence.

        Raises
        ------
        RatingsError
            With the column, row and value at fault.
        """
        if not isinstance(frame, pd.DataFrame):
            raise RatingsError(f"expected a pandas DataFrame, got {type(frame).__name__}")
        cols = (user_col, item_col, rating_col)
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise RatingsError(
                f"missing column(s) {missing}; the table has {list(frame.columns)}. "
                "Pass user_col=, item_col=, rating_col= to name yours."
            )
        if len(frame) == 0:
            raise RatingsError("the ratings table is empty")
        if duplicates not in ("error", "mean", "last"):
            raise RatingsError(f"duplicates must be 'error', 'mean' or 'last', got {duplicates!r}")
        for c in (user_col, item_col):
            nulls = frame[c].isna().to_numpy()
            if nulls.any():
                pos = int(np.flatnonzero(nulls)[0])
                raise RatingsError(
                    f"column {c!r} has {int(nulls.sum())} missing id(s); first at "
                    f"{_row_label(frame, pos)}"
                )
        for c in (user_col, item_col):
            _check_id_types(frame, c)
        raw = frame[rating_col]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise RatingsError(
                f"column {rating_col!r} has {int(bad.sum())} missing, non-finite or "
                f"non-numeric value(s); first at {_row_label(frame, pos)}: "
                f"{_py(raw.iloc[pos])!r}"
            )
        if scale is not None:
            try:
                lo, hi = (float(s) for s in scale)
            except (TypeError, ValueError):
                raise RatingsError(f"scale must be a pair (low, high) of numbers, got {scale!r}") from None
            if not lo < hi:
                raise RatingsError(f"scale must be (low, high) with low < high, got {scale}")
            out = (values < lo) | (values > hi)
            if out.any():
                pos = int(np.flatnonzero(out)[0])
                raise RatingsError(
                    f"column {rating_col!r} has {int(out.sum())} value(s) outside the "
                    f"declared scale [{lo:g}, {hi:g}]; first at {_row_label(frame, pos)}: "
                    f"{_py(values[pos])!r}"
                )
            scale = (lo, hi)

        table = pd.DataFrame(
            {"user": frame[user_col].to_numpy(), "item": frame[item_col].to_numpy(), "rating": values}
        )
        dup = table.duplicated(["user", "item"], keep=False).to_numpy()
        if dup.any():
            if duplicates == "error":
                pos = int(np.flatnonzero(dup)[0])
                raise RatingsError(
                    f"{int(dup.sum())} rows repeat a ({user_col}, {item_col}) pair; first at "
                    f"{_row_label(frame, pos)}: ({_py(table['user'].iloc[pos])!r}, "
                    f"{_py(table['item'].iloc[pos])!r}). Pass duplicates='mean' or 'last' to merge."
                )
            if duplicates == "mean":
                table = table.groupby(["user", "item"], sort=False, as_index=False)["rating"].mean()
            else:
                table = table.drop_duplicates(["user", "item"], keep="last")

        ucodes, users = pd.factorize(table["user"], sort=True)
        icodes, items = pd.factorize(table["item"], sort=True)
        return cls(
            user=ucodes.astype(np.int32),
            item=icodes.astype(np.int32),
            rating=table["rating"].to_numpy(dtype=np.float64),
            users=pd.Index(users, name=user_col),
            items=pd.Index(items, name=item_col),
            scale=scale,
            names=cols,
        )

    @classmethod
    def from_csv(
        cls,
        path: str | PathLike,
        *,
        sep: str | None = None,
        header: Literal["infer"] | None = "infer",
        user_col: str = "user",
        item_col: str = "item",
        rating_col: str = "rating",
        scale: tuple[float, float] | None = None,
        duplicates: DuplicatePolicy = "error",
        **read_kw,
    ) -> Ratings:
        """Read a delimited text file.

        Without ``sep``, tab is used for ``.tsv/.tab/.data/.base/.test`` files,
        comma for ``.csv``, and otherwise the separator is sniffed from the
        file (:class:`csv.Sniffer`).  With ``header=None`` the first three
        columns are taken as user, item, rating.
        """
        name = str(path)
        if sep is None and name.endswith((".tsv", ".tab", ".data", ".base", ".test")):
            sep = "\t"
        elif sep is None and name.endswith(".csv"):
            sep = ","
        if sep is None:
            frame = pd.read_csv(path, sep=None, engine="python", header=header, **read_kw)
        else:
            frame = pd.read_csv(path, sep=sep, header=header, engine="python" if len(sep) > 1 else "c",
                                **read_kw)
        if header is None:
            if frame.shape[1] < 3:
                raise RatingsError(f"{path}: expected at least 3 columns, found {frame.shape[1]}")
            frame = frame.rename(columns={0: user_col, 1: item_col, 2: rating_col})
        return cls.from_frame(
            frame, user_col=user_col, item_col=item_col, rating_col=rating_col,
            scale=scale, duplicates=duplicates,
        )

    @classmethod
    def coerce(cls, data, **kw) -> Ratings:
        """Return ``data`` as :class:`Ratings` (DataFrame, path or Ratings)."""
        if isinstance(data, Ratings):
            if kw:
                # a Ratings is already validated: options meant for a table would be ignored silently
                raise TypeError(f"options {sorted(kw)} apply to a DataFrame or a CSV path, not to a "
                                "Ratings (it is already validated)")
            return data
        if isinstance(data, pd.DataFrame):
            return cls.from_frame(data, **kw)
        if isinstance(data, (str, PathLike)):
            return cls.from_csv(data, **kw)
        raise RatingsError(
            f"expected Ratings, a pandas DataFrame or a file path, got {type(data).__name__}"
        )

    # ------------------------------------------------------------- accessors
    def __len__(self) -> int:
        return int(self.rating.shape[0])

    def __repr__(self) -> str:
        sc = "" if self.scale is None else f", scale={self.scale}"
        return f"Ratings(n_obs={len(self)}, n_users={self.n_users}, n_items={self.n_items}{sc})"

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def user_ids(self) -> np.ndarray:
        """Original user id of every observation."""
        return self.users.to_numpy()[self.user]

    @property
    def item_ids(self) -> np.ndarray:
        """Original item id of every observation."""
        return self.items.to_numpy()[self.item]

    def to_frame(self) -> pd.DataFrame:
        """The ratings as a DataFrame with the original ids and column names."""
        u, i, r = self.names
        return pd.DataFrame({u: self.user_ids, i: self.item_ids, r: self.rating})

    def to_csr(self, by: Literal["user", "item"] = "user") -> sp.csr_matrix:
        """Sparse ratings matrix (rows = ``by``); only observed entries are stored."""
        if by == "user":
            rows, cols, shape = self.user, self.item, (self.n_users, self.n_items)
        else:
            rows, cols, shape = self.item, self.user, (self.n_items, self.n_users)
        return sp.csr_matrix((self.rating, (rows, cols)), shape=shape)

    def counts(self, by: Literal["user", "item"] = "user") -> np.ndarray:
        """Number of ratings per user (or item) code."""
        if by == "user":
            return np.bincount(self.user, minlength=self.n_users)
        return np.bincount(self.item, minlength=self.n_items)

    def subset(self, mask_or_index, *, compact: bool = True) -> Ratings:
        """Rows selected by a boolean mask or integer positions.

        With ``compact=True`` users and items left without ratings are removed
        from the id maps (codes are renumbered); otherwise the maps are kept.
        Per-rating arrays in ``meta`` (e.g. ``"timestamp"``) are subset with the rows.
        """
        sel = np.asarray(mask_or_index)
        user, item, rating = self.user[sel], self.item[sel], self.rating[sel]
        # a per-rating array left whole would silently pair the wrong timestamp with a rating
        meta = {k: (v[sel] if isinstance(v, np.ndarray) and v.shape[:1] == (len(self),) else v)
                for k, v in self.meta.items()}
        users, items = self.users, self.items
        if compact:
            ukeep = np.unique(user)
            ikeep = np.unique(item)
            user = np.searchsorted(ukeep, user).astype(np.int32)
            item = np.searchsorted(ikeep, item).astype(np.int32)
            users, items = users[ukeep], items[ikeep]
        return Ratings(user, item, rating, users, items, self.scale, self.names, meta)


def encode_pairs(pairs, users: pd.Index, items: pd.Index, *, names=("user", "item")):
    """Map original ids of ``pairs`` to codes of a fitted index; unknown -> -1.

    Parameters
    ----------
    pairs : Ratings, DataFrame or (user_ids, item_ids)
    users, items : pandas.Index
        The training id maps.

    Returns
    -------
    user_ids, item_ids : ndarray
        Original ids, as given.
    ucode, icode : ndarray of int64
        Codes, ``-1`` where the id is absent from the index.
    """
    if isinstance(pairs, Ratings):
        uid, iid = pairs.user_ids, pairs.item_ids
    elif isinstance(pairs, pd.DataFrame):
        missing = [c for c in names if c not in pairs.columns]
        if missing:
            raise RatingsError(
                f"pairs lack column(s) {missing}; they have {list(pairs.columns)}"
            )
        uid, iid = pairs[names[0]].to_numpy(), pairs[names[1]].to_numpy()
    else:
        uid, iid = _split_pairs(pairs)
    return uid, iid, users.get_indexer(uid), items.get_indexer(iid)


_PAIRS_HELP = ("pairs must be Ratings, a DataFrame with user/item columns, a tuple (users, items), "
               "a list of (user, item) rows or an (n, 2) array")


def _split_pairs(pairs):
    """Columns of the non-DataFrame forms of ``pairs`` (see :func:`encode_pairs`)."""
    if isinstance(pairs, tuple) and len(pairs) == 2:
        a, b = (np.asarray(x) for x in pairs)
        if a.ndim == 0 and b.ndim == 0:  # one pair
            return a.reshape(1), b.reshape(1)
        if a.ndim == 1 and b.ndim == 1:
            if a.shape != b.shape:
                raise RatingsError(f"user and item arrays differ in length: {a.shape[0]} vs {b.shape[0]}")
            return a, b
        raise RatingsError(_PAIRS_HELP)
    try:
        rows = np.asarray(pairs, dtype=object if isinstance(pairs, list) else None)
    except (TypeError, ValueError) as exc:
        raise RatingsError(_PAIRS_HELP) from exc
    if rows.ndim == 2 and rows.shape[1] == 2:
        u, i = rows[:, 0], rows[:, 1]
        # object rows of plain numbers become numeric again so they match numeric ids
        return (pd.Series(u).infer_objects().to_numpy(), pd.Series(i).infer_objects().to_numpy())
    raise RatingsError(_PAIRS_HELP)


def handle_unseen(ucode, icode, policy: UnseenPolicy, *, user_ids=None, item_ids=None, what="pairs"):
    """Apply the unseen-id policy; return the boolean mask of rows kept.

    ``"error"`` raises naming the first unseen id and its row; ``"drop"``
    keeps only fully known pairs; ``"prior"`` keeps everything (the
    estimator predicts unknown parts from the prior / biases).  Whatever the
    policy, a :class:`UnseenIdsWarning` reports how many rows were affected.
    """
    unseen_u = ucode < 0
    unseen_i = icode < 0
    unseen = unseen_u | unseen_i
    n = int(unseen.sum())
    if policy not in ("error", "drop", "prior"):
        raise ValueError(f"unseen policy must be 'error', 'drop' or 'prior', got {policy!r}")
    if n == 0:
        return np.ones(len(ucode), dtype=bool)
    if policy == "error":
        pos = int(np.flatnonzero(unseen)[0])
        which = (
            f"user {_py(user_ids[pos])!r}" if unseen_u[pos] and user_ids is not None
            else f"item {_py(item_ids[pos])!r}" if item_ids is not None else "id"
        )
        raise RatingsError(
            f"{n} of {len(ucode)} {what} have a user or item absent from training "
            f"({int(unseen_u.sum())} unseen-user rows, {int(unseen_i.sum())} unseen-item rows); "
            f"first at row {pos}: {which}. Use unseen='drop' or 'prior'."
        )
    action = "dropped" if policy == "drop" else "predicted from the prior/biases"
    warnings.warn(
        f"{n} of {len(ucode)} {what} have a user or item absent from training "
        f"({int(unseen_u.sum())} unseen-user rows, {int(unseen_i.sum())} unseen-item rows): {action}",
        UnseenIdsWarning,
        stacklevel=3,
    )
    return ~unseen if policy == "drop" else np.ones(len(ucode), dtype=bool)


def _split_unseen(train: Ratings, test: Ratings, unseen: UnseenPolicy) -> Ratings:
    _, _, uc, ic = encode_pairs(test, train.users, train.items)
    keep = handle_unseen(uc, ic, unseen, user_ids=test.user_ids, item_ids=test.item_ids,
                         what="test rows")
    n_unseen = int(((uc < 0) | (ic < 0)).sum())
    test = test if keep.all() else test.subset(keep)
    test.meta["n_unseen"] = n_unseen
    test.meta["unseen_policy"] = unseen
    return test


def train_test_split(
    ratings: Ratings,
    test_size: float = 0.2,
    *,
    random_seed: int | None = 0,
    unseen: UnseenPolicy = "drop",
) -> tuple[Ratings, Ratings]:
    """Random hold-out of a fraction ``test_size`` of the ratings.

    Test rows whose user or item has no training rating follow ``unseen``;
    their count is warned about and kept in ``test.meta["n_unseen"]``.
    """
    ratings = Ratings.coerce(ratings)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    rng = np.random.default_rng(random_seed)
    n = len(ratings)
    n_test = int(round(test_size * n))
    if n_test == 0 or n_test == n:
        raise ValueError(f"test_size={test_size} leaves an empty train or test set for {n} ratings")
    is_test = np.zeros(n, dtype=bool)
    is_test[rng.choice(n, size=n_test, replace=False)] = True
    train = ratings.subset(~is_test)
    test = _split_unseen(train, ratings.subset(is_test), unseen)
    return train, test


def per_user_split(
    ratings: Ratings,
    k: int = 1,
    *,
    random_seed: int | None = 0,
    min_train: int = 1,
    unseen: UnseenPolicy = "drop",
) -> tuple[Ratings, Ratings]:
    """Hold out ``k`` random ratings of every user with at least ``k + min_train``.

    Users with fewer ratings stay entirely in training.
    """
    ratings = Ratings.coerce(ratings)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rng = np.random.default_rng(random_seed)
    order = np.lexsort((rng.random(len(ratings)), ratings.user))
    counts = ratings.counts("user")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(ratings)) - starts[ratings.user[order]]
    eligible = counts[ratings.user[order]] >= k + min_train
    is_test = np.zeros(len(ratings), dtype=bool)
    is_test[order[(rank < k) & eligible]] = True
    if not is_test.any():
        raise ValueError(f"no user has the {k + min_train} ratings a per-user split of k={k} needs")
    train = ratings.subset(~is_test)
    test = _split_unseen(train, ratings.subset(is_test), unseen)
    return train, test
