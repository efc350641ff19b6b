r"""Fidelity of an approximation to a reference posterior of the same model, split, rank and seed.

Test RMSE and coverage say how well a method predicts; they do not say how
close it is to the posterior it approximates.  With a reference fit (the
exact Gibbs posterior, converged), :func:`fidelity` measures, per method:

predictive means
    :math:`d_p = |\bar y^{m}_p - \bar y^{ref}_p| / s^{ref}_p` for every test
    pair :math:`p` (:math:`s^{ref}` the reference predictive sd, noise
    included): ``mean_dist_median`` and ``mean_dist_p90``.  0 is perfect;
    0.1 means the means differ by a tenth of the reference's uncertainty.
predictive spread
    ``sd_ratio_median``: the median of :math:`s^m_p / s^{ref}_p` (1 is
    perfect; < 1 over-confident).
reference intervals
    ``ref_coverage``: the share of the method's predictive draws inside the
    reference's central ``interval`` (90 %) predictive interval, averaged
    over pairs.  Equals ``interval`` when the two predictives agree; above
    it when the method is too narrow, below when too wide or shifted.
scales
    The same three numbers for :math:`\sigma`, :math:`\sigma_b` and
    :math:`\sigma_c` (``sigma_dist``, ``sigma_sd_ratio``,
    ``sigma_coverage``, ...): a method holding a scale fixed has sd ratio 0
    and coverage 0 or 1.

Point estimates (one draw) get ``nan`` for everything that needs a spread
(``sd_ratio``, ``ref_coverage``); their mean distance is reported.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

__all__ = ["fidelity", "fidelity_table", "SCALES", "FIDELITY_DRAWS"]

#: scale parameters compared, when both fits have them
SCALES = ("sigma", "sigma_b", "sigma_c")
#: predictive draws per method used for ``ref_coverage`` (evenly thinned)
FIDELITY_DRAWS = 200


def _scale_draws(est, name: str) -> np.ndarray | None:
    post = est.result_["posterior"]
    if name not in post:
        return None
    return np.asarray(post[name].to_numpy(), dtype=float).ravel()


def _scalar_fidelity(x: np.ndarray, ref: np.ndarray, interval: float) -> dict:
    """Distance of the means in reference sds, sd ratio, share of ``x`` in the reference interval."""
    q = [(1 - interval) / 2, (1 + interval) / 2]
    lo, hi = np.quantile(ref, q)
    sd_ref = np.std(ref, ddof=1)
    # a scale held fixed has sd exactly 0 (np.std of a constant vector can be 1e-16)
    sd = (0.0 if np.ptp(x) == 0 else np.std(x, ddof=1)) if x.size > 1 else np.nan
    return {"dist": float(abs(np.mean(x) - np.mean(ref)) / sd_ref) if sd_ref > 0 else np.nan,
            "sd_ratio": float(sd / sd_ref) if sd_ref > 0 else np.nan,
            "coverage": float(np.mean((x >= lo) & (x <= hi))) if x.size > 1 else np.nan}


def fidelity(est, reference, pairs, *, interval: float = 0.9, ref_pred: pd.DataFrame | None = None,
             max_draws: int = FIDELITY_DRAWS) -> dict:
    """Fidelity of fitted ``est`` to the fitted ``reference`` on ``pairs`` (see the module docstring).

    Parameters
    ----------
    est, reference : fitted estimators
        ``reference`` must be a posterior (more than one draw).
    pairs : Ratings or DataFrame
        The pairs to compare on (usually the test split).
    interval : float
        Probability of the reference intervals.
    ref_pred : DataFrame, optional
        ``reference.predict(pairs, interval=interval)`` when already computed.
    max_draws : int
        Predictive draws of ``est`` used for ``ref_coverage``.

    Returns
    -------
    dict of the fidelity columns.
    """
    from .data import UnseenIdsWarning

    with warnings.catch_warnings():
        # the unseen pairs are predicted from the prior by both fits and counted elsewhere
        warnings.simplefilter("ignore", UnseenIdsWarning)
        if ref_pred is None:
            ref_pred = reference.predict(pairs, interval=interval)
        if ref_pred["sd"].isna().all():
            raise ValueError("the reference is a point estimate; use a posterior (e.g. 'gibbs')")
        point = not getattr(est, "is_bayesian", False) or est.draws_.n_draws == 1
        pred = est.predict(pairs, **({} if point else {"interval": interval}))
        out = {}
        sd_ref = ref_pred["sd"].to_numpy()
        d = np.abs(pred["mean"].to_numpy() - ref_pred["mean"].to_numpy()) / sd_ref
        out["mean_dist_median"] = float(np.median(d))
        out["mean_dist_p90"] = float(np.quantile(d, 0.9))
        if point:
            out["sd_ratio_median"] = out["ref_coverage"] = np.nan
        else:
            out["sd_ratio_median"] = float(np.median(pred["sd"].to_numpy() / sd_ref))
            y = est.predict_draws(pairs, max_draws=max_draws).to_numpy().reshape(-1, len(pred))
            if est.clip and est.scale_ is not None:
                y = np.clip(y, *est.scale_)  # the reference's interval ends are clipped alike
            lo, hi = ref_pred["lo"].to_numpy(), ref_pred["hi"].to_numpy()
            out["ref_coverage"] = float(np.mean((y >= lo) & (y <= hi)))
    for name in SCALES:
        x, ref = (_scale_draws(e, name) if getattr(e, "result_", None) is not None else None
                  for e in (est, reference))
        nan = {"dist": np.nan, "sd_ratio": np.nan, "coverage": np.nan}
        s = _scalar_fidelity(x, ref, interval) if x is not None and ref is not None else nan
        out.update({f"{name}_{k}": v for k, v in s.items()})
    return out


def fidelity_table(estimators: dict, reference: str, pairs, *, interval: float = 0.9,
                   fit_seconds: dict | None = None) -> pd.DataFrame:
    """One :func:`fidelity` row per method of ``estimators`` other than ``reference``.

    Columns: ``method``, ``fit_seconds`` (from the estimators unless given),
    then those of :func:`fidelity`.
    """
    ref = estimators[reference]
    from .data import UnseenIdsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenIdsWarning)
        ref_pred = ref.predict(pairs, interval=interval)
    rows = []
    for name, est in estimators.items():
        if name == reference:
            continue
        secs = (fit_seconds or {}).get(name, getattr(est, "fit_seconds_", np.nan))
        rows.append({"method": name, "fit_seconds": float(secs),
                     **fidelity(est, ref, pairs, interval=interval, ref_pred=ref_pred)})
    return pd.DataFrame(rows)


def _f(v, spec: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)


#: (column, header, format) of the printed and Markdown fidelity tables
_COLUMNS = (("fit_seconds", "fit s", ".2f"), ("mean_dist_median", "|dmean|/sd med", ".3f"),
            ("mean_dist_p90", "p90", ".3f"), ("sd_ratio_median", "sd ratio", ".3f"),
            ("ref_coverage", "in ref 90%", ".3f"), ("sigma_dist", "sigma dist", ".2f"),
            ("sigma_sd_ratio", "sigma sd ratio", ".2f"), ("sigma_coverage", "sigma cov", ".2f"),
            ("sigma_b_dist", "sigma_b dist", ".2f"), ("sigma_b_sd_ratio", "sigma_b sd ratio", ".2f"),
            ("sigma_b_coverage", "sigma_b cov", ".2f"), ("sigma_c_dist", "sigma_c dist", ".2f"),
            ("sigma_c_sd_ratio", "sigma_c sd ratio", ".2f"), ("sigma_c_coverage", "sigma_c cov", ".2f"))


def format_fidelity(table: pd.DataFrame, *, markdown: bool = False) -> str:
    """The fidelity table as plain text (or Markdown); ``n/a`` where a point estimate has no spread."""
    cols = [c for c in _COLUMNS if c[0] in table]
    rows = [["method", *(h for _, h, _ in cols)]]
    rows += [[str(r["method"]), *(_f(r[c], spec) for c, _, spec in cols)] for _, r in table.iterrows()]
    if markdown:
        rows = [[v.replace("|", "\\|") for v in r] for r in rows]  # a bare | would split a cell
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.rjust(w) if i else v.ljust(w)
                               for i, (v, w) in enumerate(zip(r, widths, strict=True)))
                     for r in rows)
