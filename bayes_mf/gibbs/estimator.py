"""The :class:`GibbsPMF` estimator: options, data in, chains run, result out."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from .._util import interactive
from ..base import BayesianEstimator
from ..data import Ratings
from ..diagnostics import ConvergenceWarning, convergence_message
from . import kernels, output, timefit
from .chain import _Settings
from .inputs import TIME_EFFECTS, check_params, feature_block, lengths, settings
from .ordinal_predict import OrdinalMixin
from .parallel import ChainRunner, _warm_up, n_processes
from .schedule import Plan, Sampled, budget_advice, sample
from .timefit import TimeEffectsMixin, need_timestamps

__all__ = ["GibbsPMF"]

_PRIORS = ("bpmf", "adaptive", "fixed")
_IMPLICIT = {False: (), None: (), "none": (), "user": ("user",), "item": ("item",),
             True: ("user", "item"), "both": ("user", "item")}
_MAX_FACTOR_BYTES = 1e9  # stored U, V draws of a run until converged
# default of the deprecated aliases n_samples/burn_in: distinct from None, which draws=None means
_DEPRECATED = "deprecated"


class GibbsPMF(OrdinalMixin, TimeEffectsMixin, BayesianEstimator):
    r"""Blocked Gibbs sampler for PMF / BPMF with biases and implicit feedback.

    The maths (model, priors, the exact conditional of every block): the docstring of :mod:`bayes_mf.gibbs`.

    Parameters
    ----------
    n_factors : int
        Rank :math:`k`.
    prior : {"bpmf", "adaptive", "fixed"}
        Normal-Wishart hierarchy on the factors (BPMF), isotropic Gaussian
        with a Gamma hyperprior on its precision, or fixed prior sds
        ``sigma_u``/``sigma_v``/``sigma_bias``.
    factor_means : bool or None
        ``prior="bpmf"`` only: learn the factor means :math:`\mu_U, \mu_V`
        (Normal-Wishart, the default) or fix them at 0 (Wishart on
        :math:`\Lambda` alone; with biases the means duplicate them and
        :math:`\mu`).  ``None``: learned only without biases.  On u1 fixing
        them predicted worse (README, ``bench_mixing.py --vary factor_means``).
    biases : bool
        User and item offsets :math:`b_i, c_j`.
    global_mean : bool
        Learn :math:`\mu` (else :math:`\mu = 0`).
    implicit : {False, "user", "item", "both"}
        Implicit-feedback terms (module docstring): a user's vector gains
        :math:`|\Omega_i|^{-1/2}\sum_{l\in\Omega_i} W_l` over the items it
        rated, an item's the same over its raters.  ``True`` means ``"both"``.
    implicit_bias : bool
        Whether the implicit vectors W_l have a bias coordinate too (shift the
        biases, not only the factors).  False (default) is SVD++ (Koren 2008):
        on u1, ``implicit="both"``, the worst ESS per sweep rose 0.035 -> 0.073
        (item biases 0.036 -> 0.51) at the same test RMSE.  Side features keep theirs.
    side_features : bool
        Take the side-feature tables from the training :class:`~bayes_mf.data.Ratings`'
        ``meta["user_features"]``/``meta["item_features"]`` (as
        :func:`bayes_mf.sideinfo.attach_features` stores them) when :meth:`fit`
        is not given them; it is an error if neither has any.
    time_effects : {None, "item", "user", "both"}
        Time-level biases (timeSVD, Koren 2009; :mod:`bayes_mf.gibbs.effects`):
        ``"item"`` an effect per item and time bin, ``"user"`` per user and
        day, each family :math:`N(0, \lambda^{-1})` with a Gamma prior on
        :math:`\lambda`, drawn exactly.  Needs ``biases=True`` and timestamps:
        a ``timestamp`` column (Unix seconds) of the DataFrame passed to
        ``fit``/``predict``, or ``Ratings.meta["timestamp"]``.  A test pair's
        effect is its level's posterior when that (item, bin) or (user, day)
        was seen in training, else the prior (mean 0).  The result then has
        no training ``posterior_predictive``/``log_likelihood`` groups.
    time_bins : int
        Equal-width bins of the training period for the item effects.
    heteroscedastic : bool
        A noise precision multiplier per user and per item, :math:`\mathrm{Gamma}(a, a)` with learned
        shapes (:mod:`bayes_mf.gibbs.noise`): a rating's sd is :math:`\sigma/\sqrt{\alpha_i\beta_j}`,
        and intervals follow it.  Gaussian likelihood only.
    likelihood : {"gaussian", "ordinal"}
        ``"ordinal"``: ordered probit for integer star ratings, by data
        augmentation with learned cut-points (:mod:`bayes_mf.gibbs.ordinal`;
        latent noise sd 1, first cut-point 0, rating unit 1); composes with
        every prior, biases and features.  Predictions are in stars:
        ``predict`` adds ``median``, ``mode`` and star-set intervals,
        ``predict_proba`` gives P(R = k) (:mod:`bayes_mf.gibbs.ordinal_predict`).
    sigma : float or None
        Fixed noise sd, in rating units; ``None`` learns the noise precision
        (Gamma prior).  Must be ``None`` for ``likelihood="ordinal"``.
    sigma_u, sigma_v, sigma_bias : float or None
        Prior sds of factors and biases for ``prior="fixed"`` (feature
        vectors of a side use that side's factor sd); ignored otherwise.
        In rating units: ``sigma_bias`` like a rating, ``sigma_u`` and
        ``sigma_v`` its square root (a product of two factors is a
        rating).  ``None`` (default): 1 on the standardised scale (see
        ``rating_unit``), i.e. ``sqrt(rating_unit_)`` and ``rating_unit_``;
        1 for star ratings.  A value more than 100 x off the ratings' sd
        warns (:class:`~bayes_mf.base.RatingUnitWarning`).
    gamma_prior : (shape, rate)
        :math:`(a_0, b_0)` of every Gamma hyperprior on a precision; the
        precisions are those of the standardised model (ratings divided by
        ``rating_unit_``), so the default suits ratings in any unit.
    draws : int or None
        Kept draws per chain (the name :class:`~bayes_mf.inference.PMF`
        uses).  ``None`` (default): sample in rounds until every
        identifiable quantity passes ``target_rhat`` and ``target_ess``
        (bulk and tail), or until ``max_seconds`` is spent (see
        :mod:`bayes_mf.gibbs.schedule`); an int runs exactly that many.
    tune : int
        Burn-in sweeps discarded first.  With ``draws`` given, total sweeps
        per chain: ``tune + draws * thin``.
    thin : int
        Keep every ``thin``-th sweep after burn-in (with ``draws=None``
        the thinning doubles whenever the kept draws per chain would exceed
        ``max_draws``).
    target_rhat, target_ess : float
        Convergence targets of the default run: rank-normalised split R-hat
        at most ``target_rhat``, bulk and tail ESS at least ``target_ess``.
    max_seconds : float
        Time budget of the default run; past it the fit stops with a
        :class:`~bayes_mf.diagnostics.ConvergenceWarning` that says what to change.
    max_draws : int
        Kept draws per chain at most, with ``draws=None``; lowered so that
        the stored factor draws take at most 1 GB (``store_factors=True``).
    moves : bool
        The exact translation and scale moves of :mod:`bayes_mf.gibbs.moves`
        (they change how fast the chains mix, not what they sample).  Off
        only to study the plain blocked sampler.
    overrelax : float in [0, 1)
        Over-relaxed row draws (Adler 1981): :math:`x' = m + \alpha(x - m) +
        \sqrt{1-\alpha^2}\,L^{-T}z`, :math:`\alpha` = ``-overrelax``, exact for
        the row's conditional :math:`N(m, (LL^T)^{-1})`; it cuts the factors'
        random walk and the heavy users' biases with it (u1: worst ESS per sweep
        0.0059 -> 0.0337, ``bench_mixing.py --vary overrelax``).  The feature
        vectors' draws (steps 2 and 2b) are over-relaxed alike.  0: plain Gibbs.
    interweave : bool
        With feature vectors (``implicit``, ``side_features``): draw them twice
        a sweep, given the own parts (through the likelihood, step 2) and given
        the effective rows (through the own parts' prior, step 2b, O(nnz d)),
        interweaving the two parametrisations (Yu & Meng 2011); both draws are
        exact.  u1, ``implicit="both"``, worst ESS per sweep: user biases
        0.034 -> 0.074, mu 0.025 -> 0.037, but ``pred_check`` 0.172 -> 0.035,
        for 15 % more time a sweep (``bench_mixing.py --vary interweave``).
    chains : int
        Independent chains; chain ``c`` uses child ``c`` of
        ``np.random.SeedSequence(random_seed)``, so results do not depend on ``cores``.
    cores : int or None
        Worker processes for the chains; 1 runs them in this process.
        ``None``: ``min(chains, os.cpu_count() // threads)`` processes when the work is
        large enough to repay their start-up (seconds): with ``draws``
        given, at least 5e7 rating-sweeps per chain; with ``draws=None``,
        at least 5 000 ratings.  Else in this process.  The draws are the
        same either way.  From a script, guard the fit with
        ``if __name__ == "__main__":`` (workers re-import the main module).
    backend : {"auto", "numba", "numpy", "dask"}
        Kernel family; ``"auto"`` uses numba when it is importable.
        ``"dask"``: the compiled kernels on the workers of a
        ``dask.distributed`` cluster, the ratings partitioned by user and by
        item across them (:mod:`bayes_mf.gibbs.distributed`); the same
        numbers as ``"numba"`` for the same seed.  Not yet with time effects
        or the ordinal likelihood; chains run one after another.
    client : None, str or distributed.Client
        With ``backend="dask"``: the client (e.g. on a ``LocalCluster``), a
        scheduler address, or ``None`` for the default client of this
        process.  Only an address is saved by :func:`bayes_mf.io.save`.
    threads : int or None
        Threads of the compiled per-row loops within each chain (numba
        ``prange``; capped at numba's ``NUMBA_NUM_THREADS``).  ``None`` or 1:
        one.  The draws are bit-identical for any number: per-row noise
        comes from a counter-based generator keyed by (seed, chain, sweep,
        side, row) (:mod:`bayes_mf.gibbs.counter`) and every sum over rows
        runs in a fixed order.  The NumPy backend runs on one thread.  With
        worker processes (``cores``) every chain uses this many threads.
    store_factors : bool
        Keep U and V of every kept draw (needed by ``predict``).  Memory:
        chains x draws x (n_users + n_items) x k floats; with ``False``
        only their running posterior means (``U_mean_``, ``V_mean_``) are
        kept, which bounds memory for huge data, and ``predict`` is unavailable.
    n_check : int
        Training pairs (a seeded random subset) whose mean rating is stored
        per draw as ``pred_check`` for R-hat/ESS.
    init_scale : float
        Sd of the random initial factors (on the standardised scale).  Every chain starts at its own
        random point (factors, biases, mean, noise and prior precisions
        dispersed), so that R-hat can see chains that have not met.
    clip : bool
        Clip predictions to the rating scale.
    progressbar : bool or None
        tqdm progress bars; ``None``: on in interactive sessions (Jupyter, a
        terminal), off otherwise.
    random_seed : int or None
    rating_unit : "auto" or float
        The sampler works on ``ratings / rating_unit`` and reports every
        draw, prediction and interval back in rating units.  ``"auto"``:
        :func:`~bayes_mf.base.rating_unit`, the power of ten nearest the
        training sd (1 for star ratings, so their fits are unchanged; 100
        for the same ratings in cents, whose fit is then 100 x theirs with
        the same seed).  A number fixes it (1: the priors hold for the
        ratings as given, as simulation-based calibration needs).
    n_samples, burn_in
        Deprecated aliases of ``draws`` and ``tune`` (a ``FutureWarning`` at
        fit time); giving both an alias and its new name raises ``ValueError``.

    Attributes
    ----------
    result_ : xarray.DataTree
        ``posterior`` with ``U, V, sigma, mu, user_bias, item_bias, sigma_u,
        sigma_v, sigma_b, sigma_c, pred_check`` (and ``mu_u, mu_v`` for BPMF with ``factor_means``);
        ``U``/``V`` (and biases) are the *effective* vectors, implicit terms
        included, so the shared posterior predictive applies unchanged.
        All in rating units (:func:`bayes_mf.results.to_rating_units`).
    rating_unit_ : float
        The unit the sampler worked in (see ``rating_unit``).
    U_mean_, V_mean_ : ndarray
        Posterior means of the effective factors (all chains).
    sweep_seconds_ : float
        Mean wall time of one sweep of one chain (the sampling loop only: no
        set-up, process start or result building).
    compile_seconds_ : float
        Time spent compiling or loading the numba kernels in this process.
    converged_ : bool or None
        Whether the identifiable set passed the targets (None with one chain).
    convergence_ : pandas.DataFrame or None
        The diagnostics table at the end of the fit
        (:func:`bayes_mf.diagnostics.convergence_table`).
    n_sweeps_ : int
        Sweeps run per chain, warm-up included.
    time_coding_ : TimeCoding or None
        With ``time_effects``: the levels (item x time bin, user x day) of
        :class:`~bayes_mf.gibbs.effects.TimeCoding`; ``result_`` holds the
        effects' draws (``time_item``, ``time_user`` over those levels) and
        their scales (``sigma_time_item``, ``sigma_time_user``).
    """

    def __init__(
        self,
        n_factors: int = 10,
        *,
        prior: str = "bpmf",
        factor_means: bool | None = True,
        biases: bool = True,
        global_mean: bool = True,
        implicit=False,
        implicit_bias: bool = False,
        side_features: bool = False,
        time_effects=None,
        time_bins: int = 30,
        heteroscedastic: bool = False,
        likelihood: str = "gaussian",
        sigma: float | None = None,
        sigma_u: float | None = None,
        sigma_v: float | None = None,
        sigma_bias: float | None = None,
        gamma_prior: tuple = (1.0, 1.0),
        draws: int | None = None,
        tune: int = 100,
        thin: int = 1,
        target_rhat: float = 1.01,
        target_ess: float = 400.0,
        max_seconds: float = 600.0,
        max_draws: int = 1000,
        moves: bool = True,
        overrelax: float = 0.7,
        interweave: bool = True,
        chains: int = 4,
        cores: int | None = None,
        backend: str = "auto",
        threads: int | None = 1,
        client=None,
        store_factors: bool = True,
        n_check: int = 50,
        init_scale: float = 0.1,
        clip: bool = True,
        progressbar: bool | None = None,
        random_seed: int | None = 0,
        rating_unit: float | str = "auto",
        n_samples: int | None | str = _DEPRECATED,
        burn_in: int | str = _DEPRECATED,
    ):
        self.n_factors = n_factors
        self.prior = prior
        self.factor_means = factor_means
        self.biases = biases
        self.global_mean = global_mean
        self.implicit = implicit
        self.implicit_bias = implicit_bias
        self.side_features = side_features
        self.time_effects = time_effects
        self.time_bins = time_bins
        self.heteroscedastic = heteroscedastic
        self.likelihood = likelihood
        self.sigma = sigma
        self.sigma_u = sigma_u
        self.sigma_v = sigma_v
        self.sigma_bias = sigma_bias
        self.gamma_prior = gamma_prior
        self.draws = draws
        self.tune = tune
        self.thin = thin
        self.target_rhat = target_rhat
        self.target_ess = target_ess
        self.max_seconds = max_seconds
        self.max_draws = max_draws
        self.moves = moves
        self.overrelax = overrelax
        self.interweave = interweave
        self.chains = chains
        self.cores = cores
        self.backend = backend
        self.threads = threads
        self.client = client
        self.store_factors = store_factors
        self.n_check = n_check
        self.init_scale = init_scale
        self.clip = clip
        self.progressbar = progressbar
        self.random_seed = random_seed
        self.rating_unit = rating_unit
        self.n_samples = n_samples
        self.burn_in = burn_in

    # ----------------------------------------------------------------- checks
    def _check_params(self) -> None:
        check_params(self, _PRIORS, _IMPLICIT)
        self._check_likelihood()

    def _resolved_backend(self) -> str:
        if self.backend == "auto":
            return "numba" if kernels.HAVE_NUMBA else "numpy"
        return self.backend

    # -------------------------------------------------------------------- fit
    def fit(self, X, y=None, *, user_features=None, item_features=None, **ratings_kw):
        r"""Sample the posterior given training ratings; returns ``self``.

        Parameters
        ----------
        X : DataFrame, Ratings or path
            The ratings table, as for :meth:`RatingsEstimator.fit <bayes_mf.base.RatingsEstimator.fit>`.
            With ``time_effects``, also a ``timestamp`` column (Unix seconds;
            or ``meta["timestamp"]`` of a Ratings).
        y : array-like, optional
            Ratings of the rows of ``X`` when ``X`` holds only (user, item) pairs.
        user_features, item_features : DataFrame, optional
            Side information indexed by the original ids (numeric columns; missing ids get zeros).
            Column :math:`l` adds :math:`A_{il} W_l` to the effective vector; one Gamma prior per
            column of :math:`W` and *group* of columns (two-level columns ``(group, level)``: each
            first level, as :func:`bayes_mf.sideinfo.movielens_features` builds; else one group).
            Scale the columns yourself (e.g. one-hot rows divided by their norm).
        **ratings_kw
            Passed to :meth:`Ratings.coerce`; unknown names raise ``TypeError``.
        """
        self._side_features = {"user": user_features, "item": item_features}
        self._fit_time = None
        if TIME_EFFECTS.get(self.time_effects) and not isinstance(X, Ratings):
            # a DataFrame's timestamp column, aligned with its rows (Ratings.from_frame keeps their order)
            self._fit_time = timefit.timestamps(X, len(X), "fit") if hasattr(X, "columns") else None
        if self.side_features and user_features is None and item_features is None:
            meta = getattr(X, "meta", {})
            if meta.get("user_features") is None and meta.get("item_features") is None:
                raise ValueError("side_features=True but fit got no user_features/item_features and X "
                                 "carries none in its meta (see bayes_mf.sideinfo.attach_features)")
        try:
            return super().fit(X, y, **ratings_kw)
        finally:
            del self._side_features

    def _feature_block(self, side: str, r: Ratings):
        table = self._side_features[side]
        if table is None and self.side_features:
            table = r.meta.get(f"{side}_features")
            self._side_features[side] = table
        return feature_block(side, r, side in _IMPLICIT[self.implicit], table, bool(self.implicit_bias))

    def _settings(self, backend: str, r: Ratings) -> _Settings:
        return settings(self, backend, r)

    def _problem(self, r: Ratings) -> tuple[dict, np.ndarray]:
        """The arrays every chain needs, and the positions of the ``pred_check`` pairs."""
        self._time_code = None
        if TIME_EFFECTS[self.time_effects]:
            t = self._fit_time if self._fit_time is not None else need_timestamps(r, len(r), "fit")
            if len(t) != len(r):
                raise ValueError(f"fit: {len(t)} timestamps for {len(r)} ratings (duplicate pairs were "
                                 "merged); give one row per (user, item) pair with time_effects")
            self._time_code = timefit.coding(TIME_EFFECTS[self.time_effects], int(self.time_bins), r, t)
        check_rng = np.random.default_rng(np.random.SeedSequence(self.random_seed).spawn(1)[0].spawn(1)[0])
        n_check = min(int(self.n_check), len(r))
        check = np.sort(check_rng.choice(len(r), size=n_check, replace=False))
        problem = {
            # int32 codes as Ratings holds them: no copy (at 100 M ratings, int64 copies cost 1.6 GB)
            "user": np.ascontiguousarray(r.user, dtype=np.int32),
            "item": np.ascontiguousarray(r.item, dtype=np.int32),
            "rating": np.ascontiguousarray(r.rating, dtype=np.float64),
            "n_users": r.n_users, "n_items": r.n_items,
            "check_user": r.user[check].astype(np.int64), "check_item": r.item[check].astype(np.int64),
            "user_features": self._feature_block("user", r),
            "item_features": self._feature_block("item", r),
        }
        self._time_families = []
        if self._time_code is not None:
            problem["effects"] = self._time_families = self._time_code.families(r.user, r.item, t)
            problem["check_pos"] = check.astype(np.int64)
        if self._ordinal:
            self._ordinal_problem(problem, r)
        return problem, check

    def _plan(self, r: Ratings) -> Plan:
        n_samples = None if self._draws is None else int(self._draws)
        max_draws = int(self.max_draws)
        if self.store_factors:
            levels = sum(len(f["parent"]) for f in self._time_families)  # time effect draws kept too
            per_draw = 8 * int(self.chains) * ((r.n_users + r.n_items) * int(self.n_factors) + levels)
            max_draws = min(max_draws, max(100, int(_MAX_FACTOR_BYTES // per_draw)))
        return Plan(burn_in=int(self._tune), n_samples=n_samples, thin=int(self.thin),
                    target_rhat=float(self.target_rhat), target_ess=float(self.target_ess),
                    max_seconds=float(self.max_seconds), max_draws=max_draws)

    def _lengths(self) -> tuple[int | None, int]:
        return lengths(self, _DEPRECATED)

    def _fit(self, r: Ratings) -> None:
        self._draws, self._tune = self._lengths()
        self._check_params()
        backend = self._resolved_backend()
        self.compile_seconds_ = _warm_up() if backend in ("numba", "dask") else 0.0
        st = self._settings(backend, r)
        problem, check = self._problem(r)
        plan = self._plan(r)
        seeds = np.random.SeedSequence(self.random_seed).spawn(int(self.chains))
        cores = n_processes(self.chains, self.cores, len(r), len(_IMPLICIT[self.implicit]), plan,
                            st.threads if backend == "numba" else 1)
        progressbar = interactive() if self.progressbar is None else bool(self.progressbar)
        t0 = time.perf_counter()
        if backend == "dask":
            from .distributed import DaskRunner

            runner = DaskRunner(problem, st, self.client, progressbar)
        else:
            runner = ChainRunner(problem, st, cores, progressbar)
        with runner:
            res = sample(runner, seeds, plan, self._diagnose)
        elapsed = time.perf_counter() - t0
        self.n_sweeps_ = int(res.sweeps)
        self.sweep_seconds_ = res.loop_seconds / (len(seeds) * res.sweeps)
        self.U_mean_ = res.U_sum / res.n_summed
        self.V_mean_ = res.V_sum / res.n_summed
        self.converged_, self.convergence_ = res.converged, res.table
        self._keep_time_coding(self._time_code)
        self.result_ = self._build(res, r, problem, check, st, elapsed, plan)
        if res.converged is False:
            warnings.warn(
                convergence_message(res.table, plan.target_rhat, plan.target_ess,
                                    budget_advice(plan, res)),
                ConvergenceWarning, stacklevel=4)

    def __sklearn_clone__(self):
        """A clone sharing the same ``distributed.Client`` (one cannot be deep-copied: it holds tasks)."""
        client = self.client
        if client is None or isinstance(client, str):
            return super().__sklearn_clone__()
        self.client = None
        try:
            new = super().__sklearn_clone__()
        finally:
            self.client = client
        new.client = client
        return new

    def _diagnose(self, draws: list):
        return output.diagnose(draws, float(self.target_rhat), float(self.target_ess))

    def _build(self, res: Sampled, r, problem, check, st, elapsed, plan: Plan):
        return output.build(self, res, r, problem, check, st, elapsed)

    def _to_rating_units(self, unit: float, r: Ratings) -> None:
        from ..results import UNIT_POWERS

        super()._to_rating_units(unit, r)
        root = math.sqrt(unit)
        self.U_mean_ = self.U_mean_ * root
        self.V_mean_ = self.V_mean_ * root
        if self.convergence_ is not None and "mcse_mean_max" in self.convergence_:
            table = self.convergence_.copy()
            table["mcse_mean_max"] = [v * unit ** UNIT_POWERS.get(name, 1.0)
                                      for name, v in table["mcse_mean_max"].items()]
            self.convergence_ = table

    def _predict_codes(self, ucode, icode, **kw):
        if "U" not in self.result_["posterior"]:
            raise ValueError("this GibbsPMF was fitted with store_factors=False: factor draws were not "
                             "kept, so the posterior predictive is unavailable (U_mean_/V_mean_ hold "
                             "the posterior means); refit with store_factors=True")
        return super()._predict_codes(ucode, icode, **kw)
