"""The Dask backend of the Gibbs sampler: ratings partitioned across ``dask.distributed`` workers.

``GibbsPMF(backend="dask", client=...)`` splits the rows of each side (users,
items) into one contiguous range per worker, about equal in ratings, and
scatters each range's CSR slice (``indptr``, ``cols``, ``vals``) to its
worker once per fit, where it stays.  Each half-sweep then broadcasts the
other side's effective rows (``n x d`` floats, small next to the ratings)
and a few scalars, runs the compiled side-step kernel of
:mod:`~bayes_mf.gibbs.kernels` on every partition, and gathers the new rows.
The residual sums (step 4) and the per-row sums of the bias-scale move are
computed the same way.  Hyper-parameters, the moves and ``mu``/``tau`` are
drawn on the client from the chain's generator, as in one process.

Same numbers as the single-process sampler (``backend="numba"``) for the
same seed: a row's draw depends only on its ratings, the broadcast rows and
its counter-based normals, keyed by its global row index
(:mod:`~bayes_mf.gibbs.counter`), never on the partition; the totals over
rows are summed on the client, in row order, on one thread -- the same
additions in the same order as in one process.

Feature vectors (implicit feedback, side features): their steps run
sequentially over the features and need every row's likelihood precision
G_i (d x d) and shift h_i, so the workers send those back with the rows and
the feature steps run on the client -- n d^2 floats gathered per half-sweep
(1.6 MB for MovieLens 100K's items at rank 10), the same numbers again.
Not yet: time effects and the ordinal likelihood (refused); chains run one
after another on the cluster.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import kernels
from .chain import SIDES, Sweeper, run_chain
from .counter import STREAMS, normals

__all__ = ["DaskRunner", "DaskSweeper", "resolve_client"]


@dataclasses.dataclass
class _Part:
    """One worker's contiguous range of rows of one side: rows ``row0 ..`` in CSR, ``indptr`` from 0."""

    row0: int
    indptr: np.ndarray
    cols: np.ndarray
    vals: np.ndarray

    @property
    def n_rows(self) -> int:
        return self.indptr.shape[0] - 1


def resolve_client(client):
    """The :class:`distributed.Client` to use, and whether this call opened it (then close it after).

    Parameters
    ----------
    client : None, str or distributed.Client
        ``None``: the default client of this process (``distributed.get_client``);
        a string: a scheduler address (``"tcp://host:8786"``), connected to here;
        a client: used as it is.

    Returns
    -------
    (distributed.Client, bool)
    """
    try:
        from distributed import Client, get_client
    except ImportError as exc:
        raise ImportError("backend='dask' needs dask.distributed: pip install 'bayes_mf[dask]' "
                          "(or 'dask[distributed]')") from exc
    if client is None:
        try:
            return get_client(), False
        except ValueError:
            raise ValueError("backend='dask' found no Dask client: pass client=<distributed.Client or "
                             "scheduler address>, or create a Client (e.g. on a LocalCluster) "
                             "before fitting") from None
    if isinstance(client, str):
        return Client(client, set_as_default=False), True
    if isinstance(client, Client):
        return client, False
    raise ValueError(f"client must be None, a scheduler address or a distributed.Client, "
                     f"got {type(client).__name__}")


def _bounds(indptr: np.ndarray, n_parts: int) -> list[tuple[int, int]]:
    """Contiguous row ranges about equal in ratings, ``min(n_parts, n_rows)`` of them, none empty of rows."""
    n_rows = indptr.shape[0] - 1
    want = min(n_parts, n_rows)
    # each cut at the last row boundary at or before an equal share of the ratings
    cuts = np.searchsorted(indptr, np.linspace(0, indptr[-1], want + 1)[1:-1], side="right") - 1
    edges = np.unique(np.r_[0, np.clip(cuts, 0, n_rows), n_rows])
    if edges.size - 1 < want:  # a few rows hold most ratings: split by rows, so every worker takes part
        edges = np.unique(np.linspace(0, n_rows, want + 1).astype(np.int64))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


