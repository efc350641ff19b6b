"""Where the chains run: in this process, or in worker processes kept for the whole fit.

Every chain draws from its own generator (child ``c`` of
``SeedSequence(random_seed)``), and its state travels with it between rounds,
so the numbers do not depend on where or in which order the chains run.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np

from .chain import _pool_chain, _Settings, run_chain

logger = logging.getLogger("bayes_mf")


class ChainRunner:
    """Runs a round of every chain, in-process (``cores=1``) or in a process pool.

    Use as a context manager: the pool (worker start-up costs seconds) lives
    for the whole fit, across rounds.
    """

    def __init__(self, problem: dict, st: _Settings, cores: int, progressbar: bool):
        self.problem, self.st, self.cores, self.progressbar = problem, st, cores, progressbar
        self._pool = None
        self._method = None

    def __enter__(self):
        if self.cores > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(max_workers=self.cores, mp_context=mp.get_context(self._method))
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        return False

    def run(self, states: list, n_sweeps: int, **kw) -> list:
        """One round: ``n_sweeps`` sweeps of every chain; returns ``[(state, draws), ...]``."""
        if self._pool is None:
            return [run_chain(self.problem, self.st, s, n_sweeps,
                              progress=f"chain {c}" if self.progressbar else None, **kw)
                    for c, s in enumerate(states)]
        from concurrent.futures.process import BrokenProcessPool

        jobs = [(self.problem, self.st, s, n_sweeps, kw) for s in states]
        try:
            futures = [self._pool.submit(_pool_chain, job) for job in jobs]
            bar = None
            if self.progressbar:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(jobs), desc="chains", leave=False)
            results = []
            for fut in futures:
                results.append(fut.result())
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
        except BrokenProcessPool as exc:
            raise RuntimeError(
                f"a chain worker process died ({self._method} start method). When fitting from a script, "
                "put the code under `if __name__ == '__main__':` (worker processes re-import the main "
                "module), or pass cores=1 to run the chains in this process."
            ) from exc
        return results


_WARM = {"done": False, "seconds": 0.0}


def _warm_up() -> float:
    """Compile (or load from the on-disk cache) every numba kernel once per process.

    Returns the seconds it took in this call (0 once warm), reported as
    ``compile_seconds_`` so that benchmarks can separate it from sampling.
    """
    from .layout import _implicit_matrix

    if _WARM["done"]:
        return 0.0
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    user = np.array([0, 0, 1], dtype=np.int64)
    item = np.array([0, 1, 1], dtype=np.int64)
    rating = rng.standard_normal(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for use_bias, feat in ((1, True), (0, False)):
            problem = {"user": user, "item": item, "rating": rating, "n_users": 2, "n_items": 2,
                       "check_user": user[:1], "check_item": item[:1],
                       "user_features": (_implicit_matrix(user, item, 2, 2), np.zeros(2, np.int64))
                       if feat else None, "item_features": None}
            st = _Settings(2, "adaptive", bool(use_bias), True, None, 1.0, 1.0, 1.0, (1.0, 1.0), 0.1,
                           "numba", False)
            run_chain(problem, st, 0, 1)
    _WARM["done"] = True
    _WARM["seconds"] = time.perf_counter() - t0
    return _WARM["seconds"]
