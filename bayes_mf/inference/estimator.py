"""The :class:`PMF` estimator: parameters, checks and the dispatch to the fitting methods.

Each method lives in its own module (:mod:`.map`, :mod:`.nuts`,
:mod:`.advi`, :mod:`.gibbs`); the estimator keeps thin methods
(``_fit_map``, ``_fit_nuts``, ...) that delegate to them, and stores the
result (:meth:`PMF._store`) in the format of :mod:`bayes_mf.results`.
"""

from __future__ import annotations

import time

import numpy as np

from ..base import BayesianEstimator, _check_rating_unit, _in_units
from ..data import Ratings
from ..models import PARAMETRIZATIONS, check_options, model_name
from .advi import fit_advi, fit_advi_lowrank
from .custom import (
    SPEC_PARAMS,
    _held_values,
    check_data,
    check_model,
    extra_vars,
    fit_map_custom,
    model_predictive,
    set_predictive,
    thinned,
)
from .gibbs import fit_gibbs
from .laplace import fit_laplace
from .map import fit_map
from .nuts import fit_nuts
from .pathfinder import fit_pathfinder
from .sampling import initvals, sampling_model
from .stats import _posterior_dict, _pred_check, check_pairs
from .typeii import TypeII, empirical_bayes

__all__ = ["PMF", "METHODS", "NUTS_SAMPLERS"]

METHODS = ("map", "laplace", "pathfinder", "advi", "advi-lowrank", "nuts", "gibbs")
#: the approximations past the MAP step, each in its own module
_APPROXIMATIONS = {"laplace": fit_laplace, "pathfinder": fit_pathfinder, "advi-lowrank": fit_advi_lowrank}
NUTS_SAMPLERS = ("nutpie", "pymc", "numpyro")


