"""Benchmark of the PyMC fits (MAP, ADVI, NUTS) on MovieLens 100K fold u1.

Prints one row per fit: method, model, fit seconds, test RMSE, MAE and the
coverage of the 90 % posterior-predictive intervals (n/a for MAP, a point
estimate).  The bars of issue #3 (rank 10): MAP <= 10 s and RMSE <= 0.925,
ADVI RMSE <= 0.935, NUTS RMSE <= 0.915.

Usage::

    BAYES_MF_DATA=/path/above/ml-100k python benchmarks/bench_pymc.py \\
        --methods map,advi,nuts --map-priors adaptive,bpmf --priors bpmf \\
        --draws 200 --tune 300 --advi-iterations 5000

ADVI and NUTS start from the MAP fit of their priors (its time is printed,
not added to theirs).  NUTS on the BPMF model takes ~15-20 min on 2 shared
CPU cores (mean tree depth ~8); ``--priors adaptive`` is ~3x faster.

The 32 test ratings of u1 whose item is unseen in training are predicted
from the prior (expected; the ``UnseenIdsWarning`` is silenced here only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

BARS = {"map": 0.925, "advi": 0.935, "nuts": 0.915}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="map,advi,nuts", help="comma-separated subset of map,advi,nuts")
    p.add_argument("--fold", type=int, default=1)
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--priors", default="bpmf", help="priors of the models (fixed|adaptive|bpmf)")
    p.add_argument("--map-priors", default=None,
                   help="comma-separated priors of the MAP rows (default: --priors)")
    p.add_argument("--no-biases", action="store_true")
    p.add_argument("--draws", type=int, default=200, help="NUTS draws per chain")
    p.add_argument("--tune", type=int, default=300, help="NUTS warm-up steps per chain")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--nuts-sampler", default="nutpie")
    p.add_argument("--advi-iterations", type=int, default=10_000)
    p.add_argument("--advi-learning-rate", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=None, help="ADVI minibatch size (default full data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    from bayes_mf import PMF
    from bayes_mf.data import UnseenIdsWarning
    from bayes_mf.datasets import movielens_fold
    from bayes_mf.evaluate import score

    train, test = movielens_fold("100k", args.fold)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(BARS)
    if unknown:
        p.error(f"unknown methods {sorted(unknown)}; choose from {sorted(BARS)}")
    biases = not args.no_biases
    common = dict(n_factors=args.rank, biases=biases, random_seed=args.seed)
    rows = []

    def run(method, est):
        t0 = time.perf_counter()
        est.fit(train)
        wall = time.perf_counter() - t0
        with warnings.catch_warnings():
            # the canonical split has test items unseen in training: predicted from the prior
            warnings.simplefilter("ignore", UnseenIdsWarning)
            pred = est.predict(test)
        s = score(pred)
        attrs = est.result_.attrs
        row = {"method": method, "model": attrs.get("model"), "fit_s": est.fit_seconds_, "wall_s": wall,
               "rmse": s["rmse"], "mae": s["mae"], "coverage90": s["coverage"],
               "bar": BARS[method], "met": bool(s["rmse"] <= BARS[method] and
                                                (method != "map" or est.fit_seconds_ <= 10.0))}
        if method == "nuts":
            stats = est.result_["sample_stats"]
            row["divergences"] = int(stats["diverging"].sum())
            row["mean_tree_depth"] = float(stats["tree_depth"].mean())
            row["draws"] = f"{args.chains}x{args.draws} (+{args.tune} tune)"
            try:
                import arviz as az

                rhat = az.rhat(est.result_, var_names=["pred_check", "sigma"])
                row["max_rhat_pred_check"] = float(rhat["pred_check"].max())
                row["rhat_sigma"] = float(rhat["sigma"])
            except Exception as exc:  # diagnostics are a report, never a failure
                row["rhat_error"] = repr(exc)
        if method == "advi":
            row["final_elbo"] = float(np.mean(est.result_["sample_stats"]["elbo"].values[-100:]))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        return est

    map_priors = [x.strip() for x in (args.map_priors or args.priors).split(",") if x.strip()]
    need = list(map_priors) if "map" in methods else []
    if {"nuts", "advi"} & set(methods) and args.priors not in need:
        need.append(args.priors)
    map_fits = {}
    for priors in need:
        est = PMF(method="map", priors=priors, **common)
        if "map" in methods and priors in map_priors:
            run("map", est)
        else:
            est.fit(train)
        map_fits[priors] = est
    init = map_fits.get(args.priors)
    if "advi" in methods:
        run("advi", PMF(method="advi", priors=args.priors, advi_iterations=args.advi_iterations,
                        advi_learning_rate=args.advi_learning_rate, batch_size=args.batch_size,
                        init=init, **common))
    if "nuts" in methods:
        run("nuts", PMF(method="nuts", priors=args.priors, draws=args.draws, tune=args.tune,
                        chains=args.chains, nuts_sampler=args.nuts_sampler, init=init, **common))

    print(f"\nMovieLens 100K fold u{args.fold}, rank {args.rank}, "
          f"{len(train)} train / {len(test)} test ratings")
    head = f"{'method':<6} {'model':<22} {'fit s':>8} {'RMSE':>7} {'MAE':>7} {'cov90':>6} {'bar':>6}  met"
    print(head)
    print("-" * len(head))
    for r in rows:
        cov = "n/a" if not np.isfinite(r["coverage90"]) else f"{r['coverage90']:.3f}"
        print(f"{r['method']:<6} {r['model']:<22} {r['fit_s']:>8.1f} {r['rmse']:>7.4f} {r['mae']:>7.4f} "
              f"{cov:>6} {r['bar']:>6.3f}  {'yes' if r['met'] else 'NO'}")
    if init is not None and {"nuts", "advi"} & set(methods):
        print(f"ADVI and NUTS start from the {args.priors} MAP fit ({init.fit_seconds_:.1f} s, not included "
              "in their fit seconds).")
    for r in rows:
        if r["method"] == "nuts":
            nan = float("nan")
            print(f"nuts: {r['draws']} draws, {r['divergences']} divergences, mean tree depth "
                  f"{r['mean_tree_depth']:.1f}, max R-hat(pred_check) "
                  f"{r.get('max_rhat_pred_check', nan):.3f}, R-hat(sigma) {r.get('rhat_sigma', nan):.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
