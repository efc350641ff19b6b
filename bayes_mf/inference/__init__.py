r"""Fitting the PyMC models of :mod:`bayes_mf.models`: MAP, ADVI and NUTS behind one estimator.

Five lines from data to posterior predictions::

    from bayes_mf import PMF
    from bayes_mf.datasets import movielens_fold
    train, test = movielens_fold("100k", 1)
    map_fit = PMF(n_factors=10, priors="bpmf", method="map").fit(train)
    pred = PMF(n_factors=10, priors="bpmf", method="nuts", init=map_fit).fit(train).predict(test)

``pred`` has per pair the posterior-predictive mean, sd and 90 % interval
(``lo``, ``hi``).  ``init`` is optional (NUTS and ADVI run their own MAP
first).  On MovieLens u1 the MAP takes seconds and NUTS about a quarter of
an hour on two CPU cores (``priors="adaptive"``: about a third of that).

Every fit stores ``result_``, an ``xarray.DataTree`` in the format of
:mod:`bayes_mf.results`: ``posterior`` (MAP = one chain x one draw),
``sample_stats``, ``observed_data``, ``constant_data`` and, for NUTS and
ADVI, thinned ``posterior_predictive`` and ``log_likelihood`` (``az.loo``
works on the result), with attrs recording method, model, rank, seed,
package versions and wall time.  The posterior also holds ``pred_check``
(dim ``check``; which pairs: ``constant_data``): the predicted mean rating of a
fixed, seeded set of 50 training pairs -- an identifiable quantity to
diagnose (R-hat, ESS) where :math:`U` and :math:`V` are not (they are
defined only up to rotation, sign and permutation; never diagnose them).

Setting the prior scales (type-II estimation)
---------------------------------------------
A joint mode over factors *and* their learned scales collapses
(:math:`\sigma_U \to 0, U \to 0` increases the density without bound), so
MAP never maximises over the scales.  They are set by *type-II* (empirical
Bayes) estimation instead: :func:`empirical_bayes` runs variational EM on
the identity-link model -- a mean-field Gaussian posterior per user row
:math:`[U_i, b_i]` and per item row :math:`[V_j, c_j]` (closed-form updates,
batched over rows) alternated with the M-step

.. math::
    \sigma_U^2 = \frac{1}{n_U k}\sum_i \bigl(\|\bar U_i\|^2 + \mathrm{tr}\,\Sigma_{U_i}\bigr),\qquad
    \sigma^2 = \frac1N \sum_{(i,j)\in\Omega} \mathbb E_q\bigl[(R_{ij} - \hat R_{ij})^2\bigr]

(likewise :math:`\sigma_V, \sigma_b, \sigma_c`; a mean vector and full
covariance per side for the BPMF prior).  The posterior-variance terms are
what keeps the scales away from zero.  MAP then maximises the model with
those scales plugged in (``priors="adaptive"`` and ``"bpmf"`` become the
``"fixed"`` model at the type-II values; ``result_.attrs["hyperparameters"]``
says so).  One more step is needed for a *point* estimate: the type-II
scales balance the fit against the posterior variance of the factors, which
the mode ignores, so the mode over-fits with them (u1, rank 10: test RMSE
0.93-0.95, depending on how far the EM runs).  :func:`validate_shrinkage`
therefore multiplies the factor prior precision by the value of a small
grid that predicts a random 5 % slice of the training ratings best (u1: 3,
RMSE 0.923); the noise and bias scales stay at their type-II values.
The mode is found by exact alternating updates (:func:`posterior_mode`) and
finished with L-BFGS-B on the model's log density and gradient (NumPy for
the identity link, PyMC's ``pm.find_MAP`` otherwise) -- never started from
:math:`U = V = 0`, a saddle point where the gradient vanishes.  For the
logistic link the scales are mapped through the slope of the link at the
mean rating (delta method) and L-BFGS-B does all the work.

NUTS integrates over the scales of the adaptive and BPMF priors, starting
from the MAP point and the type-II scales.  ADVI keeps the scales at their
type-II values: mean-field ADVI with learned scales prunes the factors
(u1, rank 10: :math:`\sigma_U` 0.45 -> 0.14, test RMSE 0.953, the bias
baseline; with type-II scales 0.923).

The approximation ladder
------------------------
Between MAP (no spread) and the exact samplers, three Gaussian rungs work on
the *plug-in* model (every scale at its type-II value, identity link,
unconstrained factors; :mod:`~bayes_mf.inference.gaussian` writes its log
density and gradient in NumPy): ``"laplace"`` (the mode with the exact
per-row blocks of the negative Hessian as precision,
:mod:`~bayes_mf.inference.laplace`), ``"pathfinder"`` (single-path
Pathfinder, :mod:`~bayes_mf.inference.pathfinder`) and ``"advi-lowrank"``
(diagonal plus rank-10 covariance, :mod:`~bayes_mf.inference.advi`), beside
mean-field ``"advi"``.  Each stores ``draws * chains`` draws as one chain;
:mod:`bayes_mf.fidelity` measures them against a reference posterior.
The identity-link MAP finishes its mode by L-BFGS-B on the same NumPy log
density (PyMC's ``find_MAP`` for the other variants).

Sampler statistics
------------------
``sample_stats`` uses one set of names whatever the backend: ``diverging``,
``tree_depth``, ``step_size``, ``energy``, ``lp``, ``n_steps`` (NUTS).  For
ADVI it holds ``elbo`` over its own dim ``advi_iteration`` (the ELBO
estimate, i.e. minus PyMC's loss, at every optimisation step).

Modules
-------
:mod:`~bayes_mf.inference.estimator` holds :class:`PMF`;
:mod:`~bayes_mf.inference.typeii` the type-II estimates and the mode;
:mod:`~bayes_mf.inference.map`, :mod:`~bayes_mf.inference.nuts`,
:mod:`~bayes_mf.inference.advi` and :mod:`~bayes_mf.inference.gibbs` one
fitting method each (:mod:`~bayes_mf.inference.sampling`: the models NUTS
and ADVI share); :mod:`~bayes_mf.inference.stats` the result variables,
sampler statistics and check pairs.
"""

from .estimator import METHODS, NUTS_SAMPLERS, PMF
from .stats import N_CHECK as N_CHECK
from .stats import RESULT_VARS as RESULT_VARS
from .stats import check_pairs as check_pairs
from .stats import normalise_sample_stats
from .typeii import SHRINK_GRID as SHRINK_GRID
from .typeii import TypeII, empirical_bayes
from .typeii import posterior_mode as posterior_mode
from .typeii import validate_shrinkage as validate_shrinkage

__all__ = ["PMF", "METHODS", "NUTS_SAMPLERS", "TypeII", "empirical_bayes", "normalise_sample_stats"]
