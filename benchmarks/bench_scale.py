"""Seconds per Gibbs sweep by threads, and peak memory, at 1 M to 100 M synthetic ratings (issue 15).

    python benchmarks/bench_scale.py                          # 1M, 10M, 100M; 1 and 2 threads
    python benchmarks/bench_scale.py --sizes 1e7 --threads 1,2 --sweeps 5
    python benchmarks/bench_scale.py --sizes 1e6 --dask       # + the Dask backend, 2-worker LocalCluster

Data: :func:`bayes_mf.datasets.synthetic` with the Netflix prize proportions
scaled to each size (users and items both x sqrt(size / 100,480,507), so 1e8
is about the Netflix shape, 479k x 17.7k), rank-10 true factors, 1-5 stars.
Each size is generated once in its own process and cached as ``.npy`` files
in ``--workdir`` (the generator's own peak memory is printed as well).

Measuring: one fresh process per size builds the problem with the
estimator's own code (``GibbsPMF._problem`` / ``_settings``, rank 10, BPMF +
biases + moves, the numba backend), then times sweeps straight through the
:class:`~bayes_mf.gibbs.chain.Sweeper` -- no convergence rounds, no result
building.  After one warm-up sweep per thread count, the thread counts take
turns sweep by sweep on the same chain (the draws do not depend on the
thread count, so it is one chain), so that a change of machine load hits
every thread count alike; the table gives the median seconds per sweep, and the median CPU seconds of
the process per sweep (all its threads): on a machine shared with other
work, ``s/sweep`` of several threads only falls to ``cpu s/sweep`` divided
by the threads when that many cores are free.
Then, from one copy of the state, one sweep on each thread count checks
that the draws are bit-identical.  Peak memory is the measuring process's
peak resident set (``ru_maxrss``): data, layouts, every kernel buffer.

``s/sweep/M`` (seconds per sweep per million ratings) staying flat across
sizes means linear cost.

``--dask`` adds the Dask backend (``GibbsPMF(backend="dask")``,
:mod:`bayes_mf.gibbs.distributed`) on a ``LocalCluster`` of 2 worker
processes with 1 thread each, started in the measuring process before the
timed loop: its :class:`~bayes_mf.gibbs.distributed.DaskSweeper` takes its
turn on the same chain beside the thread counts (its draws are the same),
and its sweep from the copy of the state joins the bit-identity check.
``dask setup s`` is the scatter of the partitions; its cpu column is ``-``
(the work runs in the worker processes), and the peak RSS is the measuring
(client) process's only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

NETFLIX_USERS, NETFLIX_ITEMS, NETFLIX_RATINGS = 480_189, 17_770, 100_480_507
# BLAS threads would blur the comparison (the sampler's threads are numba's)
ENV = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}

GENERATE = r"""
import json, resource, sys, time
import numpy as np
from bayes_mf.datasets import synthetic
n_users, n_items, n_obs, stem = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
r = synthetic(n_users, n_items, n_obs, n_factors=10, random_seed=0).ratings
for name in ("user", "item", "rating"):
    np.save(f"{stem}_{name}.npy", getattr(r, name))
