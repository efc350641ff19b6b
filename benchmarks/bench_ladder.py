"""The approximation ladder on MovieLens u1 (rank 10, seed 0): MAP speed, then fidelity to Gibbs.

    python benchmarks/bench_ladder.py                      # MAP cold/warm, then the ladder vs gibbs
    python benchmarks/bench_ladder.py --map-only
    python benchmarks/bench_ladder.py --out results/ladder  # also the report with the fidelity table

Part 1 fits ``PMF(method="map", priors="bpmf")`` several times in one process: the first fit is
*cold* (imports, first PyMC model build), the later ones *warm*.  Part 2 runs
``bayes-mf compare --data ml-100k --fold 1 --methods map,laplace,pathfinder,advi --reference gibbs``
and prints the comparison and fidelity tables (about ten minutes on two cores; Gibbs samples
until converged).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

# this checkout, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench_map(repeats: int = 4) -> None:
    import bayes_mf as bmf
    from bayes_mf.data import UnseenIdsWarning
    from bayes_mf.evaluate import score

    train, test = bmf.datasets.movielens_fold("100k", 1)
    times, cpu, rmse = [], [], None
    for _ in range(repeats):
        tic, cpu0 = time.perf_counter(), time.process_time()
        est = bmf.PMF(n_factors=10, priors="bpmf", method="map", random_seed=0).fit(train)
        times.append(time.perf_counter() - tic)
        cpu.append(time.process_time() - cpu0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnseenIdsWarning)
            rmse = score(est.predict(test))["rmse"]
    steps = ", ".join(f"{k} {v:.2f}" for k, v in est.map_timing_.items())
    # CPU seconds as well: on a shared machine the wall time depends on the other jobs
    print(f"MAP u1 rank 10: cold {times[0]:.2f} s, warm {statistics.median(times[1:]):.2f} s "
          f"(median of {repeats - 1}; CPU {cpu[0]:.2f} / {statistics.median(cpu[1:]):.2f} s; last: {steps}), "
          f"test RMSE {rmse:.4f}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--map-only", action="store_true")
    p.add_argument("--methods", default="map,laplace,pathfinder,advi")
    p.add_argument("--json", default="ladder.json")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    bench_map()
    if args.map_only:
        return 0
    from bayes_mf.cli import main as cli

    cmd = ["compare", "--data", "ml-100k", "--fold", "1", "--methods", args.methods, "--reference", "gibbs",
           "--json", args.json]
    if args.out:
        cmd += ["--out", args.out]
    return cli(cmd)


if __name__ == "__main__":
    sys.exit(main())
