r"""Ordered-probit likelihood for the Gibbs sampler: data augmentation with learned cut-points.

The model (``GibbsPMF(likelihood="ordinal")``) replaces the Gaussian rating
by a star level :math:`r_n \in \{1, \dots, K\}` (codes of the integer levels
``levels_``) read off a latent Gaussian rating (Albert & Chib 1993):

.. math::
    z_n \sim N(\eta_n, 1),\qquad r_n = k \iff \gamma_{k-1} < z_n \le \gamma_k,
    \qquad \gamma_0 = -\infty,\ \gamma_K = +\infty,

with :math:`\eta_n = \mu + \tilde b_i + \tilde c_j + \tilde U_i^\top\tilde V_j`
exactly as in the Gaussian model (every prior and feature option applies),
so that :math:`P(r_n = k \mid \eta_n, \gamma) = \Phi(\gamma_k - \eta_n) -
\Phi(\gamma_{k-1} - \eta_n)`.

Identification.  Shifting :math:`\mu` and every :math:`\gamma_k` together,
or scaling :math:`z - \mu`, :math:`\eta - \mu` and the cut-points together,
leaves the likelihood unchanged; so the latent noise sd is fixed at 1
(:math:`\tau = 1`, the Gaussian core's ``sigma`` held fixed) and the first
cut-point at :math:`\gamma_1 = 0` (:math:`\mu` stays free, with its
:math:`N(0, 100^2)` prior).  The other cut-points are parametrised by their
log gaps, :math:`\gamma_{k} = \gamma_{k-1} + e^{\alpha_k}` for
:math:`k = 2, \dots, K-1`, with prior :math:`\alpha_k \sim N(0, 1)`
(:data:`GAP_PRIOR_SD`), so order is automatic.

One sweep first updates the block :math:`(\gamma, z)` given :math:`\eta`,
then runs the Gaussian core on the working response :math:`z`:

1. :math:`\alpha \mid \eta, r`, with :math:`z` integrated out (Albert & Chib
   2001; drawing :math:`\gamma \mid z` instead mixes terribly, Cowles 1996,
   because :math:`z` pins every cut-point to a sliver).  Random-walk
   Metropolis on :math:`\alpha` with target

   .. math::
       \log p(\alpha \mid \eta, r) = \sum_n \log\bigl(\Phi(\gamma_{r_n} - \eta_n)
       - \Phi(\gamma_{r_n - 1} - \eta_n)\bigr) - \tfrac12 \lVert\alpha\rVert^2 / s^2 + C,

   proposal :math:`\alpha' = \alpha + \lambda\, D\,\varepsilon`, where
   :math:`D_k = (n_{k} + n_{k+1} + 1)^{-1/2}` scales each log gap by the
   counts of the two levels it separates and the step :math:`\lambda` is
   tuned toward an acceptance rate of 0.3 during burn-in only (a
   Robbins-Monro step on :math:`\log\lambda`); after burn-in it is frozen, so
   the kept sweeps are exact symmetric Metropolis steps.  :data:`MH_STEPS`
   proposals per sweep;
2. a joint rescaling of the location parameters and cut-points, also with
   :math:`z` integrated out (:func:`scale_step`): the map
   :math:`T_g: (\mu, b, c, U, V, \gamma) \mapsto (g\mu, g b, g c, \sqrt g U,
   \sqrt g V, g\gamma)` (feature vectors like the part they feed) sends
   :math:`\eta \mapsto g\eta` and keeps :math:`\gamma_1 = 0`.  Given
   :math:`z`, the Gaussian core pins this direction to a sliver
   (:math:`\sum (z - \eta)^2 \approx n`), so the blocked sampler crawls
   along it; with :math:`z` integrated out its width is the posterior's own.
   Random-walk Metropolis on :math:`t = \log g` with target (Liu & Sabatti
   2000: a move along a group, Haar measure :math:`dt`)

   .. math::
       \log p(T_{e^t} x \mid r) + D\,t = \sum_n \log\bigl(\Phi(g(\gamma_{r_n} - \eta_n))
       - \Phi(g(\gamma_{r_n-1} - \eta_n))\bigr) - \tfrac12 A g^2 - \tfrac12 Q g
       + L\sqrt g - \tfrac12\lVert\alpha + t\rVert^2 + D t + C,

   with :math:`A` the prior quadratic forms of :math:`\mu` and the biases,
   :math:`Q, L` those of the factors (:math:`L \ne 0` only for BPMF's prior
   mean) and :math:`D` the dimension-weighted Jacobian (1 per location
   coordinate, 1/2 per factor coordinate); tuned like step 1;
   then (step 2b, :func:`bias_step`) every bias by its own Metropolis step,
   also with :math:`z` integrated out.  Steps 2 and 2b are moves in the
   sense of ``GibbsPMF(moves=...)``: they change the mixing, not the target;
3. :math:`z_n \mid \gamma, \eta_n, r_n \sim N(\eta_n, 1)` truncated to
   :math:`(\gamma_{r_n-1}, \gamma_{r_n}]`, by the inverse CDF in log space
   (:func:`truncated_normal`), exact in both tails.

Steps 1 and 3 are one Metropolis-within-Gibbs update of :math:`(\gamma, z)`:
proposing :math:`(\alpha', z')` with :math:`z' \sim p(z \mid \alpha', \eta)`
makes the joint acceptance ratio the marginal one above; step 2 likewise
moves the parameters with :math:`z` integrated out, and :math:`z` is drawn
afresh from its full conditional before anything conditions on it.  Everything
after it (factors, biases, :math:`\mu`, hyper-parameters, the exact moves) is the
Gaussian sampler's, with the ratings replaced by :math:`z` and :math:`\tau=1`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_ndtr, ndtri_exp

from .moves import MU_PRIOR_PREC
from .ordinal_kernels import loglik_obs, loglik_sum

__all__ = ["GAP_PRIOR_SD", "MAX_LEVELS", "MH_STEPS", "OrdinalState", "ScalePrior", "cutpoints_from_gaps",
           "ordinal_levels", "truncated_normal", "log_interval", "log_post_gaps", "ordinal_step",
           "cutpoint_step", "scale_step", "latent_draw", "sweep_step"]

#: prior sd of a log gap between consecutive cut-points (latent noise sd is 1)
GAP_PRIOR_SD = 1.0
#: more distinct levels than this is no longer a star scale
MAX_LEVELS = 20
#: random-walk proposals on the cut-points per sweep (each one pass over the ratings)
MH_STEPS = 2
#: target acceptance rate of the burn-in tuning (a few dimensions: Roberts & Rosenthal 2001)
TARGET_ACCEPT = 0.3


def ordinal_levels(rating, scale=None, name: str = "rating") -> tuple[np.ndarray, np.ndarray]:
    """The star levels of integer ratings, and each rating's code ``0 .. K-1``.

    Levels are every integer from the declared ``scale`` (else the observed
    minimum) to its top, so a level nobody used inside the range still has its
    own cut-point gap (set by the prior).

    Raises
    ------
    ValueError
        Naming ``name`` and offending values when ratings are not integers,
        or span fewer than 2 or more than :data:`MAX_LEVELS` levels.
    """
    y = np.asarray(rating, dtype=float)
    bad = ~np.isfinite(y) | (y != np.round(y))
    if bad.any():
        shown = ", ".join(f"{v:g}" for v in np.unique(y[bad])[:5])
        raise ValueError(f"likelihood='ordinal' needs integer star ratings, but column {name!r} holds "
                         f"{int(bad.sum())} non-integer value(s), e.g. {shown}")
    lo, hi = (float(y.min()), float(y.max())) if scale is None else (float(scale[0]), float(scale[1]))
    if lo != round(lo) or hi != round(hi) or y.min() < lo or y.max() > hi:
        raise ValueError(f"likelihood='ordinal': the scale {scale} of column {name!r} must have integer "
                         f"ends that contain every rating (observed {y.min():g}..{y.max():g})")
    levels = np.arange(int(lo), int(hi) + 1, dtype=float)
    if not 2 <= levels.size <= MAX_LEVELS:
        raise ValueError(f"likelihood='ordinal' needs 2 to {MAX_LEVELS} star levels, column {name!r} "
                         f"spans {levels.size} ({lo:g}..{hi:g})")
    return levels, (y - lo).astype(np.int64)


def cutpoints_from_gaps(alpha) -> np.ndarray:
    r"""Cut-points :math:`(\gamma_1 = 0, \gamma_1 + e^{\alpha_2}, \dots)` from log gaps (last axis)."""
    alpha = np.asarray(alpha, dtype=float)
    zero = np.zeros(alpha.shape[:-1] + (1,))
    return np.concatenate([zero, np.cumsum(np.exp(alpha), axis=-1)], axis=-1)


def _bounds(codes, eta, cuts):
    """Standardised interval ends ``(gamma_{r-1} - eta, gamma_r - eta)`` of every rating."""
    ext = np.concatenate([[-np.inf], cuts, [np.inf]])
    return ext[codes] - eta, ext[codes + 1] - eta


def log_interval(lo, hi) -> np.ndarray:
    r""":math:`\log(\Phi(hi) - \Phi(lo))` for ``lo < hi``, accurate in both tails.

    An interval above zero is mirrored (:math:`\Phi(hi) - \Phi(lo) =
    \Phi(-lo) - \Phi(-hi)`), so the difference is always taken below the
    median, in logs: :math:`\log\Phi(hi) + \log(1 - e^{\log\Phi(lo) - \log\Phi(hi)})`.
    """
    lo, hi = np.broadcast_arrays(np.asarray(lo, float), np.asarray(hi, float))
    flip = lo > 0
    a = np.where(flip, -hi, lo)
    b = np.where(flip, -lo, hi)
    la, lb = log_ndtr(a), log_ndtr(b)
    with np.errstate(divide="ignore"):  # la = -inf at a = -inf: log1p(-0) = 0, exact
        return lb + np.log1p(-np.exp(la - lb))


def truncated_normal(rng: np.random.Generator, lo, hi) -> np.ndarray:
    r"""One :math:`N(0, 1)` draw truncated to :math:`(lo, hi]` per element, by the inverse CDF.

    Mirrored as in :func:`log_interval`, so that :math:`b \le 0` or
    :math:`a \le 0`: with :math:`V \sim U(0, 1)`,
    :math:`\log u = \log\Phi(b) + \log(1 - V(1 - e^{\log\Phi(a) - \log\Phi(b)}))`
    and :math:`x = \Phi^{-1}(e^{\log u})` (``ndtri_exp``), which stays exact
    when both ends lie 40 sd out, where :math:`\Phi` itself underflows.
    """
    lo, hi = np.broadcast_arrays(np.asarray(lo, float), np.asarray(hi, float))
    flip = lo > 0
    a = np.where(flip, -hi, lo)
    b = np.where(flip, -lo, hi)
    la, lb = log_ndtr(a), log_ndtr(b)
    v = rng.random(a.shape)
    with np.errstate(divide="ignore"):
        lu = lb + np.log1p(-v * -np.expm1(la - lb))
    x = np.clip(ndtri_exp(lu), a, b)  # rounding can step a hair outside; the ends have measure 0
    return np.where(flip, -x, x)


def log_post_gaps(alpha, codes, eta, use_numba: bool = False) -> float:
    """Log posterior of the log gaps given the linear predictor (latent ratings integrated out)."""
    ll = loglik_sum(codes, eta, cutpoints_from_gaps(alpha), 1.0, use_numba)
    return ll - 0.5 * float(np.sum(np.square(alpha))) / GAP_PRIOR_SD**2


@dataclass
class OrdinalState:
    """The cut-point block of a chain: log gaps, the proposal steps and their acceptance counts."""

    alpha: np.ndarray
    scale: np.ndarray  # per-gap proposal sd before the tuned factor (count-based, fixed)
    log_step: float
    accepted: int = 0
    proposed: int = 0
    log_scale_step: float = 0.0  # log proposal sd of the joint rescaling (step 2)
    scale_accepted: int = 0
    scale_proposed: int = 0
    # per side: log of the proposal factor of the bias move (step 2b) and its acceptance sums
    log_bias_step: dict = field(default_factory=lambda: {"user": math.log(2.38), "item": math.log(2.38)})
    bias_accepted: dict = field(default_factory=lambda: {"user": 0.0, "item": 0.0})
    bias_rounds: dict = field(default_factory=lambda: {"user": 0, "item": 0})

    @property
    def cuts(self) -> np.ndarray:
        return cutpoints_from_gaps(self.alpha)


def initial_ordinal(codes: np.ndarray, n_levels: int, rng: np.random.Generator) -> OrdinalState:
    """Unit gaps jittered by much more than their posterior spread (a dispersed start for R-hat)."""
    counts = np.bincount(codes, minlength=n_levels).astype(float)
    scale = 1.0 / np.sqrt(counts[1:-1] + counts[2:] + 1.0)
    alpha = rng.normal(0.0, 0.3, n_levels - 2)
    # 2.38 / sqrt(dim): the optimal random-walk scale for a Gaussian target (Gelman et al. 1996)
    return OrdinalState(alpha=alpha, scale=scale, log_step=math.log(2.38 / math.sqrt(max(1, n_levels - 2))),
                        log_scale_step=math.log(2.38 / math.sqrt(codes.size + 1.0)))


def ordinal_step(rng: np.random.Generator, o: OrdinalState, codes: np.ndarray, eta: np.ndarray,
                 adapt: bool, use_numba: bool = False) -> np.ndarray:
    """Update the cut-points (Metropolis, latent ratings integrated out), then draw the latent ratings.

    ``adapt`` (burn-in only) tunes ``o.log_step`` after each proposal; the
    kept sweeps run with it frozen.  Returns the new latent ratings ``z``.
    (The sampler runs :func:`scale_step` between the two; see the module docstring.)
    """
    cutpoint_step(rng, o, codes, eta, adapt, use_numba)
    return latent_draw(rng, o, codes, eta)


def cutpoint_step(rng: np.random.Generator, o: OrdinalState, codes: np.ndarray, eta: np.ndarray,
                  adapt: bool, use_numba: bool = False) -> float:
    """Step 1: :data:`MH_STEPS` random-walk Metropolis proposals on the log gaps, ``z`` integrated out.

    Returns the log posterior of the log gaps it ends at.
    """
    current = log_post_gaps(o.alpha, codes, eta, use_numba)
    if o.alpha.size:
        for _ in range(MH_STEPS):
            prop = o.alpha + math.exp(o.log_step) * o.scale * rng.standard_normal(o.alpha.size)
            cand = log_post_gaps(prop, codes, eta, use_numba)
            accept = math.log(rng.random()) < cand - current
            if accept:
                o.alpha, current = prop, cand
            o.proposed += 1
            o.accepted += int(accept)
            if adapt:
                # Robbins-Monro on the log step; gains shrink so the step settles within burn-in
                o.log_step += (float(accept) - TARGET_ACCEPT) / math.sqrt(1.0 + o.proposed / MH_STEPS)
    return current


def latent_draw(rng: np.random.Generator, o: OrdinalState, codes: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Step 3: the latent ratings from their truncated-normal full conditional."""
    lo, hi = _bounds(codes, eta, o.cuts)
    return eta + truncated_normal(rng, lo, hi)