class PMF(BayesianEstimator):
    r"""Bayesian probabilistic matrix factorization with PyMC: MAP, ADVI or NUTS.

    .. math::
        R_{ij} \sim N\bigl(g(\mu + b_i + c_j + U_i^\top V_j),\ \sigma^2\bigr),
        \quad U_i \sim N(0, \sigma_U^2 I),\ V_j \sim N(0, \sigma_V^2 I)

    with the variants of :mod:`bayes_mf.models` (learned or fixed scales,
    BPMF's hierarchical prior, biases, logistic link, constrained PMF).

    Parameters
    ----------
    n_factors : int
        Rank :math:`k`.
    priors : {"adaptive", "fixed", "bpmf"}
        ``"adaptive"``: scales learned under HalfNormal hyperpriors (NUTS)
        or set by type-II EM (MAP, ADVI); ``"fixed"``: constant scales, those
        given as ``sigma``/``sigma_u``/... or else their type-II estimates;
        ``"bpmf"``: factor means and LKJ-Cholesky covariances.
    biases : bool
        Global mean plus user and item offsets.
    link : {"identity", "logistic"}
        ``"logistic"`` maps ratings to [0, 1] and needs a rating scale.
    constrained : bool
        Constrained PMF user factors.
    method : {"map", "laplace", "pathfinder", "advi", "advi-lowrank", "nuts", "gibbs"}
        The approximation ladder: ``"laplace"`` (block-diagonal Laplace at
        the plug-in mode, :mod:`.laplace`), ``"pathfinder"`` (single-path
        Pathfinder, :mod:`.pathfinder`), ``"advi"`` (mean-field) and
        ``"advi-lowrank"`` (diagonal plus rank-10 covariance, :mod:`.advi`)
        hold the scales at their type-II values and store ``draws * chains``
        draws as one chain (``"laplace"``, ``"pathfinder"`` and
        ``"advi-lowrank"``: identity link, unconstrained factors only);
        ``"gibbs"`` delegates to :class:`bayes_mf.gibbs.GibbsPMF`.
    draws, tune, chains : int
        Posterior draws per chain, warm-up steps (NUTS), chains (>= 2 for
        NUTS).  ADVI draws ``draws * chains`` from its approximation, stored
        as one chain.
    nuts_sampler : {"nutpie", "pymc", "numpyro"}
        NUTS backend; ``"numpyro"`` needs JAX.
    target_accept : float
        NUTS target acceptance.  0.9 (PyMC: 0.8): on u1, 2 x (1 000 + 1 000)
        iterations gave 1 divergence and min ESS 207 at 0.9 against 18 and 83 at 0.8
        (``benchmarks/bench_nuts.py``), for trees one level deeper.
    adaptation : {"diag", "low_rank"}
        nutpie's mass-matrix adaptation (``nuts_sampler="nutpie"`` only):
        a diagonal mass matrix, or diagonal plus a low-rank correction
        learned from the gradients (it helps when a few directions are
        strongly correlated, but on MovieLens its early windows drove the
        trees to maximum depth; ``benchmarks/bench_nuts.py``).
    advi_iterations : int
        ADVI optimisation steps.
    advi_learning_rate : float
        Adam step size of ADVI.
    batch_size : int, optional
        ADVI minibatch size (``None``: full data, fine up to ~10^5 ratings).
    sigma, sigma_u, sigma_v, sigma_b, sigma_c : float, optional
        On the model scale: for the identity link in rating units
        (``sigma``, ``sigma_b``, ``sigma_c`` like a rating, ``sigma_u``,
        ``sigma_v`` its square root, so that a product of factors is a
        rating; a value more than 100 x off the ratings' sd warns with a
        :class:`~bayes_mf.base.RatingUnitWarning`), for the logistic link on
        the [0, 1] scale.  ``priors="fixed"``: the scales themselves
        (missing ones are type-II estimates).  Otherwise the scales of the
        HalfNormal hyperpriors of NUTS/ADVI; missing ones default to twice
        the type-II estimate (a weak prior centred on the data's own scale).
        With ``method="gibbs"`` they are passed on to :class:`~bayes_mf.gibbs.GibbsPMF`.
    init : PMF, optional
        A fitted MAP ``PMF`` to start NUTS/ADVI from (else a MAP is run).
    parametrization : {"noncentered", "centered", "mixed"}
        How NUTS sees the hierarchical factors and offsets: ``"noncentered"``
        (default) samples standard-normal ``*_z`` variables scaled by their
        learned scales, the geometry NUTS mixes on (no funnel), and with biases
        the mean and offsets in the sheared coordinates of
        :func:`~bayes_mf._offsets.sheared_offsets` (the likelihood sees centred
        factors, so a user's offset no longer trades with :math:`U_i^\top \bar V`), and the
        two sides' factor scales as log product and log ratio
        (:func:`~bayes_mf._scales.paired_scales`: the data see only the product);
        ``"centered"``
        samples ``U``, ``V`` and the offsets directly; ``"mixed"`` keeps the
        rows the data dominate centred (:func:`~bayes_mf.inference.sampling.centred_rows`;
        on u1 over twice as slow per iteration as ``"noncentered"``).  Same model in every case;
        MAP and ADVI hold the scales fixed, where the forms coincide.
    factor_means : bool, optional
        NUTS with ``priors="bpmf"``: learn the hierarchical factor means.
        ``None`` (default): only without biases -- with biases the means
        duplicate :math:`\mu` and the offsets (a ridge NUTS cannot cross),
        so they are fixed at 0.  :class:`~bayes_mf.gibbs.GibbsPMF` keeps
        them and moves along that ridge exactly instead.
    map_maxiter, map_ftol : int, float
        L-BFGS-B iteration limit and relative objective tolerance of MAP
        (the start is already near the mode; 1e-6 of a log density of ~1e5
        is far below what changes a prediction).
    em_iter : int
        Maximum variational-EM iterations of the type-II step.
    random_seed : int or None
    progressbar : bool or None
        Progress bars of the samplers; ``None``: on in interactive sessions (Jupyter, a terminal).
    clip : bool
        Clip predicted means and interval ends to the rating scale.
    rating_unit : "auto" or float
        The model is fitted to ``ratings / rating_unit`` (its constant
        hyperpriors, type-II floors and tolerances are set for ratings of
        about unit spread) and every result is reported back in rating
        units.  ``"auto"``: :func:`~bayes_mf.base.rating_unit`, the power of
        ten nearest the training sd (1 for star ratings, so their fits are
        unchanged; 100 for the same ratings in cents, whose fit is 100 x
        theirs).  The logistic model is free of units (the declared scale
        maps ratings to [0, 1]); standardising makes its type-II start so
        too.  ``method="gibbs"`` passes it on to :class:`~bayes_mf.gibbs.GibbsPMF`.
        With ``model``: always 1 (the model holds the ratings as built).
    model : pymc.Model, optional
        A model of :func:`bayes_mf.models.build_model`, possibly changed
        (``likelihood=`` hook, new priors added inside ``with model:``), to
        fit instead of the package's own; ``fit`` must get the ratings it
        was built on.  Use :meth:`from_model`, which copies the model's
        options into ``n_factors``, ``priors``, ``biases``, ``link`` and
        ``constrained``.  Methods ``"map"``, ``"advi"``, ``"nuts"``;
        what each does and what ``predict`` then does: :mod:`.custom`.

    Attributes
    ----------
    result_ : xarray.DataTree
    rating_unit_ : float
        The unit the model was fitted in (see ``rating_unit``).
    model_ : pymc.Model
        The model that was fitted (for MAP: with the type-II scales as
        constants), on ``ratings / rating_unit_``.
    type2_ : TypeII
        The type-II estimates behind the fit (on ``ratings / rating_unit_``).
    map_point_ : dict
        The MAP point (model variable names -> arrays) on ``ratings /
        rating_unit_``; NUTS/ADVI start there.
    validation_rmse_ : dict
        MAP: validation RMSE (rating units) per factor-prior shrink tried.
    converged_ : bool or None
        NUTS and Gibbs: whether the identifiable set passed R-hat <= 1.01 and
        bulk/tail ESS >= 400 with no divergences, E-BFMI >= 0.3 and no draw at
        the tree-depth limit (a :class:`~bayes_mf.diagnostics.ConvergenceWarning`
        says what failed).  Not set for MAP and ADVI.
    convergence_ : pandas.DataFrame or None
        The diagnostics table behind ``converged_``.
    fit_seconds_ : float
    """

    def __init__(
        self,
        n_factors: int = 10,
        *,
        priors: str = "adaptive",
        biases: bool = True,
        link: str = "identity",
        constrained: bool = False,
        method: str = "map",
        draws: int = 500,
        tune: int = 500,
        chains: int = 2,
        nuts_sampler: str = "nutpie",
        target_accept: float = 0.9,
        adaptation: str = "diag",
        advi_iterations: int = 10_000,
        advi_learning_rate: float = 0.01,
        batch_size: int | None = None,
        sigma: float | None = None,
        sigma_u: float | None = None,
        sigma_v: float | None = None,
        sigma_b: float | None = None,
        sigma_c: float | None = None,
        init=None,
        parametrization: str = "noncentered",
        factor_means: bool | None = None,
        map_maxiter: int = 1000,
        map_ftol: float = 1e-6,
        em_iter: int = 25,
        random_seed: int | None = 0,
        progressbar: bool | None = None,
        clip: bool = True,
        rating_unit: float | str = "auto",
        model=None,
    ):
        self.n_factors = n_factors
        self.priors = priors
        self.biases = biases
        self.link = link
        self.constrained = constrained
        self.method = method
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.nuts_sampler = nuts_sampler
        self.target_accept = target_accept
        self.adaptation = adaptation
        self.advi_iterations = advi_iterations
        self.advi_learning_rate = advi_learning_rate
        self.batch_size = batch_size
        self.sigma = sigma
        self.sigma_u = sigma_u
        self.sigma_v = sigma_v
        self.sigma_b = sigma_b
        self.sigma_c = sigma_c
        self.init = init
        self.parametrization = parametrization
        self.factor_means = factor_means
        self.map_maxiter = map_maxiter
        self.map_ftol = map_ftol
        self.em_iter = em_iter
        self.random_seed = random_seed
        self.progressbar = progressbar
        self.clip = clip
        self.rating_unit = rating_unit
        self.model = model

    @classmethod
    def from_model(cls, model, **params) -> PMF:
        """An unfitted ``PMF`` that fits ``model`` (a changed :func:`~bayes_mf.models.build_model` model).

        Parameters
        ----------
        model : pymc.Model
            Built by :func:`bayes_mf.models.build_model` (e.g. with a
            ``likelihood=`` hook), possibly extended inside ``with model:``.
        **params
            Other parameters of :class:`PMF` (``method``: ``"map"``,
            ``"advi"`` or ``"nuts"``; ``draws``, ``chains``, ...).

        Returns
        -------
        PMF
            With ``model`` set and the model's ``n_factors``, ``priors``,
            ``biases``, ``link`` and ``constrained``; call ``fit`` with the
            ratings the model was built on.  See :mod:`bayes_mf.inference.custom`.

        Examples
        --------
        >>> m = bmf.models.build_model(train, 3, likelihood=student_t)  # doctest: +SKIP
        >>> fit = PMF.from_model(m, method="nuts").fit(train)  # doctest: +SKIP
        """
        spec = check_model(model)
        kw = {key: spec[key] for key in SPEC_PARAMS}
        clash = {k: (params[k], kw[k]) for k in SPEC_PARAMS if k in params and params[k] != kw[k]}
        if clash:
            raise ValueError(f"from_model: {clash} (given, model's) differ; the model's options are used")
        return cls(model=model, **{**kw, **params})

    # ------------------------------------------------------------- checks
    def _check_params(self, scale) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        check_options(n_factors=self.n_factors, priors=self.priors, link=self.link, scale=scale)
        if self.method == "nuts" and self.nuts_sampler not in NUTS_SAMPLERS:
            raise ValueError(f"nuts_sampler must be one of {NUTS_SAMPLERS}, got {self.nuts_sampler!r}")
        for name in ("draws", "chains", "advi_iterations", "map_maxiter", "em_iter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.tune, bool) or not isinstance(self.tune, int | np.integer) or self.tune < 0:
            raise ValueError(f"tune must be an integer >= 0, got {self.tune!r}")
        if self.method == "nuts" and self.chains < 2:
            raise ValueError(f"chains must be >= 2 for NUTS (R-hat needs them), got {self.chains}")
        if self.adaptation not in ("diag", "low_rank"):
            raise ValueError(f"adaptation must be 'diag' or 'low_rank', got {self.adaptation!r}")
        if not 0 < self.target_accept < 1:
            raise ValueError(f"target_accept must be in (0, 1), got {self.target_accept!r}")
        if not self.advi_learning_rate > 0:
            raise ValueError(f"advi_learning_rate must be > 0, got {self.advi_learning_rate!r}")
        for name in ("sigma", "sigma_u", "sigma_v", "sigma_b", "sigma_c"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number or None, got {v!r}")
        if self.parametrization not in PARAMETRIZATIONS + ("mixed",):
            raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS + ('mixed',)}, "
                             f"got {self.parametrization!r}")
        if self.factor_means not in (None, True, False):
            raise ValueError(f"factor_means must be True, False or None, got {self.factor_means!r}")
        if self.batch_size is not None and self.method != "advi":
            raise ValueError("batch_size applies to method='advi' only")
        if self.init is not None and not (isinstance(self.init, PMF) and hasattr(self.init, "map_point_")):
            raise ValueError("init must be a fitted PMF (e.g. PMF(method='map').fit(train)) or None")
        _check_rating_unit(self.rating_unit)
        if self.model is not None:
            spec = check_model(self.model)
            if self.method not in ("map", "advi", "nuts"):
                raise ValueError("a custom model is fitted by method 'map', 'advi' or 'nuts', "
                                 f"got {self.method!r}")
            differ = [k for k in SPEC_PARAMS if spec[k] != getattr(self, k)]
            if differ:
                given = ', '.join(f'{k}={spec[k]!r}' for k in differ)
                raise ValueError(f"model was built with {given}, this "
                                 "PMF has other values: create it with PMF.from_model(model, ...)")

    def _rating_unit(self, r: Ratings) -> float:
        # Gibbs standardises in GibbsPMF itself (fit_gibbs copies its unit); a given model holds the ratings
        if self.method == "gibbs" or getattr(self, "model", None) is not None:
            return 1.0
        return super()._rating_unit(r)

    # ------------------------------------------------------------------ fit
    def _fit(self, r: Ratings) -> None:
        scale = r.scale if r.scale is not None else None
        self._check_params(scale)
        self._t0 = time.perf_counter()
        self._scale = scale
        # the scales the user gave, in rating units, on the scale of r (ratings / rating_unit_)
        self._given = _in_units(self, r, {"sigma": (self.sigma, 1.0), "sigma_u": (self.sigma_u, 0.5),
                                          "sigma_v": (self.sigma_v, 0.5), "sigma_b": (self.sigma_b, 1.0),
                                          "sigma_c": (self.sigma_c, 1.0)}) \
            if self.link == "identity" and self.method != "gibbs" else {}
        if self.method == "gibbs":
            return self._fit_gibbs(r)
        self._model_label = model_name(self.priors, self.biases, self.link, self.constrained)
        if self.model is not None:
            check_data(self.model, r)
            self._model_label += f"+{self.model.bayes_mf_spec.get('likelihood', 'custom')}(custom)"
        if self.method == "map":
            if self.model is not None:
                self._fit_map(r, store=False)
                return fit_map_custom(self, r)
            return self._fit_map(r)
        if self.init is not None:
            self._adopt_init(self.init, r)
        else:
            self._fit_map(r, store=False)
        if self.method == "nuts":
            return self._fit_nuts(r)
        if self.method in _APPROXIMATIONS:
            return _APPROXIMATIONS[self.method](self, r)
        return self._fit_advi(r)

    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _given_scales(self) -> dict:
        """The scales the user gave, on the scale of the fitted ratings (``None`` where not given)."""
        given = getattr(self, "_given", {})
        return {k: given.get(k, getattr(self, k) if self.link != "identity" else None)
                for k in ("sigma", "sigma_u", "sigma_v", "sigma_b", "sigma_c")}

    def _adopt_init(self, other: PMF, r: Ratings) -> None:
        if not (other.users_.equals(r.users) and other.items_.equals(r.items)):
            raise ValueError("init was fitted on different users/items than the data given to fit")
        if int(other.n_factors) != int(self.n_factors):
            raise ValueError(f"init has n_factors={other.n_factors}, this PMF {self.n_factors}")
        if getattr(other, "rating_unit_", 1.0) != self.rating_unit_:
            raise ValueError(f"init was fitted in rating unit {getattr(other, 'rating_unit_', 1.0):g}, this "
                             f"PMF works in {self.rating_unit_:g}: fit init on the same ratings (or give "
                             "both the same rating_unit)")
        self.type2_ = other.type2_
        self.map_point_ = dict(other.map_point_)
        self._map_scales = dict(other._map_scales)

    # --------------------------------------------------------------- methods
    def _type2(self, r: Ratings) -> TypeII:
        return empirical_bayes(r, int(self.n_factors), biases=self.biases,
                               full_cov=self.priors == "bpmf", max_iter=int(self.em_iter),
                               tol=1e-3, random_seed=self.random_seed)

    def _fit_map(self, r: Ratings, *, store: bool = True) -> None:
        fit_map(self, r, store=store)

    def _sampling_model(self, r: Ratings, batch_size=None, *, plug_in: bool = False):
        return sampling_model(self, r, batch_size, plug_in=plug_in)

    def _initvals(self, model) -> dict:
        return initvals(self, model)

    def _fit_nuts(self, r: Ratings) -> None:
        fit_nuts(self, r)

    def _fit_advi(self, r: Ratings) -> None:
        fit_advi(self, r)

    def _fit_gibbs(self, r: Ratings) -> None:
        fit_gibbs(self, r)

    def _predicts_from_model(self) -> bool:
        """Whether predictions come from a custom model's own posterior predictive (:mod:`.custom`)."""
        return getattr(self, "model", None) is not None and self.draws_.n_draws > 1

    def _predict_codes(self, ucode, icode, *, interval: float = 0.9, include_noise: bool = True,
                       max_draws: int | None = None, random_seed=None):
        if not self._predicts_from_model():
            return super()._predict_codes(ucode, icode, interval=interval, include_noise=include_noise,
                                          max_draws=max_draws, random_seed=random_seed)
        seed = self.random_seed if random_seed is None else random_seed
        return model_predictive(self, ucode, icode, interval=interval, include_noise=include_noise,
                                max_draws=max_draws, random_seed=seed)

    def _to_rating_units(self, unit: float, r: Ratings) -> None:
        from ..results import UNIT_POWERS

        super()._to_rating_units(unit, r)
        if getattr(self, "validation_rmse_", None):
            self.validation_rmse_ = {m: v * unit for m, v in self.validation_rmse_.items()}
            self.result_.attrs["validation_rmse"] = ", ".join(
                f"{m:g}: {v:.4f}" for m, v in self.validation_rmse_.items())
        for key in list(self.result_.attrs) if self.link == "identity" else ():
            if key.startswith("type2_") and key[6:] in UNIT_POWERS:
                self.result_.attrs[key] = float(self.result_.attrs[key]) * unit ** UNIT_POWERS[key[6:]]
        if getattr(self, "elbo_", None) is not None:
            self.elbo_ = self.elbo_ - len(r) * float(np.log(unit))
        table = getattr(self, "convergence_", None)
        if table is not None and "mcse_mean_max" in table:
            table = table.copy()
            table["mcse_mean_max"] = [v * unit ** UNIT_POWERS.get(name, 1.0)
                                      for name, v in table["mcse_mean_max"].items()]
            self.convergence_ = table

    # -------------------------------------------------------------- results
    def _store(self, post, r: Ratings, *, method: str, sample_stats, attrs: dict, elbo=None) -> None:
        import xarray as xr

        from ..results import build_result

        posterior = _posterior_dict(post, biases=self.biases)
        custom = getattr(self, "model", None) is not None
        extra_dims = {"pred_check": ["check"]}
        if custom:
            posterior.update(_held_values(self.model_, post))
            extra, dims = extra_vars(self.model_, post)
            posterior.update(extra)
            extra_dims.update(dims)
            attrs = {**attrs, "custom_model": 1, "likelihood": str(self.model_.bayes_mf_spec["likelihood"])}
        posterior["pred_check"] = _pred_check(posterior, r, self.link, self._scale)
        attrs = {"priors": self.priors, "biases": int(self.biases), "constrained": int(self.constrained),
                 **{f"type2_{k}": float(v) for k, v in self._map_scales.items()}, **attrs}
        dt = build_result(
            posterior, r, method=method, model=self._model_label, n_factors=int(self.n_factors),
            random_seed=self.random_seed, fit_seconds=self._elapsed(), sample_stats=sample_stats or None,
            extra_dims=extra_dims, link=self.link, predictive=not custom,
            scale=self._scale if self.link == "logistic" else r.scale, attrs=attrs, check=check_pairs(r),
        )
        if custom:
            # predictions and the predictive groups come from the model's own likelihood
            self._pm_posterior = thinned(post)
            if post.sizes["chain"] * post.sizes["draw"] > 1:
                set_predictive(self, dt, post, r)
        if elbo is not None:
            ss = dt["sample_stats"].to_dataset() if "sample_stats" in dt.children else xr.Dataset()
            dt["sample_stats"] = ss.assign(elbo=xr.DataArray(elbo, dims=["advi_iteration"]))
        self.result_ = dt

