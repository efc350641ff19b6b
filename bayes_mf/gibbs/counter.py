"""Counter-based standard normals: the same number for a (key, sweep, stream, row, component) anywhere.

The per-row noise of the side steps and the feature steps is not drawn from
the chain's sequential generator but computed from its coordinates with
Philox4x32-10 (Salmon et al. 2011, the generator of Random123), a keyed
bijection of a 128-bit counter.  A row's numbers therefore depend only on
``(key, sweep, stream, row)``, never on which thread, worker or partition of
the rows computes them, nor in which order: that is what makes a sweep
on any number of threads give the same draws bit for bit.

Layout of the counter words: ``c0`` the row, ``c1`` the pair index ``j``
(components ``2j`` and ``2j + 1``) plus the stream in the top byte, ``c2``,
``c3`` the low and high words of the chain's sweep counter.  The key (two
32-bit words) comes from the chain's seed (:func:`chain_key`).  Each Philox
output gives two 53-bit uniforms and, by Box--Muller, two normals.  The
compiled and NumPy versions compute the same 32-bit words; their normals
agree to the last bit or so (``log``/``cos``/``sin`` of the two libraries).
"""

from __future__ import annotations

import math

import numpy as np

from . import kernels
from .kernels import HAVE_NUMBA, _numba

__all__ = ["STREAMS", "chain_key", "philox4x32", "normals"]

#: stream of each kind of draw: the two side steps and the feature steps (own parts held, rows held)
STREAMS = {"user": 0, "item": 1, "user_features": 2, "item_features": 3, "user_features_rows": 4,
           "item_features_rows": 5}
_KEY_CHILD = 0xC0FFEE  # spawn-key word naming the Philox key's child of a chain's SeedSequence
_M0, _M1 = 0xD2511F53, 0xCD9E8D57  # Philox multipliers and Weyl key increments (Random123)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_TWO_PI = 2.0 * math.pi
_U53 = 2.0**-53


def chain_key(seed) -> np.ndarray:
    """The two 32-bit key words of a chain: a child of its seed kept apart from its NumPy generator.

    ``seed`` is what :func:`~bayes_mf.gibbs.chain.initial_state` gets (an
    int, None or a :class:`numpy.random.SeedSequence`); the key comes from
    the named child ``(*spawn_key, 0xC0FFEE)`` so that it shares no state
    with the generator ``default_rng(seed)`` that draws everything else.
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    child = np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, _KEY_CHILD), pool_size=ss.pool_size)
    return child.generate_state(2, np.uint32)


def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counters (uint64 arrays holding 32-bit words) under key ``(k0, k1)``; NumPy."""
    m0, m1, mask, s32 = np.uint64(_M0), np.uint64(_M1), np.uint64(0xFFFFFFFF), np.uint64(32)
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3))
    k0, k1 = np.uint64(k0), np.uint64(k1)
    for _ in range(10):
        p0, p1 = m0 * c0, m1 * c2  # < 2**64: exact 32 x 32 -> 64-bit products
        c0, c1, c2, c3 = (p1 >> s32) ^ c1 ^ k0, p1 & mask, (p0 >> s32) ^ c3 ^ k1, p0 & mask
        k0, k1 = (k0 + np.uint64(_W0)) & mask, (k1 + np.uint64(_W1)) & mask
    return c0, c1, c2, c3


def _normals_numpy(key, stream: int, sweep: int, row0: int, n_rows: int, d: int) -> np.ndarray:
    pairs = (d + 1) // 2
    rows = np.repeat(np.arange(row0, row0 + n_rows, dtype=np.uint64), pairs)
    j = np.tile(np.arange(pairs, dtype=np.uint64), n_rows) | np.uint64(stream << 24)
    lo = np.full(rows.size, sweep & 0xFFFFFFFF, dtype=np.uint64)
    hi = np.full(rows.size, sweep >> 32, dtype=np.uint64)
    w0, w1, w2, w3 = philox4x32(rows, j, lo, hi, int(key[0]), int(key[1]))
    u1 = ((w0 << np.uint64(32) | w1) >> np.uint64(11)).astype(np.float64) * _U53
    u2 = ((w2 << np.uint64(32) | w3) >> np.uint64(11)).astype(np.float64) * _U53
    r = np.sqrt(-2.0 * np.log(1.0 - u1))  # 1 - u1 in (0, 1]: finite
    t = _TWO_PI * u2
    z = np.empty((n_rows, 2 * pairs))
    z[:, 0::2] = (r * np.cos(t)).reshape(n_rows, pairs)
    z[:, 1::2] = (r * np.sin(t)).reshape(n_rows, pairs)
    return np.ascontiguousarray(z[:, :d])


