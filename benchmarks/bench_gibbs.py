"""Blocked Gibbs (bayes_mf.gibbs) beside myFM on MovieLens 100K: speed and accuracy.

Run, from the repository root, with the MovieLens files reachable (``BAYES_MF_DATA``):

    python benchmarks/bench_gibbs.py                       # speed on u1 + accuracy on u1-u5
    python benchmarks/bench_gibbs.py --folds 1 --sweeps 200 --repeats 3

Two tables:

* **speed** -- fold u1, rank 10, ``--sweeps`` sweeps, one chain, one thread
  (the script pins the BLAS/OpenMP pools to one thread before NumPy loads);
  median wall time of ``--repeats`` fits per method and its ratio to myFM's
  (vanilla myFM for the plain models, myFM with the same implicit-feedback
  blocks for the implicit model).  The numba compile / cache-load time is
  printed separately and excluded.
* **accuracy** -- every fold in ``--folds``: posterior-mean RMSE and the
  coverage of the central 90 % posterior-predictive interval of the test
  ratings (``--chains`` chains, run one after another on one thread; myFM has
  no interval -> n/a).  Burn-in ``--burn-in`` of the ``--sweeps`` sweeps for
  every method.

myFM (``pip install myfm``, the ``bench`` extra) is optional: when it is not
importable the script says so and reports the Gibbs rows only.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from bayes_mf.data import UnseenIdsWarning  # noqa: E402
from bayes_mf.datasets import movielens_fold  # noqa: E402
from bayes_mf.evaluate import coverage, rmse  # noqa: E402

try:
    import myfm
except ImportError:
    myfm = None

VARIANTS = {
    "gibbs-bpmf": dict(prior="bpmf", biases=True),
    "gibbs-bpmf-implicit": dict(prior="bpmf", biases=True, implicit="both"),
    "gibbs-adaptive": dict(prior="adaptive", biases=True),
    "gibbs-bpmf-nobias": dict(prior="bpmf", biases=False),
}
PEER = {"gibbs-bpmf-implicit": "myfm-implicit"}


def gibbs_fit(name, train, test, sweeps, burn_in, chains):
    from bayes_mf.gibbs import GibbsPMF

    model = GibbsPMF(10, draws=sweeps - burn_in, tune=burn_in, chains=chains, cores=1,
                     random_seed=0, **VARIANTS[name])
    t0 = time.perf_counter()
    model.fit(train)
    seconds = time.perf_counter() - t0
    if test is None:
        return seconds, None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenIdsWarning)  # a few test items are unseen: prior draws
        pred = model.predict(test, interval=0.9)
    return seconds, rmse(test.rating, pred["mean"]), coverage(test.rating, pred["lo"], pred["hi"])


def _onehot(codes, n):
    return sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), n))


def _implicit(rows, cols, n_rows, n_cols):
    cnt = np.bincount(rows, minlength=n_rows).astype(float)
    return sp.csr_matrix((1.0 / np.sqrt(cnt[rows]), (rows, cols)), shape=(n_rows, n_cols))


def myfm_fit(name, train, test, sweeps, burn_in):
    """myFM on one-hot user/item (``myfm``) or, for ``myfm-implicit``, relation blocks holding
    one-hot ids plus the same |N|^-1/2-normalised implicit feedback as the Gibbs model."""
    nu, ni = train.n_users, train.n_items
    fm = myfm.MyFMRegressor(rank=10, random_seed=0)
    if test is not None:
        uc = train.users.get_indexer(test.user_ids)
        ic = train.items.get_indexer(test.item_ids)
        seen = (uc >= 0) & (ic >= 0)
    if name == "myfm":
        X = sp.hstack([_onehot(train.user, nu), _onehot(train.item, ni)]).tocsr()
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):  # myFM's own progress bar
            fm.fit(X, train.rating, n_iter=sweeps, n_kept_samples=sweeps - burn_in)
        seconds = time.perf_counter() - t0
        if test is None:
            return seconds, None, None
        Xt = sp.hstack([_onehot(uc[seen], nu), _onehot(ic[seen], ni)]).tocsr()
        pred_seen = fm.predict(Xt)
    else:
        ublock = sp.hstack([sp.identity(nu, format="csr"),
                            _implicit(train.user, train.item, nu, ni)]).tocsr()
        iblock = sp.hstack([sp.identity(ni, format="csr"),
                            _implicit(train.item, train.user, ni, nu)]).tocsr()
        rel = [myfm.RelationBlock(train.user.astype(np.int64), ublock),
               myfm.RelationBlock(train.item.astype(np.int64), iblock)]
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            fm.fit(sp.csr_matrix((len(train), 0)), train.rating, X_rel=rel, n_iter=sweeps,
                   n_kept_samples=sweeps - burn_in)
        seconds = time.perf_counter() - t0
        if test is None:
            return seconds, None, None
        rel_t = [myfm.RelationBlock(uc[seen].astype(np.int64), ublock),
                 myfm.RelationBlock(ic[seen].astype(np.int64), iblock)]
        pred_seen = fm.predict(sp.csr_matrix((int(seen.sum()), 0)), X_rel=rel_t)
    # unseen test ids: the global mean (myFM has no id for them); clip as bayes_mf does
    pred = np.full(len(test), float(train.rating.mean()))
    pred[seen] = pred_seen
    pred = np.clip(pred, 1.0, 5.0)
    return seconds, rmse(test.rating, pred), float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", default="1,2,3,4,5", help="folds for the accuracy table (comma separated)")
    ap.add_argument("--sweeps", type=int, default=200, help="total sweeps per chain (burn-in included)")
    ap.add_argument("--burn-in", type=int, default=50)
    ap.add_argument("--chains", type=int, default=4, help="Gibbs chains in the accuracy table")
    ap.add_argument("--repeats", type=int, default=3, help="timed fits per method in the speed table")
    ap.add_argument("--variants", default="gibbs-bpmf,gibbs-bpmf-implicit",
                    help=f"Gibbs variants, from {sorted(VARIANTS)}")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args(argv)
    folds = [int(f) for f in args.folds.split(",") if f]
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; choose from {sorted(VARIANTS)}")

    from bayes_mf import gibbs

    print(f"numba available: {gibbs.HAVE_NUMBA}; threads pinned to 1; rank 10; "
          f"{args.sweeps} sweeps ({args.burn_in} burn-in)")
    if gibbs.HAVE_NUMBA:
        print(f"numba compile / cache load (once per process, excluded below): {gibbs._warm_up():.2f} s")
    import arviz  # noqa: F401  (imported by the first result build; a one-off, kept out of the timings)
    if myfm is None:
        print("myFM is NOT installed (pip install myfm, the 'bench' extra): its rows are skipped.")
        peers = []
    else:
        print(f"myFM {getattr(myfm, '__version__', '?')} found")
        peers = ["myfm"] + sorted({PEER[v] for v in variants if v in PEER})

    if not args.skip_speed:
        train, _ = movielens_fold("100k", 1)
        times = {}
        for _ in range(args.repeats):  # interleaved so that machine noise hits every method alike
            for v in variants:
                times.setdefault(v, []).append(gibbs_fit(v, train, None, args.sweeps, args.burn_in, 1)[0])
            for p in peers:
                times.setdefault(p, []).append(myfm_fit(p, train, None, args.sweeps, args.burn_in)[0])
        print(f"\nSPEED  fold u1, one chain, one thread, {args.sweeps} sweeps, median of {args.repeats}")
        print(f"{'method':24s} {'median s':>9s} {'ms/sweep':>9s} {'min s':>7s} {'max s':>7s} "
              f"{'vs peer':>18s}")
        for m, ts in times.items():
            med = statistics.median(ts)
            peer = PEER.get(m, "myfm") if m.startswith("gibbs") else None
            ratio = (f"{med / statistics.median(times[peer]):.2f} x {peer}"
                     if peer in times else "")
            print(f"{m:24s} {med:9.2f} {1e3 * med / args.sweeps:9.2f} {min(ts):7.2f} {max(ts):7.2f} "
                  f"{ratio:>18s}")

    if not args.skip_accuracy:
        print(f"\nACCURACY  posterior-mean RMSE and 90% interval coverage; Gibbs {args.chains} chains "
              f"(sequential, one thread), {args.sweeps} sweeps each")
        print(f"{'method':24s} {'fold':>4s} {'sweeps':>6s} {'seconds':>8s} {'RMSE':>7s} {'cov90':>6s}")
        rows = {}
        for k in folds:
            train, test = movielens_fold("100k", k)
            for v in variants:
                s, e, c = gibbs_fit(v, train, test, args.sweeps, args.burn_in, args.chains)
                rows.setdefault(v, []).append((s, e, c))
                print(f"{v:24s} {'u' + str(k):>4s} {args.sweeps:6d} {s:8.2f} {e:7.4f} {c:6.3f}", flush=True)
            for p in peers:
                s, e, c = myfm_fit(p, train, test, args.sweeps, args.burn_in)
                rows.setdefault(p, []).append((s, e, c))
                print(f"{p:24s} {'u' + str(k):>4s} {args.sweeps:6d} {s:8.2f} {e:7.4f} {'n/a':>6s}",
                      flush=True)
        print(f"\n{'method':24s} {'folds':>6s} {'mean RMSE':>10s} {'median s':>9s} {'cov90 min-max':>15s}")
        for m, rs in rows.items():
            cov = [r[2] for r in rs]
            cov_s = "n/a" if np.isnan(cov).all() else f"{min(cov):.3f}-{max(cov):.3f}"
            print(f"{m:24s} {len(rs):6d} {np.mean([r[1] for r in rs]):10.4f} "
                  f"{statistics.median([r[0] for r in rs]):9.2f} {cov_s:>15s}")


if __name__ == "__main__":
    main()
