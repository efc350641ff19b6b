r"""Exact moves along the ridges that blockwise Gibbs crosses slowly.

Each move is a *generalised Gibbs step* (Liu & Sabatti 2000): a group
:math:`\{T_\gamma\}` acts on the whole state, and :math:`\gamma` is drawn
from :math:`p(\gamma) \propto \pi(T_\gamma x)\,|J_\gamma(x)|\,H(d\gamma)`
(:math:`H` the Haar measure) or by a kernel that leaves that density
invariant; then :math:`T_\gamma x \sim \pi` whenever :math:`x \sim \pi`.
None of them changes the model, so the stationary distribution is the
posterior of :mod:`bayes_mf.gibbs`; they only change how fast it is reached.

Why they are needed.  With biases the data see only
:math:`\mu + b_i + c_j + U_i^\top V_j`.  Shifting every item vector by
:math:`a` (:math:`V_j \to V_j + a`) changes the fit by :math:`U_i^\top a`,
which the user bias can absorb (:math:`b_i \to b_i - (U_i - \bar U)^\top a`,
:math:`\mu \to \mu - \bar U^\top a`): a direction the likelihood does not
see, held only by the priors.  Blockwise updates (users | items, then
:math:`\mu`, then hyperparameters) move along it in tiny steps -- on
MovieLens u1 the effective sample size of :math:`\mu` was 0.0007 per sweep.

The moves
---------
*Translation of one side's factors* (:func:`translate_factors`): the group
is :math:`(\mathbb R^k, +)`, :math:`J = 1`,

.. math::
    V_j \to V_j + a,\quad \mu_V \to \mu_V + a,\quad
    b_i \to b_i - (U_i - m)^\top a,\quad \mu \to \mu - m^\top a,

with :math:`m = \bar U` (so the bias mean stays put) and :math:`U_i` the
effective user vectors (implicit terms included).  The likelihood is
unchanged, :math:`V_j - \mu_V` is unchanged, so only the priors of
:math:`\mu_V` (or of :math:`V` itself for the isotropic priors), of the
biases and of :math:`\mu` depend on :math:`a` -- all Gaussian, so

.. math::
    a \sim N(Q^{-1}h, Q^{-1}),\quad
    Q = Q_V + \lambda_b \textstyle\sum_i w_i w_i^\top + \epsilon\, m m^\top,\quad
    h = h_V + \lambda_b \sum_i b_i w_i + \epsilon \mu\, m,

:math:`w_i = U_i - m`, :math:`\epsilon = 10^{-4}` the prior precision of
:math:`\mu`; BPMF: :math:`Q_V = \beta_0\Lambda_V`, :math:`h_V =
-\beta_0\Lambda_V\mu_V`; isotropic :math:`N(0, \lambda_V^{-1} I)`:
:math:`Q_V = n_V\lambda_V I`, :math:`h_V = -\lambda_V\sum_j V_j`.  The same
with users and items swapped.

*The offsets* (:func:`shift_offsets`): :math:`\mu \to \mu + s_b + s_c`,
:math:`b_i \to b_i - s_b - z_u r_i`, :math:`c_j \to c_j - s_c - z_v r'_j`, and
the bias part of every implicit/side feature vector of a group shifted by
:math:`z_u` (users) or :math:`z_v` (items), :math:`r_i` the row's total
weight on the group: :math:`\mu + b_i + c_j` is unchanged, and the joint
Gaussian conditional of :math:`(s_b, s_c, z_u, z_v)` is drawn at once.  Drawn
one at a time, these directions are strongly correlated with implicit
feedback, and :math:`\mu` then mixes slowly.

*Scale of the biases against their precision* (:func:`scale_biases`): the
multiplicative group, :math:`b_i \to g b_i`, :math:`\lambda_b \to
\lambda_b/g^2`.  This couples the biases with their hierarchical scale (the
funnel that slows :math:`\sigma_c` and the biases of rarely rated items).
The likelihood does change; in :math:`t = \log g` (Haar measure
:math:`dt`) the bias prior cancels the Jacobian and

.. math::
    \log p(t) = \tau\bigl(\delta B - \tfrac12\delta^2 A\bigr) - 2a_0 t
        - b_0\lambda_b e^{-2t},\qquad \delta = e^t - 1,

with :math:`A = \sum_i n_i b_i^2`, :math:`B = \sum_i b_i \sum_{j\in\Omega_i} r_{ij}`
(residuals :math:`r`; under heteroscedastic noise :math:`n_i = \sum_j w_{ij}` and the
residuals are weighted, :math:`\sum_j w_{ij} r_{ij}`).  One slice-sampling update (Neal 2003, fixed width
in :math:`t`, so the kernel commutes with the group action as Liu &
Sabatti's Theorem 2 asks) draws :math:`t`.  Only the *own* biases move; the
bias part of feature vectors stays.

*Scale of the factors of one side against the other*
(:func:`scale_factors`): :math:`U_{\cdot p} \to g_p U_{\cdot p}`,
:math:`V_{\cdot p} \to V_{\cdot p}/g_p`, with the prior moments following
(BPMF: :math:`\mu_U \to D\mu_U`, :math:`\Lambda_U \to D^{-1}\Lambda_U D^{-1}`,
:math:`D = \mathrm{diag}(g)`, and the inverse on the item side; isotropic
priors: one common :math:`g`, :math:`\lambda_U \to \lambda_U/g^2`,
:math:`\lambda_V \to g^2\lambda_V`; feature vectors and their precisions
alike).  :math:`U V^\top` is unchanged, so is the likelihood; the
normalising constants and Jacobians cancel between the two sides, and in
:math:`t_p = \log g_p` each scale is independent with

.. math::
    \log p(t_p) = C_p t_p - A_p e^{-2t_p} - B_p e^{2t_p},

:math:`A_p = \tfrac12(\Lambda_U)_{pp}` (:math:`W_0 = I`; isotropic:
:math:`b_0\lambda_U`) plus :math:`b_0` times the user-feature precisions of
column :math:`p`, :math:`B_p` the same for items, and :math:`C_p = -2a_0(G_U - G_V)`
for :math:`G` feature groups per side (0 when both sides have the same).
Blockwise Gibbs moves this scale (:math:`\|U_i\|`, the prior covariances)
at about 0.0005 effective draws per sweep on MovieLens u1.

*Own part against feature vectors* (:func:`shift_features`): with implicit
feedback or side features a row's effective vector is
:math:`x_i + \sum_l A_{il} W_l`; adding :math:`z` to every feature vector of
one group and :math:`-r_i z` to every own row, :math:`r_i = \sum_{l\in g}
A_{il}`, changes no effective vector.  Only the two Gaussian priors see
:math:`z`: with :math:`D` the feature precisions and :math:`P, m` the prior
precision and mean of the own rows,
:math:`z \sim N(Q^{-1}h, Q^{-1})`, :math:`Q = n_g D + (\sum_i r_i^2) P`,
:math:`h = -D\sum_{l\in g} W_l + P\sum_i r_i (x_i - m)`.  Without it the
global mean trades slowly with the bias part of the implicit vectors.
"""

