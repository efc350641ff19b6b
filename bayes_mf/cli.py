"""The ``bayes-mf`` command.

``bayes-mf compare`` fits several methods on one split and prints a table;
with no arguments it runs on the built-in synthetic data in about a
minute.  Examples::

    bayes-mf compare
    bayes-mf compare --data ml-100k --fold 1 --methods baseline,als,gd --json out.json
    bayes-mf compare --data ml-100k --fold all --methods baseline,als --predictions preds.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__

DEFAULT_METHODS = "baseline,als,map,gibbs"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bayes-mf", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"bayes_mf {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    c = sub.add_parser("compare", help="fit methods side by side on one split and print a table")
    c.add_argument("--data", default="synthetic",
                   help="'synthetic' (default, built in), 'ml-100k', 'ml-1m' or a CSV/TSV path "
                        "with user,item,rating columns")
    c.add_argument("--fold", default=None,
                   help="canonical MovieLens 100K fold 1-5 (default 1), or 'all': every fold (u1-u5 for "
                        "ml-100k, a seeded 5-fold partition of any other data), per-fold rows plus the mean")
    c.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated methods (default {DEFAULT_METHODS}); "
                        "known: mean, baseline, als, gd, map, laplace, pathfinder, advi, advi-lowrank, nuts, "
                        "gibbs, gibbs-implicit, gibbs-side (ml-100k: + user/item attributes), "
                        "gibbs-time (+ per-user day biases; needs timestamps), "
                        "gibbs-full (both, + per-user and per-item noise), gibbs-ordinal")
    c.add_argument("--reference", default=None, metavar="METHOD",
                   help="measure every other method against this posterior (e.g. gibbs): predictive "
                        "means in reference sds, sd ratio, coverage of its intervals, the same for the "
                        "scales; fitted too if not in --methods")
    c.add_argument("--rank", type=int, default=10, help="number of latent factors (default 10)")
    c.add_argument("--seed", type=int, default=0, help="random seed shared by all methods (default 0)")
    c.add_argument("--test-size", type=float, default=0.2,
                   help="hold-out fraction for non-MovieLens-100K data (default 0.2)")
    c.add_argument("--interval", type=float, default=0.9, help="interval probability (default 0.9)")
    c.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON")
    c.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="write results.json, report.md and the figures (PNG) into DIR (with --fold all: "
                        "into DIR/<fold>); files an earlier run wrote there (listed in "
                        "DIR/.bayes_mf-outputs.json) are replaced, others kept")
    c.add_argument("--predictions", type=Path, default=None, metavar="FILE.csv",
                   help="write every test pair's prediction: [fold,] user, item, rating, method, mean, sd, "
                        "lo, hi (central --interval predictive interval; empty sd/lo/hi for point estimates)")
    _csv_options(c)
    _sampler_options(c)

    r = sub.add_parser("recommend", help="top-n items for a user, with predictive intervals")
    r.add_argument("--user", required=True, help="the user's id as in the data")
    r.add_argument("--data", default=None,
                   help="'synthetic' (default), 'ml-100k' (all 100k ratings, titles shown) or a CSV/TSV "
                        "path; with --model, the data the model was fitted on (checked)")
    r.add_argument("--method", default="gibbs", help="estimator to fit (default gibbs)")
    r.add_argument("--strategy", default="mean", choices=["mean", "ucb", "thompson"])
    r.add_argument("--n", type=int, default=10, help="number of items (default 10)")
    r.add_argument("--include-rated", action="store_true", help="do not exclude items the user rated")
    r.add_argument("--rank", type=int, default=10)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--model", type=Path, default=None, help="load a saved estimator instead of fitting")
    r.add_argument("--save", type=Path, default=None, help="save the fitted estimator to this folder")
    r.add_argument("--overwrite", action="store_true",
                   help="let --save replace an earlier save in that folder (other files there are kept)")
    r.add_argument("--allow-unseen", action="store_true",
                   help="recommend from the prior for a user absent from the data instead of failing")
    r.add_argument("--at", default=None,
                   help="methods with time effects (gibbs-time, gibbs-full): score the items at this time, "
                        "Unix seconds or a date such as 1998-04-23 (default: the day after the last rating)")
    _csv_options(r)
    _sampler_options(r)
    return p


def _sampler_options(p) -> None:
    g = p.add_argument_group("sampling (nuts and the gibbs methods; default: each estimator's own)")
    g.add_argument("--chains", type=int, default=None, help="chains per sampled fit")
    g.add_argument("--draws", type=int, default=None,
                   help="kept draws per chain (Gibbs default: sample until converged)")
    g.add_argument("--tune", type=int, default=None, help="NUTS tuning steps (Gibbs: burn-in sweeps)")
    g.add_argument("--burn-in", type=int, default=None, help="Gibbs burn-in sweeps")
    g.add_argument("--max-seconds", type=float, default=None,
                   help="Gibbs time budget of a run until converged (default 600)")
    g.add_argument("--target-ess", type=float, default=None,
                   help="Gibbs bulk and tail ESS to reach on every identifiable quantity (default 400)")
    g.add_argument("--cores", type=int, default=None, help="Gibbs worker processes for the chains")


def _sampling(args) -> dict:
    """The sampler options given on the command line, checked before any fit starts."""
    out = {}
    for name in ("chains", "draws", "tune", "burn_in", "max_seconds", "target_ess", "cores"):
        value = getattr(args, name)
        if value is None:
            continue
        low = 0 if name in ("tune", "burn_in") else 1
        if value < low or (name in ("max_seconds", "target_ess") and value <= 0):
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be {'>= 0' if low == 0 else 'positive'}, got {value}")
        out[name] = value
    if out.get("chains") == 1:
        raise ValueError("--chains must be >= 2: convergence cannot be checked on one chain")
    return out


def _csv_options(p) -> None:
    g = p.add_argument_group("reading a ratings file (--data PATH)")
    g.add_argument("--user-col", default="user", help="user column (default user)")
    g.add_argument("--item-col", default="item", help="item column (default item)")
    g.add_argument("--rating-col", default="rating", help="rating column (default rating)")
    g.add_argument("--sep", default=None, help="field separator (default: by extension, else sniffed)")


def _csv_kw(args) -> dict:
    return {"user_col": args.user_col, "item_col": args.item_col, "rating_col": args.rating_col,
            "sep": args.sep}


def _compare(args) -> int:
    from ._files import atomic_write_text, check_writable_dir, check_writable_file
    from .compare import METHODS, format_table, load_data, run, to_json, write_report

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        print(f"bayes-mf: unknown method(s) {unknown or methods}; choose from {', '.join(METHODS)}",
              file=sys.stderr)
        return 2
    if args.reference is not None and args.reference not in METHODS:
        print(f"bayes-mf: unknown --reference {args.reference!r}; choose from {', '.join(METHODS)}",
              file=sys.stderr)
        return 2
    if args.rank < 1:
        print(f"bayes-mf: --rank must be >= 1, got {args.rank}", file=sys.stderr)
        return 2
    if args.fold is not None and args.fold != "all":
        if args.data not in ("ml-100k", "100k", "movielens"):
            print("bayes-mf: --fold applies only to --data ml-100k (or --fold all, for any data)",
                  file=sys.stderr)
            return 2
        if args.fold not in ("1", "2", "3", "4", "5"):
            print(f"bayes-mf: --fold must be 1-5 or all, got {args.fold!r}", file=sys.stderr)
            return 2
        args.fold = int(args.fold)
    if not 0 < args.interval < 1:
        print(f"bayes-mf: --interval must be in (0, 1), got {args.interval}", file=sys.stderr)
        return 2
    sampling = _sampling(args)
    # output paths are checked before the fits: a bad one must fail now, not after 25 minutes
    if args.json:
        check_writable_file(args.json, "--json")
    if args.out:
        check_writable_dir(args.out, "--out")
    if args.predictions:
        check_writable_file(args.predictions, "--predictions")
    _check_data_path(args.data)
    if args.fold == "all":
        return _compare_all(args, methods, sampling)
    train, test, desc = load_data(args.data, fold=args.fold, test_size=args.test_size, random_seed=args.seed,
                                  csv_kw=_csv_kw(args))
    from .base import _clip_scale

    scale = _clip_scale(train)
    print(f"data: {desc}; train {len(train)} ratings ({train.n_users} users x {train.n_items} items), "
          f"test {len(test)}; rank {args.rank}, seed {args.seed}; predictions "
          + (f"clipped to [{scale[0]:.3g}, {scale[1]:.3g}]" if scale else "not clipped (no scale)"),
          flush=True)
    comp = run(train, test, methods, n_factors=args.rank, random_seed=args.seed, interval=args.interval,
               progress=lambda s: print("  " + s, file=sys.stderr, flush=True), sampling=sampling,
               reference=args.reference)
    table = comp.table
    print(format_table(table, args.interval))
    if comp.fidelity is not None:
        from .fidelity import format_fidelity

        print(f"fidelity to {args.reference}:")
        print(format_fidelity(comp.fidelity))
    print("cov50/cov90: share of test ratings inside the central predictive interval; lpd: mean Gaussian "
          "log predictive density; rhat/ess: worst R-hat and bulk/tail ESS over sigma's, mu, every bias and "
          "predicted ratings; conv: R-hat <= 1.01, ESS >= 400 (and NUTS healthy); n/a = point estimate")
    if "log_score" in comp.table:
        for r in comp.table.dropna(subset=["log_score"]).itertuples():
            print(f"{r.method}: log score {r.log_score:.4f}, RPS {r.rps:.4f}, accuracy {r.accuracy:.4f}, "
                  f"MAE of the median star {r.mae_median:.4f}")
        print("ordinal rows: cov50/cov90 = share inside the smallest set of stars of that mass; lpd = log "
              "score (mean log probability of the observed star)")
    fold = None
    if args.data in ("ml-100k", "100k", "movielens"):
        fold = 1 if args.fold is None else args.fold
    extra = {"rank": args.rank, "seed": args.seed, "interval": args.interval, "description": desc}
    if comp.fidelity is not None:
        extra["reference"] = args.reference
        extra["fidelity"] = _records(comp.fidelity)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, to_json(table, data=args.data, fold=fold, extra=extra))
        print(f"wrote {args.json}")
    if args.out:
        written = write_report(comp, args.out, data_desc=desc, data=args.data, fold=fold, extra=extra)
        print(f"wrote {len(written)} files to {args.out}: " + ", ".join(sorted(written)))
    if args.predictions:
        from .compare import predictions_table

        _write_predictions(args.predictions, predictions_table(comp))
    return 0


def _write_predictions(path: Path, table) -> None:
    from ._files import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, table.to_csv(index=False))
    print(f"wrote {path} ({len(table)} predictions)")


def _compare_all(args, methods, sampling) -> int:
    """``compare --fold all``: the same run on every fold, per-fold rows plus each method's mean."""
    import pandas as pd

    from ._files import atomic_write_text
    from .compare import fold_summary, format_folds, load_folds, predictions_table, run, to_json, write_report

    folds = load_folds(args.data, random_seed=args.seed, csv_kw=_csv_kw(args))
    print(f"data: {args.data}, {len(folds)} folds ({', '.join(f[0] for f in folds)}); rank {args.rank}, "
          f"seed {args.seed}", flush=True)
    tables, preds = {}, []
    for label, train, test, desc in folds:
        print(f"fold {label}: {desc}; train {len(train)}, test {len(test)}", file=sys.stderr, flush=True)
        comp = run(train, test, methods, n_factors=args.rank, random_seed=args.seed, interval=args.interval,
                   progress=lambda s: print("  " + s, file=sys.stderr, flush=True), sampling=sampling)
        tables[label] = comp.table
        if args.predictions:
            preds.append(predictions_table(comp, fold=label))
        if args.out:
            extra = {"rank": args.rank, "seed": args.seed, "interval": args.interval, "description": desc}
            write_report(comp, args.out / label, data_desc=desc, data=args.data, fold=label, extra=extra)
    summary = fold_summary(tables)
    print(format_folds(summary, args.interval))
    print("mean: the average over folds of each column (n_test: their sum); conv: every fold converged")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        extra = {"rank": args.rank, "seed": args.seed, "interval": args.interval, "folds": list(tables)}
        atomic_write_text(args.json, to_json(summary, data=args.data, fold="all", extra=extra))
        print(f"wrote {args.json}")
    if args.out:
        print(f"wrote a report per fold into {args.out}/<fold>: " + ", ".join(tables))
    if args.predictions:
        _write_predictions(args.predictions, pd.concat(preds, ignore_index=True))
    return 0


