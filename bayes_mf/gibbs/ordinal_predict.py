r"""What :class:`~bayes_mf.gibbs.GibbsPMF` does differently with ``likelihood="ordinal"``.

Fitting: integer star ratings only (:func:`~bayes_mf.gibbs.ordinal.ordinal_levels`),
rating unit 1 (the ordinal model has no rating scale to standardise), the
latent noise sd fixed at 1.

Predicting (posterior predictive in stars).  With :math:`S` posterior draws
of :math:`(\eta_{ij}, \gamma)`,

.. math::
    p_k = P(R_{ij} = \ell_k \mid \text{data}) \approx \frac1S \sum_s
    \bigl(\Phi(\gamma^{(s)}_k - \eta^{(s)}_{ij}) - \Phi(\gamma^{(s)}_{k-1} - \eta^{(s)}_{ij})\bigr),

an exact Rao-Blackwellised average (no noise draws).  From :math:`p`:

* ``mean`` :math:`\sum_k \ell_k p_k` and ``sd``, its spread;
* ``median``: the smallest level whose cumulative probability reaches 1/2;
* ``mode``: the most probable level;
* the *star set* at level :math:`q` (``interval``): the smallest set of levels
  whose probabilities sum to at least :math:`q`, taken greedily by
  probability (the highest-probability set; ties to the lower level).  It is
  contiguous whenever :math:`p` is unimodal; ``lo``/``hi`` are its lowest and
  highest level, ``stars`` lists it (e.g. ``"3,4,5"``), and coverage counts a
  rating as covered when it is in the set (:func:`star_sets`).

Unseen users/items draw their factors from the prior of each draw, as for
the Gaussian model (:func:`bayes_mf.predict.linear_predictor`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr

from ..predict import linear_predictor
from .ordinal import ordinal_levels

__all__ = ["OrdinalMixin", "level_probabilities", "star_sets"]

LIKELIHOODS = ("gaussian", "ordinal")


def level_probabilities(eta: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    r"""Per-draw level probabilities ``(S, P, K)`` from ``eta`` ``(S, P)`` and ``cuts`` ``(S, K-1)``."""
    S = eta.shape[0]
    ext = np.concatenate([np.full((S, 1), -np.inf), cuts, np.full((S, 1), np.inf)], axis=1)
    cdf = ndtr(ext[:, None, :] - eta[:, :, None])
    return np.diff(cdf, axis=-1)


def star_sets(proba: np.ndarray, interval: float) -> np.ndarray:
    """Boolean ``(P, K)``: the smallest set of levels of each row with mass >= ``interval`` (greedy)."""
    order = np.argsort(-proba, axis=1, kind="stable")
    sorted_p = np.take_along_axis(proba, order, axis=1)
    before = np.cumsum(sorted_p, axis=1) - sorted_p
    keep_sorted = before < interval - 1e-12  # a level is needed while the mass before it falls short
    out = np.zeros_like(proba, dtype=bool)
    np.put_along_axis(out, order, keep_sorted, axis=1)
    return out


def summarise(proba: np.ndarray, levels: np.ndarray, interval: float) -> dict:
    """Mean, sd, median, mode and star-set range (``lo``, ``hi``) of level probabilities ``(P, K)``."""
    mean = proba @ levels
    sd = np.sqrt(np.maximum(proba @ levels**2 - mean**2, 0.0))
    median = levels[np.argmax(np.cumsum(proba, axis=1) >= 0.5 - 1e-12, axis=1)]
    sets = star_sets(proba, interval)
    lo = levels[np.argmax(sets, axis=1)]
    hi = levels[sets.shape[1] - 1 - np.argmax(sets[:, ::-1], axis=1)]
    stars = [",".join(f"{v:g}" for v in levels[row]) for row in sets]
    return {"mean": mean, "sd": sd, "lo": lo, "hi": hi, "median": median,
            "mode": levels[np.argmax(proba, axis=1)], "stars": np.array(stars, dtype=object)}


class OrdinalMixin:
    """Ordinal fitting hooks and star predictions of :class:`~bayes_mf.gibbs.GibbsPMF`."""

    @property
    def _ordinal(self) -> bool:
        return getattr(self, "likelihood", "gaussian") == "ordinal"

    def _check_likelihood(self) -> None:
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self._ordinal and self.sigma is not None:
            raise ValueError("likelihood='ordinal' fixes the latent noise sd at 1 (it identifies the "
                             f"cut-points' scale): leave sigma=None, got sigma={self.sigma!r}")
        if self._ordinal and getattr(self, "time_effects", None):
            raise ValueError("likelihood='ordinal' with time_effects is not supported yet: the latent "
                             f"ratings would need the time offsets; got time_effects={self.time_effects!r}")

    def _rating_unit(self, r) -> float:
        # stars are categories: the latent scale is set by the noise sd 1, never by the ratings' unit
        return 1.0 if self._ordinal else super()._rating_unit(r)

    def _ordinal_problem(self, problem: dict, r) -> None:
        """Add the star codes and levels; the initial working response lies inside each rating's interval."""
        levels, codes = ordinal_levels(r.rating, r.scale, name=r.names[2])
        self._levels = levels
        # unit gaps from gamma_1 = 0 put level k's interval at (k - 2, k - 1]; its middle starts z
        problem.update(codes=codes, levels=levels, rating=codes.astype(np.float64) - 0.5)

    @property
    def levels_(self) -> np.ndarray:
        """The star levels of an ordinal fit (from the result's ``levels`` attribute after a load)."""
        if getattr(self, "_levels", None) is None:
            result = getattr(self, "result_", None)
            if result is None or "levels" not in result.attrs:
                raise AttributeError("levels_: not an ordinal fit (likelihood='ordinal'), or not fitted yet")
            self._levels = np.array([float(v) for v in str(result.attrs["levels"]).split(",")])
        return self._levels

    def _likelihood_label(self, model: str) -> tuple[str, dict]:
        """The result's model name and extra attributes."""
        if not self._ordinal:
            return model, {}
        return f"ordered probit {model}", {"likelihood": "ordinal",
                                           "levels": ",".join(f"{v:g}" for v in self.levels_)}

    # ------------------------------------------------------------ predictions
    def _rng(self, random_seed):
        seed = getattr(self, "random_seed", None) if random_seed is None else random_seed
        return np.random.default_rng(seed)

    def _ordinal_draws(self, max_draws):
        """``(PosteriorDraws, cut-point draws (S, K-1))``, thinned alike."""
        cuts = self.result_["posterior"]["cutpoints"].to_numpy()
        cuts = cuts.reshape(-1, cuts.shape[-1])
        draws = self.draws_
        S = draws.n_draws
        if max_draws is not None and int(max_draws) < S:
            keep = np.linspace(0, S - 1, int(max_draws)).round().astype(int)
            return draws.take(keep), cuts[keep]
        return draws, cuts

    def _proba_codes(self, ucode, icode, max_draws=None, random_seed=None, max_elements=8_000_000):
        d, cuts = self._ordinal_draws(max_draws)
        rng = self._rng(random_seed)
        S, K = d.n_draws, cuts.shape[1] + 1
        P = len(ucode)
        chunk = max(1, int(max_elements // max(1, S * max(K, d.U.shape[2]))))
        out = np.empty((P, K))
        for s in range(0, P, chunk):
            eta = linear_predictor(d, ucode[s:s + chunk], icode[s:s + chunk], rng)
            out[s:s + chunk] = level_probabilities(eta, cuts).mean(axis=0)
        return out

    def _ordinal_predict_codes(self, ucode, icode, *, interval=0.9, include_noise=True, max_draws=None,
                               random_seed=None):
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval}")
        proba = self._proba_codes(ucode, icode, max_draws, random_seed)
        return summarise(proba, self.levels_, interval)

    def predict_proba(self, pairs, *, unseen: str = "prior", max_draws: int | None = None,
                      random_seed=None) -> pd.DataFrame:
        """Posterior predictive probability of every star level (``likelihood="ordinal"``).

        Returns
        -------
        DataFrame
            ``user``, ``item``, one column per level (named by the level, e.g.
            ``1.0 .. 5.0``; rows sum to 1), and ``rating`` when the pairs carry one.
        """
        self._check_fitted()
        if not self._ordinal:
            raise ValueError("predict_proba needs likelihood='ordinal' (a Gaussian model has a density, "
                             "not level probabilities)")
        uid, iid, uc, ic, keep, observed = self._encode(pairs, unseen)
        uc, ic = uc[keep].astype(np.int64), ic[keep].astype(np.int64)
        proba = self._proba_codes(uc, ic, max_draws, random_seed)
        frame = pd.DataFrame(proba, columns=pd.Index(self.levels_, name="level"))
        frame.insert(0, "item", iid[keep])
        frame.insert(0, "user", uid[keep])
        if observed is not None:
            frame["rating"] = observed[keep]
        return frame

    def _ordinal_predict_draws(self, uc, ic, max_draws, random_seed) -> np.ndarray:
        """One star per posterior draw and pair, ``(S, P)``: the draw's level probabilities sampled."""
        d, cuts = self._ordinal_draws(max_draws)
        rng = self._rng(random_seed)
        probs = level_probabilities(linear_predictor(d, uc, ic, rng), cuts)
        u = rng.random(probs.shape[:2] + (1,))
        idx = np.minimum((np.cumsum(probs, axis=-1) < u).sum(axis=-1), probs.shape[-1] - 1)
        return self.levels_[idx]

    def _predict_codes(self, ucode, icode, **kw):
        if self._ordinal:
            return self._ordinal_predict_codes(ucode, icode, **kw)
        return super()._predict_codes(ucode, icode, **kw)

    def predict_draws(self, pairs, *, unseen: str = "prior", include_noise: bool = True,
                      max_draws: int | None = None, random_seed=None):
        """Posterior predictive draws (chain, draw, obs); in stars for ``likelihood="ordinal"``.

        See :meth:`BayesianEstimator.predict_draws <bayes_mf.base.BayesianEstimator.predict_draws>`;
        an ordinal model always includes the noise (a star is a draw from the level probabilities).
        """
        if not self._ordinal:
            return super().predict_draws(pairs, unseen=unseen, include_noise=include_noise,
                                         max_draws=max_draws, random_seed=random_seed)
        import xarray as xr

        self._check_fitted()
        uid, iid, uc, ic, keep, _ = self._encode(pairs, unseen)
        y = self._ordinal_predict_draws(uc[keep].astype(np.int64), ic[keep].astype(np.int64), max_draws,
                                        random_seed)
        post = self.result_["posterior"]
        thinned = max_draws is not None and int(max_draws) < post.sizes["chain"] * post.sizes["draw"]
        n_chain = 1 if thinned else post.sizes["chain"]
        return xr.DataArray(y.reshape(n_chain, -1, y.shape[1]), dims=("chain", "draw", "obs"),
                            coords={"user": ("obs", uid[keep]), "item": ("obs", iid[keep])}, name="rating")