from __future__ import annotations

import math

import numpy as np

from .priors import BETA0

#: prior precision of mu (mu ~ N(0, 100^2)): flat on any rating scale
MU_PRIOR_PREC = 1e-4


def _gaussian_draw(rng, Q: np.ndarray, h: np.ndarray) -> np.ndarray:
    L = np.linalg.cholesky(Q)
    return np.linalg.solve(L.T, np.linalg.solve(L, h) + rng.standard_normal(h.shape[0]))


def translate_factors(rng, own_F: np.ndarray, prior: tuple, other_F: np.ndarray, other_b: np.ndarray,
                      lam_b_other: float, mu: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    r"""Draw the shift :math:`a` of one side's factors (module docstring).

    Parameters
    ----------
    own_F : (n, k) own factor parts of the shifted side (isotropic prior only)
    prior : ``("bpmf", Lambda, mean)`` or ``("iso", lam)`` of the shifted side
    other_F : (n_o, k) effective factors of the other side
    other_b : (n_o,) own biases of the other side
    lam_b_other : precision of the other side's biases
    mu : current global mean, or None when it is fixed at 0

    Returns
    -------
    a : (k,) the shift of the factors (and of the BPMF factor mean)
    db : (n_o,) the change of the other side's biases
    ma : float, :math:`m^\top a`; :math:`\mu` moves by ``-ma``
    """
    k = other_F.shape[1]
    if prior[0] == "bpmf":
        _, Lam, mean = prior
        Q = BETA0 * Lam
        h = -BETA0 * (Lam @ mean)
    elif prior[0] == "wishart":
        Lam = prior[1]
        Q = own_F.shape[0] * Lam
        h = -(Lam @ own_F.sum(axis=0))
    else:
        lam = prior[1]
        Q = own_F.shape[0] * lam * np.eye(k)
        h = -lam * own_F.sum(axis=0)
    m = other_F.mean(axis=0) if mu is not None else np.zeros(k)
    w = other_F - m
    Q = Q + lam_b_other * (w.T @ w)
    h = h + lam_b_other * (w.T @ other_b)
    if mu is not None:
        Q = Q + MU_PRIOR_PREC * np.outer(m, m)
        h = h + MU_PRIOR_PREC * mu * m
    a = _gaussian_draw(rng, 0.5 * (Q + Q.T), h)
    return a, -(w @ a), float(m @ a)


def scale_log_density(t: float, A: float, B: float, tau: float, lam: float, a0: float, b0: float) -> float:
    """Log density of :math:`t = \\log g` on the orbit of the bias scale move, up to a constant."""
    delta = math.expm1(t)
    return tau * (delta * B - 0.5 * delta * delta * A) - 2.0 * a0 * t - b0 * lam * math.exp(-2.0 * t)


def slice_draw(rng, logp, x0: float = 0.0, width: float = 0.25, max_steps: int = 64) -> float:
    """One univariate slice-sampling update from ``x0`` (stepping out, then shrinkage; Neal 2003)."""
    y = logp(x0) + math.log(rng.random())
    left = x0 - width * rng.random()
    right = left + width
    j = int(max_steps * rng.random())
    kk = max_steps - 1 - j
    while j > 0 and logp(left) > y:
        left -= width
        j -= 1
    while kk > 0 and logp(right) > y:
        right += width
        kk -= 1
    while True:
        x = left + (right - left) * rng.random()
        if logp(x) > y:
            return x
        if x < x0:
            left = x
        else:
            right = x


def scale_biases(rng, b: np.ndarray, counts: np.ndarray, resid_sums: np.ndarray, tau: float,
                 lam: float, a0: float, b0: float) -> tuple[float, float, float]:
    r"""Draw the scale move of one side's biases (module docstring).

    Returns ``(delta, A, B)``: the biases move by ``delta * b``, the precision
    becomes ``lam / (1 + delta)**2``; ``A`` and ``B`` let the caller update the
    residual sums without another pass over the ratings.
    """
    A = float(counts @ (b * b))
    B = float(b @ resid_sums)
    t = slice_draw(rng, lambda x: scale_log_density(x, A, B, tau, lam, a0, b0))
    return math.expm1(t), A, B


def factor_scale_log_density(t: float, A: float, B: float, C: float) -> float:
    """Log density of :math:`t = \\log g` of the factor scale move, up to a constant."""
    return C * t - A * math.exp(-2.0 * t) - B * math.exp(2.0 * t)


def scale_factors(rng, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Draw the factor scales :math:`g_p` (module docstring); one per entry of ``A``."""
    return np.array([math.exp(slice_draw(rng, lambda x, a=a, b=b, c=c: factor_scale_log_density(x, a, b, c)))
                     for a, b, c in zip(A, B, C, strict=True)])


def shift_features(rng, W_g: np.ndarray, D: np.ndarray, own: np.ndarray, m: np.ndarray, P: np.ndarray,
                   r: np.ndarray) -> np.ndarray:
    """Draw the shift :math:`z` of one feature group against the own rows (module docstring).

    ``W_g`` (n_g x d) are the group's feature vectors, ``D`` (d,) their
    precisions, ``own`` (n x d) the own rows with prior mean ``m`` and
    precision ``P``, ``r`` (n,) each row's total weight on the group.
    """
    Q = W_g.shape[0] * np.diag(D) + float(r @ r) * P
    h = -D * W_g.sum(axis=0) + P @ (r @ (own - m))
    return _gaussian_draw(rng, 0.5 * (Q + Q.T), h)



def shift_offsets(rng, blocks: list) -> np.ndarray:
    r"""Draw a joint shift :math:`z` of the additive offsets (module docstring).

    ``blocks`` are ``(x, M, lam)``: values ``x`` (n,) with prior
    :math:`N(0, \lambda^{-1})` each, that move to ``x + M @ z`` (``M``: (n, m)).
    The caller chooses ``M`` so that no predicted rating changes; then
    :math:`z \sim N(Q^{-1}h, Q^{-1})` with :math:`Q = \sum \lambda M^\top M`,
    :math:`h = -\sum \lambda M^\top x`.
    """
    m = blocks[0][1].shape[1]
    Q = np.zeros((m, m))
    h = np.zeros(m)
    for x, M, lam in blocks:
        Q += lam * (M.T @ M)
        h -= lam * (M.T @ x)
    return _gaussian_draw(rng, 0.5 * (Q + Q.T), h)
