"""Seconds per Gibbs sweep and peak memory on synthetic data of MovieLens-10M shape.

    python benchmarks/bench_gibbs_scale.py                      # 1M and 10M ratings
    python benchmarks/bench_gibbs_scale.py --sizes 1e6,1e7 --sweeps 5

Ratings are simulated from the PMF model (``simulate_pmf``, rank 10, biases)
on a 70 000 users x 10 700 items grid, at each requested number of ratings.
Every size runs in fresh processes, one thread:

1. a generator process simulates the ratings and saves them (``.npz``, cached
   in ``--workdir``, so a re-run skips this slow step);
2. a measuring process loads them, records its resident memory, fits
   ``GibbsPMF(prior="bpmf", biases=True, chains=1, store_factors=False)`` for
   ``--sweeps`` sweeps and reports the mean time of a sweep (sampling loop
   only; numba compile/cache load and the set-up of the index arrays are
   reported apart) and the process's peak resident set size
   (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), which counts the loaded
   data, the index arrays and every kernel buffer (numba allocations included).

The scaling column divides seconds per sweep by millions of ratings: constant
means linear cost in the number of ratings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ENV_ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                   "NUMBA_NUM_THREADS")}

GENERATE = r"""
import sys, numpy as np
from bayes_mf.datasets import simulate_pmf
n_users, n_items, n_obs, path = int(sys.argv[1]), int(sys.argv[2]), int(float(sys.argv[3])), sys.argv[4]
sim = simulate_pmf(n_users, n_items, 10, density=n_obs / (n_users * n_items), noise_sd=0.8,
                   sigma_u=0.3, sigma_v=0.3, global_mean=3.5, bias_sd=0.4, random_seed=0)
r = sim.ratings
np.savez(path, user=r.user, item=r.item, rating=r.rating, n_users=n_users, n_items=n_items)
"""

MEASURE = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
t0 = time.perf_counter()
from bayes_mf.data import Ratings
from bayes_mf import gibbs
compile_s = gibbs._warm_up() if gibbs.HAVE_NUMBA else 0.0
import arviz  # noqa: F401  (result building imports it; keep that out of the fit time)
with np.load(sys.argv[1]) as f:
    r = Ratings(f["user"], f["item"], f["rating"], pd.RangeIndex(int(f["n_users"])),
                pd.RangeIndex(int(f["n_items"])))
rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
sweeps = int(sys.argv[2])
m = gibbs.GibbsPMF(10, prior="bpmf", biases=True, chains=1, cores=1, draws=sweeps, tune=0,
                   store_factors=False, n_check=50, random_seed=0)
t1 = time.perf_counter()
m.fit(r)
fit_s = time.perf_counter() - t1
print(json.dumps({"n_obs": len(r), "n_users": r.n_users, "n_items": r.n_items, "sweeps": sweeps,
                  "sweep_s": m.sweep_seconds_, "fit_s": fit_s,
                  "setup_s": fit_s - m.sweep_seconds_ * sweeps, "compile_s": compile_s,
                  "backend": m.result_.attrs["backend"],
                  "rss_loaded_mb": rss_loaded,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "train_rmse": float(m.result_["sample_stats"]["train_rmse"][0, -1])}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e6,1e7", help="numbers of ratings (comma separated)")
    ap.add_argument("--users", type=int, default=70_000)
    ap.add_argument("--items", type=int, default=10_700)
    ap.add_argument("--sweeps", type=int, default=5)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bayes_mf_bench_scale"))
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **ENV_ONE_THREAD}
    rows = []
    for size in [float(s) for s in args.sizes.split(",") if s]:
        path = work / f"pmf_{args.users}x{args.items}_{int(size)}.npz"
        if not path.exists():
            print(f"simulating {int(size):,} ratings -> {path} ...", flush=True)
            subprocess.run([sys.executable, "-c", GENERATE, str(args.users), str(args.items), str(size),
                            str(path)], check=True, env=env)
        out = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(args.sweeps)], check=True,
                             env=env, capture_output=True, text=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(res)
        print(json.dumps(res), flush=True)
    print(f"\nSCALE  rank 10, BPMF + biases, one chain, one thread, {args.sweeps} sweeps per size")
    print(f"{'ratings':>11s} {'users':>7s} {'items':>7s} {'s/sweep':>8s} {'s/sweep/M':>10s} "
          f"{'setup s':>8s} {'compile s':>9s} {'RSS data MB':>11s} {'peak RSS MB':>11s} {'backend':>8s}")
    for r in rows:
        print(f"{r['n_obs']:11,d} {r['n_users']:7d} {r['n_items']:7d} {r['sweep_s']:8.3f} "
              f"{r['sweep_s'] / (r['n_obs'] / 1e6):10.3f} {r['setup_s']:8.2f} {r['compile_s']:9.2f} "
              f"{r['rss_loaded_mb']:11.0f} {r['peak_rss_mb']:11.0f} {r['backend']:>8s}")


if __name__ == "__main__":
    main()
