"""Side-by-side comparison of methods on one split (same rank, seed, clipping).

:func:`compare` fits every requested method on the same training data with
the same ``n_factors`` and ``random_seed``, scores each on the same test
pairs, and returns one row per method.  Point estimates (baseline, ALS, GD,
MAP) have no predictive spread: their coverage is ``nan`` ("n/a" in the
table), never invented.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence

import pandas as pd

from .data import Ratings, UnseenIdsWarning
from .evaluate import score

__all__ = ["METHODS", "make_estimator", "compare", "format_table", "load_data"]


def _pmf(method: str) -> Callable:
    def make(n_factors: int, random_seed):
        from .inference import PMF

        return PMF(n_factors=n_factors, method=method, random_seed=random_seed)

    return make


def _gibbs(n_factors: int, random_seed):
    from .gibbs import GibbsPMF

    return GibbsPMF(n_factors=n_factors, random_seed=random_seed)


def _als(n_factors, random_seed):
    from .als import ALS

    return ALS(n_factors=n_factors, random_seed=random_seed)


def _gd(n_factors, random_seed):
    from .gd import GradientDescentMF

    return GradientDescentMF(n_factors=n_factors, random_seed=random_seed)


def _mean(n_factors, random_seed):
    from .baselines import GlobalMean

    return GlobalMean()


def _baseline(n_factors, random_seed):
    from .baselines import BiasBaseline

    return BiasBaseline()


#: method name -> factory(n_factors, random_seed) of an unfitted estimator
METHODS: dict[str, Callable] = {
    "mean": _mean,
    "baseline": _baseline,
    "als": _als,
    "gd": _gd,
    "map": _pmf("map"),
    "advi": _pmf("advi"),
    "nuts": _pmf("nuts"),
    "gibbs": _gibbs,
}


def make_estimator(name: str, n_factors: int = 10, random_seed=0):
    """An unfitted estimator for a method name of :data:`METHODS`."""
    try:
        factory = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}") from None
    return factory(n_factors, random_seed)


def load_data(data: str = "synthetic", *, fold: int | None = None, test_size: float = 0.2,
              random_seed=0) -> tuple[Ratings, Ratings, str]:
    """Resolve ``--data``: ``"synthetic"``, ``"ml-100k"`` (canonical fold), or a file path.

    Returns ``(train, test, description)``.
    """
    from . import datasets
    from .data import train_test_split

    if data == "synthetic":
        sim = default_synthetic(random_seed)
        train, test = train_test_split(sim.ratings, test_size, random_seed=random_seed)
        return train, test, "synthetic (simulate_pmf default: 600 users x 400 items, rank 5)"
    if data in ("ml-100k", "100k", "movielens"):
        k = 1 if fold is None else int(fold)
        train, test = datasets.movielens_fold("100k", k)
        return train, test, f"MovieLens 100K fold u{k}"
    if data in ("ml-1m", "1m"):
        ratings = datasets.load_movielens("1m")
        train, test = train_test_split(ratings, test_size, random_seed=random_seed)
        return train, test, f"MovieLens 1M, random {test_size:.0%} hold-out (seed {random_seed})"
    ratings = Ratings.from_csv(data)
    train, test = train_test_split(ratings, test_size, random_seed=random_seed)
    return train, test, f"{data}, random {test_size:.0%} hold-out (seed {random_seed})"


def default_synthetic(random_seed=0):
    """The built-in default data set: ratings drawn from a biased PMF."""
    from .datasets import simulate_pmf

    return simulate_pmf(600, 400, 5, density=0.08, noise_sd=0.8, sigma_u=0.6, sigma_v=0.6,
                        global_mean=3.5, bias_sd=0.4, random_seed=random_seed)


def compare(train: Ratings, test: Ratings, methods: Sequence[str] = ("baseline", "als", "gd"), *,
            n_factors: int = 10, random_seed=0, interval: float = 0.9,
            estimators: dict | None = None, progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Fit and score each method on the same split.

    Parameters
    ----------
    train, test : Ratings
    methods : names from :data:`METHODS`
    n_factors, random_seed : shared by every method
    interval : central probability of the reported interval coverage
    estimators : optional name -> unfitted estimator, overriding the defaults
    progress : optional callback receiving a line per fitted method

    Returns
    -------
    DataFrame, one row per method: ``method``, ``kind`` (point/posterior),
    ``rmse``, ``mae``, ``coverage`` (nan for point estimates), ``lpd``,
    ``fit_seconds``, ``n_train``, ``n_test``, ``n_unseen``.
    """
    rows = []
    for name in methods:
        est = (estimators or {}).get(name) or make_estimator(name, n_factors, random_seed)
        est.fit(train)
        with warnings.catch_warnings():
            # the count of unseen test rows is reported in the table instead
            warnings.simplefilter("ignore", UnseenIdsWarning)
            kw = {"interval": interval} if getattr(est, "is_bayesian", False) else {}
            pred = est.predict(test, **kw)
        s = score(pred)
        rows.append({
            "method": name,
            "kind": "posterior" if getattr(est, "is_bayesian", False) and not _is_point(est) else "point",
            "rmse": s["rmse"], "mae": s["mae"], "coverage": s["coverage"], "lpd": s["lpd"],
            "fit_seconds": est.fit_seconds_, "n_train": len(train), "n_test": len(pred),
            "n_unseen": pred.attrs.get("n_unseen", 0),
        })
        if progress:
            progress(f"{name}: rmse {s['rmse']:.4f} in {est.fit_seconds_:.2f} s")
    return pd.DataFrame(rows)


def _is_point(est) -> bool:
    result = getattr(est, "result_", None)
    if result is None:
        return True
    post = result["posterior"]
    return post.sizes.get("chain", 1) * post.sizes.get("draw", 1) == 1


def format_table(table: pd.DataFrame, interval: float = 0.9) -> str:
    """Plain-text table; coverage of point estimates shows as ``n/a``."""
    cov = f"cov{int(round(interval * 100))}"
    lines = [f"{'method':<10} {'kind':<9} {'rmse':>7} {'mae':>7} {cov:>6} {'fit_s':>8} "
             f"{'n_train':>8} {'n_test':>7} {'unseen':>6}"]
    for r in table.itertuples():
        c = "n/a" if math.isnan(r.coverage) else f"{r.coverage:.3f}"
        lines.append(f"{r.method:<10} {r.kind:<9} {r.rmse:7.4f} {r.mae:7.4f} {c:>6} {r.fit_seconds:8.2f} "
                     f"{r.n_train:8d} {r.n_test:7d} {r.n_unseen:6d}")
    return "\n".join(lines)


def to_json(table: pd.DataFrame, *, data: str, fold, extra: dict | None = None) -> str:
    """The ``--json`` document: ``{"data", "fold", "results": [...]}`` (nan -> null)."""
    results = []
    for rec in table.to_dict(orient="records"):
        results.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()})
    doc = {"data": data, "fold": fold, "results": results, **(extra or {})}
    return json.dumps(doc, indent=2, default=_json_default)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