# ----------------------------------------------------------------- worker tasks (top level: picklable)
def _side_task(part: _Part, other_F, other_b, mu, use_bias, P, m, tau, key, stream, sweep, threads,
               current, alpha, store):
    """One partition's side step (kernels._side_step_numba); returns (ok, new rows, G, h).

    ``m`` is the prior mean of every row (one d-vector) or of each row
    (all rows, ``n x d``: with feature vectors).  With ``store`` the rows'
    likelihood precisions G and shifts h come back too (the feature steps on
    the client need them); otherwise G and h are None.
    """
    d = other_F.shape[1] + use_bias
    n = part.n_rows
    pm = np.empty((n, d))
    pm[:] = m[part.row0:part.row0 + n] if np.ndim(m) == 2 else m
    # the normals of these rows by their global index: the numbers the single process draws for them
    z = normals(key, stream, sweep, n, d, row0=part.row0, backend="numba")
    out = np.array(current[part.row0:part.row0 + n], dtype=np.float64)  # the over-relaxation reads them
    G, h = (np.empty((n, d, d)), np.empty((n, d))) if store else (np.empty((1, 1, 1)), np.empty((1, 1)))
    with kernels.numba_threads(threads):
        ok = kernels._side_step_numba(part.indptr, part.cols, part.vals, other_F, other_b, mu, use_bias, P,
                                      pm, tau, z, out, store, G, h, alpha)
    return (bool(ok), out, G, h) if store else (bool(ok), out, None, None)


def _residual_task(part: _Part, F_row, F_col, b_row, b_col, mu, use_bias, threads):
    """One partition's per-row residual sums and sums of squares (kernels._residual_rows)."""
    r0, n = part.row0, part.n_rows
    s1, s2 = np.empty(n), np.empty(n)
    with kernels.numba_threads(threads):
        kernels._residual_rows(part.indptr, part.cols, part.vals, mu, np.ascontiguousarray(F_row[r0:r0 + n]),
                               F_col, np.ascontiguousarray(b_row[r0:r0 + n]), b_col, use_bias, s1, s2,
                               kernels.row_chunks(part.indptr))
    return s1, s2


def _gather_task(part: _Part, b, threads):
    """Per row of the partition: the sum of ``b`` over the other side's rows it has ratings with."""
    out = np.empty(part.n_rows)
    with kernels.numba_threads(threads):
        kernels._gather_sum(part.indptr, part.cols, b, out, kernels.row_chunks(part.indptr))
    return out


