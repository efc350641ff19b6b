r"""GibbsPMF beside myFM on the MovieLens 100K folds u1-u5: paired fit times, RMSE and calibration.

Run, from the repository root, with the MovieLens files reachable (``BAYES_MF_DATA``):

    python benchmarks/bench_myfm.py                                  # u1-u5, 500 sweeps, 200 burn-in
    python benchmarks/bench_myfm.py --folds 1 --sweeps 30 --burn-in 10 --methods gibbs,myfm
    python benchmarks/bench_myfm.py --json myfm.json                 # the rows, also as JSON

Six rows, rank ``--rank``, seed 0, the same folds, each pair like with like:

* ``gibbs`` / ``myfm`` -- ``GibbsPMF()`` (the ``gibbs`` method of
  :mod:`bayes_mf.methods`) and ``MyFMRegressor`` on one-hot user + item ids
  (one prior group per side, as our model has one prior per side).
* ``gibbs-ordinal`` / ``myfm-ordinal`` -- ``GibbsPMF(likelihood="ordinal")``
  and ``MyFMOrderedProbit`` (myFM 0.5's ordered-probit class; stars 1..5 as
  classes 0..4) on the same one-hot ids.  RMSE of the predictive mean star
  :math:`\sum_k k\,P(k)`; log score and RPS as well
  (:func:`bayes_mf.evaluate.ordinal_scores` for both).
* ``gibbs-full`` / ``myfm-full`` -- the ``gibbs-full`` method of
  :mod:`bayes_mf.methods` (implicit feedback on both sides, the ML-100K side
  tables of :func:`bayes_mf.sideinfo.movielens_features`,
  ``time_effects="user"``), and myFM given the same information: relation
  blocks of one-hot ids, the :math:`|N|^{-1/2}`-normalised implicit feedback
  (the helpers of ``bench_gibbs.py``) and the side tables as our model encodes
  them (:func:`bayes_mf.gibbs.inputs.side_table`); plus, in the main table, one
  one-hot column per (user, UTC day) seen in training -- the levels of our
  ``time_effects="user"`` (:class:`bayes_mf.gibbs.effects.TimeCoding`: per
  user *and day*, ``time_bins`` only bins the item family).  A test rating on a
  day its user did not rate in training gets no day column (our model: that
  effect's prior, mean 0).  Every feature group (user ids, item ids, each
  side's implicit block, age, gender, occupation, zip, genre, year, days) has
  its own prior (myFM's ``grouping``, as our model has one per group).
  Not identical: myFM gives each day column a factor vector as well as a
  weight, our day effects are biases only.

Like with like: every row runs ``--sweeps`` sweeps and keeps the last
``--sweeps - --burn-in``; one chain, one thread (BLAS/OpenMP/numba pools
pinned to 1 before NumPy loads; ``GibbsPMF(chains=1, cores=1, threads=1)``).
Times are the wall time of the fit alone (our ``fit()`` encodes the data and
builds its feature blocks inside it, so the myFM time includes building its
design matrices), run fold by fold with each pair back to back (ours first
on odd folds, myFM first on even ones) so machine noise hits both alike.
Our numba kernels are compiled / loaded from cache by an untimed 4-sweep
warm-up fit of every Gibbs row on the first fold before any timing.

Calibration, per fold, for every row: coverage of the central 90 %
posterior-predictive interval, noise included.  Ours: ``predict(interval=0.9)``
of the one chain.  myFM regressor: draw :math:`f_s + N(0, 1/\alpha_s)` for each
kept sample ``s`` (per-sample scores from ``predictor_.samples``, the noise
precision :math:`\alpha_s` of the same sweep from ``history_.hypers``, which
holds one entry per sweep) and take the 5 % / 95 % quantiles.  Ordinal rows:
the share of test ratings inside the smallest star set with >= 90 % predictive
mass (:func:`bayes_mf.gibbs.ordinal_predict.star_sets`).

Unseen test ids (a few items per fold): our models' own handling (prior
draws); myFM, which has no id for them, predicts the training mean, as in
``bench_gibbs.py`` (interval: that mean plus each sample's noise; ordinal:
the training star frequencies).  Point predictions are clipped to [1, 5].

myFM (``pip install myfm``, the ``bench`` extra) is optional: without it the
myFM rows are skipped.  ``--max-users N`` keeps only the first N users of
every fold (a smoke test, never a result).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_gibbs, however this file is loaded
from bench_gibbs import _implicit, _onehot, myfm  # noqa: E402

from bayes_mf.data import UnseenIdsWarning  # noqa: E402
from bayes_mf.datasets import movielens_fold  # noqa: E402
from bayes_mf.diagnostics import ConvergenceWarning  # noqa: E402
from bayes_mf.evaluate import coverage, ordinal_scores, rmse  # noqa: E402
from bayes_mf.gibbs import timefit  # noqa: E402
from bayes_mf.gibbs.inputs import side_table  # noqa: E402
from bayes_mf.methods import make_estimator  # noqa: E402

#: every row, in print order; each Gibbs row is followed by its myFM peer
METHODS = ("gibbs", "myfm", "gibbs-ordinal", "myfm-ordinal", "gibbs-full", "myfm-full")
PEER = {"gibbs": "myfm", "gibbs-ordinal": "myfm-ordinal", "gibbs-full": "myfm-full"}
ORDINAL = {"gibbs-ordinal", "myfm-ordinal"}
STARS = np.arange(1.0, 6.0)
TIME_BINS = 30  # GibbsPMF's default; it bins the item family only, the user family is per day


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one chain: no R-hat, and a fixed length
        warnings.simplefilter("ignore", UnseenIdsWarning)  # a few test items are unseen: prior draws
        yield


# ----------------------------------------------------------------------------- ours
def gibbs_fit(name, train, feats, sweeps, burn_in, rank):
    """A fitted row of :mod:`bayes_mf.methods` and its fit seconds (one chain, one core, one thread)."""
    est = make_estimator(name, rank, 0, chains=1, cores=1, draws=sweeps - burn_in, tune=burn_in)
    est.progressbar, est.threads = False, 1
    side = {"user_features": feats[0], "item_features": feats[1]} if name == "gibbs-full" else {}
    with _quiet():
        t0 = time.perf_counter()
        est.fit(train, **side)
    return est, time.perf_counter() - t0


def gibbs_scores(name, est, test) -> dict:
    with _quiet():
        if name in ORDINAL:
            frame = est.predict_proba(test)
            assert len(frame) == len(test)
            return ordinal_scores(test.rating, frame[list(est.levels_)].to_numpy(), est.levels_)
        pred = est.predict(test, interval=0.9)
    return {"rmse": rmse(test.rating, np.clip(pred["mean"], 1.0, 5.0)),
            "coverage": coverage(test.rating, pred["lo"], pred["hi"])}


# ----------------------------------------------------------------------------- myFM
def _grouping(*parts) -> list:
    """One group index per column: each part's local groups, numbered after the previous part's."""
    out, base = [], 0
    for p in parts:
        p = np.asarray(p, dtype=np.int64)
        out.append(p + base)
        base += int(p.max()) + 1 if p.size else 0
    return np.concatenate(out).tolist()


def myfm_design(name, train, feats) -> dict:
    """What myFM's inputs are built from: the blocks (``myfm-full``) and each column's prior group."""
    nu, ni = train.n_users, train.n_items
    d = {"full": name == "myfm-full", "nu": nu, "ni": ni}
    if not d["full"]:
        d["grouping"] = _grouping(np.zeros(nu), np.zeros(ni))
        return d
    # the levels of GibbsPMF(time_effects="user"): the (user, UTC day) pairs seen in training
    d["code"] = timefit.coding(("user",), TIME_BINS, train, train.meta["timestamp"])
    n_days = len(d["code"].keys["user"])
    ua, ug = side_table(feats[0], "user", train.users)  # our encoding of the side tables, groups too
    ia, ig = side_table(feats[1], "item", train.items)
    d["ublock"] = sp.hstack([sp.identity(nu, format="csr"), _implicit(train.user, train.item, nu, ni),
                             ua]).tocsr()
    d["iblock"] = sp.hstack([sp.identity(ni, format="csr"), _implicit(train.item, train.user, ni, nu),
                             ia]).tocsr()
    # main table (days) first, then the relation blocks in order: myFM's column order
    d["grouping"] = _grouping(np.zeros(n_days), np.zeros(nu), np.zeros(ni), ug, np.zeros(ni),
                              np.zeros(nu), ig)
    return d


def myfm_inputs(d, uc, ic, t) -> tuple:
    """``(X, X_rel)`` for pairs coded against the training set (every code seen)."""
    if not d["full"]:
        return sp.hstack([_onehot(uc, d["nu"]), _onehot(ic, d["ni"])]).tocsr(), []
    level = d["code"].levels("user", uc, t)
    on = np.flatnonzero(level >= 0)  # a (user, day) unseen in training: no column, as our prior mean 0
    X = sp.csr_matrix((np.ones(on.size), (on, level[on])), shape=(len(uc), len(d["code"].keys["user"])))
    rel = [myfm.RelationBlock(np.asarray(uc, np.int64), d["ublock"]),
           myfm.RelationBlock(np.asarray(ic, np.int64), d["iblock"])]
    return X, rel


def myfm_fit(name, train, feats, sweeps, burn_in, rank):
    """Fitted myFM model, its design, and the fit seconds (design matrices built inside the timing)."""
    t0 = time.perf_counter()
    d = myfm_design(name, train, feats)
    X, rel = myfm_inputs(d, train.user, train.item, train.meta.get("timestamp"))
    if name in ORDINAL:
        fm, y = myfm.MyFMOrderedProbit(rank=rank, random_seed=0), (train.rating - 1).astype(np.int64)
    else:
        fm, y = myfm.MyFMRegressor(rank=rank, random_seed=0), train.rating
    with contextlib.redirect_stderr(io.StringIO()):  # myFM's own progress bar
        fm.fit(X, y, X_rel=rel, n_iter=sweeps, n_kept_samples=sweeps - burn_in, grouping=d["grouping"])
    return (fm, d), time.perf_counter() - t0


def myfm_scores(name, model, train, test) -> dict:
    fm, d = model
    uc = train.users.get_indexer(test.user_ids)
    ic = train.items.get_indexer(test.item_ids)
    seen = (uc >= 0) & (ic >= 0)
    t = test.meta.get("timestamp")
    Xt, rel = myfm_inputs(d, uc[seen], ic[seen], None if t is None else t[seen])
    if name in ORDINAL:
        freq = np.bincount((train.rating - 1).astype(int), minlength=len(STARS))[:len(STARS)]
        proba = np.tile(freq / freq.sum(), (len(test), 1))  # unseen ids: the training star shares
        proba[seen] = fm.predict_proba(Xt, rel)
        return ordinal_scores(test.rating, proba, STARS)
    samples = fm.predictor_.samples  # the kept sweeps, in order: the last n_kept_samples
    score = np.stack([s.predict_score(Xt, rel) for s in samples])  # (S, seen pairs)
    alpha = np.array([h.alpha for h in fm.history_.hypers])[-len(samples):]  # one per sweep
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((len(samples), len(test))) / np.sqrt(alpha)[:, None]
    mean = np.full(len(test), float(train.rating.mean()))  # unseen ids: the training mean
    mean[seen] = score.mean(axis=0)
    draws = mean[None, :] + noise
    draws[:, seen] = score + noise[:, seen]
    lo, hi = np.clip(np.quantile(draws, [0.05, 0.95], axis=0), 1.0, 5.0)
    return {"rmse": rmse(test.rating, np.clip(mean, 1.0, 5.0)), "coverage": coverage(test.rating, lo, hi)}


# ----------------------------------------------------------------------------- driver
def load_fold(k: int, max_users: int | None):
    train, test = movielens_fold("100k", k)
    if max_users:
        keep = train.users[:max_users]
        train = train.subset(np.isin(train.user_ids, keep))
        test = test.subset(np.isin(test.user_ids, keep))
    return train, test


def run_one(name, train, test, feats, args) -> dict:
    mine = name.startswith("gibbs")
    fit = gibbs_fit if mine else myfm_fit
    model, seconds = fit(name, train, feats, args.sweeps, args.burn_in, args.rank)
    s = gibbs_scores(name, model, test) if mine else myfm_scores(name, model, train, test)
    return {"method": name, "seconds": seconds, "rmse": s["rmse"], "cov90": s["coverage"],
            "log_score": s.get("log_score"), "rps": s.get("rps")}


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--folds", default="1,2,3,4,5", help="comma-separated folds")
    ap.add_argument("--sweeps", type=int, default=500, help="total sweeps per row, burn-in included")
    ap.add_argument("--burn-in", type=int, default=200, help="sweeps discarded first")
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--methods", default=",".join(METHODS), help=f"a subset of {','.join(METHODS)}")
    ap.add_argument("--json", metavar="PATH", help="also write the per-fold rows there (a list of dicts)")
    ap.add_argument("--max-users", type=int, default=None, help="smoke test: first N users of each fold")
    args = ap.parse_args(argv)
    folds = [int(f) for f in args.folds.split(",") if f]
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {bad}; choose from {list(METHODS)}")
    if not 0 <= args.burn_in < args.sweeps:
        ap.error("need 0 <= --burn-in < --sweeps")
    if myfm is None:
        print("myFM is NOT installed (pip install myfm, the 'bench' extra): its rows are skipped.")
        methods = [m for m in methods if m.startswith("gibbs")]
    methods = [m for m in METHODS if m in methods]  # canonical order: each pair back to back
    if not methods:
        print("no rows to run")
        return []

    from bayes_mf import gibbs

    print(f"numba {gibbs.HAVE_NUMBA}; one chain, one thread; rank {args.rank}; {args.sweeps} sweeps "
          f"({args.burn_in} burn-in, {args.sweeps - args.burn_in} kept); myFM "
          f"{getattr(myfm, '__version__', '-')}; seed 0")
    feats = (None, None)
    if "gibbs-full" in methods or "myfm-full" in methods:
        from bayes_mf.sideinfo import movielens_features

        feats = movielens_features("100k")
    ours = [m for m in methods if m.startswith("gibbs")]
    if ours:  # compile / load our kernels (ordinal, features, effects) outside the timings
        t0 = time.perf_counter()
        first, _ = load_fold(folds[0], args.max_users)  # full size: first-use costs that grow with it
        for m in ours:
            gibbs_fit(m, first, feats, 4, 2, args.rank)
        print(f"warm-up (numba compile / cache load, imports; untimed): {time.perf_counter() - t0:.1f} s")

    print(f"\n{'method':14s} {'fold':>4s} {'fit s':>8s} {'ms/sweep':>8s} {'RMSE':>7s} {'cov90':>6s} "
          f"{'logscore':>8s} {'RPS':>6s}")
    rows = []
    for k in folds:
        train, test = load_fold(k, args.max_users)
        order = list(methods)
        if k % 2 == 0:  # even folds: the myFM peer first
            for mine, peer in PEER.items():
                if mine in order and peer in order:
                    i, j = order.index(mine), order.index(peer)
                    order[i], order[j] = peer, mine
        for m in order:
            r = run_one(m, train, test, feats, args)
            r.update(fold=k, sweeps=args.sweeps, burn_in=args.burn_in, rank=args.rank, chains=1,
                     n_train=len(train), n_test=len(test))
            rows.append(r)
            print(f"{m:14s} {'u' + str(k):>4s} {r['seconds']:8.2f} {1e3 * r['seconds'] / args.sweeps:8.2f} "
                  f"{r['rmse']:7.4f} {r['cov90']:6.3f} {_fmt(r['log_score'], '8.4f'):>8s} "
                  f"{_fmt(r['rps'], '6.4f'):>6s}", flush=True)

    print(f"\nSUMMARY over folds {','.join('u' + str(k) for k in folds)}: mean RMSE, median fit seconds, "
          "its ratio to the myFM peer's median, cov90 range")
    print(f"{'method':14s} {'folds':>5s} {'mean RMSE':>9s} {'median s':>8s} {'vs peer':>20s} "
          f"{'cov90 min-max':>13s} {'logscore':>8s} {'RPS':>6s}")
    med = {m: statistics.median(r["seconds"] for r in rows if r["method"] == m) for m in methods}
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        cov = [r["cov90"] for r in rs]
        peer = PEER.get(m)
        ratio = f"{med[m] / med[peer]:.2f} x {peer}" if peer in med else ""
        ls = None if m not in ORDINAL else float(np.mean([r["log_score"] for r in rs]))
        rps = None if m not in ORDINAL else float(np.mean([r["rps"] for r in rs]))
        print(f"{m:14s} {len(rs):5d} {np.mean([r['rmse'] for r in rs]):9.4f} {med[m]:8.2f} {ratio:>20s} "
              f"{min(cov):.3f}-{max(cov):.3f} {_fmt(ls, '8.4f'):>8s} {_fmt(rps, '6.4f'):>6s}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
        print(f"rows written to {args.json}")
    return rows


if __name__ == "__main__":
    main()