@dataclass
class ScalePrior:
    r"""The terms of :math:`\log p(T_g x)` that depend on :math:`g` outside the likelihood (step 2).

    ``A``: :math:`\sum` precision x squared location coordinate (mu, biases,
    bias parts of feature vectors), ``Q``: :math:`\sum_i F_i^\top\Lambda F_i`
    over the factor rows (own parts and feature vectors), ``L``:
    :math:`m^\top\Lambda\sum_i F_i` (BPMF), ``D``: the Jacobian's weight.
    """

    A: float
    Q: float
    L: float
    D: float


def scale_step(rng: np.random.Generator, o: OrdinalState, codes: np.ndarray, eta: np.ndarray,
               prior: ScalePrior, adapt: bool, use_numba: bool = False,
               current: float | None = None) -> float:
    """Metropolis move on the joint scale (step 2 of the module docstring); returns the accepted ``g``.

    The caller multiplies the location parameters by ``g`` and the factors by
    ``sqrt(g)``; the log gaps are shifted here.  ``current``: the log
    posterior of the log gaps at ``g = 1`` (:func:`cutpoint_step` returns it), saving a pass.
    """
    def target(t):
        g = math.exp(t)
        gaps = log_post_gaps(o.alpha + t, codes, g * eta, use_numba) if t != 0.0 or current is None \
            else current  # g * (gamma(alpha) - eta) = gamma(alpha + t) - g * eta: the gap prior shifts too
        return gaps - 0.5 * prior.A * g * g - 0.5 * prior.Q * g + prior.L * math.sqrt(g) + prior.D * t

    t = math.exp(o.log_scale_step) * rng.standard_normal()
    accept = math.log(rng.random()) < target(t) - target(0.0)
    o.scale_proposed += 1
    o.scale_accepted += int(accept)
    if adapt:
        o.log_scale_step += (float(accept) - TARGET_ACCEPT) / math.sqrt(1.0 + o.scale_proposed)
    if not accept:
        return 1.0
    o.alpha = o.alpha + t
    return math.exp(t)


