r"""The global mean and the user/item offsets of the PyMC models, centred or in sheared coordinates.

:func:`bias_terms` is the plain form; :func:`sheared_offsets` the non-centred form NUTS
samples by default, in coordinates where the likelihood sees no ridge between the mean
rating, the offsets and the factor means.
"""

from __future__ import annotations

from ._parametrize import _normal

__all__ = ["bias_terms", "sheared_offsets"]


def _scale(name: str, priors: str, value):
    import pymc as pm

    if priors == "fixed":
        return pm.Deterministic(name, pm.math.constant(float(value)))
    return pm.HalfNormal(name, sigma=1.0 if value is None else float(value))


def bias_terms(priors: str, center: float, sigma_b: float | None, sigma_c: float | None,
               noncentered: bool = False, centred_rows: dict | None = None):
    r"""Global mean :math:`\mu \sim N(\bar y, 1)` and offsets
    :math:`b_i \sim N(0, \sigma_b^2)`, :math:`c_j \sim N(0, \sigma_c^2)`.

    The bias scales are constants for ``"fixed"`` priors and
    :math:`\mathrm{HalfNormal}` (scale ``sigma_b``/``sigma_c`` or 1) otherwise:
    the offsets are plain exchangeable effects even under the BPMF prior.
    ``noncentered``: the offsets are :math:`\sigma_b z_i` with free
    :math:`z_i \sim N(0, 1)` (:func:`~bayes_mf._parametrize._normal`), and the free mean is the
    total offset :math:`\mu' = \mu + \bar b + \bar c`, with ``mu`` the
    deterministic :math:`\mu' - \bar b - \bar c`.  The shear has unit
    Jacobian and :math:`\mu' \mid z \sim N(\bar y + \bar b + \bar c, 1)`,
    so the model is unchanged; but the mean rating now has one home in the
    sampler's coordinates instead of a ridge between :math:`\mu` and the
    thousands of :math:`z_i`, which NUTS crosses slowly.
    Returns ``(mu, user_bias, item_bias)``.
    """
    import pymc as pm

    if not noncentered:
        mu = pm.Normal("mu", mu=float(center), sigma=1.0)
    out = []
    for name, sname, dim, value in (("user_bias", "sigma_b", "user", sigma_b),
                                    ("item_bias", "sigma_c", "item", sigma_c)):
        s = _scale(sname, priors, value)
        out.append(_normal(name, dim, s, noncentered, centred_rows=(centred_rows or {}).get(name)))
    if noncentered:
        shift = out[0].mean() + out[1].mean()
        total = pm.Normal("mu_total", mu=float(center) + shift, sigma=1.0)
        mu = pm.Deterministic("mu", total - shift)
    return mu, out[0], out[1]


def sheared_offsets(U, V, priors: str, center: float, sigma_b: float | None, sigma_c: float | None):
    r"""The non-centred offsets in coordinates where the data see no ridge (same model as
    :func:`bias_terms` with ``noncentered=True``).

    With :math:`\bar U, \bar V` the factor means over users and items, the likelihood
    only sees

    .. math::

        \eta_{ij} = m + \sigma_b (s_i - \bar s) + \sigma_c (t_j - \bar t)
                    + (U_i - \bar U)^\top (V_j - \bar V),

    where the free variables are the total offset :math:`m = \mu + \bar b + \bar c +
    \bar U^\top \bar V` and :math:`s_i = (b_i + U_i^\top \bar V)/\sigma_b`,
    :math:`t_j = (c_j + \bar U^\top V_j)/\sigma_c`.  In the plain coordinates a user
    offset trades with :math:`U_i^\top \bar V` and the mean rating sits in :math:`\mu`,
    the offset means or :math:`\bar U^\top \bar V` alike: ridges the data leave flat
    and NUTS crosses slowly (the Gibbs sampler's translation moves,
    :mod:`bayes_mf.gibbs.moves`, mix the same directions).  Each step of the map is a
    shear (a free variable plus a function of the others), so its Jacobian is 1 and the
    priors move with it: :math:`s_i \sim N(U_i^\top \bar V/\sigma_b, 1)`,
    :math:`t_j \sim N(\bar U^\top V_j/\sigma_c, 1)` and :math:`m \sim N(\bar y + \bar b +
    \bar c + \bar U^\top \bar V, 1)` are exactly :math:`b_i \sim N(0, \sigma_b^2)`,
    :math:`c_j \sim N(0, \sigma_c^2)` and :math:`\mu \sim N(\bar y, 1)`.

    ``mu``, ``user_bias`` and ``item_bias`` are stored as deterministics in their usual
    meaning.  Returns ``(m, b_lik, c_lik, U_lik, V_lik)``, the pieces of :math:`\eta` above.
    """
    import pymc as pm

    u_mean, v_mean = U.mean(axis=0), V.mean(axis=0)
    along_u, along_v = (U * v_mean).sum(axis=1), (V * u_mean).sum(axis=1)
    sb, sc = _scale("sigma_b", priors, sigma_b), _scale("sigma_c", priors, sigma_c)
    s = pm.Normal("user_bias_s", mu=along_u / sb, sigma=1.0, dims="user")
    t = pm.Normal("item_bias_s", mu=along_v / sc, sigma=1.0, dims="item")
    b = pm.Deterministic("user_bias", sb * s - along_u, dims="user")
    c = pm.Deterministic("item_bias", sc * t - along_v, dims="item")
    shift = b.mean() + c.mean() + (u_mean * v_mean).sum()
    total = pm.Normal("mu_total", mu=float(center) + shift, sigma=1.0)
    pm.Deterministic("mu", total - shift)
    return total, sb * (s - s.mean()), sc * (t - t.mean()), U - u_mean, V - v_mean