def _records(frame) -> list:
    """Rows of a table as JSON-ready dicts (nan -> None)."""
    import math

    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
            for rec in frame.to_dict(orient="records")]


def _recommend(args) -> int:
    from . import io
    from .compare import METHODS, make_estimator

    sampling = _sampling(args)
    if args.save is not None:
        if args.model is not None:
            raise ValueError("--save applies when fitting; with --model the estimator is already saved")
        _check_save_target(args.save, args.overwrite)
    if args.data is not None:
        _check_data_path(args.data)
    at = None
    if args.at is not None:
        from .gibbs.timefit import parse_time

        at = parse_time(args.at)  # a bad time fails here, before any fit
    titles = None
    if args.model is not None:
        est = io.load(args.model)
        if args.data is not None:
            _check_model_matches_data(est, _recommend_data(args), args.model, args.data)
        if at is not None:
            from .recommend import scoring_time

            scoring_time(est, at)  # a fit without time effects is refused here
    else:
        if args.method not in METHODS:
            print(f"bayes-mf: unknown method {args.method!r}; choose from {', '.join(METHODS)}",
                  file=sys.stderr)
            return 2
        est = make_estimator(args.method, args.rank, args.seed, **sampling)
        if at is not None and not getattr(est, "time_effects", None):
            raise ValueError(f"--at applies to methods with time effects (gibbs-time, gibbs-full), "
                             f"not {args.method!r}")
        ratings = _recommend_data(args)
        est = est.fit(ratings)
        if args.save:
            io.save(est, args.save, overwrite=args.overwrite)
            print(f"saved the fitted {args.method} to {args.save}")
    if args.data in _ML100K:
        from .datasets import movielens_items

        titles = movielens_items("100k")["title"]
    user = _parse_id(args.user, est.users_)
    if user not in est.users_ and not args.allow_unseen:
        print(f"bayes-mf: user {user!r} is not in the data ({len(est.users_)} users, e.g. "
              f"{list(est.users_[:3])}); pass --allow-unseen to recommend from the prior", file=sys.stderr)
        return 2
    recs = est.recommend(user, args.n, strategy=args.strategy, exclude_rated=not args.include_rated,
                         titles=titles, at=at)
    import pandas as pd

    with pd.option_context("display.width", 140, "display.max_colwidth", 50):
        when = recs.attrs.get("at")
        print(f"top {args.n} for user {user!r} ({args.strategy}; interval = 90 % predictive"
              f"{', unseen user: prior only' if recs.attrs.get('unseen_user') else ''}"
              f"{'' if when is None else ', at ' + str(pd.Timestamp(when, unit='s'))}):")
        print(recs.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


_ML100K = ("ml-100k", "100k", "movielens")


def _recommend_data(args):
    """The ratings ``--data`` names (synthetic when not given)."""
    from .compare import default_synthetic
    from .data import Ratings

    if args.data in (None, "synthetic"):
        return default_synthetic(args.seed).ratings
    if args.data in _ML100K:
        from .datasets import load_movielens
        from .sideinfo import attach_features

        ratings = load_movielens("100k")
        attach_features(ratings)  # the user and item attributes gibbs-side and gibbs-full fit on
        return ratings
    return Ratings.from_csv(args.data, **_csv_kw(args))


def _check_data_path(data) -> None:
    """A ``--data`` that names a file must be one (a folder is a one-line error, not a traceback)."""
    if data in (None, "synthetic", "ml-1m", "1m", *_ML100K):
        return
    path = Path(data)
    if path.is_dir():
        raise ValueError(f"--data {data} is a directory; give a ratings file (CSV/TSV) or one of "
                         "synthetic, ml-100k, ml-1m")
    if not path.is_file():
        raise ValueError(f"--data {data}: no such file; give a ratings file (CSV/TSV) or one of "
                         "synthetic, ml-100k, ml-1m")


def _check_save_target(path: Path, overwrite: bool) -> None:
    """Refuse, before the fit, a --save target that exists (unless --overwrite) or cannot be written."""
    from ._files import check_writable_dir

    check_writable_dir(path, "--save")
    if path.is_dir() and any(path.iterdir()):
        if not (path / "estimator.json").is_file():
            raise ValueError(f"--save {path} exists and is not a saved bayes_mf estimator: refusing to "
                             "write into it")
        if not overwrite:
            raise ValueError(f"--save {path} already holds a saved estimator; pass --overwrite to replace it")


def _check_model_matches_data(est, ratings, model, data) -> None:
    """A loaded model and the data it is used with must belong together.

    The model keeps the (user, item) pairs it was trained on (ids and codes);
    every one of them must be a pair of ``data``.  Ids alone are not enough:
    small integer ids (0..n) are shared by almost any two data sets.
    """
    import numpy as np
    import pandas as pd

    u = est.users_.to_numpy()[np.asarray(est.train_user_codes_)]
    i = est.items_.to_numpy()[np.asarray(est.train_item_codes_)]
    have = pd.MultiIndex.from_arrays([ratings.user_ids, ratings.item_ids])
    n_found = int(pd.MultiIndex.from_arrays([u, i]).isin(have).sum())
    if n_found < len(u):
        raise ValueError(f"--model {model} was not fitted on --data {data}: only {n_found} of its "
                         f"{len(u)} training ratings are (user, item) pairs of that data")


def _parse_id(text: str, index):
    """The user id typed on the command line, in the index's own type."""
    if index.dtype.kind in "iu":
        try:
            return int(text)
        except ValueError:
            pass
    if index.dtype.kind == "f":
        try:
            return float(text)
        except ValueError:
            pass
    return text


def _log_to_stderr() -> None:
    """Show the package's progress log (e.g. each Gibbs round's diagnostics) on stderr."""
    import logging

    log = logging.getLogger("bayes_mf")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("  %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main(argv=None) -> int:
    _log_to_stderr()
    args = _parser().parse_args(argv)
    if args.command is None:
        args = _parser().parse_args(["compare", *(argv or [])])
    from .data import RatingsError
    from .datasets import DataNotFoundError
    from .io import CorruptSaveError

    try:
        if args.command == "compare":
            return _compare(args)
        if args.command == "recommend":
            return _recommend(args)
    except (RatingsError, DataNotFoundError, CorruptSaveError, FileNotFoundError, FileExistsError,
            ValueError) as exc:
        print(f"bayes-mf: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
