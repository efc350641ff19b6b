"""The ``bayes-mf`` command.

``bayes-mf compare`` fits several methods on one split and prints a table;
with no arguments it runs on the built-in synthetic data in well under a
minute.  Examples::

    bayes-mf compare
    bayes-mf compare --data ml-100k --fold 1 --methods baseline,als,gd --json out.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__

DEFAULT_METHODS = "baseline,als,gd"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bayes-mf", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"bayes_mf {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    c = sub.add_parser("compare", help="fit methods side by side on one split and print a table")
    c.add_argument("--data", default="synthetic",
                   help="'synthetic' (default, built in), 'ml-100k', 'ml-1m' or a CSV/TSV path "
                        "with user,item,rating columns")
    c.add_argument("--fold", type=int, default=None, help="canonical MovieLens 100K fold 1-5 (default 1)")
    c.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated methods (default {DEFAULT_METHODS}); "
                        "known: mean, baseline, als, gd, map, advi, nuts, gibbs")
    c.add_argument("--rank", type=int, default=10, help="number of latent factors (default 10)")
    c.add_argument("--seed", type=int, default=0, help="random seed shared by all methods (default 0)")
    c.add_argument("--test-size", type=float, default=0.2,
                   help="hold-out fraction for non-MovieLens-100K data (default 0.2)")
    c.add_argument("--interval", type=float, default=0.9, help="interval probability (default 0.9)")
    c.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON")
    return p


def _compare(args) -> int:
    from .compare import METHODS, compare, format_table, load_data, to_json

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        print(f"bayes-mf: unknown method(s) {unknown or methods}; choose from {', '.join(METHODS)}",
              file=sys.stderr)
        return 2
    if args.rank < 1:
        print(f"bayes-mf: --rank must be >= 1, got {args.rank}", file=sys.stderr)
        return 2
    if args.fold is not None and args.data not in ("ml-100k", "100k", "movielens"):
        print("bayes-mf: --fold applies only to --data ml-100k", file=sys.stderr)
        return 2
    train, test, desc = load_data(args.data, fold=args.fold, test_size=args.test_size, random_seed=args.seed)
    print(f"data: {desc}; train {len(train)} ratings ({train.n_users} users x {train.n_items} items), "
          f"test {len(test)}; rank {args.rank}, seed {args.seed}; predictions clipped to "
          f"[{train.scale[0] if train.scale else train.rating.min():.3g}, "
          f"{train.scale[1] if train.scale else train.rating.max():.3g}]", flush=True)
    table = compare(train, test, methods, n_factors=args.rank, random_seed=args.seed,
                    interval=args.interval, progress=lambda s: print("  " + s, file=sys.stderr, flush=True))
    print(format_table(table, args.interval))
    print("coverage: share of test ratings inside the central interval; n/a = point estimate (no spread)")
    if args.json:
        fold = args.fold if args.data in ("ml-100k", "100k", "movielens") else None
        if args.data in ("ml-100k", "100k", "movielens") and fold is None:
            fold = 1
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(to_json(table, data=args.data, fold=fold,
                                     extra={"rank": args.rank, "seed": args.seed, "interval": args.interval}))
        print(f"wrote {args.json}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        args = _parser().parse_args(["compare", *(argv or [])])
    from .data import RatingsError
    from .datasets import DataNotFoundError

    try:
        if args.command == "compare":
            return _compare(args)
    except (RatingsError, DataNotFoundError, FileNotFoundError, ValueError) as exc:
        print(f"bayes-mf: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
