"""NUTS fit of :class:`~bayes_mf.inference.PMF`, started at the MAP point (nutpie, PyMC or NumPyro)."""

from __future__ import annotations

from .._util import interactive
from ..data import Ratings
from ..diagnostics import check_fit
from .stats import normalise_sample_stats

__all__ = ["fit_nuts", "stored_vars"]

#: variables over the observed pairs: never stored per draw (80 000 ratings x 1 000 draws: 640 MB)
_NOT_STORED = ("eta",)


def stored_vars(model) -> list:
    """Names of the free variables and deterministics a sampler stores.

    All but :data:`_NOT_STORED` and the free pieces ``{name}_z`` / ``{name}_c`` / ``{name}_s`` of a
    (partly) non-centred deterministic ``name``: it holds the same information, and long
    NUTS runs would otherwise keep every factor twice (4 x 2 000 draws of u1's factors: 1.7 GB).
    """
    free = {v.name for v in model.free_RVs}
    det = {v.name for v in model.deterministics}
    pieces = {n for n in free if n.endswith(("_z", "_c", "_s")) and n[:-2] in det}
    return [v.name for v in model.unobserved_RVs if v.name not in _NOT_STORED and v.name not in pieces]


def fit_nuts(est, r: Ratings) -> None:
    """Sample the posterior of ``est`` (a :class:`~bayes_mf.inference.PMF` past its MAP step).

    Parameters
    ----------
    est : PMF
        The estimator; gets ``model_`` and ``result_``.
    r : Ratings
        Training ratings.
    """
    import pymc as pm

    if est.nuts_sampler == "numpyro":
        _require_jax()
    model = est._sampling_model(r)
    est.model_ = model
    initvals = est._initvals(model)
    kw = {}
    # chains that all start at one point make R-hat blind: every chain starts at the MAP factors
    # (U(-1, 1) jitter would throw them far from the mode) with its own jittered scales, mean and
    # biases
    dispersed = {rv for rv in model.free_RVs if rv.name not in _FACTORS}
    if est.nuts_sampler == "nutpie":
        kw["compile_kwargs"] = {"jitter_rvs": dispersed}
        kw["nuts"] = {"adaptation": est.adaptation}
    elif est.nuts_sampler == "pymc":
        kw["init"] = "adapt_diag"
        initvals = _jittered(initvals, {rv.name for rv in dispersed}, int(est.chains), est.random_seed)
    else:
        kw["nuts"] = {"jitter": False}
    with model:
        dt = pm.sample(
            draws=int(est.draws), tune=int(est.tune), chains=int(est.chains),
            nuts_sampler=est.nuts_sampler, initvals=initvals, target_accept=float(est.target_accept),
            random_seed=est.random_seed,
            progressbar=interactive() if est.progressbar is None else bool(est.progressbar),
            compute_convergence_checks=False, var_names=stored_vars(model), **kw,
        )
    post = dt["posterior"].to_dataset()
    stats = {}
    if "sample_stats" in dt.children:
        stats = normalise_sample_stats(dt["sample_stats"].to_dataset())
    attrs = {"nuts_sampler": est.nuts_sampler, "draws": int(est.draws), "tune": int(est.tune),
             "chains": int(est.chains), "target_accept": float(est.target_accept),
             "init": "MAP factors, jittered scales, mean and biases per chain",
             "parametrization": est.parametrization}
    if est.nuts_sampler == "nutpie":
        attrs["adaptation"] = est.adaptation
    if "diverging" in stats:
        attrs["n_divergent"] = int(stats["diverging"].sum())
    est._store(post, r, method="nuts", sample_stats=stats, attrs=attrs)
    est.converged_, est.convergence_ = check_fit(
        est.result_, stacklevel=6,
        advice=f"{est.chains} chains x {est.draws} draws after {est.tune} tuning steps were run; raise draws "
               "and tune, or prefer method='gibbs' for this model")
    est.result_.attrs["converged"] = "n/a" if est.converged_ is None else str(est.converged_).lower()


#: factor variables (centred or non-centred), started at the MAP point in every chain
_FACTORS = {"U", "V", "Y", "W", "U_z", "V_z", "Y_z", "W_z", "U_c", "V_c", "Y_c", "W_c"}


def _jittered(point: dict, names: set, chains: int, seed) -> list:
    """One start per chain: ``point`` with the entries in ``names`` jittered (scales by a factor
    in [1/e, e], the rest but LKJ correlations by U(-0.5, 0.5)), the PyMC counterpart of
    nutpie's ``jitter_rvs``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(chains):
        start = {}
        for name, value in point.items():
            value = np.asarray(value, dtype=float)
            # an LKJ correlation factor must keep unit rows: it starts at the MAP's
            if name in names and not name.startswith("corr"):
                u = rng.uniform(-1.0, 1.0, value.shape)
                value = value * np.exp(u) if name.startswith(("sigma", "chol")) else value + 0.5 * u
            start[name] = value
        out.append(start)
    return out


def _require_jax() -> None:
    """Raise an ImportError that says what to install when JAX or NumPyro is missing."""
    try:
        import jax  # noqa: F401
        import numpyro  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "nuts_sampler='numpyro' needs JAX and NumPyro (pip install jax numpyro); "
            "use nuts_sampler='nutpie' (default) or 'pymc' instead"
        ) from exc
    from .._pair_op import register_jax

    register_jax()
