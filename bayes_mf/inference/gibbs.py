"""``PMF(method="gibbs")``: delegation to :class:`bayes_mf.gibbs.GibbsPMF`."""

from __future__ import annotations

from ..data import Ratings

__all__ = ["fit_gibbs"]


def fit_gibbs(est, r: Ratings) -> None:
    """Fit ``est`` (a :class:`~bayes_mf.inference.PMF`) with the Gibbs sampler.

    Parameters
    ----------
    est : PMF
        The estimator; gets ``gibbs_`` (the fitted
        :class:`~bayes_mf.gibbs.GibbsPMF`) and its ``result_``.
    r : Ratings
        Training ratings.

    Raises
    ------
    NotImplementedError
        When :mod:`bayes_mf.gibbs` cannot be imported.
    ValueError
        For a logistic link or constrained PMF, which the sampler lacks.
    """
    try:
        from ..gibbs import GibbsPMF
    except ImportError as exc:
        raise NotImplementedError(
            "method='gibbs' needs bayes_mf.gibbs.GibbsPMF, which is not available in this "
            f"installation ({exc})"
        ) from exc
    if est.link != "identity" or est.constrained:
        raise ValueError("method='gibbs' supports link='identity' and constrained=False only")
    kw = {}
    if est.sigma is not None:
        kw["sigma"] = float(est.sigma)
    for name in ("sigma_u", "sigma_v"):
        if getattr(est, name) is not None:
            kw[name] = float(getattr(est, name))
    if est.sigma_b is not None or est.sigma_c is not None:
        kw["sigma_bias"] = float(est.sigma_b if est.sigma_b is not None else est.sigma_c)
    # the same prior names and the same names for chain lengths
    gibbs = GibbsPMF(n_factors=int(est.n_factors), prior=est.priors, biases=est.biases,
                     draws=int(est.draws), tune=int(est.tune), chains=int(est.chains),
                     random_seed=est.random_seed, progressbar=est.progressbar, clip=est.clip,
                     rating_unit=est.rating_unit, **kw)
    # the sampler standardises itself (est.rating_unit_ is 1 here): r is in rating units
    gibbs.fit(r)
    est.rating_unit_ = gibbs.rating_unit_
    est.result_ = gibbs.result_
    est.gibbs_ = gibbs
    est.converged_, est.convergence_ = gibbs.converged_, gibbs.convergence_
