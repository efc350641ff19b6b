"""Sampling kernels of the Gibbs sampler: compiled (numba) and NumPy twins.

Both families consume the same random numbers, so they give the same draws up
to floating-point rounding; with numba importable the per-row loops run
compiled (``cache=True``: the compile cost is paid once per installation).
The maths each kernel implements is in :mod:`bayes_mf.gibbs` (steps 1, 2, 4).

Threads: the compiled per-row loops run over ``prange`` (``GibbsPMF(threads=N)``,
set per call by :func:`numba_threads`).  Every row's arithmetic is the same
whatever the thread count, and every sum over rows runs in a fixed order on
one thread, so the draws are bit-identical for any number of threads.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

try:  # numba is optional: the NumPy kernels below are the fallback
    import numba as _numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is absent
    _numba = None
    HAVE_NUMBA = False

_PACKED_MAX_BYTES = 16 << 20  # largest table of packed outer products worth building (fits the L3 cache)
_AHEAD = 16  # ratings ahead whose other-side row is prefetched
_BLOCK = 2048  # rows per block of the parallel loops of equal work per row
_CHUNKS_PER_THREAD = 8  # row chunks of about equal ratings per thread, handed out as threads free up


@contextlib.contextmanager
def numba_threads(n: int | None):
    """Run the compiled kernels on ``n`` threads (at most numba's pool) inside the block; restore after."""
    if not HAVE_NUMBA or n is None:
        yield
        return
    old, old_chunk = _numba.get_num_threads(), _numba.get_parallel_chunksize()
    _numba.set_num_threads(max(1, min(int(n), _numba.config.NUMBA_NUM_THREADS)))
    # every parallel loop here runs over blocks of rows: hand them out one at a time, so that a
    # thread the OS preempts (a machine shared with other work) takes fewer, not all wait for it
    _numba.set_parallel_chunksize(1)
    try:
        yield
    finally:
        _numba.set_num_threads(old)
        _numba.set_parallel_chunksize(old_chunk)


def row_chunks(indptr: np.ndarray) -> np.ndarray:
    """Chunk bounds over the rows of a CSR layout, about equal in ratings, a few per thread.

    Only the work split depends on the thread count; each row's result does not.
    """
    n_rows = indptr.shape[0] - 1
    n = _CHUNKS_PER_THREAD * (_numba.get_num_threads() if HAVE_NUMBA else 1)
    cuts = np.searchsorted(indptr, np.linspace(0, indptr[-1], n + 1)[1:-1], side="left")
    return np.unique(np.r_[0, np.clip(cuts, 0, n_rows), n_rows]).astype(np.int64)


# --------------------------------------------------------------------------- kernels (NumPy)
from .numpy_kernels import (  # noqa: E402,F401 - the NumPy twins, re-exported
    _draw,
    _feature_step_centred_numpy,
    _feature_step_numpy,
    _residual_numpy,
    _side_step_numpy,
)

# --------------------------------------------------------------------------- kernels (numba)
if HAVE_NUMBA:
    _jit = _numba.njit(cache=True, nogil=True, fastmath=False)
    # parallel loops: only over rows, whose results never depend on the split (no fastmath either)
    _jit_par = _numba.njit(cache=True, nogil=True, fastmath=False, parallel=True)

    from llvmlite import binding as _llvm
    from llvmlite import ir as _ir
    from numba.core import cgutils as _cgutils
    from numba.core import types as _types

    _PREFETCH = "llvm.prefetch.p0" if _llvm.llvm_version_info[0] >= 16 else "llvm.prefetch.p0i8"

    @_numba.extending.intrinsic
    def _prefetch(typingctx, arr, i):
        """Hint the CPU to load row ``i`` of ``arr`` into cache (LLVM's prefetch; no effect on results).

        The gathers of the other side's rows follow the column indices, which
        the hardware cannot foresee; asking ahead hides the memory latency
        that otherwise dominates once that side outgrows the caches (about
        4x on the gather alone at 480k rows).
        """
        if not isinstance(arr, _types.Array) or not isinstance(i, _types.Integer):
            return None

        def codegen(context, builder, signature, args):
            aryty, ity = signature.args
            ary = context.make_array(aryty)(context, builder, args[0])
            idx = [context.cast(builder, args[1], ity, _types.intp)]
            idx += [context.get_constant(_types.intp, 0)] * (aryty.ndim - 1)
            ptr = _cgutils.get_item_pointer2(context, builder, data=ary.data,
                                             shape=_cgutils.unpack_tuple(builder, ary.shape),
                                             strides=_cgutils.unpack_tuple(builder, ary.strides),
                                             layout=aryty.layout, inds=idx)
            i8p, i32 = _ir.IntType(8).as_pointer(), _ir.IntType(32)
            fn = _cgutils.get_or_insert_function(builder.module, _ir.FunctionType(
                _ir.VoidType(), [i8p, i32, i32, i32]), _PREFETCH)
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])  # read, keep, data
            return context.get_dummy_value()

        return _types.void(arr, i), codegen

    @_jit
    def _chol_solve_draw(G, h, z, d, out, alpha, w):  # pragma: no cover - compiled
        """In place: G <- L (lower), out <- L^-T (L^-1 h + z); False if G is not PD.

        ``w`` is scratch of length d (it may be ``out`` itself when ``alpha`` is 0).
        With ``alpha != 0``: the over-relaxed draw
        out <- alpha out + L^-T ((1 - alpha) L^-1 h + sqrt(1 - alpha^2) z),
        i.e. m + alpha (out - m) + sqrt(1 - alpha^2) L^-T z.
        """
        for j in range(d):
            s = G[j, j]
            for p in range(j):
                s -= G[j, p] * G[j, p]
            if s <= 0.0:
                return False
            ljj = math.sqrt(s)
            G[j, j] = ljj
            for i in range(j + 1, d):
                t = G[i, j]
                for p in range(j):
                    t -= G[i, p] * G[j, p]
                G[i, j] = t / ljj
        # alpha = 0 is the plain draw: (1 - 0) w + 1 z and out <- w are exact, so the same numbers
        sz = math.sqrt(1.0 - alpha * alpha)
        for i in range(d):  # forward: L w = h
            t = h[i]
            for p in range(i):
                t -= G[i, p] * w[p]
            w[i] = t / G[i, i]
        for i in range(d):
            w[i] = (1.0 - alpha) * w[i] + sz * z[i]
        for i in range(d - 1, -1, -1):  # backward: L^T v = w
            t = w[i]
            for p in range(i + 1, d):
                t -= G[p, i] * w[p]
            w[i] = t / G[i, i]
        for i in range(d):
            out[i] = w[i] if alpha == 0.0 else alpha * out[i] + w[i]
        return True

    @_jit_par
    def _side_step_par(indptr, cols, vals, wts, other_F, other_b, mu, use_bias, P, pm, tau, z,
                       out, store, G_store, h_store, bounds, packed, alpha):  # pragma: no cover - compiled
        n_other, k = other_F.shape
        d = k + use_bias
        nt = d * (d + 1) // 2
        # packed lower-triangular outer products of the other side, built once per step so that
        # the per-rating work is a contiguous (SIMD-friendly) add of nt numbers, ~2x faster
        # than forming x x^T per rating -- while that table stays in cache (``packed``); past
        # that, gathering its rows costs more memory traffic than forming the products anew
        # (the same products either way, so the same numbers)
        X = np.empty((n_other, d))
        O = np.empty((n_other if packed else 1, nt))
        for blk in _numba.prange((n_other + _BLOCK - 1) // _BLOCK):
            for c in range(blk * _BLOCK, min(n_other, (blk + 1) * _BLOCK)):
                for a in range(k):
                    X[c, a] = other_F[c, a]
                if use_bias:
                    X[c, k] = 1.0
                if packed:
                    q = 0
                    for a in range(d):
                        for b in range(a + 1):
                            O[c, q] = X[c, a] * X[c, b]
                            q += 1
        n_chunks = bounds.shape[0] - 1
        nnz = cols.shape[0]
        weighted = wts.shape[0] > 0  # per-rating precision multipliers (heteroscedastic noise)
        ok = np.ones(n_chunks, dtype=np.bool_)
        for ch in _numba.prange(n_chunks):
            Gp = np.empty(nt)  # scratch per chunk: each thread its own
            G = np.empty((d, d))
            h = np.empty(d)
            w = np.empty(d)
            for r in range(bounds[ch], bounds[ch + 1]):
                Gp[:] = 0.0
                h[:] = 0.0
                for n in range(indptr[r], indptr[r + 1]):
                    if n + _AHEAD < nnz:
                        ca = cols[n + _AHEAD]
                        if packed:
                            _prefetch(O, ca)
                        else:
                            _prefetch(X, ca)
                        _prefetch(other_b, ca)
                    c = cols[n]
                    y = vals[n] - mu
                    if use_bias:
                        y -= other_b[c]
                    if weighted:
                        wn = wts[n]
                        y *= wn
                        if packed:
                            for q in range(nt):
                                Gp[q] += wn * O[c, q]
                        else:
                            q = 0
                            for a in range(d):
                                xa = X[c, a]
                                for b in range(a + 1):
                                    Gp[q + b] += wn * (xa * X[c, b])  # as packed: w (x_a x_b)
                                q += a + 1
                    elif packed:
                        for q in range(nt):
                            Gp[q] += O[c, q]
                    else:
                        q = 0
                        for a in range(d):
                            xa = X[c, a]
                            for b in range(a + 1):
                                Gp[q + b] += xa * X[c, b]
                            q += a + 1
                    for a in range(d):
                        h[a] += y * X[c, a]
                q = 0
                for a in range(d):
                    h[a] *= tau
                    for b in range(a + 1):
                        G[a, b] = Gp[q] * tau
                        q += 1
                if store:
                    for a in range(d):
                        h_store[r, a] = h[a]
                        for b in range(a + 1):
                            G_store[r, a, b] = G[a, b]
                            G_store[r, b, a] = G[a, b]
                for a in range(d):
                    t = 0.0
                    for b in range(d):
                        t += P[a, b] * pm[r, b]
                    h[a] += t
                    for b in range(a + 1):
                        G[a, b] += P[a, b]
                if not _chol_solve_draw(G, h, z[r], d, out[r], alpha, w):
                    ok[ch] = False
        return ok.all()

    @_jit
    def _feature_step_numba(f_indptr, f_rows, f_vals, G_store, h_store, X, W, prec, z, dims,
                            alpha):  # pragma: no cover - compiled
        n_feat, d = W.shape
        w = np.empty(d)
        Q = np.empty((d, d))
        q = np.empty(d)
        t = np.empty(d)
        new = np.empty(d)
        ok = True
        for l in range(n_feat):
            for p in range(d):
                q[p] = 0.0
                for r in range(d):
                    Q[p, r] = 0.0
                Q[p, p] = prec[l, p]
            for n in range(f_indptr[l], f_indptr[l + 1]):
                i = f_rows[n]
                a = f_vals[n]
                aa = a * a
                for p in range(d):
                    t[p] = h_store[i, p]
                for r in range(d):
                    # row r of the symmetric G_i serves both sums as contiguous updates over p, which
                    # vectorise (~20 % faster than a dot product per row); each t[p] still sums over
                    # r in order, so the numbers are the same
                    rest = X[i, r] - a * W[l, r]
                    for p in range(d):
                        g = G_store[i, r, p]
                        t[p] -= g * rest
                        Q[r, p] += aa * g
                for p in range(d):
                    q[p] += a * t[p]
            for p in range(d):
                new[p] = W[l, p]  # the over-relaxed draw starts from the current value
            ok &= _chol_solve_draw(Q, q, z[l], dims[l], new, alpha, w)  # the leading dims[l] coordinates
            for n in range(f_indptr[l], f_indptr[l + 1]):
                i = f_rows[n]
                a = f_vals[n]
                for p in range(d):
                    X[i, p] += a * (new[p] - W[l, p])
            for p in range(d):
                W[l, p] = new[p]
        return ok

    @_jit
    def _feature_step_centred_numba(f_indptr, f_rows, f_vals, X, W, P, m, prec, z, dims,
                                    alpha):  # pragma: no cover - compiled
        n_feat, d = W.shape
        R = np.empty_like(X)  # own parts minus their prior mean: X - m - A W
        for i in range(X.shape[0]):
            for p in range(d):
                R[i, p] = X[i, p] - m[p]
        for l in range(n_feat):
            for n in range(f_indptr[l], f_indptr[l + 1]):
                i = f_rows[n]
                a = f_vals[n]
                for p in range(d):
                    R[i, p] -= a * W[l, p]
        Q = np.empty((d, d))
        q = np.empty(d)
        t = np.empty(d)
        new = np.empty(d)
        w = np.empty(d)
        ok = True
        for l in range(n_feat):
            saa = 0.0
            for p in range(d):
                t[p] = 0.0
            for n in range(f_indptr[l], f_indptr[l + 1]):
                i = f_rows[n]
                a = f_vals[n]
                saa += a * a
                for p in range(d):
                    t[p] += a * R[i, p]
            for p in range(d):
                t[p] += saa * W[l, p]
            for p in range(d):
                acc = 0.0
                for r in range(d):
                    acc += P[p, r] * t[r]
                    Q[p, r] = saa * P[p, r]
                q[p] = acc
                Q[p, p] += prec[l, p]
                new[p] = W[l, p]  # the over-relaxed draw starts from the current value
            ok &= _chol_solve_draw(Q, q, z[l], dims[l], new, alpha, w)
            for p in range(d):
                t[p] = new[p] - W[l, p]
                W[l, p] = new[p]
            for n in range(f_indptr[l], f_indptr[l + 1]):
                i = f_rows[n]
                a = f_vals[n]
                for p in range(d):
                    R[i, p] -= a * t[p]
        return ok

    @_jit_par
    def _residual_rows(indptr, cols, vals, mu, F_row, F_col, b_row, b_col, use_bias, out_sum, out_sq,
                       bounds):  # pragma: no cover - compiled
        """Per-row sums (and sums of squares) of the residuals, rows in parallel, ratings in CSR order."""
        k = F_row.shape[1]
        nnz = cols.shape[0]
        for ch in _numba.prange(bounds.shape[0] - 1):
            for r in range(bounds[ch], bounds[ch + 1]):
                s1 = 0.0
                s2 = 0.0
                for n in range(indptr[r], indptr[r + 1]):
                    if n + _AHEAD < nnz:
                        _prefetch(F_col, cols[n + _AHEAD])
                        _prefetch(b_col, cols[n + _AHEAD])
                    c = cols[n]
                    eta = mu
                    for a in range(k):
                        eta += F_row[r, a] * F_col[c, a]
                    if use_bias:
                        eta += b_row[r] + b_col[c]  # same operations from either side: same residual
                    e = vals[n] - eta
                    s1 += e
                    s2 += e * e
                out_sum[r] = s1
                out_sq[r] = s2

    @_jit
    def _ordered_sum(x):  # pragma: no cover - compiled
        t = 0.0
        for v in x:  # one thread, fixed order: the same total for any thread count
            t += v
        return t

    @_jit_par
    def _gather_sum(indptr, cols, b, out, bounds):  # pragma: no cover - compiled
        """``out[r] = sum of b[cols[n]]`` over row r's ratings, rows in parallel."""
        nnz = cols.shape[0]
        for ch in _numba.prange(bounds.shape[0] - 1):
            for r in range(bounds[ch], bounds[ch + 1]):
                t = 0.0
                for n in range(indptr[r], indptr[r + 1]):
                    if n + _AHEAD < nnz:
                        _prefetch(b, cols[n + _AHEAD])
                    t += b[cols[n]]
                out[r] = t

    @_jit
    def _is_sorted(rows):  # pragma: no cover - compiled
        for n in range(1, rows.shape[0]):
            if rows[n] < rows[n - 1]:
                return False
        return True

    @_jit
    def _group_by_rows(rows, cols, vals, indptr, cols_out, vals_out):  # pragma: no cover - compiled
        """Stable counting sort of (cols, vals) by row into CSR: no argsort, no int64 order array."""
        nxt = indptr[:-1].copy()
        for n in range(rows.shape[0]):
            p = nxt[rows[n]]
            nxt[rows[n]] = p + 1
            cols_out[p] = cols[n]
            vals_out[p] = vals[n]


_NO_WEIGHTS = np.empty(0)


def _side_step_numba(indptr, cols, vals, other_F, other_b, mu, use_bias, P, pm, tau, z, out, store,
                     G_store, h_store, alpha: float = 0.0, wts=None):
    """Compiled twin of :func:`_side_step_numpy`: draws into ``out`` (which holds the current rows,
    read by the over-relaxation ``alpha``); False if a precision is not PD.  ``wts``: per-rating
    precision multipliers in this side's CSR order (heteroscedastic noise), or None."""
    d = other_F.shape[1] + use_bias
    packed = other_F.shape[0] * d * (d + 1) * 4 <= _PACKED_MAX_BYTES
    return _side_step_par(indptr, cols, vals, _NO_WEIGHTS if wts is None else wts, other_F, other_b, mu,
                          use_bias, P, pm, tau, z, out, store, G_store, h_store, row_chunks(indptr), packed,
                          float(alpha))


def _residual_numba(by_user, by_item, mu, U, V, ub, vb, use_bias, ru, ri):
    """Compiled twin of :func:`_residual_numpy` over the two CSR layouts (race-free: no scatter-adds).

    Per-user sums come from the user rows, per-item sums from the item rows;
    the totals add the per-user sums in user order on one thread.
    """
    sq = np.empty(ru.shape[0])
    _residual_rows(by_user.indptr, by_user.cols, by_user.vals, mu, U, V, ub, vb, use_bias, ru, sq,
                   row_chunks(by_user.indptr))
    if ri is not None:
        sq_i = np.empty(ri.shape[0])
        _residual_rows(by_item.indptr, by_item.cols, by_item.vals, mu, V, U, vb, ub, use_bias, ri, sq_i,
                       row_chunks(by_item.indptr))
    return _ordered_sum(ru), _ordered_sum(sq)
