"""The comparison's method names: one estimator factory per name, and the sampler options they share.

:func:`make_estimator` turns a name of :data:`METHODS` (the ``--methods`` of
``bayes-mf compare``) into an unfitted estimator with the same rank and seed
as every other method of the comparison.
"""

from __future__ import annotations

from collections.abc import Callable


def _pmf(method: str) -> Callable:
    # the BPMF prior with biases is the best PyMC model on MovieLens (benchmarks/bench_pymc.py);
    # NUTS: 2 x 4 000 draws after 1 000 tuning steps.  On u1 (2 cores, target_accept 0.9, sheared
    # offsets, paired factor scales) 2 x 2 500 draws gave 0 divergences in 1 038 s but min ESS
    # 288 (sigma_c) (README, NUTS geometry)
    extra = {"draws": 4000, "tune": 1000} if method == "nuts" else {}

    def make(n_factors: int, random_seed):
        from .inference import PMF

        return PMF(n_factors=n_factors, priors="bpmf", method=method, random_seed=random_seed, **extra)

    return make


def _gibbs(n_factors: int, random_seed):
    from .gibbs import GibbsPMF

    return GibbsPMF(n_factors=n_factors, random_seed=random_seed)


def _gibbs_implicit(n_factors: int, random_seed):
    from .gibbs import GibbsPMF

    return GibbsPMF(n_factors=n_factors, implicit="both", random_seed=random_seed)


def _gibbs_side(n_factors: int, random_seed):
    from .gibbs import GibbsPMF

    # the feature tables ride with the data (load_data/load_folds attach them for ML-100K)
    return GibbsPMF(n_factors=n_factors, implicit="both", side_features=True, random_seed=random_seed)


def _gibbs_time(n_factors: int, random_seed):
    from .gibbs import GibbsPMF

    # per-(user, day) biases: on u1 they help where per-item time bins do not (README)
    return GibbsPMF(n_factors=n_factors, implicit="both", time_effects="user", random_seed=random_seed)


def _gibbs_full(n_factors: int, random_seed):
    from .gibbs import GibbsPMF

    # the variant that won on a validation share of u1's *training* set, never a test fold:
    # benchmarks/bench_features.py --validation 0.1 (README, "One best model by name"); per-user and
    # per-item noise took its validation RMSE from 0.8677 to 0.8590
    return GibbsPMF(n_factors=n_factors, implicit="both", side_features=True, time_effects="user",
                    heteroscedastic=True, random_seed=random_seed)


def _gibbs_ordinal(n_factors: int, random_seed):
    from .gibbs import GibbsPMF

    return GibbsPMF(n_factors=n_factors, likelihood="ordinal", random_seed=random_seed)


def _als(n_factors, random_seed):
    from .als import ALS

    return ALS(n_factors=n_factors, random_seed=random_seed)


def _gd(n_factors, random_seed):
    from .gd import GradientDescentMF

    return GradientDescentMF(n_factors=n_factors, random_seed=random_seed)


def _mean(n_factors, random_seed):
    from .baselines import GlobalMean

    return GlobalMean()


def _baseline(n_factors, random_seed):
    from .baselines import BiasBaseline

    return BiasBaseline()


#: method name -> factory(n_factors, random_seed) of an unfitted estimator
METHODS: dict[str, Callable] = {
    "mean": _mean,
    "baseline": _baseline,
    "als": _als,
    "gd": _gd,
    "map": _pmf("map"),
    "laplace": _pmf("laplace"),
    "pathfinder": _pmf("pathfinder"),
    "advi": _pmf("advi"),
    "advi-lowrank": _pmf("advi-lowrank"),
    "nuts": _pmf("nuts"),
    "gibbs": _gibbs,
    "gibbs-implicit": _gibbs_implicit,
    "gibbs-side": _gibbs_side,
    "gibbs-time": _gibbs_time,
    "gibbs-full": _gibbs_full,
    "gibbs-ordinal": _gibbs_ordinal,
}


#: sampler options shared by the CLI and :func:`run`, and the estimator parameter each sets
SAMPLING_OPTIONS = {
    "chains": {"GibbsPMF": "chains", "PMF": "chains"},
    "draws": {"GibbsPMF": "draws", "PMF": "draws"},
    "tune": {"GibbsPMF": "tune", "PMF": "tune"},
    "burn_in": {"GibbsPMF": "tune", "PMF": "tune"},
    "max_seconds": {"GibbsPMF": "max_seconds"},
    "target_ess": {"GibbsPMF": "target_ess"},
    "cores": {"GibbsPMF": "cores"},
}


def make_estimator(name: str, n_factors: int = 10, random_seed=0, **sampling):
    """An unfitted estimator for a method name of :data:`METHODS`.

    ``sampling`` takes the options of :data:`SAMPLING_OPTIONS` (``None`` =
    the estimator's default); each is set where the estimator has it
    (``burn_in`` is another name of ``tune``), and point estimators ignore them all.
    """
    try:
        factory = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}") from None
    est = factory(n_factors, random_seed)
    unknown = set(sampling) - set(SAMPLING_OPTIONS)
    if unknown:
        raise ValueError(f"unknown sampling option(s) {sorted(unknown)}; "
                         f"choose from {sorted(SAMPLING_OPTIONS)}")
    # burn_in after tune: the more specific name wins where both are given
    for option in sorted(sampling, key=lambda o: o == "burn_in"):
        value = sampling[option]
        param = SAMPLING_OPTIONS[option].get(type(est).__name__)
        if value is not None and param is not None:
            setattr(est, param, value)
    return est
