r"""Posterior predictive for arbitrary (user, item) pairs, chunked in memory.

Every sampling method (NUTS, ADVI, Gibbs) reduces its posterior to a
:class:`PosteriorDraws` -- flattened draws of the *effective* parameters of

.. math::
    \eta_{ij} = \mu + b_i + c_j + U_i^\top V_j,\qquad
    R_{ij} \sim N(\mathrm{link}(\eta_{ij}),\ \sigma_{ij}^2)

(:math:`\sigma_{ij} = \sigma`, or :math:`\sigma/\sqrt{\alpha_i\beta_j}` with the per-user and
per-item noise multipliers of ``GibbsPMF(heteroscedastic=True)``)

-- and :func:`posterior_predictive` turns them into per-pair mean, sd and a
central interval of the posterior predictive (noise included).  A point
estimate is the special case of a single draw (its sd then holds only the
noise and is reported as missing by the estimators, which never fake a spread).

Memory: the work is split into chunks of pairs so that at most
``max_elements`` draws x pairs x factors floats exist at once; with
4 000 draws x 20 000 pairs the full matrix (640 MB) is never formed.

Users or items unseen in training (code ``-1``) get their factors and biases
drawn from the prior of each posterior draw (``sigma_u``, ``sigma_v``,
``sigma_b``, ``sigma_c``), so their intervals are honest about knowing less;
their mean uses the prior mean (zero) exactly.  The prior draws are made per
pair: the marginal predictive of each pair is right, but joint draws of two
pairs of the same unseen user are not correlated as they should be.

Intervals and sd are Monte-Carlo (one noise draw per posterior draw), so
with a fixed seed they still depend slightly on which other pairs are
predicted in the same call; the mean of seen pairs does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PosteriorDraws", "posterior_predictive"]


@dataclass
class PosteriorDraws:
    """Flattened posterior draws (S = chains x draws) of the effective parameters.

    Attributes
    ----------
    U : (S, n_users, k)
    V : (S, n_items, k)
    sigma : (S,)  noise sd on the model's own scale
    mu : (S,) or None  global mean (on the model scale, before the link)
    user_bias : (S, n_users) or None
    item_bias : (S, n_items) or None
    sigma_u, sigma_v, sigma_b, sigma_c : (S,) or None
        Prior scales, used for unseen users/items (``None`` -> zero).
    user_noise, item_noise : (S, n_users), (S, n_items) or None
        Noise precision multipliers of heteroscedastic noise (a pair's sd is
        ``sigma / sqrt(user_noise * item_noise)``); ``noise_shape_user``,
        ``noise_shape_item`` (S,): their Gamma(a, a) shapes, for unseen ids.
    link : {"identity", "logistic"}
    scale : (low, high) or None
        For ``link="logistic"``: ratings were mapped by
        :math:`t(x) = (x - low)/(high - low)`; predictions are mapped back.
    """

    U: np.ndarray
    V: np.ndarray
    sigma: np.ndarray
    mu: np.ndarray | None = None
    user_bias: np.ndarray | None = None
    item_bias: np.ndarray | None = None
    sigma_u: np.ndarray | None = None
    sigma_v: np.ndarray | None = None
    sigma_b: np.ndarray | None = None
    sigma_c: np.ndarray | None = None
    link: str = "identity"
    scale: tuple[float, float] | None = None
    user_noise: np.ndarray | None = None
    item_noise: np.ndarray | None = None
    noise_shape_user: np.ndarray | None = None
    noise_shape_item: np.ndarray | None = None

    @property
    def n_draws(self) -> int:
        return int(self.U.shape[0])

    def take(self, indices) -> PosteriorDraws:
        """The draws at the given flat indices."""
        keep = np.asarray(indices)

        def pick(a):
            return None if a is None else np.asarray(a)[keep]

        return PosteriorDraws(
            self.U[keep], self.V[keep], pick(self.sigma), pick(self.mu), pick(self.user_bias),
            pick(self.item_bias), pick(self.sigma_u), pick(self.sigma_v), pick(self.sigma_b),
            pick(self.sigma_c), self.link, self.scale, pick(self.user_noise), pick(self.item_noise),
            pick(self.noise_shape_user), pick(self.noise_shape_item),
        )

    def thin(self, max_draws: int | None) -> PosteriorDraws:
        """An evenly spaced subset of at most ``max_draws`` draws."""
        S = self.n_draws
        if max_draws is not None and int(max_draws) < 1:
            raise ValueError(f"max_draws must be >= 1, got {max_draws}")
        if max_draws is None or S <= max_draws:
            return self
        return self.take(np.linspace(0, S - 1, max_draws).round().astype(int))


def _side(F, bias, code, prior_sd, prior_bias_sd, rng):
    """Gather factors/biases of one side for a chunk; unseen ones are drawn from the
    prior, or set to its mean (zero) when ``rng`` is None."""
    S, _, k = F.shape
    safe = np.where(code < 0, 0, code)
    f = F[:, safe, :]
    b = None if bias is None else bias[:, safe]
    unseen = code < 0
    if unseen.any() and rng is None:
        f[:, unseen, :] = 0.0
        if b is not None:
            b[:, unseen] = 0.0
    elif unseen.any():
        m = int(unseen.sum())
        sd = np.zeros(S) if prior_sd is None else np.asarray(prior_sd, float)
        f[:, unseen, :] = rng.standard_normal((S, m, k)) * sd[:, None, None]
        if b is not None:
            bsd = np.zeros(S) if prior_bias_sd is None else np.asarray(prior_bias_sd, float)
            b[:, unseen] = rng.standard_normal((S, m)) * bsd[:, None]
    return f, b


def noise_sd(d: PosteriorDraws, ucode, icode, rng=None) -> np.ndarray:
    """The noise sd of each pair in every draw, (S, 1) or (S, P) (heteroscedastic noise).

    An unseen user's (item's) multiplier is drawn from its Gamma(a, a) prior
    with that draw's shape, or set to the prior mean 1 when ``rng`` is None
    (right for training pairs, which have no unseen ids; a held-out density of
    an unseen id would need the multiplier integrated out, a Student-t).
    """
    sigma = np.asarray(d.sigma, float).reshape(-1, 1)
    if d.user_noise is None:
        return sigma
    prec = 1.0
    for mult, shape, code in ((d.user_noise, d.noise_shape_user, ucode),
                              (d.item_noise, d.noise_shape_item, icode)):
        code = np.asarray(code, np.int64)
        m = mult[:, np.maximum(code, 0)]
        unseen = code < 0
        if unseen.any():
            if rng is None:
                m[:, unseen] = 1.0
            else:
                a = np.asarray(shape, float)[:, None]
                m[:, unseen] = rng.gamma(a, 1.0 / a, (a.shape[0], int(unseen.sum())))
        prec = prec * m
    return sigma / np.sqrt(prec)


def linear_predictor(d: PosteriorDraws, ucode, icode, rng) -> np.ndarray:
    """:math:`\\eta` for a chunk of pairs, shape (S, P)."""
    fu, bu = _side(d.U, d.user_bias, ucode, d.sigma_u, d.sigma_b, rng)
    fv, bv = _side(d.V, d.item_bias, icode, d.sigma_v, d.sigma_c, rng)
    eta = np.einsum("spk,spk->sp", fu, fv)
    if d.mu is not None:
        eta += np.asarray(d.mu, float).reshape(-1, 1)
    if bu is not None:
        eta += bu
    if bv is not None:
        eta += bv
    return eta


def _to_rating_scale(d: PosteriorDraws, x):
    if d.link == "logistic":
        lo, hi = d.scale
        return lo + (hi - lo) * x
    return x


def posterior_predictive(
    draws: PosteriorDraws,
    ucode: np.ndarray,
    icode: np.ndarray,
    *,
    interval: float = 0.9,
    include_noise: bool = True,
    random_seed=None,
    return_draws: bool = False,
    max_elements: int = 8_000_000,
    offset=None,
) -> dict:
    r"""Posterior predictive summaries for pairs given by training codes.

    Parameters
    ----------
    draws : PosteriorDraws
    ucode, icode : int arrays, shape (P,)
        Codes into the training maps; ``-1`` for unseen ids.
    interval : float
        Central probability of the reported interval (default 0.9).
    include_noise : bool
        If true (default) intervals and sd are those of a new rating
        :math:`R^\ast = \mathrm{link}(\eta) + \sigma_{ij}\varepsilon` (the pair's noise sd,
        :func:`noise_sd`); if false,
        of the mean rating :math:`\mathrm{link}(\eta)` only.
    random_seed
        Seeds the noise draws (and prior draws for unseen ids).
    return_draws : bool
        Also return the predictive draws, shape (S, P) -- memory grows as
        S x P, so ask for it only on a subset.
    offset : callable, optional
        A term outside ``draws`` (e.g. time effects): ``offset(lo, hi, rng)``
        returns its (S, hi - lo) values for pairs ``lo:hi`` in the same draws,
        which the linear predictor gains; with ``rng=None`` its prior-mean
        version (unseen levels at 0) for the exact predictive mean.

    Returns
    -------
    dict with ``mean``, ``sd``, ``lo``, ``hi`` (and ``draws``).

    Notes
    -----
    The mean is the exact posterior mean of the predictive (noise has mean
    zero); sd and interval come from one noise draw per posterior draw.
    """
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval}")
    rng = np.random.default_rng(random_seed)
    ucode = np.asarray(ucode, dtype=np.int64)
    icode = np.asarray(icode, dtype=np.int64)
    P = ucode.shape[0]
    S, _, k = draws.U.shape
    chunk = max(1, int(max_elements // max(1, S * k)))
    q = [(1 - interval) / 2, (1 + interval) / 2]
    out = {name: np.empty(P) for name in ("mean", "sd", "lo", "hi")}
    all_draws = np.empty((S, P)) if return_draws else None
    sigma = np.asarray(draws.sigma, float).reshape(-1, 1)
    for s in range(0, P, chunk):
        e = min(s + chunk, P)
        eta = linear_predictor(draws, ucode[s:e], icode[s:e], rng)
        if offset is not None:
            eta = eta + offset(s, e, rng)
        m = 1.0 / (1.0 + np.exp(-eta)) if draws.link == "logistic" else eta
        sd = sigma if draws.user_noise is None else noise_sd(draws, ucode[s:e], icode[s:e], rng)
        y = m + sd * rng.standard_normal(m.shape) if include_noise else m
        y = _to_rating_scale(draws, y)
        if draws.link == "identity" and (offset is not None or ((ucode[s:e] < 0) | (icode[s:e] < 0)).any()):
            # exact: an unseen side (or offset level) contributes its prior mean, zero
            m = linear_predictor(draws, ucode[s:e], icode[s:e], None)
            if offset is not None:
                m = m + offset(s, e, None)
        out["mean"][s:e] = _to_rating_scale(draws, m.mean(axis=0))
        out["sd"][s:e] = y.std(axis=0, ddof=1) if S > 1 else np.nan
        lo, hi = np.quantile(y, q, axis=0)
        out["lo"][s:e], out["hi"][s:e] = lo, hi
        if return_draws:
            all_draws[:, s:e] = y
    if return_draws:
        out["draws"] = all_draws
    return out
