"""Where the chains run: in this process, or in worker processes kept for the whole fit.

Every chain draws from its own generator (child ``c`` of
``SeedSequence(random_seed)``), and its state travels with it between rounds,
so the numbers do not depend on where or in which order the chains run.
"""

from __future__ import annotations

import ast
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .chain import _pool_chain, _Settings, run_chain

logger = logging.getLogger("bayes_mf")

_PARALLEL_MIN_WORK = 5e7  # rating-sweeps per chain above which cores=None uses worker processes
# ratings above which a run-until-converged fit uses worker processes: its rounds last long enough
_PARALLEL_MIN_RATINGS = 5_000


def n_processes(chains: int, cores: int | None, n_obs: int, implicit_sides: int, plan,
                threads: int = 1) -> int:
    """How many processes run the chains: ``cores`` if given, else as many as pay for their start.

    With ``cores=None`` each process counts for its ``threads`` threads, so
    that processes x threads stays within the machine's cores.
    """
    chains = int(chains)
    if cores is not None:
        return min(int(cores), chains)
    sweeps = plan.burn_in + (plan.n_samples * plan.thin if plan.n_samples is not None else plan.first)
    if plan.n_samples is not None and n_obs * sweeps * (1 + implicit_sides) < _PARALLEL_MIN_WORK:
        # a worker process costs ~2-3 s to start (imports); small fits finish sooner in-process
        return 1
    if plan.n_samples is None and n_obs < _PARALLEL_MIN_RATINGS:
        return 1
    return max(1, min(chains, (os.cpu_count() or 1) // max(1, int(threads))))


class MainGuardWarning(UserWarning):
    """Chains ran in this process: the calling script lacks ``if __name__ == "__main__":``."""


def _is_main_test(test) -> bool:
    """Whether an ``if`` test reads ``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def unguarded_main_script() -> str | None:
    """The main script's path when this call comes from its top level outside a main guard.

    Worker processes started by ``spawn`` or ``forkserver`` import the main
    script again; code at its top level outside ``if __name__ == "__main__":``
    then runs once more in every worker (a fit starting fits).  Interactive
    sessions and ``python -c`` have no script file and are never flagged.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path:
        return None
    line = None
    frame = sys._getframe(1)
    while frame is not None:
        # the outermost frame running the script's own top-level code
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            line = frame.f_lineno
        frame = frame.f_back
    if line is None:
        return None
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None  # cannot tell: keep the user's choice of processes
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.lineno <= line <= node.end_lineno:
            return None
    return str(path)


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
            script = unguarded_main_script()
            if script is not None:
                # every worker would re-run the script's top level: run the chains here instead
                warnings.warn(
                    f"{script} calls the fit outside `if __name__ == \"__main__\":`; worker processes "
                    "would re-import it and run its top level again, so the chains run in this process "
                    f"(cores=1 instead of {self.cores}). Put the script's work under the guard to use "
                    "several cores.", MainGuardWarning, stacklevel=4)
                self.cores = 1
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
    # int32 codes (as GibbsPMF passes them), neither side sorted: the grouping kernel compiles too
    user = np.array([0, 1, 0], dtype=np.int32)
    item = np.array([1, 1, 0], dtype=np.int32)
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
