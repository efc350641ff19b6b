"""Side information and time effects on MovieLens 100K: quick fixed-length comparison.

Run, from the repository root, with the MovieLens files reachable (``BAYES_MF_DATA``):

    python benchmarks/bench_features.py --folds 1 --draws 300 --tune 200 --chains 2

Fits GibbsPMF variants (defaults, implicit feedback, the ML-100K side features
of :mod:`bayes_mf.sideinfo`, the time effects of :mod:`bayes_mf.gibbs.effects`;
rank ``--rank``) on the folds ``--folds`` for a fixed number of sweeps (no
run-until-converged: a quick comparison, not the bar run) and prints the
posterior-mean RMSE, the coverage of the central 90 % interval and the fit
time of each.  ``--variants`` picks among the names of ``VARIANTS``.

``--validation F`` never looks at the test folds: it splits each fold's
*training* set at random (``bayes_mf.train_test_split``, share ``F``, the
same seed), fits on the rest and scores on that held-out share.  This is how
the ``gibbs-full`` method of ``bayes-mf compare`` was chosen (README):

    python benchmarks/bench_features.py --folds 1 --validation 0.1 --draws 300 --tune 200 \
        --variants implicit,implicit+side,implicit+time-user,implicit+side+time-user
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from bayes_mf import datasets, train_test_split  # noqa: E402
from bayes_mf.data import UnseenIdsWarning  # noqa: E402
from bayes_mf.diagnostics import ConvergenceWarning  # noqa: E402
from bayes_mf.evaluate import score  # noqa: E402
from bayes_mf.gibbs import GibbsPMF  # noqa: E402
from bayes_mf.sideinfo import movielens_features  # noqa: E402

#: name -> (GibbsPMF options, whether the side tables are passed to fit)
VARIANTS = {
    "default": ({}, False),
    "implicit": ({"implicit": "both"}, False),
    "side": ({}, True),
    "implicit+side": ({"implicit": "both"}, True),
    "time-user": ({"time_effects": "user"}, False),
    "time-item": ({"time_effects": "item"}, False),
    "time-both": ({"time_effects": "both"}, False),
    "implicit+time-user": ({"implicit": "both", "time_effects": "user"}, False),
    "implicit+side+time-user": ({"implicit": "both", "time_effects": "user"}, True),
    "implicit+side+time-both": ({"implicit": "both", "time_effects": "both"}, True),
    "hetero": ({"heteroscedastic": True}, False),
    "implicit+hetero": ({"implicit": "both", "heteroscedastic": True}, False),
    "implicit+side+time-user+hetero": ({"implicit": "both", "time_effects": "user", "heteroscedastic": True},
                                       True),
}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folds", default="1", help="comma-separated folds, e.g. 1,2,3,4,5 (mean printed)")
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--draws", type=int, default=150)
    p.add_argument("--tune", type=int, default=100)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default="default,implicit,side,implicit+side")
    p.add_argument("--validation", type=float, default=None,
                   help="score on this share of each fold's training set instead of its test set")
    args = p.parse_args(argv)
    folds = [int(f) for f in args.folds.split(",")]
    uf, itf = movielens_features("100k")
    where = (f"validation: {args.validation:g} of each fold's training set" if args.validation
             else "the folds' test sets")
    print(f"folds {folds}, rank {args.rank}, {args.chains} chains x ({args.tune} tune + {args.draws} draws); "
          f"scored on {where}")
    print(f"{'variant':<24} {'fold':>4} {'rmse':>7} {'cov90':>6} {'seconds':>8}")
    for name in args.variants.split(","):
        opts, side = VARIANTS[name]
        scores = []
        for fold in folds:
            train, test = datasets.movielens_fold("100k", fold)
            if args.validation:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UnseenIdsWarning)
                    train, test = train_test_split(train, args.validation, random_seed=args.seed)
            est = GibbsPMF(args.rank, draws=args.draws, tune=args.tune, chains=args.chains, cores=1,
                           random_seed=args.seed, progressbar=False, **opts)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", UnseenIdsWarning)
                est.fit(train, **({"user_features": uf, "item_features": itf} if side else {}))
                pred = est.predict(test, interval=0.9)
            s = score(pred)
            scores.append((s["rmse"], s["coverage"]))
            print(f"{name:<24} {'u' + str(fold):>4} {s['rmse']:7.4f} {s['coverage']:6.3f} "
                  f"{time.perf_counter() - t0:8.1f}", flush=True)
        if len(folds) > 1:
            m = [sum(x) / len(x) for x in zip(*scores, strict=True)]
            print(f"{name:<24} {'mean':>4} {m[0]:7.4f} {m[1]:6.3f}", flush=True)

if __name__ == "__main__":
    main()
