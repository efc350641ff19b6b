"""Mean-field ADVI fit of :class:`~bayes_mf.inference.PMF`, with the scales at their type-II values."""

from __future__ import annotations

import numpy as np

from .._util import interactive
from ..data import Ratings

__all__ = ["fit_advi"]


def fit_advi(est, r: Ratings) -> None:
    """Fit a mean-field Gaussian approximation for ``est`` (a :class:`~bayes_mf.inference.PMF`).

    Parameters
    ----------
    est : PMF
        The estimator, past its MAP step; gets ``model_``, ``elbo_`` and
        ``result_``.
    r : Ratings
        Training ratings.
    """
    import pymc as pm

    # Mean-field ADVI with learned scales prunes the factors: on u1 (rank 10)
    # sigma_u fell from 0.45 to 0.14 and the fit to the bias baseline (RMSE
    # 0.953).  So ADVI, like MAP, keeps the scales at their type-II values.
    model = est._sampling_model(r, batch_size=est.batch_size, plug_in=True)
    est.model_ = model
    initvals = est._initvals(model)
    ip = model.initial_point()
    # start the means at the MAP (transformed space) and the sds small, so
    # ADVI refines the mode instead of re-learning it from noise
    start = {}
    with model:
        for rv in model.free_RVs:
            if rv.name in initvals:
                start[rv.name] = initvals[rv.name]
        start_sigma = {v.name: np.full(np.size(ip[v.name]), 0.02) for v in model.value_vars}
        advi = pm.ADVI(start=start, start_sigma=start_sigma, random_seed=est.random_seed)
        bar = interactive() if est.progressbar is None else bool(est.progressbar)
        approx = advi.fit(int(est.advi_iterations), progressbar=bar,
                          obj_optimizer=pm.adam(learning_rate=float(est.advi_learning_rate)))
        n_draws = int(est.draws) * int(est.chains)
        dt = approx.sample(n_draws, random_seed=est.random_seed)
    post = dt["posterior"].to_dataset()
    elbo = -np.asarray(approx.hist, dtype=float)
    est.elbo_ = elbo
    attrs = {"advi_iterations": int(est.advi_iterations),
             "advi_learning_rate": float(est.advi_learning_rate),
             "batch_size": -1 if est.batch_size is None else int(est.batch_size),
             "approximation": "mean-field Gaussian", "init": "MAP with type-II scales",
             "hyperparameters": "type-II (mean-field variational EM), held fixed"}
    est._store(post, r, method="advi", sample_stats=None, attrs=attrs, elbo=elbo)
