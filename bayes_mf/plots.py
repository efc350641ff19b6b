"""Figures for the MAP-versus-Bayes comparison, made to compose.

Single-panel functions take ``ax=`` (a :class:`matplotlib.axes.Axes` to draw
on; a new figure when omitted) and return that Axes; multi-panel ones take
``fig=`` (a Figure or SubFigure to fill) and return it, so any of them can be
a panel of a figure of your own (``fig.subfigures``, ``plt.subplots``).
None writes files (that is :mod:`bayes_mf.report`'s job).  Axis labels name
what is plotted: the methods, the interval level, the units (stars for ratings).

The MCMC diagnostics (:func:`rank_plot`, :func:`trace_plot`,
:func:`energy_plot`) are ArviZ's own (``plot_rank``, ``plot_trace``,
``plot_energy``): ArviZ lays out their grid in a figure it creates, so they
return that Figure and take no ``fig=``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .evaluate import activity, by_activity

__all__ = [
    "posterior_vs_point",
    "interval_width_vs_activity",
    "calibration",
    "ppc_ratings",
    "plot_star_ppc",
    "rmse_by_activity",
    "rank_plot",
    "trace_plot",
    "energy_plot",
    "sbc_histograms",
    "top_n_intervals",
    "cost_vs_fidelity",
]


def _fig(nrows=1, ncols=1, size=(5.5, 4.0), fig=None):
    """A new constrained-layout figure, or ``fig`` (Figure or SubFigure) filled with a grid of axes."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig, axes = plt.subplots(nrows, ncols, figsize=size, layout="constrained")
        return fig, axes
    return fig, fig.subplots(nrows, ncols, squeeze=nrows * ncols > 1)


def _ax(ax, size=(5.5, 4.0)):
    """``ax``, or the axes of a new figure."""
    return _fig(size=size)[1] if ax is None else ax


def _level(pred: pd.DataFrame, interval) -> str:
    """The interval level as text (``"90 %"``): given, else recorded by ``predict``."""
    level = interval if interval is not None else pred.attrs.get("interval", 0.9)
    return f"{100 * level:g} %"


def posterior_vs_point(pred: pd.DataFrame, point: pd.DataFrame, train=None, *, max_points: int = 400,
                       random_seed: int = 0, labels=("point estimate (ALS)", "posterior mean"),
                       interval: float | None = None, ax=None):
    """Posterior mean (with its central interval) against a point estimate, per pair.

    Colour: the user's number of training ratings (log scale) when ``train``
    is given.  A random subset of ``max_points`` pairs keeps the plot legible.
    ``interval`` labels the bars (default: the level ``predict`` recorded).
    Returns the Axes.
    """
    from matplotlib.colors import LogNorm

    if len(pred) != len(point):
        raise ValueError("pred and point must be predictions for the same pairs")
    rng = np.random.default_rng(random_seed)
    idx = np.sort(rng.choice(len(pred), size=min(max_points, len(pred)), replace=False))
    p, q = pred.iloc[idx], point.iloc[idx]
    ax = _ax(ax)
    fig = ax.figure
    x, y = q["mean"].to_numpy(), p["mean"].to_numpy()
    if {"lo", "hi"} <= set(p.columns) and p["lo"].notna().any():
        ax.vlines(x, p["lo"], p["hi"], color="0.75", lw=0.6, zorder=1,
                  label=f"{_level(pred, interval)} predictive interval")
    c = activity(p, train) if train is not None else None
    sc = ax.scatter(x, y, c=c, s=9, cmap="viridis", norm=LogNorm(vmin=1) if c is not None else None,
                    zorder=2)
    if c is not None:
        fig.colorbar(sc, ax=ax, label="user's training ratings")
    lo, hi = np.nanmin([x.min(), y.min()]), np.nanmax([x.max(), y.max()])
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xlabel=f"{labels[0]} (stars)", ylabel=f"{labels[1]} (stars)",
           title="Posterior mean vs point estimate")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", frameon=False)
    return ax


