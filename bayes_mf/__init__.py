"""bayes_mf: Bayesian probabilistic matrix factorization for recommender research.

Point estimates (ALS, gradient descent, MAP) and full posteriors (NUTS, ADVI,
Gibbs) of the PMF family behind one scikit-learn-like interface; results as
ArviZ-ready ``xarray.DataTree`` objects with dims ``user``, ``item``,
``factor``, ``obs``.

PyMC is imported only when a PyMC-based estimator is used, so that
``import bayes_mf`` and the NumPy estimators stay fast.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from . import datasets, evaluate, ranking, splits
from .als import ALS
from .baselines import BiasBaseline, GlobalMean
from .data import Ratings, RatingsError, UnseenIdsWarning, per_user_split, train_test_split
from .gd import GradientDescentMF

try:
    __version__ = version("bayes_mf")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ALS",
    "BiasBaseline",
    "GlobalMean",
    "GradientDescentMF",
    "Ratings",
    "RatingsError",
    "UnseenIdsWarning",
    "datasets",
    "evaluate",
    "per_user_split",
    "ranking",
    "splits",
    "train_test_split",
]

# heavier modules, loaded on first use
_LAZY = {
    "PMF": "bayes_mf.inference",
    "GibbsPMF": "bayes_mf.gibbs",
}


# submodules that import ArviZ, matplotlib or PyMC: loaded on first attribute access
_SUBMODULES = {"compare", "diagnostics", "gibbs", "inference", "io", "models", "plots", "predict",
               "recommend", "results"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return import_module(f"bayes_mf.{name}")
    raise AttributeError(f"module 'bayes_mf' has no attribute {name!r}")
