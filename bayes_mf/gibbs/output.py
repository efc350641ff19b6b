"""What a Gibbs fit reports: the diagnostics of the identifiable set and the result DataTree."""

from __future__ import annotations

import numpy as np

from ..diagnostics import IDENTIFIABLE, convergence_table


def diagnose(draws: list, target_rhat: float, target_ess: float):
    """The diagnostics table of the identifiable set, from the chains' draws so far."""
    import xarray as xr

    names = [v for v in IDENTIFIABLE if v in draws[0]]
    ds = xr.Dataset({v: (("chain", "draw") + tuple(f"{v}_dim_{i}" for i in range(draws[0][v].ndim - 1)),
                         np.stack([d[v] for d in draws])) for v in names})
    return convergence_table(ds, names, rhat_max=target_rhat, ess_min=target_ess)


def build(est, res, r, problem, check, st, elapsed):
    """The fit's DataTree: draws, sample stats and the attributes that say how it was made."""
    from ..results import build_result
    from .estimator import _IMPLICIT

    results = res.draws
    stacked = {name: np.stack([d[name] for d in results]) for name in results[0]}
    sample_stats = {"train_rmse": stacked.pop("train_rmse")}
    extra_dims = {"pred_check": ["check"], "mu_u": ["factor"], "mu_v": ["factor"],
                  "time_item": ["time_item_level"], "time_user": ["time_user_level"],
                  "cutpoints": ["cutpoint"], "user_noise": ["user"], "item_noise": ["item"]}
    model = {"bpmf": "BPMF", "adaptive": "PMF (adaptive priors)", "fixed": "PMF (fixed priors)"}[st.prior]
    extras = [e for e, on in (("biases", st.biases), (f"implicit={est.implicit}", bool(
        _IMPLICIT[est.implicit]))) if on]
    for side in ("user", "item"):
        if problem[f"{side}_features"] is not None and est._side_features[side] is not None:
            extras.append(f"{side} features")
    if est._time_code is not None:
        extras.append(f"time effects ({est.time_effects})")
    if extras:
        model += " + " + ", ".join(extras)
    model, attrs = est._likelihood_label(model)
    n_kept = int(stacked["sigma"].shape[1])
    dt = build_result(
        stacked, r, method="gibbs", model=model, n_factors=st.n_factors, random_seed=est.random_seed,
        fit_seconds=elapsed, sample_stats=sample_stats, extra_dims=extra_dims, scale=est.scale_,
        attrs={"prior": st.prior, "backend": st.backend, "threads": st.threads, "chains": len(results),
               "n_samples": n_kept, "burn_in": res.burn_in, "thin": res.thin,
               "sweeps_per_chain": res.sweeps, "rounds": res.rounds, "stopped": res.stopped,
               "converged": "n/a" if res.converged is None else str(bool(res.converged)).lower(),
               "moves": int(st.moves),
               "noise": ("learned" if st.sigma is None else "fixed 1 (latent)" if est._ordinal
                         else f"fixed {float(est.sigma):g}")
               + (", heteroscedastic (user x item precision multipliers)" if st.heteroscedastic else ""),
               **attrs,
               "implicit": str(est.implicit), "store_factors": int(st.store_factors),
               "sigma_u_note": "BPMF: sigma_u/sigma_v = root mean diagonal of the prior "
                               "covariance (used for unseen ids; prior mean ignored)"},
        check=check, predictive=est._time_code is None and not est._ordinal,
    )
    if est._time_code is not None:
        dt.attrs["time_effects"] = str(est.time_effects)
        dt.attrs["time_bins"] = int(est.time_bins)
    return dt
