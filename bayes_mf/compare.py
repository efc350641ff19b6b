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
from dataclasses import dataclass

import pandas as pd

from .data import Ratings, UnseenIdsWarning
from .evaluate import coverage, score
from .methods import METHODS, SAMPLING_OPTIONS, make_estimator  # noqa: F401 (public here too)

__all__ = ["METHODS", "Comparison", "make_estimator", "run", "compare", "format_table", "load_data",
           "load_folds", "fold_summary", "format_folds", "predictions_table", "write_report"]


def load_data(data: str = "synthetic", *, fold: int | None = None, test_size: float = 0.2,
              random_seed=0, csv_kw: dict | None = None) -> tuple[Ratings, Ratings, str]:
    """Resolve ``--data``: ``"synthetic"``, ``"ml-100k"`` (canonical fold), ``"ml-1m"`` or a
    file path (read by :meth:`Ratings.from_csv` with ``csv_kw``).

    Returns ``(train, test, description)``.
    """
    from . import datasets
    from .data import train_test_split

    # unseen test rows are kept and predicted from the prior (as for the canonical folds),
    # so every method is scored on the same pairs and their count shows in the table
    if data == "synthetic":
        sim = default_synthetic(random_seed)
        train, test = train_test_split(sim.ratings, test_size, random_seed=random_seed, unseen="prior")
        return train, test, "synthetic (simulate_pmf default: 600 users x 400 items, rank 5)"
    if data in ("ml-100k", "100k", "movielens"):
        k = 1 if fold is None else int(fold)
        train, test = datasets.movielens_fold("100k", k)
        _attach_side(train, test)
        return train, test, f"MovieLens 100K fold u{k}"
    if data in ("ml-1m", "1m"):
        ratings = datasets.load_movielens("1m")
        train, test = train_test_split(ratings, test_size, random_seed=random_seed, unseen="prior")
        return train, test, f"MovieLens 1M, random {test_size:.0%} hold-out (seed {random_seed})"
    ratings = Ratings.from_csv(data, **(csv_kw or {}))
    train, test = train_test_split(ratings, test_size, random_seed=random_seed, unseen="prior")
    return train, test, f"{data}, random {test_size:.0%} hold-out (seed {random_seed})"


def _attach_side(train: Ratings, test: Ratings) -> None:
    """ML-100K user and item attributes in ``meta``, for ``gibbs-side`` (:mod:`bayes_mf.sideinfo`)."""
    from .sideinfo import attach_features

    attach_features(train, test)


def load_folds(data: str = "synthetic", *, k: int = 5, random_seed=0, csv_kw: dict | None = None):
    """Every fold of ``--fold all``: a list of ``(label, train, test, description)``.

    MovieLens 100K gives its five canonical folds ``u1..u5``; any other data
    (synthetic, ML-1M, a file) a seeded ``k``-fold partition
    (:func:`bayes_mf.splits.kfold_splits`), labelled ``f1..fk``, in which
    every rating is a test rating exactly once.
    """
    import warnings

    from . import datasets
    from .splits import kfold_splits

    if data in ("ml-100k", "100k", "movielens"):
        out = [(f"u{f}", *datasets.movielens_fold("100k", f), f"MovieLens 100K fold u{f}")
               for f in range(1, 6)]
        for _, train, test, _ in out:
            _attach_side(train, test)
        return out
    if data == "synthetic":
        ratings, name = default_synthetic(random_seed).ratings, "synthetic"
    elif data in ("ml-1m", "1m"):
        ratings, name = datasets.load_movielens("1m"), "MovieLens 1M"
    else:
        ratings, name = Ratings.from_csv(data, **(csv_kw or {})), str(data)
    out = []
    with warnings.catch_warnings():
        # unseen test rows are kept, predicted from the prior, and counted in the table
        warnings.simplefilter("ignore", UnseenIdsWarning)
        for train, test in kfold_splits(ratings, k, random_seed=random_seed, unseen="prior"):
            f = train.meta["fold"] + 1
            out.append((f"f{f}", train, test, f"{name}, fold {f} of a seeded {k}-fold partition "
                                              f"(seed {random_seed})"))
    return out


def default_synthetic(random_seed=0):
    """The built-in default data set: ratings drawn from a biased PMF."""
    from .datasets import simulate_pmf

    return simulate_pmf(600, 400, 5, density=0.08, noise_sd=0.8, sigma_u=0.6, sigma_v=0.6,
                        global_mean=3.5, bias_sd=0.4, random_seed=random_seed)