def interval_width_vs_activity(pred: pd.DataFrame, train, *, label: str | None = None,
                               interval: float | None = None, fig=None):
    """Width of the predictive interval against the user's and item's number of
    training ratings, with binned medians: less data should mean wider intervals.

    Two panels in ``fig`` (a new figure when omitted); returns the figure.
    """
    if "hi" not in pred.columns or pred["hi"].isna().all():
        raise ValueError("pred has no intervals (a point estimate has no spread)")
    width = (pred["hi"] - pred["lo"]).to_numpy()
    fig, axes = _fig(1, 2, (9.5, 3.8), fig=fig)
    for ax, by in zip(axes, ("user", "item"), strict=True):
        cnt = np.maximum(activity(pred, train, by), 1)
        ax.scatter(cnt, width, s=3, alpha=0.25, color="C0")
        edges = np.unique(np.geomspace(1, cnt.max() + 1, 12).round())
        which = np.digitize(cnt, edges)
        mids, meds = [], []
        for b in np.unique(which):
            sel = which == b
            if sel.sum() >= 5:
                mids.append(np.median(cnt[sel]))
                meds.append(np.median(width[sel]))
        ax.plot(mids, meds, "o-", color="C3", label="binned median")
        ax.set(xscale="log", xlabel=f"{by}'s training ratings",
               ylabel=f"width of the {_level(pred, interval)} interval (stars)")
        ax.legend(frameon=False)
    fig.suptitle(f"Predictive interval width vs data{'' if label is None else f' ({label})'}")
    return fig


def calibration(curves: dict, *, ax=None):
    """Nominal vs empirical coverage, one line per method; returns the Axes.

    ``curves``: method -> DataFrame with ``nominal`` and ``empirical``
    (:func:`bayes_mf.evaluate.coverage_curve`).
    """
    ax = _ax(ax, (4.6, 4.2))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="ideal")
    for name, cur in curves.items():
        ax.plot(cur["nominal"], cur["empirical"], "o-", ms=3, label=name)
    ax.set(xlabel="nominal coverage of the central predictive interval",
           ylabel="share of test ratings inside", xlim=(0, 1), ylim=(0, 1),
           title="Calibration of predictive intervals")
    ax.legend(frameon=False)
    return ax


def ppc_ratings(estimator, pairs, *, num_samples: int = 50, max_draws: int = 200, random_seed: int = 0,
                ax=None):
    """Posterior predictive check of the rating distribution, as ECDFs; returns the Axes.

    The observed ratings of ``pairs`` (black) against ``num_samples``
    replicated data sets drawn from the posterior predictive (grey), clipped
    to the rating scale as ``predict`` clips.  An ECDF suits discrete ratings
    (a KDE of 1-5 stars is a comb): the Gaussian likelihood's smooth curves
    against the observed steps show what the model does not capture.
    """
    import warnings

    from .base import _observed_ratings
    from .data import UnseenIdsWarning

    observed = _observed_ratings(pairs)
    if observed is None:
        raise ValueError("pairs carry no observed ratings to check against")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenIdsWarning)
        draws = estimator.predict_draws(pairs, max_draws=max_draws)
    y = draws.to_numpy().reshape(-1, draws.sizes["obs"])
    if getattr(estimator, "clip", True) and estimator.scale_ is not None:
        y = np.clip(y, *estimator.scale_)
    rng = np.random.default_rng(random_seed)
    pick = rng.choice(y.shape[0], size=min(num_samples, y.shape[0]), replace=False)
    ax = _ax(ax)
    grid = np.arange(1, y.shape[1] + 1) / y.shape[1]
    for k, s in enumerate(pick):
        ax.step(np.sort(y[s]), grid, where="post", color="0.6", lw=0.5, alpha=0.5,
                label="replicated (posterior predictive)" if k == 0 else None)
    ax.step(np.sort(observed), np.arange(1, observed.size + 1) / observed.size, where="post", color="k",
            lw=1.4, label="observed")
    ax.set(xlabel="rating (stars)", ylabel="cumulative share of ratings",
           title="Posterior predictive check: test ratings")
    ax.legend(frameon=False, loc="upper left")
    return ax


def plot_star_ppc(estimator, pairs, *, interval: float = 0.9, max_draws: int = 200, random_seed=None,
                  ax=None):
    """Star-histogram check of an ordinal model (:func:`bayes_mf.evaluate.star_ppc`); returns the Axes.

    Bars: observed count of each star; dots: expected count under the
    posterior predictive, with the central ``interval`` of the replicated
    counts as error bars.
    """
    from .evaluate import star_ppc

    t = star_ppc(estimator, pairs, interval=interval, max_draws=max_draws, random_seed=random_seed)
    ax = _ax(ax)
    x = t["level"].to_numpy()
    ax.bar(x, t["observed"], width=0.6, color="0.8", edgecolor="0.4", label="observed")
    exp = t["expected"].to_numpy()
    ax.errorbar(x, exp, yerr=[exp - t["lo"].to_numpy(), t["hi"].to_numpy() - exp], fmt="o", color="C0",
                capsize=3, label=f"predicted ({100 * interval:g} % of replicates)")
    ax.set(xlabel="rating (stars)", ylabel="number of ratings", xticks=x,
           title="Posterior predictive check: star histogram")
    ax.legend(frameon=False, loc="upper left")
    return ax