# ------------------------------------------------------------------ the sampler's hook
def sweep_step(sw, s) -> None:
    """The ordinal part of one sweep of :class:`~bayes_mf.gibbs.chain.Sweeper` ``sw`` on chain state ``s``.

    Steps 1-3 of the module docstring (step 2 only with ``moves=True``), then
    the latent ratings become the Gaussian core's response (``sw.set_response``).
    """
    eta = sw.linear_predictor(s)
    current = cutpoint_step(s.rng, s.ordinal, sw.codes, eta, sw.adapt, sw.use_numba)
    if sw.st.moves:
        g = scale_step(s.rng, s.ordinal, sw.codes, eta, _scale_prior(sw, s), sw.adapt, sw.use_numba, current)
        if g != 1.0:
            _rescale(sw, s, g)
            eta = eta * g
    if sw.st.moves and sw.ub:
        for side in ("user", "item"):
            eta = bias_step(sw, s, side, eta)
    sw.set_response(latent_draw(s.rng, s.ordinal, sw.codes, eta))


def bias_step(sw, s, side: str, eta: np.ndarray) -> np.ndarray:
    r"""Step 2b: every user's (item's) bias by its own Metropolis step, ``z`` integrated out.

    Given everything but the latent ratings, the biases of one side are
    independent, each with target :math:`\sum_{j \in \Omega_i}\log P(r_{ij}
    \mid \eta_{ij}) - \tfrac12\lambda_b b_i^2` (own part :math:`b_i`; the
    effective bias moves with it).  A user whose ratings all sit in one end
    level has a long one-sided tail there, which the latent-rating Gibbs
    step crosses in tiny moves; a random walk of sd
    :math:`\lambda (n_i + 1)^{-1/2}` crosses it in a few.  All rows at
    once: two passes over the ratings.  :math:`\lambda` is tuned toward an
    acceptance rate of 0.44 during burn-in only.  Returns the new predictor.
    """
    o, k = s.ordinal, sw.k
    rows = sw.user if side == "user" else sw.item
    n_rows = s.X[side].shape[0]
    f = sw.feats[side]
    own = s.X[side][:, k] - (f.A @ s.W[side][:, k] if f is not None else 0.0)
    delta = math.exp(o.log_bias_step[side]) / np.sqrt(sw.counts[side] + 1.0) * s.rng.standard_normal(n_rows)
    cuts = o.cuts
    moved = eta + delta[rows]
    d_ll = np.bincount(rows, loglik_obs(sw.codes, moved, cuts, sw.use_numba)
                       - loglik_obs(sw.codes, eta, cuts, sw.use_numba), minlength=n_rows)
    d_lp = -0.5 * s.lam_b[side] * ((own + delta) ** 2 - own**2)
    accept = np.log(s.rng.random(n_rows)) < d_ll + d_lp
    s.X[side][:, k] += np.where(accept, delta, 0.0)
    o.bias_rounds[side] += 1
    o.bias_accepted[side] += float(accept.mean())
    if sw.adapt:
        o.log_bias_step[side] += (float(accept.mean()) - 0.44) / math.sqrt(o.bias_rounds[side])
    return np.where(accept[rows], moved, eta)