@dataclass
class Comparison:
    """Everything one side-by-side run produced: the table, the fitted estimators
    and their test predictions (same pairs, same order for every method)."""

    table: pd.DataFrame
    estimators: dict
    predictions: dict
    train: Ratings
    test: Ratings
    interval: float = 0.9
    #: per-method fidelity to the reference posterior (:mod:`bayes_mf.fidelity`), when one was named
    fidelity: pd.DataFrame | None = None
    reference: str | None = None


def run(train: Ratings, test: Ratings, methods: Sequence[str] = ("baseline", "als", "gd"), *,
        n_factors: int = 10, random_seed=0, interval: float = 0.9,
        estimators: dict | None = None, progress: Callable[[str], None] | None = None,
        sampling: dict | None = None, reference: str | None = None) -> Comparison:
    """Fit and score each method on the same split (same rank, seed and clipping).

    Parameters
    ----------
    train, test : Ratings
    methods : names from :data:`METHODS`
    n_factors, random_seed : shared by every method
    interval : central probability of the main reported interval (coverage at
        50 % is reported as well)
    estimators : optional name -> unfitted estimator, overriding the defaults
    progress : optional callback receiving a line per fitted method
    sampling : optional sampler options for :func:`make_estimator` (``chains``,
        ``draws``, ``tune``, ``burn_in``, ``max_seconds``, ``target_ess``, ``cores``)
    reference : optional method name (e.g. ``"gibbs"``) whose posterior the
        others are measured against (:func:`bayes_mf.fidelity.fidelity_table`,
        stored as ``Comparison.fidelity``); it is fitted (first) if not in ``methods``

    Returns
    -------
    Comparison whose ``table`` has one row per method: ``method``, ``kind``
    (point/posterior), ``rmse``, ``mae``, ``coverage`` (at ``interval``),
    ``coverage50``, ``lpd`` (mean Gaussian log predictive density), ``fit_seconds``,
    ``rhat_max`` / ``ess_min`` (worst R-hat, worst bulk or tail ESS over the
    identifiable set: sigma's, mu, every bias, predicted ratings of training
    pairs; posterior methods with >= 2 chains), ``converged``, ``draws_total``
    (kept draws, all chains), ``divergences`` and ``ebfmi_min`` (NUTS),
    ``n_train``, ``n_test``, ``n_unseen``.
    Point estimates get ``nan`` wherever a spread would be needed.  Ordinal
    models (``gibbs-ordinal``) add ``log_score``, ``rps``, ``accuracy`` and
    ``mae_median`` (:func:`bayes_mf.evaluate.ordinal_scores`); their
    ``coverage`` counts ratings inside the star set of mass >= ``interval``
    and their ``lpd`` is the log score (other rows: ``nan`` there).
    """
    rows, fitted, preds = [], {}, {}
    methods = list(dict.fromkeys(methods))  # each method once
    if reference is not None and reference not in methods:
        methods.insert(0, reference)
    for name in methods:
        est = (estimators or {}).get(name) or make_estimator(name, n_factors, random_seed, **(sampling or {}))
        est.fit(train)
        posterior = getattr(est, "is_bayesian", False) and not _is_point(est)
        with warnings.catch_warnings():
            # the count of unseen test rows is reported in the table instead
            warnings.simplefilter("ignore", UnseenIdsWarning)
            pred = est.predict(test, **({"interval": interval} if posterior else {}))
            cov50 = (coverage(pred["rating"], *est.predict(test, interval=0.5)[["lo", "hi"]].T.to_numpy())
                     if posterior else float("nan"))
        s = score(pred)
        if getattr(est, "likelihood", "gaussian") == "ordinal":
            s.update(_ordinal_row(est, test, pred, interval))
            cov50 = _ordinal_row(est, test, pred, 0.5)["coverage"]
        rows.append({
            "method": name, "kind": "posterior" if posterior else "point",
            "rmse": s["rmse"], "mae": s["mae"], "coverage": s["coverage"], "coverage50": cov50,
            "lpd": s["lpd"], "fit_seconds": est.fit_seconds_, **_sampler_summary(est, posterior),
            "n_train": len(train), "n_test": len(pred), "n_unseen": pred.attrs.get("n_unseen", 0),
            **{k: s[k] for k in _ORDINAL_KEYS if k in s},
        })
        fitted[name], preds[name] = est, pred
        if progress:
            progress(f"{name}: rmse {s['rmse']:.4f} in {est.fit_seconds_:.2f} s")
    table = pd.DataFrame(rows)
    fid = None
    if reference is not None:
        from .fidelity import fidelity_table

        if table.set_index("method").loc[reference, "kind"] != "posterior":
            raise ValueError(f"reference {reference!r} is a point estimate; name a posterior method "
                             "(e.g. 'gibbs')")
        fid = fidelity_table(fitted, reference, test, interval=interval)
    return Comparison(table, fitted, preds, train, test, interval, fidelity=fid, reference=reference)