def rmse_by_activity(preds: dict, train, *, by: str = "user", edges=None, ax=None):
    """RMSE per bucket of the user's number of training ratings, one bar per method
    (BPMF 2008 reports that full Bayes helps most for users with few ratings).
    Returns the Axes.
    """
    kw = {} if edges is None else {"edges": edges}
    table = by_activity(preds, train, by=by, **kw)
    methods = [c for c in table.columns if c not in ("bucket", "n")]
    ax = _ax(ax, (7.0, 4.0))
    x = np.arange(len(table))
    w = 0.8 / max(1, len(methods))
    for k, m in enumerate(methods):
        ax.bar(x + (k - (len(methods) - 1) / 2) * w, table[m], width=w, label=m)
    ax.set_xticks(x, [f"{b}\nn={n}" for b, n in zip(table["bucket"], table["n"], strict=True)], fontsize=8)
    ax.set(xlabel=f"{by}'s number of training ratings (n = test ratings in the bucket)",
           ylabel="test RMSE (stars)", title=f"RMSE by {by} activity")
    lo = np.nanmin(table[methods].to_numpy())
    ax.set_ylim(max(0, lo - 0.1), None)
    ax.legend(frameon=False, ncols=min(4, len(methods)))
    return ax


def _identifiable_names(dt, n_checks):
    from .diagnostics import add_prediction_checks

    add_prediction_checks(dt)
    names = [v for v in ("sigma", "sigma_b", "sigma_c") if v in dt["posterior"]]
    return names + ["pred_check"], {"check": list(range(min(n_checks, dt["posterior"].sizes["check"])))}


def rank_plot(dt, *, n_checks: int = 3):
    """Rank plots (``arviz.plot_rank``) of σ's and a few predicted ratings -- never U, V."""
    import arviz as az

    names, coords = _identifiable_names(dt, n_checks)
    pc = az.plot_rank(dt, var_names=names, coords=coords, backend="matplotlib")
    return pc.viz["figure"].item()


def trace_plot(dt, *, n_checks: int = 3):
    """Trace plots (``arviz.plot_trace``) of σ's and a few predicted ratings."""
    import arviz as az

    names, coords = _identifiable_names(dt, n_checks)
    pc = az.plot_trace(dt, var_names=names, coords=coords, backend="matplotlib")
    return pc.viz["figure"].item()


def energy_plot(dt):
    """Energy plot with E-BFMI (``arviz.plot_energy``) for NUTS results."""
    import arviz as az

    if "sample_stats" not in dt.children or "energy" not in dt["sample_stats"]:
        raise ValueError("the result has no sampler energy (only NUTS has one)")
    pc = az.plot_energy(dt, backend="matplotlib")
    return pc.viz["figure"].item()


