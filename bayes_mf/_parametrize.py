"""How a Gaussian layer of a PyMC model depends on its scale: centred, non-centred or mixed by row.

Used by :mod:`bayes_mf.models` (factors, biases) and :mod:`bayes_mf.gibbs.twin`.
"""

from __future__ import annotations

import numpy as np


def _normal(name: str, dims, scale, noncentered: bool, mean=0.0, chol=None, centred_rows=None):
    r"""``name`` :math:`\sim N(\text{mean}, \text{scale}^2)` (or :math:`N(\text{mean}, LL^\top)` rowwise).

    Non-centred, the free variable is ``{name}_z`` :math:`\sim N(0, I)` and ``name`` the
    deterministic :math:`\text{mean} + \text{scale}\, z` (or :math:`\text{mean} + z L^\top`):
    the posterior of :math:`z` no longer narrows with the scale (Neal's funnel), which is what
    gives NUTS low E-BFMI and deep trees on the centred hierarchical model.

    ``centred_rows`` (a boolean mask over the first dim) keeps those rows
    centred, as free ``{name}_c``, and non-centres the rest: rows the data
    pin down far more tightly than the prior (heavy users, popular items)
    sample best centred, sparse rows non-centred (Papaspiliopoulos et al.
    2007).  Either way the model is the same.
    """
    import pymc as pm
    import pytensor.tensor as pt

    mask = None if centred_rows is None else np.asarray(centred_rows, dtype=bool)
    if not noncentered or (mask is not None and mask.all()):
        if chol is not None:
            return pm.MvNormal(name, mu=0.0 if mean is None else mean, chol=chol, dims=dims)
        return pm.Normal(name, 0.0 if mean is None else mean, scale, dims=dims)
    if mask is None or not mask.any():
        z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=dims)
        value = (z @ chol.T if chol is not None else z * scale)
        return pm.Deterministic(name, value + mean if mean is not None else value, dims=dims)
    model = pm.modelcontext(None)
    shape = tuple(len(model.coords[d]) for d in ((dims,) if isinstance(dims, str) else dims))
    rows_c, rows_z = np.flatnonzero(mask), np.flatnonzero(~mask)
    centre = 0.0 if mean is None else mean
    if chol is not None:
        part_c = pm.MvNormal(f"{name}_c", mu=centre, chol=chol, shape=(rows_c.size,) + shape[1:])
    else:
        part_c = pm.Normal(f"{name}_c", centre, scale, shape=(rows_c.size,) + shape[1:])
    z = pm.Normal(f"{name}_z", 0.0, 1.0, shape=(rows_z.size,) + shape[1:])
    part_z = (z @ chol.T if chol is not None else z * scale) + centre
    full = pt.set_subtensor(pt.zeros(shape)[rows_c], part_c)
    full = pt.set_subtensor(full[rows_z], part_z)
    return pm.Deterministic(name, full, dims=dims)
