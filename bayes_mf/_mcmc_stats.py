r"""Rank-normalised split R-hat, bulk/tail ESS and MCSE for many quantities at once.

These are ArviZ's estimators (Vehtari et al. 2021, as implemented in
``arviz_stats.base.diagnostics``), computed on an array of shape
``(chain, draw, n)`` with every step vectorised over the ``n`` quantities.
ArviZ applies its scalar functions once per quantity; on the ~2 800
identifiable quantities of a MovieLens fit (every bias, ``pred_check``) and
4 000 draws that takes 10-15 s, paid after every round of a
run-until-converged Gibbs fit.  Here the same numbers (equal to ArviZ's up
to rounding; a test compares them) take well under a second.

Only what :func:`bayes_mf.diagnostics.convergence_table` needs is here;
everything else comes from ArviZ itself.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import fft, special

__all__ = ["diagnose", "diagnose_chunked", "rhat_rank", "ess_bulk", "ess_tail", "mcse_mean"]

#: quantities per block of :func:`diagnose_chunked`: fixed, so the numbers never depend on the threads
CHUNK = 256


def diagnose_chunked(x: np.ndarray, prob: float = 0.05, *, workers: int | None = None) -> dict:
    """:func:`diagnose` over blocks of :data:`CHUNK` quantities, the blocks on ``workers`` threads.

    Every quantity's diagnostics depend on its own draws only, so blocking
    changes nothing but speed: a block's working arrays stay in cache (~1.3x
    on one thread for 2 700 quantities x 4 000 draws) and NumPy's sorts and
    SciPy's FFTs release the GIL, so the blocks run in parallel (~2x more on
    2 cores).  The block boundaries are fixed, never derived from
    ``workers``, so the numbers are the same on any number of threads.
    ``workers`` defaults to the machine's cores.
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[2]
    if n <= CHUNK:
        return diagnose(x, prob)
    blocks = [slice(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    workers = max(1, min(len(blocks), int(workers or os.cpu_count() or 1)))

    def one(b):
        return diagnose(x[:, :, b], prob)

    if workers == 1:
        parts = [one(b) for b in blocks]
    else:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(one, blocks))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def diagnose(x: np.ndarray, prob: float = 0.05) -> dict:
    """All four diagnostics of a ``(chain, draw, n)`` array, sharing the rank normalisation.

    Returns a dict of ``(n,)`` arrays: ``rhat`` (rank-normalised split, max of
    bulk and folded), ``ess_bulk``, ``ess_tail`` (quantiles ``prob`` and
    ``1 - prob``) and ``mcse_mean``.
    """
    x = np.asarray(x, dtype=float)
    s = _split(x)
    # the pooled ranks do not depend on how the draws are split into chains
    z = _z_scale(s)
    med = np.median(s.reshape(-1, s.shape[2]), axis=0)
    rhat = np.maximum(_rhat(z), _rhat(_z_scale(np.abs(s - med))))
    return {"rhat": rhat, "ess_bulk": _ess(z), "ess_tail": ess_tail(x, prob), "mcse_mean": mcse_mean(x)}


def _split(x: np.ndarray) -> np.ndarray:
    """(C, D, n) -> (2C, D // 2, n): first and last halves of every chain as chains."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def _ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) along the last axis of a 2-d array, as ``scipy.stats.rankdata``.

    Ties get the mean of the positions they span; they are the rule, not the
    exception, for folded draws (the two draws either side of an even-count
    median are equally far from it).
    """
    rows, size = a.shape
    order = np.argsort(a, axis=1)
    srt = np.take_along_axis(a, order, axis=1)
    new = np.ones((rows, size), dtype=bool)
    new[:, 1:] = srt[:, 1:] != srt[:, :-1]
    last = np.ones((rows, size), dtype=bool)
    last[:, :-1] = new[:, 1:]
    idx = np.broadcast_to(np.arange(size), (rows, size))
    first_pos = np.maximum.accumulate(np.where(new, idx, 0), axis=1)
    last_pos = size - 1 - np.maximum.accumulate(np.where(last[:, ::-1], idx, 0), axis=1)[:, ::-1]
    ranks = np.empty((rows, size))
    np.put_along_axis(ranks, order, 0.5 * (first_pos + last_pos) + 1.0, axis=1)
    return ranks


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks (Blom's offset 3/8), per quantity."""
    c, d, n = x.shape
    size = c * d
    ranks = _ranks(np.ascontiguousarray(x.reshape(size, n).T))
    return special.ndtri((ranks - 0.375) / (size - 0.75 + 1.0)).T.reshape(c, d, n)


def _rhat(x: np.ndarray) -> np.ndarray:
    d = x.shape[1]
    between = d * np.var(x.mean(axis=1), axis=0, ddof=1)
    within = np.mean(np.var(x, axis=1, ddof=1), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant quantity: nan, as in ArviZ
        return np.sqrt((between / within + d - 1) / d)


def rhat_rank(x: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat (max of bulk and folded), shape ``(n,)``."""
    s = _split(np.asarray(x, dtype=float))
    med = np.median(s.reshape(-1, s.shape[2]), axis=0)
    return np.maximum(_rhat(_z_scale(s)), _rhat(_z_scale(np.abs(s - med))))


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance at every lag (last axis), by FFT."""
    d = x.shape[-1]
    m = fft.next_fast_len(2 * d)
    y = x - x.mean(axis=-1, keepdims=True)
    f = fft.rfft(y, n=m, axis=-1)
    return fft.irfft(f * np.conjugate(f), n=m, axis=-1)[..., :d] / d


def _ess(x: np.ndarray) -> np.ndarray:
    """ESS of each quantity of a (chains, draws, n) array: Geyer's initial monotone sequence."""
    c, d, n = x.shape
    # FFT along contiguous draws
    acov = _autocov(np.ascontiguousarray(np.moveaxis(x, 2, 0)))  # (n, c, d)
    mean_acov = np.ascontiguousarray(acov.mean(axis=1).T)  # (d, n)
    mean_var = mean_acov[0] * d / (d - 1.0)
    var_plus = mean_var * (d - 1.0) / d
    if c > 1:
        var_plus = var_plus + np.var(x.mean(axis=1), axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.zeros((d, n))
        rho[0] = 1.0
        even = np.ones(n)
        odd = 1.0 - (mean_var - mean_acov[1]) / var_plus
        rho[1] = odd
        # Geyer's initial positive sequence: pairs of autocorrelations while their sum is positive
        t_end = np.ones(n, dtype=int)
        active = (even + odd) > 0.0
        t = 1
        while t < d - 3 and active.any():
            e = 1.0 - (mean_var - mean_acov[t + 1]) / var_plus
            o = 1.0 - (mean_var - mean_acov[t + 2]) / var_plus
            keep = active & (e + o >= 0)
            rho[t + 1, keep] = e[keep]
            rho[t + 2, keep] = o[keep]
            even = np.where(active, e, even)
            odd = np.where(active, o, odd)
            t_end[active] = t + 2
            active &= (even + odd) > 0.0
            t += 2
        max_t = t_end - 2
        cols = np.arange(n)
        fix = even > 0
        rho[(max_t + 1)[fix], cols[fix]] = even[fix]
        # Geyer's initial monotone sequence
        t = 1
        while t <= max_t.max() - 2:
            on = t <= max_t - 2
            later = rho[t + 1] + rho[t + 2]
            earlier = rho[t - 1] + rho[t]
            dec = on & (later > earlier)
            rho[t + 1, dec] = earlier[dec] / 2.0
            rho[t + 2, dec] = rho[t + 1, dec]
            t += 2
        csum = np.cumsum(rho, axis=0)
        head = np.where(max_t >= 0, csum[np.clip(max_t, 0, d - 1), cols], 0.0)
        nxt = max_t + 1
        tail = np.where(nxt < d, rho[np.clip(nxt, 0, d - 1), cols], 0.0)
        size = c * d
        tau = np.maximum(-1.0 + 2.0 * head + tail, 1.0 / np.log10(size))
        ess = size / tau
    ess[np.isnan(rho).any(axis=0)] = np.nan
    constant = (x.max(axis=(0, 1)) - x.min(axis=(0, 1))) < np.finfo(float).resolution
    ess[constant] = size
    return ess


def ess_bulk(x: np.ndarray) -> np.ndarray:
    """Bulk ESS: ESS of the rank-normalised split chains, shape ``(n,)``."""
    return _ess(_z_scale(_split(np.asarray(x, dtype=float))))


def ess_tail(x: np.ndarray, prob: float = 0.05) -> np.ndarray:
    """Tail ESS: the smaller ESS of the indicators of the ``prob`` and ``1 - prob`` quantiles."""
    x = np.asarray(x, dtype=float)
    n = x.shape[2]
    flat = x.reshape(-1, n)
    out = None
    for p in sorted((prob, 1.0 - prob)):
        q = np.quantile(flat, p, axis=0)
        e = _ess(_split((x <= q).astype(float)))
        out = e if out is None else np.minimum(out, e)
    return out


def mcse_mean(x: np.ndarray) -> np.ndarray:
    """Monte Carlo standard error of the mean: sd / sqrt(ESS of the split chains)."""
    x = np.asarray(x, dtype=float)
    sd = np.std(x.reshape(-1, x.shape[2]), axis=0, ddof=1)
    return sd / np.sqrt(_ess(_split(x)))
