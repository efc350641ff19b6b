"""The files of a comparison run: ``results.json``, ``report.md`` and the figures.

Every file is written under a temporary name and renamed into place, so an
interrupted run never leaves a half-written report.  The names written are
recorded in ``.bayes_mf-outputs.json`` in the folder; the next run into the
same folder first removes exactly those files (and nothing else), so that
figures of an earlier run are never presented beside this run's report.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from ._files import atomic_write_text
from .compare import Comparison, _fmt, _yes, to_json

__all__ = ["write_report", "OUTPUTS_MANIFEST", "FIGURES"]

#: the record of what the package wrote into an output folder
OUTPUTS_MANIFEST = ".bayes_mf-outputs.json"
#: figure names a report can hold (``NAME.png``)
FIGURES = ("posterior_vs_point", "interval_width", "calibration", "ppc", "rank", "trace", "energy",
           "rmse_by_activity", "cost_vs_fidelity")


def _remove_earlier_outputs(out: Path) -> list[str]:
    """Delete the files an earlier run recorded in ``out``; return the figure files that stay.

    Only names listed in :data:`OUTPUTS_MANIFEST` are removed (they are files
    this package wrote); a figure-named PNG without that record may be the
    user's own and is kept, but reported as not belonging to this run.
    """
    record = out / OUTPUTS_MANIFEST
    if record.is_file():
        try:
            names = json.loads(record.read_text()).get("files", [])
        except (ValueError, AttributeError):
            names = []
        for name in names:
            # a name, never a path: the record cannot point outside the folder
            if isinstance(name, str) and name == Path(name).name and (out / name).is_file():
                (out / name).unlink()
    return [f"{n}.png" for n in FIGURES if (out / f"{n}.png").exists()]


_POSTERIOR_ORDER = ("nuts", "gibbs-implicit", "gibbs", "advi", "advi-lowrank", "pathfinder", "laplace")


def _markdown_table(table: pd.DataFrame, interval: float) -> str:
    cov = f"cov{int(round(interval * 100))}"
    head = f"| method | kind | RMSE | MAE | cov50 | {cov} | LPD | fit s | max R-hat | min ESS | converged |"
    lines = [head, "|" + "---|" * 11]
    for r in table.itertuples():
        lines.append(f"| {r.method} | {r.kind} | {r.rmse:.4f} | {r.mae:.4f} | {_fmt(r.coverage50, '.3f')} | "
                     f"{_fmt(r.coverage, '.3f')} | {_fmt(r.lpd, '.3f')} | {r.fit_seconds:.2f} | "
                     f"{_fmt(r.rhat_max, '.3f')} | {_fmt(r.ess_min, '.0f')} | {_yes(r.converged)} |")
    return "\n".join(lines)


def _write_figures(comp: Comparison, out, post: list, dpi: int) -> tuple[dict, list, dict]:
    """The PNG figures of :func:`write_report`; returns (written, skipped, methods by activity)."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from . import plots
    from .evaluate import coverage_curve

    written, skipped = {}, []
    best = post[0] if post else None
    point = "als" if "als" in comp.predictions else ("map" if "map" in comp.predictions else None)

    def save(name, make):
        try:
            drawn = make()
        except Exception as exc:  # noqa: BLE001 - a failed figure must not lose the report
            skipped.append(f"{name}: {type(exc).__name__}: {exc}")
            return
        # single-panel plots return their Axes, multi-panel ones their Figure
        fig = drawn if isinstance(drawn, Figure) else drawn.figure
        path = out / f"{name}.png"
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".png")
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=dpi)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
            plt.close(fig)
        written[name] = path

    tr, te = comp.train, comp.test
    if best and point:
        save("posterior_vs_point", lambda: plots.posterior_vs_point(
            comp.predictions[best], comp.predictions[point], tr,
            labels=(f"{point} point estimate", f"{best} posterior mean")))
    else:
        skipped.append("posterior_vs_point: needs a posterior method and als/map")
    if best:
        save("interval_width",
             lambda: plots.interval_width_vs_activity(comp.predictions[best], tr, label=best))
        save("calibration", lambda: plots.calibration({m: coverage_curve(comp.estimators[m], te)
                                                       for m in post}))
        save("ppc", lambda: plots.ppc_ratings(comp.estimators[best], te))
        save("rank", lambda: plots.rank_plot(comp.estimators[best].result_))
        save("trace", lambda: plots.trace_plot(comp.estimators[best].result_))
    else:
        skipped.append("interval_width, calibration, ppc, rank, trace: need a posterior method")
    if "nuts" in post:
        save("energy", lambda: plots.energy_plot(comp.estimators["nuts"].result_))
    act_methods = {m: comp.predictions[m] for m in ("als", "map", *post) if m in comp.predictions}
    if act_methods:
        save("rmse_by_activity", lambda: plots.rmse_by_activity(act_methods, tr))
    if comp.fidelity is not None and len(comp.fidelity):
        save("cost_vs_fidelity", lambda: plots.cost_vs_fidelity(comp.fidelity,
                                                                reference=comp.reference).figure)
    else:
        skipped.append("cost_vs_fidelity: needs a reference posterior (--reference gibbs)")
    return written, skipped, act_methods


