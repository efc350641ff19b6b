"""Effective samples per sweep of the Gibbs sampler on MovieLens u1, with and without the exact moves.

    python benchmarks/bench_mixing.py                       # BPMF + biases, 4 chains x 3000 sweeps
    python benchmarks/bench_mixing.py --sweeps 3000 --implicit both
    python benchmarks/bench_mixing.py --vary factor_means    # BPMF means learned vs fixed at 0
    python benchmarks/bench_mixing.py --vary overrelax --values 0,0.5,0.7,0.85
    python benchmarks/bench_mixing.py --vary interweave --implicit both --sweeps 2000
    python benchmarks/bench_mixing.py --vary implicit_bias --implicit both --sweeps 2000

Both runs use the same data, seed, chains (4, in 2 processes) and lengths (500 burn-in sweeps,
then every sweep kept; factors not stored). For each identifiable quantity the table gives the
bulk ESS per sweep (all chains) of its worst element and the median over its elements, and the
max R-hat; `mu_u` (the BPMF factor mean) is shown although it is not identified: it shows the
rotation of the factors, which no move targets. Cost per sweep is the mean wall time of one
sweep of one chain.  ``--vary factor_means`` compares, with the moves on, BPMF with learned
factor means against means fixed at 0 (``GibbsPMF(factor_means=False)``) and adds the test RMSE;
``--vary overrelax`` does the same for the over-relaxation of the row draws (``GibbsPMF(overrelax=)``),
with the worst of bulk and tail ESS per sweep; ``--vary interweave`` the same for the interweaved
feature draws (``GibbsPMF(interweave=)``; it matters only with ``--implicit``), and
``--vary implicit_bias`` for the implicit vectors' bias coordinate (``GibbsPMF(implicit_bias=)``).
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import warnings  # noqa: E402

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

QUANTITIES = ("sigma", "mu", "sigma_b", "sigma_c", "user_bias", "item_bias", "pred_check", "mu_u")


def rates(model, n_sweeps: int) -> dict:
    post = model.result_["posterior"].to_dataset()
    n = post.sizes["chain"] * post.sizes["draw"]
    out = {}
    for v in QUANTITIES:
        if v not in post:
            continue
        ess = np.asarray(az.ess(post[[v]])[v]).ravel() / n
        out[v] = (float(ess.min()), float(np.median(ess)), float(np.asarray(az.rhat(post[[v]])[v]).max()))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fold", type=int, default=1)
    ap.add_argument("--sweeps", type=int, default=3000)
    ap.add_argument("--implicit", default="none", choices=["none", "user", "item", "both"])
    ap.add_argument("--prior", default="bpmf", choices=["bpmf", "adaptive"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vary", default="moves", choices=["moves", "factor_means", "overrelax", "interweave",
                                                      "implicit_bias"])
    ap.add_argument("--values", default=None,
                    help="--vary overrelax: the values to compare (default 0,0.7); interweave: False,True")
    args = ap.parse_args()
    if args.vary == "factor_means":
        return vary_factor_means(args)
    if args.vary in ("overrelax", "interweave", "implicit_bias"):
        return vary_option(args, args.vary)

    from bayes_mf import GibbsPMF
    from bayes_mf.datasets import movielens_fold
    from bayes_mf.diagnostics import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    train, _ = movielens_fold("100k", args.fold)
    implicit = False if args.implicit == "none" else args.implicit
    rows, cost = {}, {}
    for moves in (False, True):
        m = GibbsPMF(10, prior=args.prior, implicit=implicit, moves=moves, draws=args.sweeps,
                     tune=500, chains=4, cores=2, store_factors=False, random_seed=args.seed,
                     progressbar=False).fit(train)
        rows[moves] = rates(m, args.sweeps)
        cost[moves] = m.sweep_seconds_ * 1000
    print(f"MovieLens 100K u{args.fold}, rank 10, {args.prior} + biases, implicit={args.implicit}; "
          f"4 chains x {args.sweeps} sweeps after 500 burn-in; ESS per sweep (bulk, all chains)")
    table = pd.DataFrame({
        "worst, no moves": {v: r[0] for v, r in rows[False].items()},
        "worst, moves": {v: r[0] for v, r in rows[True].items()},
        "median, no moves": {v: r[1] for v, r in rows[False].items()},
        "median, moves": {v: r[1] for v, r in rows[True].items()},
        "R-hat max, moves": {v: r[2] for v, r in rows[True].items()},
    })
    table["gain (worst)"] = table["worst, moves"] / table["worst, no moves"]
    print(table.to_string(float_format=lambda x: f"{x:.4f}"))
    print(f"ms per sweep per chain: no moves {cost[False]:.2f}, moves {cost[True]:.2f} "
          f"(x{cost[True] / cost[False]:.2f})")


def vary_factor_means(args):
    from bayes_mf import GibbsPMF
    from bayes_mf.datasets import movielens_fold
    from bayes_mf.diagnostics import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    train, test = movielens_fold("100k", args.fold)
    implicit = False if args.implicit == "none" else args.implicit
    cols, extra = {}, {}
    for fm in (True, False):
        m = GibbsPMF(10, prior="bpmf", factor_means=fm, implicit=implicit, draws=args.sweeps, tune=500,
                     chains=4, cores=2, random_seed=args.seed, progressbar=False).fit(train)
        r = rates(m, args.sweeps)
        cols[f"worst, means={fm}"] = {v: x[0] for v, x in r.items()}
        pred = m.predict(test)["mean"].to_numpy()
        extra[fm] = (float(np.sqrt(np.mean((pred - test.rating) ** 2))), m.sweep_seconds_ * 1000)
    print(f"MovieLens 100K u{args.fold}, rank 10, BPMF + biases, implicit={args.implicit}, moves on; "
          f"4 chains x {args.sweeps} sweeps after 500 burn-in; worst ESS per sweep (bulk, all chains)")
    table = pd.DataFrame(cols)
    table["gain"] = table["worst, means=False"] / table["worst, means=True"]
    print(table.to_string(float_format=lambda x: f"{x:.4f}"))
    for fm, (rmse, ms) in extra.items():
        print(f"factor_means={fm}: test RMSE {rmse:.4f}, {ms:.2f} ms per sweep per chain")


def vary_option(args, name: str):
    from bayes_mf import GibbsPMF
    from bayes_mf.datasets import movielens_fold
    from bayes_mf.diagnostics import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    train, test = movielens_fold("100k", args.fold)
    implicit = False if args.implicit == "none" else args.implicit
    cols, extra = {}, {}
    parse = float if name == "overrelax" else (lambda v: v.strip().lower() in ("1", "true", "yes"))
    values = args.values or ("0,0.7" if name == "overrelax" else "False,True")
    for value in (parse(v) for v in values.split(",")):
        m = GibbsPMF(10, prior=args.prior, implicit=implicit, draws=args.sweeps, tune=500, chains=4, cores=2,
                     random_seed=args.seed, progressbar=False, **{name: value}).fit(train)
        post = m.result_["posterior"].to_dataset()
        n = post.sizes["chain"] * post.sizes["draw"]
        col = {}
        for v in QUANTITIES[:-1]:
            if v in post:
                bulk = np.asarray(az.ess(post[[v]])[v]).ravel()
                tail = np.asarray(az.ess(post[[v]], method="tail")[v]).ravel()
                col[v] = float(min(bulk.min(), tail.min())) / n
        cols[f"{name}={value!s}"] = col
        pred = m.predict(test)["mean"].to_numpy()
        extra[value] = (float(np.sqrt(np.mean((pred - test.rating) ** 2))), m.sweep_seconds_ * 1000)
    print(f"MovieLens 100K u{args.fold}, rank 10, {args.prior} + biases, implicit={args.implicit}, moves on; "
          f"4 chains x {args.sweeps} sweeps after 500 burn-in; worst ESS per sweep (min of bulk and tail, "
          "all chains)")
    table = pd.DataFrame(cols)
    table.loc["worst of all"] = table.min()
    print(table.to_string(float_format=lambda x: f"{x:.4f}"))
    for value, (rmse, ms) in extra.items():
        print(f"{name}={value!s}: test RMSE {rmse:.4f}, {ms:.2f} ms per sweep per chain")


if __name__ == "__main__":
    main()
