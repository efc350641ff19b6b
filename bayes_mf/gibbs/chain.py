"""One Gibbs chain: its state, the sweep that moves it, and a run of sweeps.

A chain's state (:class:`ChainState`, random generator, Philox key and sweep
counter included) is a plain picklable object, so a run can stop after any
number of sweeps and go on later, in this process or a worker, with exactly
the numbers an unbroken run would give.  That is what lets
:class:`~bayes_mf.gibbs.GibbsPMF` sample in rounds until the diagnostics pass.

The per-row noise of the side and feature steps comes from
:mod:`~bayes_mf.gibbs.counter` (keyed by chain, sweep, side and row, so any
number of threads draws the same numbers); the few other draws
(hyper-parameters, moves, mu, tau) come from the generator, on the calling thread.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from . import kernels, ordinal, ordinal_kernels
from .counter import STREAMS, chain_key, normals
from .effects import Effects, initial_effects
from .layout import SIDES, _Features, _Side
from .moves import MU_PRIOR_PREC
from .noise import Noise, initial_noise, weighted_residuals
from .priors import _gamma_precision, _normal_wishart, _wishart
from .sweep_moves import MovesMixin


@dataclass
class _Settings:
    """The model and sampler options a chain needs (a frozen copy of the estimator's)."""

    n_factors: int
    prior: str
    biases: bool
    global_mean: bool
    sigma: float | None
    sigma_u: float
    sigma_v: float
    sigma_bias: float
    gamma_prior: tuple
    init_scale: float
    backend: str
    store_factors: bool
    moves: bool = True
    factor_means: bool = True
    likelihood: str = "gaussian"  # "ordinal": ordered probit on the problem's "codes" (gibbs.ordinal)
    threads: int = 1
    overrelax: float = 0.0  # over-relaxed row and feature draws: alpha = -overrelax (Adler 1981)
    interweave: bool = False  # feature vectors drawn again given the effective rows (step 2b)
    heteroscedastic: bool = False  # a noise precision multiplier per user and per item (gibbs.noise)


@dataclass
class ChainState:
    """Everything a chain carries from one sweep to the next."""

    rng: np.random.Generator
    X: dict  # side -> effective rows [F, b] (n x d)
    W: dict  # side -> feature vectors (n_features x d) or None
    mu: float
    tau: float
    lam_f: dict  # isotropic factor precisions
    lam_b: dict  # bias precisions
    m_f: dict  # factor prior means (BPMF)
    Lam_f: dict  # factor prior precision matrices
    prec_feat: dict  # side -> (n_groups x d) feature precisions or None
    effects: object = None  # rating-level effects (gibbs.effects.EffectState) or None
    ordinal: object = None  # ordinal.OrdinalState of the cut-points (likelihood="ordinal")
    noise: object = None  # noise.NoiseState of the precision multipliers (heteroscedastic)
    key: np.ndarray = None  # Philox key (two uint32 words) of the counter-based normals
    sweep: int = 0  # sweeps done: the counter that keys each sweep's normals


def initial_state(problem: dict, st: _Settings, seed) -> ChainState:
    """A dispersed start, drawn from the chain's own seed.

    Chains that all start at one point make R-hat blind (it compares chains),
    so every chain starts elsewhere: random factors, random biases, a global
    mean and noise and prior precisions jittered around the data's moments
    by far more than their posterior spread.
    """
    seed = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(seed)
    rating = problem["rating"]
    k, ub = st.n_factors, int(st.biases)
    d = k + ub
    sd = max(float(rating.std()), 1e-6)
    X = {}
    for side, n in (("user", problem["n_users"]), ("item", problem["n_items"])):
        X[side] = np.zeros((n, d))
        X[side][:, :k] = rng.normal(0.0, st.init_scale, (n, k))
        if ub:
            X[side][:, k] = rng.normal(0.0, 0.3 * sd, n)
    feats = {s: problem.get(f"{s}_features") for s in SIDES}
    W = {s: (np.zeros((f[0].shape[1], d)) if f is not None else None) for s, f in feats.items()}
    mu = float(rating.mean()) + 0.5 * sd * rng.standard_normal() if st.global_mean else 0.0
    tau = 1.0 / st.sigma**2 if st.sigma is not None else math.exp(rng.normal(0.0, 0.5)) / sd**2
    fixed = st.prior == "fixed"
    jitter = (lambda: 1.0) if fixed else (lambda: math.exp(rng.normal(0.0, 0.5)))
    lam_f = {"user": jitter() / st.sigma_u**2, "item": jitter() / st.sigma_v**2}
    lam_b = {s: jitter() / st.sigma_bias**2 for s in SIDES}
    prec_feat = {s: (np.full((int(f[1].max()) + 1 if f[1].size else 0, d), lam_f[s]) if f is not None
                     else None) for s, f in feats.items()}
    # drawn last, so that the Gaussian chains' random streams are unchanged
    cuts = (ordinal.initial_ordinal(problem["codes"], len(problem["levels"]), rng)
            if st.likelihood == "ordinal" else None)
    effects = initial_effects(problem, rng, sd)
    return ChainState(rng=rng, X=X, W=W, mu=mu, tau=tau, lam_f=lam_f, lam_b=lam_b,
                      m_f={s: np.zeros(k) for s in SIDES},
                      Lam_f={s: lam_f[s] * np.eye(k) for s in SIDES}, prec_feat=prec_feat,
                      effects=effects, ordinal=cuts, key=chain_key(seed),
                      noise=initial_noise(problem, rng) if st.heteroscedastic else None)


class Sweeper(MovesMixin):
    """The data layout of one problem and the sweep over a :class:`ChainState`."""

    def __init__(self, problem: dict, st: _Settings):
        self.st = st
        self.user, self.item, self.rating = problem["user"], problem["item"], problem["rating"]
        self.ordinal = st.likelihood == "ordinal"
        self.adapt = False  # set by run_chain during burn-in: tuning of the cut-point proposal
        if self.ordinal:
            # the working response is rewritten every sweep: a private copy, never the shared problem's
            self.rating = np.array(self.rating, dtype=np.float64)
            self.codes = problem["codes"]
            self.n_levels = len(problem["levels"])
        self.n_obs = self.rating.shape[0]
        self.k = st.n_factors
        self.ub = int(st.biases)
        self.d = self.k + self.ub
        self.use_numba = st.backend == "numba"
        # the compiled kernels need no SideIndex (layout._Side), unless the response changes from sweep
        # to sweep (set_response): its new values are put in each side's order through the index
        compact = self.use_numba and not (self.ordinal or problem.get("effects") or st.heteroscedastic)
        self.by = {"user": _Side(self.user, self.item, self.rating, problem["n_users"], problem["n_items"],
                                 compact),
                   "item": _Side(self.item, self.user, self.rating, problem["n_items"], problem["n_users"],
                                 compact)}
        self.counts = {s: np.diff(self.by[s].indptr).astype(np.float64) for s in SIDES}
        self.feats = {s: (_Features(*problem[f"{s}_features"]) if problem.get(f"{s}_features") else None)
                      for s in SIDES}
        # coordinates drawn per feature vector: all d, or the k factors (a bias column held at 0)
        self.feat_dims = {s: None if f is None else np.where(f.bias_cols, self.d, self.k).astype(np.int64)
                          for s, f in self.feats.items()}
        self.G_store = {s: (np.empty((len(self.counts[s]), self.d, self.d)) if self.feats[s] is not None
                            else np.empty((1, 1, 1))) for s in SIDES}
        self.h_store = {s: (np.empty((len(self.counts[s]), self.d)) if self.feats[s] is not None
                            else np.empty((1, 1))) for s in SIDES}
        self.resid = {s: np.zeros(len(self.counts[s])) for s in SIDES}
        self.check_u, self.check_i = problem["check_user"], problem["check_item"]
        self.effects = Effects(problem, st) if problem.get("effects") else None
        self.base, self.offsets = self.rating, None  # see set_response
        # per-rating precision multipliers (None: homoscedastic); with them self.counts holds their row sums
        self.weights, self.weight_sum = None, float(self.n_obs)
        self.noise = Noise(self, st) if st.heteroscedastic else None

    # ------------------------------------------------------------- blocks
    def set_response(self, y: np.ndarray) -> None:
        """Make ``y`` (one value per rating, in input order) what the model describes.

        ``y`` is the ratings, or the latent ratings of the ordinal likelihood
        (:mod:`bayes_mf.gibbs.ordinal`).  The Gaussian core (steps 1-5) sees
        ``y`` minus the rating-level offsets of :meth:`set_offsets`: the rating
        array the residual kernels read and each side's copy in CSR order.
        """
        self.base = y
        self._write()

    def set_offsets(self, offsets: np.ndarray | None) -> None:
        """Rating-level terms outside the core (:mod:`bayes_mf.gibbs.effects`); it sees ``y - offsets``."""
        self.offsets = offsets
        self._write()

    def _write(self) -> None:
        y = self.base if self.offsets is None else self.base - self.offsets
        self.rating = np.ascontiguousarray(y, dtype=np.float64)
        for side in SIDES:
            self.by[side].set_vals(self.rating)

    def linear_predictor(self, s: ChainState) -> np.ndarray:
        r""":math:`\eta_n = \mu + \tilde b_i + \tilde c_j + \tilde U_i^\top \tilde V_j` of every rating."""
        return ordinal_kernels.linear_predictor(self.user, self.item, s.mu, s.X["user"], s.X["item"], self.k,
                                                bool(self.ub), self.use_numba)

    def ordinal_step(self, s: ChainState) -> None:
        """Cut-points, joint rescaling, latent ratings z (:func:`.ordinal.sweep_step`); z: the response."""
        ordinal.sweep_step(self, s)

    def _prior(self, s: ChainState, side: str):
        k, d = self.k, self.d
        P = np.zeros((d, d))
        P[:k, :k] = s.Lam_f[side]
        m = np.zeros(d)
        m[:k] = s.m_f[side]
        if self.ub:
            P[k, k] = s.lam_b[side]
        return P, m

    def side_step(self, s: ChainState, side: str) -> np.ndarray:
        """Draw one side's effective rows and feature vectors (steps 1-3); return the own parts."""
        other = s.X["item" if side == "user" else "user"]
        X, f, by, k = s.X[side], self.feats[side], self.by[side], self.k
        P, m = self._prior(s, side)
        pm = self._prior_rows(s, side, m)
        z = normals(s.key, STREAMS[side], s.sweep, X.shape[0], X.shape[1], backend=self.st.backend)
        store = f is not None
        other_F = np.ascontiguousarray(other[:, :k])
        other_b = np.ascontiguousarray(other[:, k]) if self.ub else np.zeros(other.shape[0])
        G, h = self.G_store[side], self.h_store[side]
        if self.use_numba:
            ok = kernels._side_step_numba(by.indptr, by.cols, by.vals, other_F, other_b, s.mu, self.ub, P, pm,
                                          s.tau, z, X, store, G, h, -self.st.overrelax, by.wts)
            if not ok:
                raise FloatingPointError(f"non positive-definite {side} precision matrix")
        else:
            X[...] = kernels._side_step_numpy(by, other_F, other_b, s.mu, self.ub, P, pm, s.tau, z,
                                              G if store else None, h if store else None, X,
                                              -self.st.overrelax,
                                              by.wts_obs if self.weights is not None else None)
        return X.copy() if f is None else self._feature_steps(s, side, P, m)

    def _prior_rows(self, s: ChainState, side: str, m) -> np.ndarray:
        """Each row's prior mean: the own parts' mean plus its features' vectors, m + A_i W."""
        pm = np.empty_like(s.X[side])
        pm[:] = m
        if self.feats[side] is not None:
            pm += self.feats[side].A @ s.W[side]
        return pm

    def _feature_steps(self, s: ChainState, side: str, P, m) -> np.ndarray:
        """Steps 2-3, after the rows' draw stored their Gram matrices: the feature vectors; the own parts."""
        f = self.feats[side]
        zf = normals(s.key, STREAMS[f"{side}_features"], s.sweep, *s.W[side].shape, backend=self.st.backend)
        prec_rows = s.prec_feat[side][f.groups]
        self._feature_step_own(s, side, prec_rows, zf)
        if self.st.interweave:
            # after the own-held draw: in the other order pred_check mixed several times slower (a u1 probe)
            self._feature_step_rows(s, side, P, m, prec_rows)
        return s.X[side] - f.A @ s.W[side]

    def _feature_step_own(self, s: ChainState, side: str, prec_rows, zf) -> None:
        """Step 2: each W_l given the own parts (the rows move with it), through the likelihood."""
        f, X = self.feats[side], s.X[side]
        G, h = self.G_store[side], self.h_store[side]  # the rows' likelihood terms, stored by step 1
        if self.use_numba:
            ok = kernels._feature_step_numba(f.f_indptr, f.f_rows, f.f_vals, G, h, X, s.W[side], prec_rows,
                                             zf, self.feat_dims[side], -self.st.overrelax)
            if not ok:
                raise FloatingPointError(f"non positive-definite {side}-feature precision matrix")
        else:
            kernels._feature_step_numpy(f.f_indptr, f.f_rows, f.f_vals, G, h, X, s.W[side], prec_rows, zf,
                                        self.feat_dims[side], -self.st.overrelax)

    def _feature_step_rows(self, s: ChainState, side: str, P, m, prec_rows) -> None:
        """Step 2b: each W_l given the effective rows (the own parts move), through the own parts' prior."""
        f, X = self.feats[side], s.X[side]
        z = normals(s.key, STREAMS[f"{side}_features_rows"], s.sweep, *s.W[side].shape,
                    backend=self.st.backend)
        kern = kernels._feature_step_centred_numba if self.use_numba else kernels._feature_step_centred_numpy
        ok = kern(f.f_indptr, f.f_rows, f.f_vals, X, s.W[side], P, m, prec_rows, z, self.feat_dims[side],
                  -self.st.overrelax)
        if self.use_numba and not ok:
            raise FloatingPointError(f"non positive-definite {side}-feature precision matrix")

    def noise_and_mean(self, s: ChainState) -> float:
        """Draw mu and tau (step 4); return the residual sum of squares at the new mu (weighted, with
        heteroscedastic noise)."""
        k = self.k
        Xu, Xv = s.X["user"], s.X["item"]
        Uf, Vf = np.ascontiguousarray(Xu[:, :k]), np.ascontiguousarray(Xv[:, :k])
        bu = np.ascontiguousarray(Xu[:, k]) if self.ub else np.zeros(1)
        bv = np.ascontiguousarray(Xv[:, k]) if self.ub else np.zeros(1)
        s1, s2 = self._residuals(s.mu, Uf, Vf, bu, bv)
        n = self.weight_sum  # the rating count, or the sum of the weights
        if self.st.global_mean:
            prec = s.tau * n + MU_PRIOR_PREC
            new_mu = (s.tau * (s1 + n * s.mu)) / prec + s.rng.standard_normal() / math.sqrt(prec)
            delta = s.mu - new_mu
            s2 = s2 + 2.0 * delta * s1 + n * delta * delta
            for side in SIDES:
                self.resid[side] += delta * self.counts[side]
            s.mu = new_mu
        if self.st.sigma is None:
            a0, b0 = self.st.gamma_prior
            s.tau = _gamma_precision(s.rng, a0, b0, s2, self.n_obs)
        return s2

    def _residuals(self, mu: float, Uf, Vf, bu, bv) -> tuple[float, float]:
        """Sum and sum of squares of the residuals at ``mu``; per-row sums into ``self.resid``."""
        if self.weights is not None:
            return weighted_residuals(self, mu, Uf, Vf, bu, bv)
        if self.use_numba:
            bu = bu if self.ub else np.zeros(Uf.shape[0])
            bv = bv if self.ub else np.zeros(Vf.shape[0])
            return kernels._residual_numba(self.by["user"], self.by["item"], mu, Uf, Vf, bu, bv, self.ub,
                                           self.resid["user"], self.resid["item"])
        return kernels._residual_numpy(self.user, self.item, self.rating, mu, Uf, Vf, bu, bv,
                                       self.ub, self.resid["user"], self.resid["item"])

    def hyper(self, s: ChainState, own: dict) -> None:
        """Draw the prior precisions (and BPMF's factor means) given the own parts (step 5)."""
        if self.st.prior == "fixed":
            return
        k, a0, b0 = self.k, *self.st.gamma_prior
        for side in SIDES:
            F = own[side][:, :k]
            if self.st.prior == "bpmf" and self.st.factor_means:
                s.m_f[side], s.Lam_f[side] = _normal_wishart(s.rng, F)
            elif self.st.prior == "bpmf":
                s.Lam_f[side] = _wishart(s.rng, F)
            else:
                s.lam_f[side] = _gamma_precision(s.rng, a0, b0, float(np.sum(F * F)), F.size)
                s.Lam_f[side] = s.lam_f[side] * np.eye(k)
            if self.ub:
                b = own[side][:, k]
                s.lam_b[side] = _gamma_precision(s.rng, a0, b0, float(b @ b), b.size)
            f = self.feats[side]
            if f is not None:
                for g in range(f.n_groups):
                    Wg = s.W[side][f.groups == g]
                    s.prec_feat[side][g] = _gamma_precision(s.rng, a0, b0, np.sum(Wg * Wg, axis=0),
                                                            Wg.shape[0])

    def sweep(self, s: ChainState) -> float:
        """One full sweep; returns the residual sum of squares of the new state (weighted, with
        heteroscedastic noise: :func:`_record` recomputes the plain one).

        The compiled kernels run on ``st.threads`` threads during the sweep;
        the sweep counter of ``s`` (which keys its normals) moves on by one.
        """
        with kernels.numba_threads(self.st.threads if self.use_numba else None):
            if self.ordinal:
                self.ordinal_step(s)
            own = {side: self.side_step(s, side) for side in SIDES}
            if self.effects is not None:
                self.effects.step(self, s)
            if self.noise is not None:
                self.noise.step(self, s)
            s2 = self.noise_and_mean(s)
            self.hyper(s, own)
            if self.effects is not None:
                self.effects.hyper(s)
            if self.st.moves:
                s2 = self.moves(s, own, s2)
        s.sweep += 1
        return s2


def _record(sw: Sweeper, s: ChainState, out: dict, row: int, s2: float) -> None:
    """Store the identifiable summaries (and factors, if kept) of the current state in row ``row``."""
    k, st = sw.k, sw.st
    Xu, Xv = s.X["user"], s.X["item"]
    out["sigma"][row] = 1.0 / math.sqrt(s.tau)
    if sw.weights is not None:  # s2 is weighted: the plain one for the training RMSE
        s2 = float(np.sum((sw.rating - sw.linear_predictor(s)) ** 2))
    out["train_rmse"][row] = math.sqrt(max(s2, 0.0) / sw.n_obs)
    for side, name in (("user", "sigma_u"), ("item", "sigma_v")):
        # the prior sd of a new user's/item's factors (exact for isotropic priors;
        # for BPMF the root mean variance of N(mu_U, Lambda_U^-1), its mean mu_U ignored)
        out[name][row] = math.sqrt(float(np.mean(np.diag(np.linalg.inv(s.Lam_f[side])))))
    eta = s.mu + np.einsum("nk,nk->n", Xu[sw.check_u, :k], Xv[sw.check_i, :k])
    if sw.ub:
        eta += Xu[sw.check_u, k] + Xv[sw.check_i, k]
        out["user_bias"][row] = Xu[:, k]
        out["item_bias"][row] = Xv[:, k]
        out["sigma_b"][row] = 1.0 / math.sqrt(s.lam_b["user"])
        out["sigma_c"][row] = 1.0 / math.sqrt(s.lam_b["item"])
    out["pred_check"][row] = eta
    if st.global_mean:
        out["mu"][row] = s.mu
    if st.prior == "bpmf" and st.factor_means:
        out["mu_u"][row] = s.m_f["user"]
        out["mu_v"][row] = s.m_f["item"]
    if st.store_factors:
        out["U"][row] = Xu[:, :k]
        out["V"][row] = Xv[:, :k]
    if sw.effects is not None:
        sw.effects.record(s, out, row)
    if sw.noise is not None:
        sw.noise.record(s, out, row)
    if sw.ordinal:
        out["cutpoints"][row] = s.ordinal.cuts


def _empty_draws(sw: Sweeper, n_keep: int) -> dict:
    st, k = sw.st, sw.k
    n_users, n_items = len(sw.counts["user"]), len(sw.counts["item"])
    out = {name: np.empty(n_keep) for name in ("sigma", "sigma_u", "sigma_v", "train_rmse")}
    out["pred_check"] = np.empty((n_keep, sw.check_u.size))
    if st.global_mean:
        out["mu"] = np.empty(n_keep)
    if sw.ub:
        out.update(user_bias=np.empty((n_keep, n_users)), item_bias=np.empty((n_keep, n_items)),
                   sigma_b=np.empty(n_keep), sigma_c=np.empty(n_keep))
    if st.prior == "bpmf" and st.factor_means:
        out.update(mu_u=np.empty((n_keep, k)), mu_v=np.empty((n_keep, k)))
    if st.store_factors:
        out.update(U=np.empty((n_keep, n_users, k)), V=np.empty((n_keep, n_items, k)))
    if sw.effects is not None:
        out.update(sw.effects.empty(n_keep))
    if sw.noise is not None:
        out.update(sw.noise.empty(n_keep))
    if sw.ordinal:
        out["cutpoints"] = np.empty((n_keep, sw.n_levels - 1))
    return out


def run_chain(problem: dict, st: _Settings, state, n_sweeps: int, *, burn_in: int = 0, thin: int = 1,
              progress: str | None = None, sweeper: Sweeper | None = None) -> tuple[ChainState, dict]:
    """Run ``n_sweeps`` sweeps from ``state`` (a seed starts a new chain from :func:`initial_state`).

    The first ``burn_in`` sweeps are not kept; after them every ``thin``-th
    sweep is.  Returns the new state and the kept draws (a dict of arrays
    with a leading draw axis, plus ``loop_seconds`` and the running sums
    ``U_sum``/``V_sum`` of the factors over the kept draws).  A top-level
    function, so that worker processes can run it.  ``sweeper``: a ready
    :class:`Sweeper` of ``problem`` to reuse (the Dask backend's, whose
    ratings already sit on the workers); by default one is built here.
    """
    if not isinstance(state, ChainState):
        state = initial_state(problem, st, state)
    sw = Sweeper(problem, st) if sweeper is None else sweeper
    if sw.effects is not None:
        sw.effects.sync(sw, state)  # the response of a resumed chain holds its effects
    if sw.noise is not None:
        sw.noise.set_weights(sw, state)  # and the weights, its multipliers
    n_keep = max(0, (n_sweeps - burn_in) // thin)
    out = _empty_draws(sw, n_keep)
    U_sum = np.zeros((len(sw.counts["user"]), sw.k))
    V_sum = np.zeros((len(sw.counts["item"]), sw.k))
    bar = None
    if progress is not None:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_sweeps, desc=progress, leave=False)
    t0 = time.perf_counter()
    kept = 0
    for t in range(n_sweeps):
        sw.adapt = t < burn_in
        s2 = sw.sweep(state)
        if bar is not None:
            bar.update(1)
        if t < burn_in or (t - burn_in + 1) % thin or kept >= n_keep:
            continue
        _record(sw, state, out, kept, s2)
        U_sum += state.X["user"][:, :sw.k]
        V_sum += state.X["item"][:, :sw.k]
        kept += 1
    if bar is not None:
        bar.close()
    out["loop_seconds"] = time.perf_counter() - t0
    out["U_sum"], out["V_sum"] = U_sum, V_sum
    return state, out


def _pool_chain(args):
    problem, st, state, n_sweeps, kw = args
    return run_chain(problem, st, state, n_sweeps, **kw)