def write_report(comp: Comparison, out_dir, *, data_desc: str, data: str = "", fold=None,
                 extra: dict | None = None, dpi: int = 80) -> dict:
    """Write ``results.json``, ``report.md`` and the figures (PNG) of a comparison into ``out_dir``.

    Figures (PNG): posterior mean vs ALS, interval width vs activity,
    calibration, posterior predictive check, RMSE by user activity, rank and
    trace plots of identifiable quantities, NUTS energy.  Figures that need a
    method that was not run are skipped and the report says so.

    Returns a dict name -> path of what was written.
    """
    from .diagnostics import sampler_health
    from .evaluate import by_activity

    out = Path(out_dir)
    # figures sit beside report.md so that the folder can be committed as it is
    out.mkdir(parents=True, exist_ok=True)
    foreign = _remove_earlier_outputs(out)
    table = comp.table
    post = [m for m in _POSTERIOR_ORDER if m in comp.estimators
            and table.set_index("method").loc[m, "kind"] == "posterior"]
    written, skipped, act_methods = _write_figures(comp, out, post, dpi)
    tr, te = comp.train, comp.test
    results_path = out / "results.json"
    atomic_write_text(results_path, to_json(table, data=data, fold=fold, extra=extra))
    written["results.json"] = results_path

    scale = comp.estimators[table["method"].iloc[0]].scale_ if len(table) else None
    n_unseen = int(table["n_unseen"].iloc[0]) if len(table) else 0
    md = [f"# bayes_mf comparison: {data_desc}", "",
          f"Train {len(tr)} ratings ({tr.n_users} users x {tr.n_items} items), test {len(te)} "
          f"({n_unseen} with a user or item unseen in training, predicted from the prior/biases). "
          "Same rank, seed and clipping for every method; "
          + (f"predictions clipped to the rating scale [{scale[0]:.3g}, {scale[1]:.3g}]."
             if scale is not None else "predictions not clipped (no rating scale declared or observable)."),
          "", _markdown_table(table, comp.interval), "",
          "*kind*: `point` = a point estimate (ALS, GD, MAP, baselines): it has no predictive spread, so its "
          "coverage, LPD and convergence columns are n/a — never faked. `posterior` = draws from a full "
          "posterior; coverage is the share of test ratings inside the central predictive interval "
          "(noise included), LPD the mean Gaussian log predictive density; max R-hat and min ESS "
          "(bulk or tail) are the worst over the identifiable set: sigma, the bias scales, mu, every "
          "bias and the predicted ratings of 50 fixed training pairs (never U, V: they are not "
          "identifiable). *converged*: all of them pass R-hat <= 1.01 and ESS >= 400 (NUTS also: no "
          "divergences, E-BFMI >= 0.3, no draw at the tree-depth limit).", ""]
    unconverged = [m for m in post if table.set_index("method").loc[m, "converged"] is False]
    if unconverged:
        md += ["**Not converged: " + ", ".join(unconverged) + ".** Their numbers come from chains "
               "that fail the checks above; do not read them as posterior summaries (the fit-time "
               "warning says what to change).", ""]
    if comp.fidelity is not None:
        from .fidelity import format_fidelity

        md += [f"## Fidelity to the {comp.reference} posterior", "",
               format_fidelity(comp.fidelity, markdown=True), "",
               f"Same split, model family, rank and seed. *|dmean|/sd*: distance of each test pair's "
               f"predictive mean to the {comp.reference} one in {comp.reference} predictive sds (median, "
               "p90); *sd ratio*: median ratio of predictive sds (< 1: over-confident); *in ref 90%*: "
               f"share of the method's predictive draws inside the {comp.reference} 90% interval (0.90 "
               "when the predictives agree); the same distance, sd ratio and coverage for sigma and the "
               "bias scales (sd ratio 0: the method holds the scale fixed at its type-II value). "
               "n/a: a point estimate has no spread.", ""]
    if act_methods:
        md += ["## RMSE by the user's number of training ratings", "", "```",
               by_activity(act_methods, tr).to_string(index=False, float_format="%.4f"), "```", ""]
    health = {m: sampler_health(comp.estimators[m].result_) for m in post}
    if health:
        md += ["## Sampler health", ""]
        md += [f"- **{m}**: " + (", ".join(f"{k} = {v}" for k, v in h.items() if k != "method")
                                 or "exact conditional draws (no step size, divergences or ELBO to report)")
               for m, h in health.items()]
        md.append("")
    if written:
        md += ["## Figures", ""]
        md += [f"![{name}]({p.name})" for name, p in written.items() if p.suffix == ".png"]
        md.append("")
    if skipped:
        md += ["## Not produced", ""] + [f"- {s}" for s in skipped] + [""]
    stale = [f for f in foreign if f[:-4] not in written]
    if stale:
        md += ["## Files in this folder that are not this run's", "",
               "Not written by this run (an earlier run's, or yours): " + ", ".join(stale), ""]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(md))
    written["report.md"] = report
    atomic_write_text(out / OUTPUTS_MANIFEST, json.dumps({"files": sorted(p.name for p in written.values())}))
    return written