#: the star-scale metrics of an ordinal model's row (:func:`bayes_mf.evaluate.ordinal_scores`)
_ORDINAL_KEYS = ("log_score", "rps", "accuracy", "mae_median")


def _ordinal_row(est, test, pred, interval: float) -> dict:
    """Star-scale metrics of an ordinal model: coverage of its star sets, ``lpd`` = the log score."""
    from .evaluate import ordinal_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenIdsWarning)
        proba = est.predict_proba(test)
    levels = est.levels_
    out = ordinal_scores(pred["rating"].to_numpy(), proba[list(levels)].to_numpy(), levels, interval)
    # the log probability of the observed star is the discrete model's log predictive density
    return {**out, "lpd": out["log_score"]}


def compare(train: Ratings, test: Ratings, methods: Sequence[str] = ("baseline", "als", "gd"),
            *, reference: str | None = None, **kw) -> pd.DataFrame:
    """The table of :func:`run` alone; with ``reference``, its fidelity columns joined on
    (``fid_`` + the names of :func:`bayes_mf.fidelity.fidelity`; ``nan`` on the reference's row).

    Example: ``compare(train, test, ["map", "laplace", "pathfinder", "advi"], reference="gibbs")``.
    """
    comp = run(train, test, methods, reference=reference, **kw)
    if comp.fidelity is None:
        return comp.table
    fid = comp.fidelity.drop(columns="fit_seconds").set_index("method").add_prefix("fid_")
    return comp.table.join(fid, on="method")


#: columns averaged over folds by :func:`fold_summary`
_MEAN_COLUMNS = ("rmse", "mae", "coverage", "coverage50", "lpd", "fit_seconds", "rhat_max", "ess_min")


def fold_summary(tables: dict) -> pd.DataFrame:
    """One table of per-fold rows (``fold`` column) and, per method, a ``fold="mean"`` row.

    ``tables`` maps a fold label to the table :func:`run` made on it.  The mean
    row averages :data:`_MEAN_COLUMNS` over the folds (``nan`` where a method
    has none, e.g. a point estimate's coverage), sums ``n_test`` and
    ``n_unseen``, and says ``converged`` only when every fold converged.
    """
    rows = pd.concat([t.assign(fold=label) for label, t in tables.items()], ignore_index=True)
    means = []
    for method, g in rows.groupby("method", sort=False):
        m = {"fold": "mean", "method": method, "kind": g["kind"].iloc[0]}
        m.update({c: float(g[c].astype(float).mean()) for c in _MEAN_COLUMNS if c in g})
        conv = g["converged"].tolist()
        m["converged"] = None if any(v is None for v in conv) else bool(all(conv))
        m.update(n_train=int(g["n_train"].sum()), n_test=int(g["n_test"].sum()),
                 n_unseen=int(g["n_unseen"].sum()), draws_total=int(g["draws_total"].sum()))
        means.append(m)
    out = pd.concat([rows, pd.DataFrame(means)], ignore_index=True)
    return out[["fold"] + [c for c in out.columns if c != "fold"]]


def format_folds(summary: pd.DataFrame, interval: float = 0.9) -> str:
    """Plain-text table of :func:`fold_summary`: per-fold rows, then each method's mean."""
    cov = f"cov{int(round(interval * 100))}"
    lines = [f"{'fold':<5} {'method':<14} {'rmse':>7} {'mae':>7} {'cov50':>6} {cov:>6} {'lpd':>7} "
             f"{'fit_s':>8} {'conv':>4} {'n_test':>7}"]
    for r in summary.itertuples():
        lines.append(f"{r.fold:<5} {r.method:<14} {r.rmse:7.4f} {r.mae:7.4f} {_fmt(r.coverage50, '.3f'):>6} "
                     f"{_fmt(r.coverage, '.3f'):>6} {_fmt(r.lpd, '.3f'):>7} {r.fit_seconds:8.2f} "
                     f"{_yes(r.converged):>4} {r.n_test:7d}")
    return "\n".join(lines)


