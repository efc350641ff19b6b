"""Inputs of :class:`~bayes_mf.gibbs.GibbsPMF` turned into sampler arrays: feature matrices A by side."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data import Ratings
from .layout import _implicit_matrix


def feature_groups(table: pd.DataFrame) -> np.ndarray:
    """Group number of each column: the first level of two-level columns, else one group for all.

    Two-level columns ``(group, level)`` (as :func:`bayes_mf.sideinfo.movielens_features`
    gives) make one group per distinct first level, numbered in order of first
    appearance; each group gets its own Gamma prior precision per column of its
    feature vectors.
    """
    if isinstance(table.columns, pd.MultiIndex):
        names = table.columns.get_level_values(0)
        return pd.factorize(names)[0].astype(np.int64)
    return np.zeros(table.shape[1], dtype=np.int64)


def side_table(table, side: str, ids: pd.Index) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows of a user/item feature table aligned to the fitted ids (missing ids: zeros), and its groups.

    Raises
    ------
    ValueError
        Not a DataFrame; a column that is not numeric or a non-finite value
        (the column and id are named); repeated ids in the index.
    """
    name = f"{side}_features"
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame indexed by {side} id, got {type(table).__name__}")
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()][:3].tolist()
        raise ValueError(f"{name} repeats {side} id(s) {dup}: one row per {side}")
    try:
        values = table.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must have numeric columns only: {exc}") from None
    arr = values.to_numpy()
    if not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} holds non-finite value {arr[row, col]!r} in column "
                         f"{table.columns[col]!r} of {side} {table.index[row]!r}")
    dense = values.reindex(ids).fillna(0.0).to_numpy()
    return sp.csr_matrix(dense), feature_groups(table)


def feature_block(side: str, r: Ratings, implicit: bool, table) -> tuple[sp.csr_matrix, np.ndarray] | None:
    """The feature matrix A of one side and the group of each column (``None`` without features).

    Implicit feedback, when on, is group 0; the side table's groups follow.
    """
    blocks, groups = [], []
    if implicit:
        rows, cols = (r.user, r.item) if side == "user" else (r.item, r.user)
        n_rows, n_cols = (r.n_users, r.n_items) if side == "user" else (r.n_items, r.n_users)
        blocks.append(_implicit_matrix(rows, cols, n_rows, n_cols))
        groups.append(np.zeros(n_cols, dtype=np.int64))
    if table is not None:
        A, g = side_table(table, side, r.users if side == "user" else r.items)
        blocks.append(A)
        groups.append(g + len(groups))  # after the implicit group, if any
    if not blocks:
        return None
    return sp.hstack(blocks).tocsr(), np.concatenate(groups)
