"""The exact ridge moves as blocks of a sweep (the maths: :mod:`bayes_mf.gibbs.moves`).

:class:`MovesMixin` gives :class:`~bayes_mf.gibbs.chain.Sweeper` its move
blocks: each reads the chain state, draws the move from
:mod:`~bayes_mf.gibbs.moves` and applies it to the effective rows, the own
parts, the feature vectors and the priors alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import kernels
from .layout import SIDES
from .moves import (
    MU_PRIOR_PREC,
    scale_biases,
    scale_factors,
    shift_features,
    shift_offsets,
    translate_factors,
)

if TYPE_CHECKING:
    from .chain import ChainState


class MovesMixin:
    """Move blocks of a sweep; the host supplies ``st``, ``k``, ``ub``, ``feats``, ``counts``, ``resid``,
    ``by``, ``user``, ``item``, ``use_numba`` and ``_prior``."""

    def moves(self, s: ChainState, own: dict, s2: float) -> float:
        """The exact ridge moves of :mod:`bayes_mf.gibbs.moves`; returns the new residual sum of squares."""
        self.invariant_moves(s, own)
        if self.ub and self.st.prior != "fixed":
            s2 = self._scale_moves(s, own, s2)
        if self.effects is not None:
            self.effects.shift(self, s, own)  # leaves every prediction, so s2, unchanged
            s2 = self.effects.rescale(self, s, s2)
        return s2

    def invariant_moves(self, s: ChainState, own: dict) -> None:
        """The moves that leave every predicted rating unchanged (only the priors see them)."""
        if self.st.prior != "fixed":
            self._factor_scale_move(s, own)
        self._feature_moves(s, own)
        if self.ub:
            self._translation_moves(s, own)

    def _translation_moves(self, s: ChainState, own: dict) -> None:
        k = self.k
        mu = s.mu if self.st.global_mean else None
        for side, other in (("item", "user"), ("user", "item")):
            if self.st.prior != "bpmf":
                prior = ("iso", s.lam_f[side])
            elif self.st.factor_means:
                prior = ("bpmf", s.Lam_f[side], s.m_f[side])
            else:
                prior = ("wishart", s.Lam_f[side])
            a, db, ma = translate_factors(s.rng, own[side][:, :k], prior, s.X[other][:, :k],
                                          own[other][:, k], s.lam_b[other], mu)
            s.X[side][:, :k] += a
            own[side][:, :k] += a
            s.X[other][:, k] += db
            own[other][:, k] += db
            if self.st.prior == "bpmf" and self.st.factor_means:
                s.m_f[side] = s.m_f[side] + a
            if mu is not None:
                mu -= ma
        if mu is not None:
            s.mu = mu
            self._offset_move(s, own)

    def _offset_move(self, s: ChainState, own: dict) -> None:
        """Jointly shift mu, the bias means and the bias part of feature groups (moves.shift_offsets)."""
        k = self.k
        # only the groups with a bias coordinate share the offsets (the others hold it at 0)
        groups = [(side, g) for side in SIDES if self.feats[side] is not None
                  for g in range(self.feats[side].n_groups) if self.feats[side].group_bias[g]]
        m = 2 + len(groups)
        blocks = [(np.array([s.mu]), np.r_[1.0, 1.0, np.zeros(m - 2)][None, :], MU_PRIOR_PREC)]
        for col, side in enumerate(SIDES):
            M = np.zeros((own[side].shape[0], m))
            M[:, col] = -1.0
            for j, (gside, g) in enumerate(groups):
                if gside == side:
                    M[:, 2 + j] = -self.feats[side].group_weight[g]
            blocks.append((own[side][:, k], M, s.lam_b[side]))
        for j, (side, g) in enumerate(groups):
            mask = self.feats[side].groups == g
            M = np.zeros((int(mask.sum()), m))
            M[:, 2 + j] = 1.0
            blocks.append((s.W[side][mask, k], M, s.prec_feat[side][g, k]))
        z = shift_offsets(s.rng, blocks)
        s.mu += z[0] + z[1]
        for col, side in enumerate(SIDES):
            delta = blocks[1 + col][1] @ z
            own[side][:, k] += delta
            s.X[side][:, k] -= z[col]  # the effective biases lose only the part mu gained
        for j, (side, g) in enumerate(groups):
            s.W[side][self.feats[side].groups == g, k] += z[2 + j]

    def _feature_moves(self, s: ChainState, own: dict) -> None:
        for side in SIDES:
            f = self.feats[side]
            if f is None:
                continue
            P, m = self._prior(s, side)
            for g in range(f.n_groups):
                mask = f.groups == g
                # without a bias coordinate the shift moves the factors only: P is block-diagonal
                # (factors, bias), so the leading block's conditional is exact
                n = self.d if f.group_bias[g] else self.k
                z = np.zeros(self.d)
                z[:n] = shift_features(s.rng, s.W[side][mask][:, :n], s.prec_feat[side][g][:n],
                                       own[side][:, :n], m[:n], P[:n, :n], f.group_weight[g])
                s.W[side][mask] += z
                own[side] -= np.outer(f.group_weight[g], z)

    def _factor_scale_move(self, s: ChainState, own: dict) -> None:
        k, (a0, b0) = self.k, self.st.gamma_prior
        bpmf = self.st.prior == "bpmf"
        A, B = ((0.5 * np.diag(s.Lam_f["user"]).copy(), 0.5 * np.diag(s.Lam_f["item"]).copy()) if bpmf
                else (np.array([b0 * s.lam_f["user"]]), np.array([b0 * s.lam_f["item"]])))
        C = np.zeros_like(A)
        for side, acc, sign in (("user", A, -1.0), ("item", B, 1.0)):
            f = self.feats[side]
            if f is None:
                continue
            lam = s.prec_feat[side][:, :k]  # (groups x k) precisions of the feature factor columns
            acc += b0 * (lam.sum(axis=0) if bpmf else lam.sum())
            C += sign * 2.0 * a0 * f.n_groups * (1 if bpmf else k)
        g = scale_factors(s.rng, A, B, C)
        if not bpmf:
            g = np.full(k, g[0])
        for side, gs in (("user", g), ("item", 1.0 / g)):
            s.X[side][:, :k] *= gs
            own[side][:, :k] *= gs
            if s.W[side] is not None:
                s.W[side][:, :k] *= gs
                s.prec_feat[side][:, :k] /= gs**2
            s.m_f[side] = s.m_f[side] * gs
            s.Lam_f[side] = s.Lam_f[side] / np.outer(gs, gs)
            s.lam_f[side] /= gs[0] ** 2

    def _scale_moves(self, s: ChainState, own: dict, s2: float) -> float:
        k, (a0, b0) = self.k, self.st.gamma_prior
        for side in SIDES:
            b = own[side][:, k]
            delta, A, B = scale_biases(s.rng, b, self.counts[side], self.resid[side], s.tau,
                                       s.lam_b[side], a0, b0)
            # residuals r - delta * b: keep the running sums exact without a pass over the ratings;
            # only the other side's sums (read by its move next) need one
            s2 = s2 - 2.0 * delta * B + delta * delta * A
            if side == "user":
                self.resid["item"] -= delta * self._rated_sum("item", b)
            s.X[side][:, k] += delta * b
            own[side][:, k] += delta * b
            s.lam_b[side] /= (1.0 + delta) ** 2
        return s2

    def _rated_sum(self, side: str, b: np.ndarray) -> np.ndarray:
        """Per row of ``side``: the sum of ``b`` over the other side's rows it has ratings with."""
        if self.weights is not None:  # weighted: sum of w_n b[cols[n]]
            rows, cols = (self.item, self.user) if side == "item" else (self.user, self.item)
            return np.bincount(rows, weights=self.weights * b[cols], minlength=len(self.counts[side]))
        if self.use_numba:
            by, out = self.by[side], np.empty(len(self.counts[side]))
            kernels._gather_sum(by.indptr, by.cols, b, out, kernels.row_chunks(by.indptr))
            return out
        rows, cols = (self.item, self.user) if side == "item" else (self.user, self.item)
        return np.bincount(rows, weights=b[cols], minlength=len(self.counts[side]))
