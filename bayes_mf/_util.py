"""Small helpers shared across the package: chunked row products, CSR side indexes, message text."""

from __future__ import annotations

import numpy as np
import pandas as pd

_CHUNK = 1 << 18


# ---- error messages: name values and rows as a user wrote them
def _py(value):
    """A NumPy scalar as the plain Python value, so messages read ``10``, not ``np.int64(10)``."""
    return value.item() if isinstance(value, np.generic) else value


def _row_label(frame: pd.DataFrame, pos: int) -> str:
    return f"row {_py(frame.index[pos])!r}"


def _id_kind(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def rowdot(A: np.ndarray, B: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    r"""``out[n] = A[rows_a[n]] · B[rows_b[n]]`` in chunks.

    Gathering ``A[rows_a]`` for millions of ratings at once would allocate
    ``n_obs x k`` floats twice; chunking keeps memory bounded.
    """
    n = rows_a.shape[0]
    out = np.empty(n, dtype=np.result_type(A, B))
    for s in range(0, n, _CHUNK):
        e = min(s + _CHUNK, n)
        out[s:e] = np.einsum("nk,nk->n", A[rows_a[s:e]], B[rows_b[s:e]])
    return out


class SideIndex:
    """The observations grouped by one side (users or items) as a CSR layout.

    Built once per fit; each sweep of ALS or Gibbs then gathers per-entity
    sufficient statistics with a sparse x dense product, whose cost is
    linear in the number of observations (never a dense users x items matrix).

    Parameters
    ----------
    rows : int array, shape (n_obs,)
        Codes of the side being solved for (e.g. users).
    cols : int array, shape (n_obs,)
        Codes of the other side (e.g. items).
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int):
        import scipy.sparse as sp

        self._sp = sp
        self.order = np.argsort(rows, kind="stable")
        self.counts = np.bincount(rows, minlength=n_rows)
        self.indptr = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self.indices = np.ascontiguousarray(cols[self.order]).astype(np.int32)
        self.shape = (n_rows, n_cols)
        self._ones = None  # built on first use: callers with their own kernels never need it

    def matrix(self, values: np.ndarray):
        """CSR matrix (n_rows x n_cols) holding ``values`` (given in observation order)."""
        return self._sp.csr_matrix(
            (np.asarray(values, dtype=np.float64)[self.order], self.indices, self.indptr),
            shape=self.shape,
        )

    def gram(self, F: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        r"""Per-row Gram matrices :math:`G_r = \sum_{n: row_n = r} w_n F_{c_n} F_{c_n}^\top`.

        Returns an array of shape (n_rows, d, d).
        """
        n_cols, d = F.shape
        outer = (F[:, :, None] * F[:, None, :]).reshape(n_cols, d * d)
        if weights is None:
            if self._ones is None:
                self._ones = self.matrix(np.ones(self.indices.size))
            A = self._ones
        else:
            A = self.matrix(weights)
        return np.asarray(A @ outer).reshape(self.shape[0], d, d)

    def rhs(self, F: np.ndarray, y: np.ndarray) -> np.ndarray:
        r"""Per-row :math:`b_r = \sum_{n: row_n = r} y_n F_{c_n}`, shape (n_rows, d)."""
        return np.asarray(self.matrix(y) @ F)


def interactive() -> bool:
    """True in Jupyter/IPython or at a terminal: where progress bars are wanted by default."""
    import sys

    if "ipykernel" in sys.modules or hasattr(sys, "ps1"):
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
