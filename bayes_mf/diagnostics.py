r"""Convergence and sampler diagnostics on *identifiable* quantities only.

Why not U and V?  The likelihood depends on the factors only through
:math:`U V^\top`, and :math:`U V^\top = (U Q)(V Q^{-\top})^\top` for any
invertible :math:`Q`; with the isotropic Gaussian priors every rotation
:math:`Q` (and every sign flip and permutation of the factors) leaves the
posterior unchanged.  Chains therefore wander between equivalent
rotations, and R-hat/ESS computed on raw ``U`` or ``V`` flag
"non-convergence" that says nothing about the predictions -- or, worse,
look fine while the predictions have not mixed.  We diagnose what is
identified:

* the noise sd ``sigma`` and the bias scales ``sigma_b``, ``sigma_c``;
* the global mean ``mu`` and the biases ``user_bias`` and ``item_bias``;
* predicted mean ratings :math:`\mu + b_i + c_j + U_i^\top V_j` of a fixed,
  seeded random subset of training pairs (``pred_check``) -- the quantity
  that matters most.

Two weaker cases are worth knowing.  ``sigma_u`` and ``sigma_v`` are not in
the default list: :math:`U \to cU, V \to V/c` leaves the likelihood
unchanged, so only their product is pinned down by the data and each alone
mixes as slowly as the prior lets it.  And :math:`\mu`, :math:`b` and
:math:`c` trade an additive constant (:math:`\mu + b_i + c_j` is what the
data see), held in place only by the zero-mean bias priors; slow mixing
there can coexist with well-mixed predictions, which is why ``pred_check``
is always reported.

R-hat is the rank-normalised split R-hat and ESS the bulk/tail ESS of
ArviZ (Vehtari et al. 2021); thresholds follow their advice: R-hat > 1.01
or ESS < 400 raise a :class:`ConvergenceWarning` naming the quantities.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

__all__ = [
    "ConvergenceWarning",
    "IDENTIFIABLE",
    "check_fit",
    "add_prediction_checks",
    "convergence",
    "convergence_message",
    "convergence_table",
    "divergence_locations",
    "sampler_health",
    "log_likelihood",
    "loo",
]

IDENTIFIABLE = ("sigma", "sigma_b", "sigma_c", "mu", "user_bias", "item_bias", "pred_check",
                "sigma_time_item", "sigma_time_user", "cutpoints", "noise_shape_user", "noise_shape_item")
NOT_IDENTIFIABLE = ("U", "V")


class ConvergenceWarning(UserWarning):
    """R-hat or ESS of identifiable quantities beyond the recommended thresholds."""


def _n_samples(dt) -> tuple[int, int]:
    post = dt["posterior"]
    return int(post.sizes["chain"]), int(post.sizes["draw"])


def add_prediction_checks(dt, n_pairs: int = 50, random_seed: int = 0):
    """Add ``pred_check`` (chain, draw, check): predicted mean ratings of a fixed
    random subset of training pairs, computed from the posterior draws.

    Leaves ``dt`` unchanged when it already has the variable.  Returns ``dt``.
    """
    import xarray as xr

    from .predict import linear_predictor
    from .results import draws_from_result

    post = dt["posterior"]
    if "pred_check" in post:
        return dt
    users = dt["constant_data"]["user_code"].to_numpy()
    items = dt["constant_data"]["item_code"].to_numpy()
    rng = np.random.default_rng(random_seed)
    pick = rng.choice(users.size, size=min(n_pairs, users.size), replace=False)
    d = draws_from_result(dt)
    eta = linear_predictor(d, users[pick].astype(np.int64), items[pick].astype(np.int64), rng)
    if d.link == "logistic":
        lo, hi = d.scale
        eta = lo + (hi - lo) / (1.0 + np.exp(-eta))
    n_chain, n_draw = _n_samples(dt)
    values = eta.reshape(n_chain, n_draw, -1)
    ds = post.to_dataset()
    ds["pred_check"] = xr.DataArray(values, dims=("chain", "draw", "check"),
                                    coords={"check": np.arange(values.shape[-1])})
    ds["pred_check"].attrs["obs"] = pick.tolist()
    dt["posterior"] = ds
    return dt


def convergence(dt, var_names=None, *, rhat_max: float = 1.01, ess_min: float = 400,
                warn: bool = True) -> pd.DataFrame:
    """R-hat, bulk/tail ESS and MCSE per identifiable variable.

    Each row reduces a variable over its non-sample dims (worst case: max
    R-hat, min ESS, max MCSE).  Raw ``U``/``V`` are refused.

    Parameters
    ----------
    dt : DataTree with at least 2 chains
    var_names : identifiable variables to check (default: all present)
    rhat_max, ess_min : thresholds for the warning
    warn : emit a :class:`ConvergenceWarning` naming offending quantities

    Returns
    -------
    DataFrame indexed by variable: ``rhat_max``, ``ess_bulk_min``,
    ``ess_tail_min``, ``mcse_mean_max``, ``size``, ``ok``.
    """
    bad = [v for v in (var_names or []) if v in NOT_IDENTIFIABLE]
    if bad:
        raise ValueError(
            f"{bad} are not identifiable (rotation, sign and permutation of the factors leave the "
            "posterior unchanged): diagnose sigma's, biases or pred_check instead"
        )
    n_chain, n_draw = _n_samples(dt)
    if n_chain < 2:
        raise ValueError(f"convergence diagnostics need >= 2 chains, the result has {n_chain} "
                         "(a point estimate has no chains to compare)")
    add_prediction_checks(dt)
    table = convergence_table(dt["posterior"].to_dataset(), var_names, rhat_max=rhat_max, ess_min=ess_min)
    if warn and not table["ok"].all():
        warnings.warn(convergence_message(table, rhat_max, ess_min), ConvergenceWarning, stacklevel=2)
    return table


def convergence_table(posterior, var_names=None, *, rhat_max: float = 1.01,
                      ess_min: float = 400) -> pd.DataFrame:
    """The table of :func:`convergence` from a posterior ``xarray.Dataset`` (dims ``chain``, ``draw``).

    The samplers call this on their draws while they run, before a result
    exists; it refuses nothing and warns about nothing.
    """
    from ._mcmc_stats import diagnose_chunked

    n_chain, n_draw = int(posterior.sizes["chain"]), int(posterior.sizes["draw"])
    names = [v for v in (var_names or IDENTIFIABLE) if v in posterior]
    if not names:
        raise ValueError(f"none of {list(var_names or IDENTIFIABLE)} is in the posterior")
    # a quantity held fixed (a given sigma, the scales of prior="fixed") has nothing to diagnose
    names = [v for v in names if np.ptp(np.asarray(posterior[v])) > 0] or names[:0]
    if not names:
        return pd.DataFrame(columns=["size", "rhat_max", "ess_bulk_min", "ess_tail_min", "mcse_mean_max",
                                     "ok"], index=pd.Index([], name="variable"))
    # ArviZ's estimators, vectorised over all quantities and run in blocks on every core (the same
    # numbers, ~10x faster than ArviZ: this runs after every round of a run-until-converged fit)
    arrays = [np.asarray(posterior[n].transpose("chain", "draw", ...), dtype=float)
              .reshape(n_chain, n_draw, -1) for n in names]
    d = diagnose_chunked(np.concatenate(arrays, axis=2))
    ends = np.cumsum([a.shape[2] for a in arrays])
    rows = []
    for n, a, end in zip(names, arrays, ends, strict=True):
        part = {k: v[end - a.shape[2]:end] for k, v in d.items()}
        rows.append({
            "variable": n,
            "size": int(a.shape[2]),
            "rhat_max": float(np.nanmax(part["rhat"])),
            "ess_bulk_min": float(np.nanmin(part["ess_bulk"])),
            "ess_tail_min": float(np.nanmin(part["ess_tail"])),
            "mcse_mean_max": float(np.nanmax(part["mcse_mean"])),
        })
    table = pd.DataFrame(rows).set_index("variable")
    table["ok"] = (table["rhat_max"] <= rhat_max) & (table["ess_bulk_min"] >= ess_min) & (
        table["ess_tail_min"] >= ess_min)
    return table


def convergence_message(table: pd.DataFrame, rhat_max: float = 1.01, ess_min: float = 400,
                        advice: str = "") -> str:
    """One sentence naming the quantities of ``table`` that fail, worst first, and what to change."""
    worst = table.loc[~table["ok"]].sort_values("ess_bulk_min")
    parts = [f"{v} (R-hat {r.rhat_max:.3f}, ESS bulk {r.ess_bulk_min:.0f}, tail {r.ess_tail_min:.0f})"
             for v, r in worst.iterrows()]
    text = (f"convergence not reached (R-hat > {rhat_max} or ESS < {ess_min}): " + "; ".join(parts))
    return text + (f". {advice}" if advice else "")


def sampler_health(dt) -> dict:
    """Sampler-specific health, normalised across backends.

    NUTS: number of divergences, share of draws at the maximum tree depth,
    mean step size, E-BFMI per chain (values < 0.3 signal poor exploration).
    ADVI: relative change of the smoothed ELBO over the last 10 % of the
    trace (small = converged).  Returns an empty dict for methods without
    sampler statistics (point estimates, Gibbs has exact draws).
    """
    import arviz as az

    out: dict = {"method": dt.attrs.get("method")}
    if "sample_stats" not in dt.children:
        return out
    ss = dt["sample_stats"]
    if "diverging" in ss:
        div = np.asarray(ss["diverging"], dtype=bool)
        out["divergences"] = int(div.sum())
        if div.any():
            out["divergences_by_chain"] = [int(x) for x in div.reshape(div.shape[0], -1).sum(axis=1)]
            where = divergence_locations(dt)
            if where:
                out["divergent_at"] = where
    if "tree_depth" in ss:
        depth = np.asarray(ss["tree_depth"])
        out["max_tree_depth"] = int(depth.max())
        out["mean_tree_depth"] = float(depth.mean())
    if "reached_max_treedepth" in ss or "maxdepth_reached" in ss:
        hit = np.asarray(ss["reached_max_treedepth" if "reached_max_treedepth" in ss else "maxdepth_reached"])
        out["share_at_depth_limit"] = float(np.mean(hit))
    if "step_size" in ss:
        out["step_size_mean"] = float(np.nanmean(np.asarray(ss["step_size"])))
    if "energy" in ss:
        out["bfmi"] = [float(x) for x in np.atleast_1d(np.asarray(az.bfmi(dt)["energy"]))]
    if "elbo" in ss:
        elbo = np.asarray(ss["elbo"], dtype=float).ravel()
        elbo = elbo[np.isfinite(elbo)]
        if elbo.size >= 20:
            w = max(1, elbo.size // 10)
            smooth = np.convolve(elbo, np.ones(w) / w, mode="valid")
            tail = smooth[-w:] if smooth.size > w else smooth
            out["elbo_final"] = float(smooth[-1])
            out["elbo_rel_change_last10pct"] = float(abs(tail[-1] - tail[0]) / max(abs(tail[-1]), 1e-12))
    return out


def log_likelihood(dt, *, max_draws: int | None = 500):
    """Add a ``log_likelihood`` group: Gaussian log density of each training rating
    per posterior draw, :math:`\\log N(R_n \\mid \\mathrm{link}(\\eta_n), \\sigma_n^2)` (each
    pair's noise sd: :math:`\\sigma`, or per user and item with heteroscedastic noise).

    Memory is draws x observations floats; ``max_draws`` thins evenly.
    Returns a new DataTree (the input is not modified) whose posterior is
    thinned to the same draws.  Every result of a posterior already carries
    such a group for at most 200 draws (:mod:`bayes_mf.results`); this one
    covers every training rating and thins the posterior to match.
    """
    import xarray as xr

    from .results import draws_from_result, pointwise_log_likelihood

    if int(dt.attrs.get("custom_model", 0)):
        raise ValueError("this result is of a custom model (PMF.from_model), whose likelihood need not be "
                         "Normal: use its own thinned log_likelihood group, e.g. az.loo(result_)")

    d = draws_from_result(dt)
    n_chain, n_draw = _n_samples(dt)
    keep_draw = np.arange(n_draw)
    if max_draws is not None and n_chain * n_draw > max_draws:
        keep_draw = np.linspace(0, n_draw - 1, max(1, max_draws // n_chain)).round().astype(int)
    sel = (np.arange(n_chain)[:, None] * n_draw + keep_draw[None, :]).ravel()
    sub = d.take(sel)
    users = dt["constant_data"]["user_code"].to_numpy().astype(np.int64)
    items = dt["constant_data"]["item_code"].to_numpy().astype(np.int64)
    y = dt["observed_data"]["rating"].to_numpy()
    ll = np.empty((sel.size, y.size))
    step = max(1, 4_000_000 // max(1, sel.size * sub.U.shape[-1]))
    for s in range(0, y.size, step):
        e = min(s + step, y.size)
        ll[:, s:e] = pointwise_log_likelihood(sub, users[s:e], items[s:e], y[s:e])[0]
    ds = xr.Dataset({"rating": (("chain", "draw", "obs"), ll.reshape(n_chain, keep_draw.size, -1))},
                    coords={"chain": np.arange(n_chain), "draw": keep_draw, "obs": np.arange(y.size)})
    new = dt.copy()
    new["log_likelihood"] = ds
    # the posterior must carry the same draws as the pointwise log-likelihood
    new["posterior"] = dt["posterior"].to_dataset().isel(draw=keep_draw)
    return new


def loo(dt, *, max_draws: int | None = 500):
    """PSIS-LOO of a posterior result via :func:`arviz.loo` (expected log pointwise
    predictive density of the training ratings); compare model variants with
    :func:`arviz.compare` on the returned objects.
    """
    import arviz as az

    if _n_samples(dt)[0] * _n_samples(dt)[1] < 2:
        raise ValueError("LOO needs posterior draws; a point estimate has one")
    return az.loo(log_likelihood(dt, max_draws=max_draws), var_name="rating")


def divergence_locations(dt, *, z_min: float = 3.0, top: int = 3) -> list[str]:
    r"""The scalar quantities whose divergent draws sit in a tail of their posterior.

    For every scalar of the posterior (scales, means), the divergent draws'
    percentile ranks among all draws have mean :math:`\bar q`; were the
    divergences unrelated to that quantity, :math:`\bar q \approx 0.5 \pm
    (12m)^{-1/2}` for :math:`m` divergent draws.  Quantities with
    :math:`|z| \ge` ``z_min`` are where the sampler fails (a funnel at small
    scales, say): the place to reparametrise or to raise ``target_accept``.

    Returns up to ``top`` strings such as ``"sigma_c low (mean percentile 0.08, z = -5.2)"``,
    the most extreme first; empty without divergences or without such a quantity.
    """
    if "sample_stats" not in dt.children or "posterior" not in dt.children:
        return []
    div = np.asarray(dt["sample_stats"]["diverging"], dtype=bool).ravel()
    m = int(div.sum())
    if m == 0 or m == div.size:
        return []
    found = []
    for name, var in dt["posterior"].to_dataset().data_vars.items():
        if set(var.dims) != {"chain", "draw"}:
            continue
        x = np.asarray(var.transpose("chain", "draw"), dtype=float).ravel()
        if not np.all(np.isfinite(x)) or np.ptp(x) == 0:
            continue
        q = (np.argsort(np.argsort(x, kind="stable"), kind="stable") + 0.5) / x.size
        mean_q = float(q[div].mean())
        z = (mean_q - 0.5) * np.sqrt(12.0 * m)
        if abs(z) >= z_min:
            found.append((abs(z), f"{name} {'low' if z < 0 else 'high'} "
                                  f"(mean percentile {mean_q:.2f}, z = {z:+.1f})"))
    return [text for _, text in sorted(found, reverse=True)[:top]]


def check_fit(dt, *, advice: str = "", rhat_max: float = 1.01, ess_min: float = 400,
              stacklevel: int = 3) -> tuple[bool | None, pd.DataFrame | None]:
    """Diagnose a fresh sampled result the way every fit does, and warn when it fails.

    Runs :func:`convergence` on the identifiable set and, for NUTS, checks
    divergences, E-BFMI (< 0.3) and draws at the tree-depth limit.  Emits
    one :class:`ConvergenceWarning` naming what failed, with ``advice`` on
    what to change.  Returns ``(converged, table)``; ``(None, None)`` for a
    result with a single chain (nothing to compare).
    """
    if _n_samples(dt)[0] < 2:
        return None, None
    table = convergence(dt, rhat_max=rhat_max, ess_min=ess_min, warn=False)
    problems = []
    if not table["ok"].all():
        problems.append(convergence_message(table, rhat_max, ess_min))
    health = sampler_health(dt)
    if health.get("divergences", 0) > 0:
        where = health.get("divergent_at")
        problems.append(f"{health['divergences']} divergent transitions (the sampler missed part of the "
                        "posterior: raise target_accept or reparametrise"
                        + (f"; divergent draws sit at {', '.join(where)}" if where else "") + ")")
    low = [b for b in health.get("bfmi", []) if b < 0.3]
    if low:
        problems.append(f"E-BFMI {min(low):.2f} < 0.3 in {len(low)} chain(s) (the energy is poorly explored)")
    if health.get("share_at_depth_limit", 0.0) > 0.0:
        problems.append(f"{health['share_at_depth_limit']:.1%} of draws hit the maximum tree depth")
    converged = not problems
    if problems:
        warnings.warn("; ".join(problems) + (f". {advice}" if advice else ""), ConvergenceWarning,
                      stacklevel=stacklevel)
    return converged, table