def _scale_prior(sw, s) -> ScalePrior:
    """The prior terms of the joint rescaling (:func:`scale_step`) at the current state."""
    k, ub = sw.k, sw.ub
    gm = sw.st.global_mean
    A, Q, L, D = (MU_PRIOR_PREC * s.mu**2 if gm else 0.0), 0.0, 0.0, float(gm)
    for side in ("user", "item"):
        f = sw.feats[side]
        own = s.X[side] - f.A @ s.W[side] if f is not None else s.X[side]
        F, Lam = own[:, :k], s.Lam_f[side]
        Q += float(np.einsum("ik,kl,il->", F, Lam, F))
        L += float(s.m_f[side] @ Lam @ F.sum(axis=0))
        D += 0.5 * F.size
        if ub:
            A += s.lam_b[side] * float(own[:, k] @ own[:, k])
            D += own.shape[0]
        if f is not None:
            W, prec = s.W[side], s.prec_feat[side][f.groups]
            Q += float(np.sum(prec[:, :k] * W[:, :k] ** 2))
            D += 0.5 * W[:, :k].size
            if ub:  # the bias coordinates that are free (not held at 0)
                A += float(np.sum(prec[:, k] * W[:, k] ** 2))
                D += int(f.bias_cols.sum())
    return ScalePrior(A=A, Q=Q, L=L, D=D)


def _rescale(sw, s, g: float) -> None:
    """Locations (mu, biases) times g, factors times sqrt(g): every linear predictor times g."""
    k, root = sw.k, math.sqrt(g)
    s.mu *= g
    for side in ("user", "item"):
        for M in (s.X[side], s.W[side]):
            if M is None:
                continue
            M[:, :k] *= root
            if sw.ub:
                M[:, k] *= g
