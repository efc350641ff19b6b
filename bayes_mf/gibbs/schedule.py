"""How long the chains run: a fixed number of draws, or rounds until the diagnostics pass.

With ``draws=None`` (the default of :class:`~bayes_mf.gibbs.GibbsPMF`)
the chains run a first round, then the identifiable set (``sigma``, the
bias scales, ``mu``, every bias, ``pred_check``) is diagnosed; while any
R-hat exceeds ``target_rhat`` or any bulk or tail ESS is below
``target_ess``, another round continues every chain from where it stopped.
Its length is projected from the worst ESS and R-hat so far (ESS grows
about linearly with the sweeps once the chains mix, R-hat - 1 shrinks about
as 1/ESS), aiming 10 % past what they call for.  When an R-hat is far from
its target (> 1 + 5 (target - 1) at the first check, > 1 + 10 (target - 1)
later) the first half of the kept draws is dropped as further warm-up
(Gelman et al. 2013): those draws predate convergence.  Kept draws per chain are capped
(``max_draws``): past the cap every other draw is dropped and the thinning
doubles, which bounds memory while keeping what the diagnostics see equal
to what the result stores.  The loop ends when the diagnostics pass or
the time budget ``max_seconds`` would be exceeded.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger("bayes_mf")

#: variables the chains hold that are not draws
_NOT_DRAWS = ("loop_seconds", "U_sum", "V_sum")


@dataclass
class Plan:
    """How long to run (see the module docstring)."""

    burn_in: int
    n_samples: int | None
    thin: int = 1
    first: int = 400
    target_rhat: float = 1.01
    target_ess: float = 400.0
    max_seconds: float = 600.0
    max_draws: int = 1000


@dataclass
class Sampled:
    """What the chains produced: draws per chain (leading draw axis) and how the run went."""

    draws: list
    U_sum: np.ndarray
    V_sum: np.ndarray
    n_summed: int
    loop_seconds: float
    sweeps: int
    burn_in: int
    thin: int
    rounds: int = 1
    table: object = None
    converged: bool | None = None
    stopped: str = "fixed"
    history: list = field(default_factory=list)


def _merge(old: list | None, results: list) -> list:
    new = [{k: v for k, v in d.items() if k not in _NOT_DRAWS} for _, d in results]
    if old is None:
        return new
    return [{k: np.concatenate([a[k], b[k]]) for k in a} for a, b in zip(old, new, strict=True)]


def _n_kept(draws: list) -> int:
    return int(draws[0]["sigma"].shape[0])


def _take(draws: list, sl: slice) -> list:
    return [{k: v[sl] for k, v in d.items()} for d in draws]


def sample(runner, seeds: list, plan: Plan, check) -> Sampled:
    """Run the chains of ``runner`` by ``plan``; ``check(draws)`` returns the diagnostics table."""
    t0 = time.perf_counter()
    first = plan.n_samples * plan.thin if plan.n_samples is not None else plan.first
    results = runner.run(list(seeds), plan.burn_in + first, burn_in=plan.burn_in, thin=plan.thin)
    out = Sampled(draws=_merge(None, results), U_sum=0.0, V_sum=0.0, n_summed=0, loop_seconds=0.0,
                  sweeps=plan.burn_in + first, burn_in=plan.burn_in, thin=plan.thin)
    _accumulate(out, results)
    states = [s for s, _ in results]
    wall = time.perf_counter() - t0
    wall_per_sweep = wall / out.sweeps
    if len(seeds) < 2:  # R-hat needs chains to compare
        return out
    out.table = check(out.draws)
    if plan.n_samples is not None:
        out.converged = bool(out.table["ok"].all())
        return out
    kept = first  # sweeps after warm-up that the kept draws span
    while True:
        ok = bool(out.table["ok"].all())
        worst = _worst(out.table)
        out.history.append((out.sweeps, worst))
        logger.info("round %d: %d sweeps per chain, %s", out.rounds, out.sweeps, worst)
        if ok:
            out.converged, out.stopped = True, "converged"
            return out
        rhat = float(out.table["rhat_max"].max())
        if rhat > 1.0 + (5.0 if out.rounds == 1 else 10.0) * (plan.target_rhat - 1.0):
            # far from 1: the early draws predate convergence.  After the first round the bar is
            # higher: a maximum over thousands of R-hats near 1.05 is mostly the noise of few
            # effective draws, which more draws cure and discarding would only prolong
            half = _n_kept(out.draws) // 2
            out.draws = _take(out.draws, slice(half, None))
            out.burn_in += kept // 2
            kept -= kept // 2
        ess = float(out.table[["ess_bulk_min", "ess_tail_min"]].min().min())
        # ESS grows about linearly with the sweeps, and R-hat - 1 shrinks about as 1 / ESS
        ratio = 1.1 * max(plan.target_ess / max(ess, 1.0), (rhat - 1.0) / (plan.target_rhat - 1.0))
        extra = int(kept * (min(max(ratio, 1.2), 6.0) - 1.0))
        left = plan.max_seconds - (time.perf_counter() - t0)
        affordable = int(left / max(wall_per_sweep, 1e-9))
        extra = min(extra, affordable) // out.thin * out.thin
        if extra < max(10, kept // 10):
            out.converged, out.stopped = False, "budget"
            return out
        tic = time.perf_counter()
        results = runner.run(states, extra, burn_in=0, thin=out.thin)
        wall_per_sweep = (time.perf_counter() - tic) / extra
        states = [s for s, _ in results]
        out.draws = _merge(out.draws, results)
        _accumulate(out, results)
        out.sweeps += extra
        out.rounds += 1
        kept += extra
        while _n_kept(out.draws) > plan.max_draws:
            out.draws = _take(out.draws, slice(1, None, 2))
            out.thin *= 2
        out.table = check(out.draws)


def _accumulate(out: Sampled, results: list) -> None:
    for _, d in results:
        out.U_sum = out.U_sum + d["U_sum"]
        out.V_sum = out.V_sum + d["V_sum"]
        out.loop_seconds += d["loop_seconds"]
    out.n_summed += sum(_n_draws(d) for _, d in results)


def _n_draws(d: dict) -> int:
    return int(d["sigma"].shape[0])


def _worst(table) -> str:
    """The weakest quantity of a diagnostics table, for logs and progress."""
    ess = table[["ess_bulk_min", "ess_tail_min"]].min(axis=1)
    v = ess.idxmin()
    return (f"max R-hat {table['rhat_max'].max():.3f} ({table['rhat_max'].idxmax()}), "
            f"min ESS {ess.min():.0f} ({v})")


def budget_advice(plan: Plan, sampled: Sampled) -> str:
    """What to change when the run ended unconverged."""
    if plan.n_samples is not None:
        return (f"{plan.n_samples} draws per chain were asked for; pass draws=None to sample "
                f"until converged, or raise draws")
    need = ""
    if sampled.history:
        sweeps, _ = sampled.history[-1]
        ess = float(sampled.table[["ess_bulk_min", "ess_tail_min"]].min().min())
        if ess > 0:
            need = (f" (at the ESS rate seen, about {math.ceil(sweeps * plan.target_ess / ess)} sweeps "
                    f"per chain would do)")
    return (f"the time budget max_seconds={plan.max_seconds:g} ran out after {sampled.sweeps} sweeps per "
            f"chain{need}; raise max_seconds, run more chains on more cores, or check the model")
