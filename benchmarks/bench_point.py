"""Point estimators on MovieLens 100K folds u1-u5: ALS, GD and baselines side by side.

Prints one row per (method, fold) and a summary with the u1-u5 mean RMSE and
median fit time.  Runs on one thread (BLAS threads pinned before NumPy loads)
so the times compare with single-threaded peers.

    python benchmarks/bench_point.py                 # all folds, rank 10
    python benchmarks/bench_point.py --folds 1 --repeats 5
    python benchmarks/bench_point.py --methods als-20,als-auto --repeats 1

Bars (issue 2): biased ALS u1 RMSE <= 0.930, u1-u5 mean <= 0.920,
20 sweeps <= 1.5 s.  Predictions are clipped to [1, 5] for every method.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import bayes_mf as bmf  # noqa: E402
from bayes_mf.data import UnseenIdsWarning  # noqa: E402
from bayes_mf.datasets import movielens_fold  # noqa: E402
from bayes_mf.evaluate import mae, rmse  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds", default="1,2,3,4,5")
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats (median reported)")
    ap.add_argument("--methods", default=None, help="comma-separated subset of the methods (default: all)")
    args = ap.parse_args()
    folds = [int(f) for f in args.folds.split(",")]
    methods = {
        "global-mean": lambda: bmf.GlobalMean(),
        "biases": lambda: bmf.BiasBaseline(),
        # lambda = 14 is the value the former fixed default took (chosen on u1.base); als-auto validates it
        "als-20": lambda: bmf.ALS(args.rank, reg=14.0, max_iter=20, tol=0, random_seed=args.seed),
        "als-auto": lambda: bmf.ALS(args.rank, max_iter=20, tol=0, random_seed=args.seed),
        "als-unbiased": lambda: bmf.ALS(args.rank, reg=14.0, biases=False, max_iter=20, tol=0,
                                        random_seed=args.seed),
        "als-weighted": lambda: bmf.ALS(args.rank, reg=0.12, reg_bias=0.05, regularization="weighted",
                                        max_iter=20, tol=0, random_seed=args.seed),
        "gd": lambda: bmf.GradientDescentMF(args.rank, random_seed=args.seed),
    }
    if args.methods:
        unknown = set(args.methods.split(",")) - set(methods)
        if unknown:
            ap.error(f"unknown method(s) {sorted(unknown)}; choose from {sorted(methods)}")
        methods = {m: methods[m] for m in args.methods.split(",")}
    print(f"MovieLens 100K, rank {args.rank}, seed {args.seed}, one thread, predictions clipped to [1, 5]")
    print(f"{'method':<14} {'fold':>4} {'fit_s(med)':>10} {'iters':>5} {'rmse':>7} {'mae':>7}")
    summary = {m: {"rmse": [], "time": []} for m in methods}
    for k in folds:
        train, test = movielens_fold("100k", k)
        for name, make in methods.items():
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                est = make().fit(train)
                times.append(time.perf_counter() - t0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnseenIdsWarning)
                pred = est.predict(test)
            r, a = rmse(pred["rating"], pred["mean"]), mae(pred["rating"], pred["mean"])
            summary[name]["rmse"].append(r)
            summary[name]["time"].append(statistics.median(times))
            print(f"{name:<14} {'u' + str(k):>4} {statistics.median(times):10.3f} "
                  f"{getattr(est, 'n_iter_', 0):5d} {r:7.4f} {a:7.4f}", flush=True)
    print()
    print(f"{'method':<14} {'folds':>9} {'mean_rmse':>9} {'median_fit_s':>12}")
    for name, s in summary.items():
        print(f"{name:<14} {','.join('u' + str(k) for k in folds):>9} {statistics.mean(s['rmse']):9.4f} "
              f"{statistics.median(s['time']):12.3f}")


if __name__ == "__main__":
    main()
