"""NUTS fit of :class:`~bayes_mf.inference.PMF`, started at the MAP point (nutpie, PyMC or NumPyro)."""

from __future__ import annotations

from .._util import interactive
from ..data import Ratings
from ..diagnostics import check_fit
from .stats import normalise_sample_stats

__all__ = ["fit_nuts"]


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
    if est.nuts_sampler == "nutpie":
        # start every chain at the MAP: nutpie's default U(-1, 1) jitter
        # would throw the factors far from the mode
        kw["compile_kwargs"] = {"jitter_rvs": set()}
    elif est.nuts_sampler == "pymc":
        kw["init"] = "adapt_diag"
    else:
        kw["nuts"] = {"jitter": False}
    with model:
        dt = pm.sample(
            draws=int(est.draws), tune=int(est.tune), chains=int(est.chains),
            nuts_sampler=est.nuts_sampler, initvals=initvals, target_accept=float(est.target_accept),
            random_seed=est.random_seed,
            progressbar=interactive() if est.progressbar is None else bool(est.progressbar),
            compute_convergence_checks=False, **kw,
        )
    post = dt["posterior"].to_dataset()
    stats = {}
    if "sample_stats" in dt.children:
        stats = normalise_sample_stats(dt["sample_stats"].to_dataset())
    attrs = {"nuts_sampler": est.nuts_sampler, "draws": int(est.draws), "tune": int(est.tune),
             "chains": int(est.chains), "target_accept": float(est.target_accept),
             "init": "MAP with type-II scales"}
    if "diverging" in stats:
        attrs["n_divergent"] = int(stats["diverging"].sum())
    est._store(post, r, method="nuts", sample_stats=stats, attrs=attrs)
    est.converged_, est.convergence_ = check_fit(
        est.result_, stacklevel=6,
        advice=f"{est.chains} chains x {est.draws} draws after {est.tune} tuning steps were run; raise draws "
               "and tune, or prefer method='gibbs' for this model")
    est.result_.attrs["converged"] = "n/a" if est.converged_ is None else str(est.converged_).lower()


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
