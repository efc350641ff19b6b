"""NUTS geometry on MovieLens 100K: centred versus non-centred, factor means on/off.

Prints one row per configuration: fit seconds (MAP start included), max R-hat and
min bulk/tail ESS over the identifiable set (σ's, μ, every bias, ``pred_check``),
divergences, min E-BFMI, mean tree depth, and test RMSE / 90 % coverage.  All
rows fit the same training data with the same rank, seed, chains and draws.

Usage::

    BAYES_MF_DATA=/path/above/ml-100k python benchmarks/bench_nuts.py \\
        --configs noncentered,centered --fraction 0.2 --draws 300 --tune 300

``--fraction`` keeps that share of the training users' ratings (a quick look at the
geometry); 1 is the whole fold.  A config is ``PARAM[+OPTION...]``: ``PARAM`` is
``noncentered``, ``centered`` or ``mixed`` (``PMF(parametrization=)``); ``+means`` learns
the BPMF factor means (the redundant ridge with the biases); ``+diag`` or ``+low_rank``
picks nutpie's mass-matrix adaptation (default: the estimator's); ``+ta0.9`` sets
``target_accept``; ``+unpaired`` samples each side's factor scales on their own instead of
as log product and log ratio (``build_model(pair_scales=False)``).
Unseen test ids are predicted from the prior (its warning is silenced).

``--gradient`` only times one log-density gradient of the default NUTS model (what NUTS
spends nearly all its time on), with the pairs' linear predictor as the package's numba
Op and as PyTensor's own indexing (``build_model(pair_op=False)``), median of
``--repeats`` timings of 20 calls each, both compiled with numba; it checks they agree::

    python benchmarks/bench_nuts.py --gradient
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
import warnings

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="noncentered,centered")
    p.add_argument("--fold", type=int, default=1)
    p.add_argument("--fraction", type=float, default=1.0)
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--priors", default="bpmf")
    p.add_argument("--draws", type=int, default=300)
    p.add_argument("--tune", type=int, default=300)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gradient", action="store_true", help="time one gradient, Op against indexing")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)

    from bayes_mf import PMF
    from bayes_mf.data import Ratings, UnseenIdsWarning
    from bayes_mf.datasets import movielens_fold
    from bayes_mf.diagnostics import ConvergenceWarning, sampler_health
    from bayes_mf.evaluate import score

    train, test = movielens_fold("100k", args.fold)
    if args.fraction < 1:
        rng = np.random.default_rng(args.seed)
        keep = rng.random(len(train)) < args.fraction
        df = train.to_frame().loc[keep]
        u, i, r = train.names
        train = Ratings.from_frame(df, user_col=u, item_col=i, rating_col=r, scale=train.scale)
    if args.gradient:
        return time_gradient(train, args)
    print(f"fold u{args.fold}: {len(train)} training ratings, rank {args.rank}, priors {args.priors}, "
          f"{args.chains} x ({args.tune}+{args.draws})", flush=True)
    header = (f"{'config':<26}{'seconds':>9}{'rhat_max':>10}{'ess_bulk':>10}{'ess_tail':>10}{'div':>5}"
              f"{'ebfmi':>7}{'depth':>7}{'rmse':>8}{'cov90':>7}  worst")
    rows = []
    for config in args.configs.split(","):
        param, *extra = config.split("+")
        kw = {"parametrization": param, "factor_means": True if "means" in extra else None}
        for opt in extra:
            if opt in ("diag", "low_rank"):
                kw["adaptation"] = opt
            elif opt.startswith("ta"):
                kw["target_accept"] = float(opt[2:])
            elif opt not in ("means", "unpaired"):
                p.error(f"unknown option {opt!r} in config {config!r}")
        est = PMF(n_factors=args.rank, priors=args.priors, method="nuts", draws=args.draws, tune=args.tune,
                  chains=args.chains, random_seed=args.seed, progressbar=False, **kw)
        t0 = time.perf_counter()
        with warnings.catch_warnings(), _model_options(pair_scales="unpaired" not in extra):
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(train)
        sec = time.perf_counter() - t0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnseenIdsWarning)
            pred = est.predict(test)
        s = score(pred)
        tab = est.convergence_
        health = sampler_health(est.result_)
        worst = tab["rhat_max"].idxmax() if tab is not None and len(tab) else "-"
        row = (f"{config:<26}{sec:>9.1f}{tab['rhat_max'].max():>10.3f}{tab['ess_bulk_min'].min():>10.0f}"
               f"{tab['ess_tail_min'].min():>10.0f}{int(health.get('divergences', 0)):>5}"
               f"{min(health.get('bfmi', [np.nan])):>7.2f}"
               f"{float(health.get('mean_tree_depth', np.nan)):>7.1f}"
               f"{s['rmse']:>8.4f}{s['coverage']:>7.3f}  {worst}")
        rows.append(row)
        print(tab.round(3).to_string(), flush=True)
        print(header if len(rows) == 1 else "", end="\n" if len(rows) == 1 else "")
        print(row, flush=True)
    print()
    print(header)
    print("\n".join(rows))
    return 0


@contextlib.contextmanager
def _model_options(**model_kw):
    """Build the sampling model with these :func:`~bayes_mf.models.build_model` options (a
    benchmark-only switch: the estimator exposes no model internals)."""
    from bayes_mf.inference import sampling

    build = sampling.build_model
    sampling.build_model = functools.partial(build, **model_kw)
    try:
        yield
    finally:
        sampling.build_model = build


def time_gradient(train, args) -> int:
    """Print the median time of one logp-and-gradient call, pair Op against PyTensor indexing."""
    from bayes_mf import PMF
    from bayes_mf.inference.sampling import sampling_model

    # the MAP fit sets the type-II scales the sampling model is built around
    est = PMF(n_factors=args.rank, priors=args.priors, method="map", random_seed=args.seed,
              progressbar=False).fit(train)
    model = est._sampling_model(train)
    spec = model.bayes_mf_spec
    print(f"fold u{args.fold}: {len(train)} training ratings, rank {args.rank}, priors {args.priors}, "
          f"{spec['parametrization']}; one logp + gradient, median of {args.repeats} x 20 calls")
    point = model.initial_point()
    rng = np.random.default_rng(args.seed)
    point = {k: v + 0.1 * rng.standard_normal(np.shape(v)) for k, v in point.items()}
    results = {}
    for label, pair_op in (("pair Op (default)", True), ("PyTensor indexing", False)):
        m = model if pair_op else sampling_model(est, train, pair_op=False)
        f = m.logp_dlogp_function(ravel_inputs=True, mode="NUMBA")
        f.set_extra_values({})
        x = np.concatenate([np.ravel(point[v.name]) for v in f._grad_vars])
        out = f(x)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(20):
                f(x)
            times.append((time.perf_counter() - t0) / 20)
        results[label] = (float(np.median(times)), out)
    (t_op, (lp_op, g_op)), (t_ix, (lp_ix, g_ix)) = results.values()
    if not (np.isclose(lp_op, lp_ix, rtol=1e-10) and np.allclose(g_op, g_ix, rtol=1e-8, atol=1e-8)):
        print("the two graphs disagree: log density", lp_op, lp_ix)
        return 1
    print(f"{'predictor':<22}{'ms per gradient':>16}")
    for label, (t, _) in results.items():
        print(f"{label:<22}{1e3 * t:>16.2f}")
    print(f"speed-up {t_ix / t_op:.1f}x; log density and gradient agree ({len(g_op)} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