print(json.dumps({"gen_s": time.perf_counter() - t0,
                  "gen_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

MEASURE = r"""
import copy, json, resource, sys, time
import numpy as np, pandas as pd
from bayes_mf.data import Ratings
from bayes_mf.gibbs import GibbsPMF, _warm_up
from bayes_mf.gibbs.chain import Sweeper, initial_state

stem, n_users, n_items, sweeps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
threads = [int(t) for t in sys.argv[5].split(",")]
use_dask = sys.argv[6] == "1"
compile_s = _warm_up()
arrays = {name: np.load(f"{stem}_{name}.npy") for name in ("user", "item", "rating")}
r = Ratings(arrays["user"], arrays["item"], arrays["rating"], pd.RangeIndex(n_users), pd.RangeIndex(n_items),
            (1.0, 5.0))
del arrays
rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
m = GibbsPMF(10, prior="bpmf", biases=True, backend="numba", store_factors=False, random_seed=0,
             rating_unit=1.0)
m.rating_unit_ = 1.0
m._side_features = {"user": None, "item": None}
m._draws, m._tune = m._lengths()
m._check_params()
problem, _ = m._problem(r)
st = m._settings("numba", r)
t0 = time.perf_counter()
sw = Sweeper(problem, st)
state = initial_state(problem, st, np.random.SeedSequence(0).spawn(1)[0])
setup_s = time.perf_counter() - t0
times = {t: [] for t in threads}
cpu = {t: [] for t in threads}
dask_times, dask_setup_s, dsw = [], None, None
if use_dask:
    import dataclasses
    from distributed import Client, LocalCluster
    from bayes_mf.gibbs.distributed import DaskSweeper

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    tic = time.perf_counter()
    dsw = DaskSweeper(problem, dataclasses.replace(st, backend="dask", threads=1), client)
    dask_setup_s = time.perf_counter() - tic
    dsw.sweep(state)  # warm-up: the workers load the compiled kernels
for t in threads:  # warm-up: first touch of every buffer, thread pool start
    st.threads = t
    sw.sweep(state)
for _ in range(sweeps):
    for t in threads:
        st.threads = t
        tic, cpu0 = time.perf_counter(), time.process_time()
        sw.sweep(state)
        times[t].append(time.perf_counter() - tic)
        cpu[t].append(time.process_time() - cpu0)
    if dsw is not None:
        tic = time.perf_counter()
        dsw.sweep(state)
        dask_times.append(time.perf_counter() - tic)
same = None
if len(threads) + (dsw is not None) > 1:
    ends = []
    for t in threads:
        s = copy.deepcopy(state)
        st.threads = t
        sw.sweep(s)
        ends.append(s)
    if dsw is not None:
        s = copy.deepcopy(state)
        dsw.sweep(s)
        ends.append(s)
    same = all(np.array_equal(e.X[side], ends[0].X[side]) and e.tau == ends[0].tau and e.mu == ends[0].mu
               for e in ends for side in ("user", "item"))
print(json.dumps({"n_obs": len(r), "n_users": n_users, "n_items": n_items, "times": times, "cpu": cpu,
                  "setup_s": setup_s, "compile_s": compile_s, "rss_data_mb": rss_data,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "bit_identical": same, "dask_times": dask_times, "dask_setup_s": dask_setup_s}))
if dsw is not None:
    dsw.close()
    client.close()
    cluster.close()
"""


def shape(n: int) -> tuple[int, int]:
    """Users and items of a Netflix-proportioned data set of ``n`` ratings."""
    f = math.sqrt(n / NETFLIX_RATINGS)
    return max(1, round(NETFLIX_USERS * f)), max(1, round(NETFLIX_ITEMS * f))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e6,1e7,1e8", help="numbers of ratings (comma separated)")
    ap.add_argument("--threads", default="1,2", help="thread counts to compare (comma separated)")
    ap.add_argument("--sweeps", type=int, default=5, help="timed sweeps per thread count")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bayes_mf_bench_scale"))
    ap.add_argument("--dask", action="store_true",
                    help="also the Dask backend on a 2-worker LocalCluster (1 thread each)")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **ENV}
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    threads = [int(t) for t in args.threads.split(",") if t]
    if os.path.exists("/proc/loadavg"):
        load = Path("/proc/loadavg").read_text().split()[:3]
        print("load average before:", load, f"cores: {os.cpu_count()}")
    rows = []
    for n in sizes:
        n_users, n_items = shape(n)
        stem = work / f"synthetic_{n_users}x{n_items}_{n}"
        gen = {}
        if not Path(f"{stem}_rating.npy").exists():
            print(f"generating {n:,} ratings ({n_users:,} x {n_items:,}) ...", flush=True)
            cmd = [sys.executable, "-c", GENERATE, str(n_users), str(n_items), str(n), str(stem)]
            out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
            gen = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  generated in {gen['gen_s']:.0f} s, generator peak RSS {gen['gen_peak_rss_mb']:.0f} MB",
                  flush=True)
        out = subprocess.run([sys.executable, "-c", MEASURE, str(stem), str(n_users), str(n_items),
                              str(args.sweeps), ",".join(map(str, threads)), "1" if args.dask else "0"],
                             check=True, env=env, capture_output=True, text=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(res)
        print(json.dumps(res), flush=True)
    if os.path.exists("/proc/loadavg"):
        print("load average after:", Path("/proc/loadavg").read_text().split()[:3])
    print(f"\nSCALE  rank 10, BPMF + biases + moves, numba, one chain; median of {args.sweeps} sweeps per "
          "thread count (taking turns, after a warm-up sweep each)")
    print(f"{'ratings':>11s} {'users':>7s} {'items':>6s} {'threads':>7s} {'s/sweep':>8s} {'s/sweep/M':>9s} "
          f"{'speed-up':>8s} {'cpu s/sweep':>11s} {'setup s':>7s} {'data MB':>7s} {'peak RSS MB':>11s} "
          f"{'identical':>9s}")
    for r in rows:
        med = {int(t): sorted(v)[len(v) // 2] for t, v in r["times"].items()}
        med_cpu = {int(t): sorted(v)[len(v) // 2] for t, v in r["cpu"].items()}
        base = med.get(threads[0])
        for t in threads:
            print(f"{r['n_obs']:11,d} {r['n_users']:7d} {r['n_items']:6d} {t:7d} {med[t]:8.3f} "
                  f"{med[t] / (r['n_obs'] / 1e6):9.4f} {base / med[t]:7.2f}x {med_cpu[t]:11.3f} "
                  f"{r['setup_s']:7.1f} "
                  f"{r['rss_data_mb']:7.0f} {r['peak_rss_mb']:11.0f} "
                  f"{'-' if r['bit_identical'] is None else ('yes' if r['bit_identical'] else 'NO'):>9s}")
        if r["dask_times"]:
            v = sorted(r["dask_times"])[len(r["dask_times"]) // 2]
            print(f"{r['n_obs']:11,d} {r['n_users']:7d} {r['n_items']:6d} {'dask x2':>7s} {v:8.3f} "
                  f"{v / (r['n_obs'] / 1e6):9.4f} {base / v:7.2f}x {'-':>11s} {r['dask_setup_s']:7.1f} "
                  f"{r['rss_data_mb']:7.0f} {r['peak_rss_mb']:11.0f} "
                  f"{'-' if r['bit_identical'] is None else ('yes' if r['bit_identical'] else 'NO'):>9s}")


if __name__ == "__main__":
    main()
