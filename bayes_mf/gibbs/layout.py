"""Problem layout of the Gibbs sampler: observations grouped by side, feature matrices."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._util import SideIndex

#: the two sides of the ratings matrix, in sweep order
SIDES = ("user", "item")


class _Side:
    """Observations grouped by one side: CSR arrays ``indptr, cols, vals`` (+ ``index`` for NumPy).

    The NumPy kernels need the :class:`~bayes_mf._util.SideIndex` (its
    ``order`` array, int64 per rating, feeds scipy's sparse products).  The
    compiled kernels only read the CSR arrays: with ``compact=True`` they
    are built by a counting sort (no int64 order array, at no time), ``cols``
    is int32, and where the ratings already come sorted by this side the
    given arrays are used as they are (no copy) -- at 100 M ratings each
    saving is 0.4-1.2 GB.
    """

    def __init__(self, rows, cols, vals, n_rows, n_cols, compact: bool = False):
        self.cols_obs = cols
        self.vals_obs = vals
        if not compact:
            self.index = SideIndex(rows, cols, n_rows, n_cols)
            self.indptr = self.index.indptr
            self.cols = self.index.indices
            self.vals = np.ascontiguousarray(vals[self.index.order], dtype=np.float64)
            return
        from . import kernels

        self.index = None
        counts = np.bincount(rows, minlength=n_rows)
        self.indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=self.indptr[1:])
        cols_dtype = np.int32 if n_cols < 2**31 else np.int64
        if kernels._is_sorted(rows):
            self.cols = np.ascontiguousarray(cols, dtype=cols_dtype)
            self.vals = np.ascontiguousarray(vals, dtype=np.float64)
        else:
            self.cols = np.empty(rows.shape[0], dtype=cols_dtype)
            self.vals = np.empty(rows.shape[0], dtype=np.float64)
            kernels._group_by_rows(rows, cols, np.ascontiguousarray(vals, dtype=np.float64), self.indptr,
                                   self.cols, self.vals)

    wts = None  # per-rating precision multipliers in CSR order (gibbs.noise), or None

    def set_wts(self, w) -> None:
        """New per-rating weights (heteroscedastic noise), given in input order."""
        self.wts = np.ascontiguousarray(w[self.index.order], dtype=np.float64)
        self.wts_obs = w

    def set_vals(self, vals) -> None:
        """New values of the same observations (the working response of :mod:`bayes_mf.gibbs.effects`)."""
        self.vals[:] = vals[self.index.order]
        self.vals_obs = vals


class _Features:
    """Feature matrix A of one side (rows = users or items) with its column (CSC) layout."""

    def __init__(self, A: sp.csr_matrix, groups: np.ndarray, group_bias: np.ndarray | None = None):
        self.A = A.tocsr()
        csc = self.A.tocsc()
        csc.sort_indices()
        self.f_indptr = csc.indptr.astype(np.int64)
        self.f_rows = csc.indices.astype(np.int64)
        self.f_vals = csc.data.astype(np.float64)
        self.groups = groups  # group id per feature column
        self.n_groups = int(groups.max()) + 1 if groups.size else 0
        # whether each group's vectors have a bias coordinate (else it is held at 0: factors only)
        self.group_bias = np.ones(self.n_groups, bool) if group_bias is None else np.asarray(group_bias, bool)
        self.bias_cols = self.group_bias[groups]
        self.n = A.shape[1]
        # each row's total weight on each group (the own-vs-feature shift of gibbs.moves)
        self.group_weight = [np.asarray(self.A[:, groups == g].sum(axis=1)).ravel()
                             for g in range(self.n_groups)]


def _implicit_matrix(rows, cols, n_rows, n_cols) -> sp.csr_matrix:
    """Row i: 1/sqrt(n_i) at every column it co-occurs with (the SVD++ normalisation)."""
    counts = np.bincount(rows, minlength=n_rows).astype(float)
    vals = 1.0 / np.sqrt(counts[rows])
    A = sp.csr_matrix((vals, (rows, cols)), shape=(n_rows, n_cols))
    A.sum_duplicates()
    return A