if HAVE_NUMBA:
    _M0u, _M1u, _MASK = np.uint64(_M0), np.uint64(_M1), np.uint64(0xFFFFFFFF)
    _W0u, _W1u, _S32, _S11 = np.uint64(_W0), np.uint64(_W1), np.uint64(32), np.uint64(11)

    @_numba.njit(cache=True, nogil=True, inline="always")
    def _philox_one(c0, c1, c2, c3, k0, k1):  # pragma: no cover - compiled
        for _ in range(10):
            p0 = _M0u * c0
            p1 = _M1u * c2
            c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _MASK, (p0 >> _S32) ^ c3 ^ k1, p0 & _MASK
            k0 = (k0 + _W0u) & _MASK
            k1 = (k1 + _W1u) & _MASK
        return c0, c1, c2, c3

    @kernels._jit_par
    def _normals_numba(k0, k1, stream, sweep, row0, out):  # pragma: no cover - compiled
        n_rows, d = out.shape
        pairs = (d + 1) // 2
        lo = np.uint64(sweep) & _MASK
        hi = np.uint64(sweep) >> _S32
        for blk in _numba.prange((n_rows + kernels._BLOCK - 1) // kernels._BLOCK):
            for r in range(blk * kernels._BLOCK, min(n_rows, (blk + 1) * kernels._BLOCK)):
                c0 = np.uint64(row0) + np.uint64(r)  # uint64 + int64 would be float64 in numba
                for j in range(pairs):
                    w0, w1, w2, w3 = _philox_one(c0, np.uint64(j) | (np.uint64(stream) << np.uint64(24)),
                                                 lo, hi, k0, k1)
                    u1 = np.float64(((w0 << _S32) | w1) >> _S11) * _U53
                    u2 = np.float64(((w2 << _S32) | w3) >> _S11) * _U53
                    rad = math.sqrt(-2.0 * math.log(1.0 - u1))
                    t = _TWO_PI * u2
                    out[r, 2 * j] = rad * math.cos(t)
                    if 2 * j + 1 < d:
                        out[r, 2 * j + 1] = rad * math.sin(t)


def normals(key, stream: int, sweep: int, n_rows: int, d: int, *, row0: int = 0,
            backend: str = "numpy") -> np.ndarray:
    """Standard normals of rows ``row0 .. row0 + n_rows - 1``, ``d`` components each.

    Parameters
    ----------
    key : array of two uint32
        The chain's key (:func:`chain_key`).
    stream : int
        Which draw (:data:`STREAMS`), 0..255.
    sweep : int
        The chain's sweep counter, 0 .. 2**64 - 1.
    n_rows, d : int
        Shape of the result.
    row0 : int
        First row: any split of the rows into ranges gives the same numbers.
    backend : {"numpy", "numba"}
        Compiled (threaded over rows) or vectorised NumPy.

    Returns
    -------
    ndarray, shape (n_rows, d)
    """
    if not 0 <= stream < 256 or d >= 2**25 or row0 < 0 or row0 + n_rows > 2**32:
        raise ValueError("counter out of range: stream < 256, d < 2**25, rows < 2**32")
    if backend == "numba" and HAVE_NUMBA:
        out = np.empty((n_rows, d))
        _normals_numba(np.uint64(key[0]), np.uint64(key[1]), np.uint64(stream), np.uint64(sweep),
                       np.uint64(row0), out)
        return out
    return _normals_numpy(key, int(stream), int(sweep), int(row0), int(n_rows), int(d))