def sbc_histograms(ranks: pd.DataFrame, *, bins: int = 10, title: str | None = None, fig=None):
    """Rank histograms of simulation-based calibration, one panel per quantity.

    ``ranks`` is the table of :func:`bayes_mf.gibbs.simulate.sbc_ranks`; the
    grey band is the central 99 % range of a bin count under uniform ranks,
    so bars outside it flag a miscalibrated sampler.  One panel per quantity
    in ``fig`` (a new figure when omitted); returns the figure.
    """
    from scipy.stats import binom

    from .gibbs.simulate import rank_uniformity

    names = list(ranks.columns)
    fig, axes = _fig(1, len(names), size=(2.6 * len(names), 2.6), fig=fig)
    axes = np.atleast_1d(axes)
    n_values = int(ranks.attrs.get("draws", int(ranks.to_numpy().max()))) + 1
    edges = np.linspace(0, n_values, bins + 1)
    lo, hi = binom.ppf([0.005, 0.995], len(ranks), 1.0 / bins)
    pvals = rank_uniformity(ranks, bins)
    for ax, name in zip(axes, names, strict=True):
        ax.axhspan(lo, hi, color="0.85", zorder=0)
        counts, _, _ = ax.hist(ranks[name].to_numpy() + 0.5, bins=edges, color="C0", edgecolor="white")
        ax.set_ylim(0, 1.15 * max(hi, counts.max()))
        ax.set_title(f"{name}\nχ² p = {pvals[name]:.2f}", fontsize=9)
        ax.set_xlabel("rank of the true value among the draws")
        ax.set_yticks([])
    axes[0].set_ylabel(f"data sets per bin ({len(ranks)} in all)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def top_n_intervals(recs: pd.DataFrame, *, interval: float | None = None, label_col: str | None = None,
                    ax=None):
    """One user's top-N list: each item's predicted rating with its predictive interval.

    ``recs`` is the table of :meth:`recommend` (``rank``, ``item``, optional
    ``title``, ``mean``, ``lo``, ``hi``); items are listed top to bottom in
    rank order, labelled by ``label_col`` (default: ``title`` when present,
    else ``item``).  A point estimate (no interval) shows its means only.
    ``interval`` labels the bars (default 0.9, :meth:`recommend`'s own).
    Returns the Axes.
    """
    missing = [c for c in ("rank", "item", "mean") if c not in recs.columns]
    if missing:
        raise ValueError(f"recs lack column(s) {missing}; pass the table recommend() returns")
    col = label_col or ("title" if "title" in recs.columns else "item")
    if col not in recs.columns:
        raise ValueError(f"label_col {col!r} is not a column of recs ({list(recs.columns)})")
    r = recs.sort_values("rank")
    ax = _ax(ax, (6.0, 0.6 + 0.32 * len(r)))
    y = np.arange(len(r))
    mean = r["mean"].to_numpy(dtype=float)
    level = f"{100 * (0.9 if interval is None else interval):g} %"
    if {"lo", "hi"} <= set(r.columns) and r["lo"].notna().any():
        lo, hi = r["lo"].to_numpy(dtype=float), r["hi"].to_numpy(dtype=float)
        ax.errorbar(mean, y, xerr=[mean - lo, hi - mean], fmt="o", color="C0", ecolor="0.6", capsize=3)
        what = f"predicted rating (stars): mean and {level} predictive interval"
    else:
        ax.plot(mean, y, "o", color="C0")
        what = "predicted rating (stars): point estimate, no interval"
    ax.set_yticks(y, [f"{k}. {t}" for k, t in zip(r["rank"], r[col].astype(str), strict=True)], fontsize=8)
    ax.invert_yaxis()
    strategy = recs.attrs.get("strategy")
    who = recs.attrs.get("user")
    who = who.item() if isinstance(who, np.generic) else who
    # the axis label says what the bars are: a legend would sit on the top-ranked items
    ax.set(xlabel=what,
           title=f"Top {len(r)}" + ("" if who is None else f" for user {who!r}")
           + ("" if strategy is None else f" (ranked by {strategy})"))
    return ax


def cost_vs_fidelity(fidelity: pd.DataFrame, *, ax=None, reference: str = "reference"):
    """Fit time (log x) against the predictive-mean distance to the reference (y), one point per method.

    ``fidelity`` is a table of :func:`bayes_mf.fidelity.fidelity_table`.  The
    y value is the median :math:`|\\bar y^m - \\bar y^{ref}|/s^{ref}` over test
    pairs; each point is labelled with the method and, where it has a
    spread, its predictive sd ratio.  Draws on ``ax`` (a new figure if
    ``None``) and returns it; writes no file.
    """
    if ax is None:
        _, ax = _fig()
    for r in fidelity.itertuples():
        ax.scatter(r.fit_seconds, r.mean_dist_median, s=40)
        label = r.method if np.isnan(r.sd_ratio_median) else f"{r.method} (sd x{r.sd_ratio_median:.2f})"
        ax.annotate(label, (r.fit_seconds, r.mean_dist_median), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a narrow log range overlap
    ax.set_xlabel("fit time (s, log scale)")
    ax.set_ylabel(f"median |mean - {reference} mean| / {reference} sd")
    ax.set_title(f"cost versus fidelity to {reference}")
    # room above the highest point for its label
    ax.set_ylim(0, 1.2 * max(float(np.nanmax(fidelity["mean_dist_median"])), 1e-3))
    return ax
