r"""Blocked Gibbs sampling for (B)PMF: exact conditional Gaussian draws.

The model (all conditionals below are exact; there is no step size, no
gradient and no approximation)

.. math::
    R_{ij} \mid \cdot \sim N\bigl(\mu + \tilde b_i + \tilde c_j
        + \tilde U_i^\top \tilde V_j,\ \tau^{-1}\bigr),
    \qquad (i, j) \in \Omega,

with *effective* user and item vectors built from an own part and optional
sparse features (implicit feedback, side information):

.. math::
    [\tilde U_i, \tilde b_i] = [U_i, b_i] + \sum_l A^{(u)}_{il} W_l,\qquad
    [\tilde V_j, \tilde c_j] = [V_j, c_j] + \sum_m A^{(v)}_{jm} Z_m .

``implicit="user"`` sets :math:`A^{(u)}_{il} = |\Omega_i|^{-1/2}` for the
items :math:`l` user :math:`i` rated (the constrained PMF of Salakhutdinov &
Mnih 2008 / the SVD++ term of Koren 2008, one factor vector :math:`W_l` per
item); ``implicit="item"`` does the same for items (a factor vector per user
who rated them).  Implicit vectors have no bias part (its coordinate is held
at 0) unless ``implicit_bias=True``; user/item side features passed to
:meth:`GibbsPMF.fit` append further columns to :math:`A`, each with a factor
and a bias part.  Without features
:math:`\tilde U = U`, the plain (B)PMF.

Priors (``d = k + 1`` with biases, ``k`` without)

* ``prior="bpmf"``: :math:`U_i \sim N(\mu_U, \Lambda_U^{-1})`,
  :math:`(\mu_U, \Lambda_U) \sim NW(\mu_0 = 0, \beta_0 = 2, W_0 = I, \nu_0 = k)`
  (Salakhutdinov & Mnih 2008), same for :math:`V`; with
  ``factor_means=False`` the means are fixed at 0 and
  :math:`\Lambda_U \sim W(W_0 = I, \nu_0 = k)` alone (with biases the means
  only duplicate :math:`\mu` and the biases);
* ``prior="adaptive"``: :math:`U_i \sim N(0, \lambda_U^{-1} I)`,
  :math:`\lambda_U \sim \mathrm{Gamma}(a_0, b_0)`;
* ``prior="fixed"``: :math:`U_i \sim N(0, \sigma_U^2 I)` with given
  :math:`\sigma_U` (``sigma_u``), likewise ``sigma_v`` and ``sigma_bias``.

Biases :math:`b_i \sim N(0, \lambda_b^{-1})`, :math:`c_j \sim N(0,
\lambda_c^{-1})`; feature vectors :math:`W_{lp} \sim N(0, \lambda_{W,p}^{-1})`
with one precision per column and feature group; all these precisions
:math:`\sim \mathrm{Gamma}(a_0, b_0)` (``gamma_prior``) unless fixed.
:math:`\mu \sim N(0, 100^2)`; noise precision
:math:`\tau \sim \mathrm{Gamma}(a_0, b_0)` unless ``sigma`` is given.
With ``heteroscedastic=True`` a rating's precision is :math:`\tau\alpha_i\beta_j`, a
:math:`\mathrm{Gamma}(a, a)` multiplier per user and per item (:mod:`~bayes_mf.gibbs.noise`); every
sum over ratings below then carries the weight :math:`w_{ij} = \alpha_i\beta_j` (a count :math:`n`
becomes :math:`\sum w`), except the shape :math:`a_0 + n/2` of :math:`\tau`, which keeps the plain count.

Units: :class:`GibbsPMF` samples this model for ``R / rating_unit_`` (a
power of ten, 1 for star ratings: :func:`bayes_mf.base.rating_unit`), so
the Gamma hyperpriors, the Normal-Wishart and the prior on :math:`\mu` hold
on that standardised scale whatever the data's unit; draws are reported
back in rating units (:func:`bayes_mf.results.to_rating_units`).

One sweep draws, in turn,

1. every user's :math:`x_i = [\tilde U_i, \tilde b_i]` given the item side.
   With :math:`\xi_j = [\tilde V_j, 1]` and target
   :math:`y_{ij} = R_{ij} - \mu - \tilde c_j`,

   .. math::
       x_i \mid \cdot \sim N\bigl(\Lambda_i^{-1} h_i,\ \Lambda_i^{-1}\bigr),\quad
       \Lambda_i = P + \tau\sum_{j\in\Omega_i}\xi_j\xi_j^\top,\quad
       h_i = P(m + s_i) + \tau\sum_{j\in\Omega_i} y_{ij}\,\xi_j,

   where :math:`P, m` are the prior precision and mean of the own part and
   :math:`s_i = A^{(u)}_i W` the feature offset; then :math:`[U_i, b_i] = x_i - s_i`.
   All users at once: the sufficient statistics are gathered over the observed
   triplets (never a dense matrix) and each draw is one :math:`d\times d`
   Cholesky factorisation :math:`\Lambda_i = LL^\top` and
   :math:`x_i = L^{-\top}(L^{-1}h_i + \varepsilon_i)`, :math:`\varepsilon_i\sim N(0, I)`
   -- over-relaxed by default (``overrelax``, Adler 1981): with :math:`m_i =
   \Lambda_i^{-1}h_i` and :math:`\alpha = -0.7`, :math:`x_i' = m_i + \alpha(x_i -
   m_i) + \sqrt{1-\alpha^2}\,L^{-\top}\varepsilon_i`, which leaves the conditional
   invariant and makes successive draws anti-correlated;
2. each feature vector :math:`W_l` in turn given everything else.  With
   :math:`G_i = \tau\sum_j \xi_j\xi_j^\top`, :math:`g_i = \tau\sum_j y_{ij}\xi_j`
   (kept from step 1) and :math:`x_i^{(-l)} = x_i - A_{il}W_l`,

   .. math::
       W_l \mid \cdot \sim N\bigl(Q_l^{-1} q_l, Q_l^{-1}\bigr),\quad
       Q_l = \mathrm{diag}(\lambda_W) + \sum_i A_{il}^2 G_i,\quad
       q_l = \sum_i A_{il}\,(g_i - G_i x_i^{(-l)}),

   after which the :math:`x_i` of the users holding feature :math:`l` move by
   :math:`A_{il}\,\Delta W_l`.  Cost: :math:`O(\mathrm{nnz}(A)\,d^2)`, the order of step 1;

   2b. (``interweave=True``, the default) each :math:`W_l` again, now given the
   effective rows :math:`x_i` (their own parts :math:`x_i - A_i W` move instead):
   the data then enter only through the own parts' prior :math:`N(m, P^{-1})`,

   .. math::
       W_l \mid \cdot \sim N\bigl(Q_l^{-1} q_l, Q_l^{-1}\bigr),\quad
       Q_l = \mathrm{diag}(\lambda_W) + \textstyle\sum_i A_{il}^2\,P,\quad
       q_l = P \sum_i A_{il}\,(x_i - m - A_i W + A_{il} W_l),

   at :math:`O(\mathrm{nnz}(A)\,d)`.  The two draws are the two parametrisations
   of the feature hierarchy, interwoven (Yu & Meng 2011): the first moves the
   predictions, the second the split between own parts and features;
3. the same for items and their features;
4. :math:`\mu \mid \cdot \sim N\bigl(\frac{\tau\sum(R - \eta + \mu)}{\tau n + 10^{-4}},
   \frac{1}{\tau n + 10^{-4}}\bigr)` and
   :math:`\tau \mid \cdot \sim \mathrm{Gamma}(a_0 + n/2,\ b_0 + \tfrac12\sum (R-\eta)^2)`;
5. the hyperparameters: for BPMF the Normal-Wishart posterior
   :math:`\Lambda_U \sim \mathcal W\bigl((W_0^{-1} + nS + \tfrac{\beta_0 n}{\beta_0+n}
   (\bar U-\mu_0)(\bar U-\mu_0)^\top)^{-1},\ \nu_0 + n\bigr)`,
   :math:`\mu_U \sim N\bigl(\tfrac{\beta_0\mu_0 + n\bar U}{\beta_0+n},
   ((\beta_0+n)\Lambda_U)^{-1}\bigr)`; Gamma precisions
   :math:`\lambda \sim \mathrm{Gamma}(a_0 + \tfrac{N}{2}, b_0 + \tfrac12\sum\theta^2)`
   over the :math:`N` coefficients :math:`\theta` they govern.

6. the exact moves of :mod:`bayes_mf.gibbs.moves` along the directions the
   blocks above cross slowly (a shift of one side's factors against the
   other side's biases and :math:`\mu`, the bias means against :math:`\mu`,
   the bias scales against their precisions).

Time effects (``time_effects=``, :mod:`bayes_mf.gibbs.effects`) add rating-level
terms :math:`e_{f,g_f(n)}` (an item's time bin, a user's day) to the mean.  The
core above then runs on the working response :math:`R - \sum_f e_f`
(``Sweeper.set_offsets``; the ordinal likelihood's latent ratings come in through
``Sweeper.set_response``), and the sweep gains their exact
conjugate draws after step 3, their Gamma precisions in step 5, and an exact
shift of each parent's own bias against its levels in step 6.

Kernels: with numba importable the per-row loops run compiled (``cache=True``,
so the compile cost is paid once per installation), on ``GibbsPMF(threads=N)``
threads; otherwise an equivalent NumPy implementation (sparse x dense
products, batched Cholesky) is used.  The noise :math:`\varepsilon_i` of
steps 1-3 is counter-based (Philox4x32-10 keyed by chain, sweep, side and row:
:mod:`~bayes_mf.gibbs.counter`), so both families, and any number of threads,
consume the same random numbers: the same draws up to floating-point
rounding between the families, bit for bit between thread counts.

Identifiability: :math:`U, V` are identified only up to rotation; diagnose
``sigma``, ``mu``, biases, prior scales and ``pred_check`` (the mean rating of
a fixed, seeded random subset of training pairs in every draw), never raw
factors.

Where things live
-----------------
``kernels`` (compiled per-row loops; ``numpy_kernels`` their NumPy twins) · ``counter``
(counter-based normals) · ``layout`` (observations by side, feature matrices) ·
``inputs`` (options checked, feature tables to matrices) · ``priors``
(hyperparameter conditionals) · ``moves`` (exact ridge moves) · ``effects``
(rating-level time effects) · ``timefit`` (their timestamps and posterior for
prediction) · ``chain`` (state, sweep, a
run of sweeps) · ``parallel`` (in-process or worker processes) ·
``schedule`` (fixed length or rounds until converged) · ``estimator``
(:class:`GibbsPMF`) · ``simulate`` (data drawn from the exact prior) ·
``twin`` (:func:`~bayes_mf.gibbs.twin.pymc_model`: the same model in PyMC, for
``prior="fixed"``/``"adaptive"``) · ``ordinal`` (``likelihood="ordinal"``: ordered
probit by data augmentation, learned cut-points; the Gaussian core above then runs on the
latent ratings with :math:`\tau = 1`) · ``ordinal_kernels`` (its compiled passes) ·
``ordinal_predict`` (star probabilities, medians, star sets) · ``noise``
(``heteroscedastic=True``: per-user and per-item noise precisions).
"""

# the private kernels and layouts are re-exported for the tests and benchmarks that drive them directly
from .chain import _Settings, run_chain  # noqa: F401
from .estimator import GibbsPMF
from .kernels import HAVE_NUMBA, _feature_step_numpy, _residual_numpy, _side_step_numpy  # noqa: F401
from .layout import _Features, _implicit_matrix, _Side  # noqa: F401
from .parallel import MainGuardWarning, _warm_up  # noqa: F401
from .twin import pymc_model

if HAVE_NUMBA:
    from .kernels import _feature_step_numba, _residual_numba, _side_step_numba  # noqa: F401

__all__ = ["GibbsPMF", "HAVE_NUMBA", "MainGuardWarning", "pymc_model"]