class DaskSweeper(Sweeper):
    """A :class:`~bayes_mf.gibbs.chain.Sweeper` whose passes over the ratings run on Dask workers.

    Parameters
    ----------
    problem : dict
        The problem arrays (as :class:`~bayes_mf.gibbs.GibbsPMF` builds them).
    st : _Settings
        The chain settings; ``st.threads`` is the threads per task on a worker.
    client : distributed.Client
        A connected client; its workers at construction hold the partitions.
    """

    def __init__(self, problem: dict, st, client):
        if not kernels.HAVE_NUMBA:
            raise ValueError("backend='dask' runs the compiled kernels on the workers: install numba")
        # the client-side parts (noise, hyper-parameters, moves) are those of the compiled backend
        super().__init__(problem, dataclasses.replace(st, backend="numba"))
        self.client = client
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise ValueError("the Dask cluster has no workers")
        self.threads = int(st.threads or 1)
        self.parts = {}
        for side in SIDES:
            by = self.by[side]
            placed = []
            # fewer ranges than workers when rows are few: the extra workers get none
            for w, (a, b) in zip(workers, _bounds(by.indptr, len(workers)), strict=False):
                lo, hi = int(by.indptr[a]), int(by.indptr[b])
                part = _Part(a, by.indptr[a:b + 1] - lo, by.cols[lo:hi].copy(), by.vals[lo:hi].copy())
                # pinned to one worker: the ratings never move again during the fit
                placed.append((w, (a, b), client.scatter(part, workers=[w], hash=False)))
            self.parts[side] = placed
        self.by = None  # the ratings now live on the workers

    def _map(self, side: str, fn, *args) -> list:
        """``fn(part, *args)`` on every partition of ``side``, each on its worker; results in row order."""
        futures = [self.client.submit(fn, part, *args, workers=[w], allow_other_workers=False, pure=False)
                   for w, _, part in self.parts[side]]
        return self.client.gather(futures)

    def _broadcast(self, *arrays) -> list:
        return [self.client.scatter(np.ascontiguousarray(a), broadcast=True, hash=False) for a in arrays]

    def side_step(self, s, side: str) -> np.ndarray:
        """Draw one side's rows on the workers (step 1), then its feature vectors here; the own parts."""
        other = s.X["item" if side == "user" else "user"]
        k, f = self.k, self.feats[side]
        P, m = self._prior(s, side)
        other_b = other[:, k] if self.ub else np.zeros(other.shape[0])
        # with feature vectors each row has its own prior mean, broadcast like the rows
        F, b, cur, M = self._broadcast(other[:, :k], other_b, s.X[side],
                                       m if f is None else self._prior_rows(s, side, m))
        results = self._map(side, _side_task, F, b, s.mu, self.ub, P, M, s.tau, s.key, STREAMS[side],
                            s.sweep, self.threads, cur, -self.st.overrelax, f is not None)
        X = s.X[side]
        for (_, (r0, r1), _), (ok, rows, G, h) in zip(self.parts[side], results, strict=True):
            if not ok:
                raise FloatingPointError(f"non positive-definite {side} precision matrix")
            X[r0:r1] = rows
            if f is not None:
                self.G_store[side][r0:r1] = G
                self.h_store[side][r0:r1] = h
        return X.copy() if f is None else self._feature_steps(s, side, P, m)

    def _residuals(self, mu: float, Uf, Vf, bu, bv) -> tuple[float, float]:
        """Per-row residual sums on the workers; the totals here, in user order (as in one process)."""
        bu = bu if self.ub else np.zeros(Uf.shape[0])
        bv = bv if self.ub else np.zeros(Vf.shape[0])
        Uf_, Vf_, bu_, bv_ = self._broadcast(Uf, Vf, bu, bv)
        sq = {}
        for side, args in (("user", (Uf_, Vf_, bu_, bv_)), ("item", (Vf_, Uf_, bv_, bu_))):
            parts = self._map(side, _residual_task, *args, mu, self.ub, self.threads)
            self.resid[side][:] = np.concatenate([p[0] for p in parts])
            sq[side] = np.concatenate([p[1] for p in parts])
        return kernels._ordered_sum(self.resid["user"]), kernels._ordered_sum(sq["user"])

    def _rated_sum(self, side: str, b: np.ndarray) -> np.ndarray:
        (b_,) = self._broadcast(b)
        return np.concatenate(self._map(side, _gather_task, b_, self.threads))

    def close(self) -> None:
        """Release the partitions on the workers."""
        for side in SIDES:
            self.client.cancel([part for _, _, part in self.parts.get(side, ())])
        self.parts = {}


class DaskRunner:
    """Runs rounds of the chains on a Dask cluster, one chain after another (as ``ChainRunner``).

    A context manager: the partitions are scattered on entry and released
    on exit (and a client opened from an address is closed).
    """

    def __init__(self, problem: dict, st, client, progressbar: bool):
        self.problem, self.st, self.client_arg, self.progressbar = problem, st, client, progressbar
        self.sweeper = None
        self._own = False

    def __enter__(self):
        client, self._own = resolve_client(self.client_arg)
        try:
            self.sweeper = DaskSweeper(self.problem, self.st, client)
        except BaseException:
            if self._own:
                client.close()
            raise
        return self

    def __exit__(self, *exc):
        client = self.sweeper.client
        try:
            self.sweeper.close()
        finally:
            if self._own:
                client.close()
        return False

    def run(self, states: list, n_sweeps: int, **kw) -> list:
        """One round: ``n_sweeps`` sweeps of every chain; returns ``[(state, draws), ...]``."""
        return [run_chain(self.problem, self.sweeper.st, s, n_sweeps, sweeper=self.sweeper,
                          progress=f"chain {c}" if self.progressbar else None, **kw)
                for c, s in enumerate(states)]