def predictions_table(comp: Comparison, fold=None) -> pd.DataFrame:
    """Every method's test predictions in one long table (the ``--predictions`` file).

    Columns ``[fold,] user, item, rating, method, mean, sd, lo, hi``; a point
    estimate's ``sd``, ``lo``, ``hi`` are empty (it has no spread), and
    ``lo``/``hi`` bound the central ``comp.interval`` predictive interval.
    """
    parts = []
    for method, pred in comp.predictions.items():
        part = pd.DataFrame({"user": pred["user"].to_numpy(), "item": pred["item"].to_numpy(),
                             "rating": pred["rating"].to_numpy() if "rating" in pred else float("nan"),
                             "method": method})
        for col in ("mean", "sd", "lo", "hi"):
            part[col] = pred[col].to_numpy() if col in pred else float("nan")
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    if fold is not None:
        out.insert(0, "fold", fold)
    return out


def _sampler_summary(est, posterior: bool) -> dict:
    """Convergence columns of a table row: the whole identifiable set, plus NUTS health."""
    from .diagnostics import convergence, sampler_health

    nan = float("nan")
    out = {"rhat_max": nan, "ess_min": nan, "converged": None, "draws_total": 0, "divergences": None,
           "ebfmi_min": nan}
    if not posterior:
        return out
    post = est.result_["posterior"]
    out["draws_total"] = int(post.sizes.get("chain", 1) * post.sizes.get("draw", 1))
    if post.sizes.get("chain", 1) < 2:
        return out
    # the table the fit computed when it has one (Gibbs diagnoses while it samples)
    t = getattr(est, "convergence_", None)
    if t is None or not len(t):
        t = convergence(est.result_, warn=False)
    out["rhat_max"] = float(t["rhat_max"].max())
    out["ess_min"] = float(t[["ess_bulk_min", "ess_tail_min"]].min().min())
    converged = getattr(est, "converged_", None)
    out["converged"] = bool(t["ok"].all()) if converged is None else bool(converged)
    health = sampler_health(est.result_)
    if "divergences" in health:
        out["divergences"] = int(health["divergences"])
    if health.get("bfmi"):
        out["ebfmi_min"] = float(min(health["bfmi"]))
    return out


def _is_point(est) -> bool:
    result = getattr(est, "result_", None)
    if result is None:
        return True
    post = result["posterior"]
    return post.sizes.get("chain", 1) * post.sizes.get("draw", 1) == 1


def _fmt(v, spec):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _yes(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else ("yes" if v else "no")


def format_table(table: pd.DataFrame, interval: float = 0.9) -> str:
    """Plain-text table; quantities a point estimate cannot have show as ``n/a``."""
    cov = f"cov{int(round(interval * 100))}"
    lines = [f"{'method':<14} {'kind':<9} {'rmse':>7} {'mae':>7} {'cov50':>6} {cov:>6} {'lpd':>7} "
             f"{'fit_s':>8} {'rhat':>6} {'ess':>6} {'conv':>4} {'n_test':>7} {'unseen':>6}"]
    for r in table.itertuples():
        lines.append(f"{r.method:<14} {r.kind:<9} {r.rmse:7.4f} {r.mae:7.4f} {_fmt(r.coverage50, '.3f'):>6} "
                     f"{_fmt(r.coverage, '.3f'):>6} {_fmt(r.lpd, '.3f'):>7} {r.fit_seconds:8.2f} "
                     f"{_fmt(r.rhat_max, '.3f'):>6} {_fmt(r.ess_min, '.0f'):>6} {_yes(r.converged):>4} "
                     f"{r.n_test:7d} "
                     f"{r.n_unseen:6d}")
    return "\n".join(lines)


#: columns of whole numbers in the ``--json`` rows
_COUNTS = ("divergences", "draws_total", "n_train", "n_test", "n_unseen")


def to_json(table: pd.DataFrame, *, data: str, fold, extra: dict | None = None) -> str:
    """The ``--json`` document: ``{"data", "fold", "results": [...]}`` (nan -> null)."""
    results = []
    for rec in table.to_dict(orient="records"):
        rec = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
        # counts stay integers when a missing value made their column float
        results.append({k: (int(v) if k in _COUNTS and v is not None else v) for k, v in rec.items()})
    doc = {"data": data, "fold": fold, "results": results, **(extra or {})}
    return json.dumps(doc, indent=2, default=_json_default)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_report(comp: Comparison, out_dir, **kw) -> dict:
    """Write the report of a comparison; see :func:`bayes_mf.report.write_report`."""
    from .report import write_report as _write_report

    return _write_report(comp, out_dir, **kw)
