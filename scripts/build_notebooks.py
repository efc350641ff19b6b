"""Write the notebooks in notebooks/ from the cell sources below and execute them.

    .venv/bin/python scripts/build_notebooks.py            # build + execute (stores outputs)
    .venv/bin/python scripts/build_notebooks.py --no-run   # build only

Keeping the sources here makes the notebooks reviewable as code; CI executes the
stored notebooks with nbmake (``pytest --nbmake notebooks``) on their small settings.
"""

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]

QUICKSTART = [
    ("md", """# bayes_mf quickstart

Ratings simulated from the PMF model (so the truth is known), a fast point estimate
(ALS), a MAP fit, and a full posterior with the exact Gibbs sampler, which runs until its
diagnostics pass -- then predictions with honest intervals. The notebook runs in about a
minute."""),
    ("code", """import bayes_mf as bmf

sim = bmf.datasets.simulate_pmf(200, 150, 3, density=0.15, noise_sd=0.5,
                                global_mean=3.5, bias_sd=0.3, random_seed=0)
train, test = bmf.train_test_split(sim.ratings, 0.2, random_seed=0)
train, test"""),
    ("md", "## MAP, then the full posterior, then predictions"),
    ("code", """map_fit = bmf.PMF(n_factors=3, method="map", random_seed=0).fit(train)
gibbs = bmf.GibbsPMF(n_factors=3, random_seed=0, progressbar=False).fit(train)
print(f"converged: {gibbs.converged_} after {gibbs.n_sweeps_} sweeps per chain")
pred = gibbs.predict(test)         # user, item, mean, sd, lo, hi (90 % predictive interval), rating
pred.head()"""),
    ("code", """import pandas as pd

als = bmf.ALS(n_factors=3, reg=2.0, reg_bias=2.0, random_seed=0).fit(train)
pd.DataFrame({
    "ALS (point)": bmf.evaluate.score(als.predict(test)),
    "MAP (point)": bmf.evaluate.score(map_fit.predict(test)),
    "Gibbs (posterior)": bmf.evaluate.score(pred),
}).T.round(3)"""),
    ("md", """Point estimates have no spread: their coverage and log predictive density are
`NaN`, not made up. The Gibbs intervals should cover about 90 % of the held-out ratings.
`bmf.PMF(method="nuts")` has the same interface; it checks its own diagnostics at fit time
and warns when they fail."""),
    ("md", """## The posterior against the known truth

The data were simulated, so the noise-free mean rating of every test pair and the noise sd
(0.5) are known. Intervals of the *mean* rating (`include_noise=False`) should cover the true
mean about 90 % of the time, and the posterior of σ should sit near 0.5."""),
    ("code", """import numpy as np

truth = sim.mean(test.user_ids, test.item_ids)       # noise-free mean of each test pair
mean_pred = gibbs.predict(test, include_noise=False)   # 90 % interval of the mean rating
sigma = gibbs.result_["posterior"]["sigma"].to_numpy().ravel()
pd.Series({
    "RMSE to the true mean, Gibbs posterior mean": bmf.evaluate.rmse(truth, mean_pred["mean"]),
    "RMSE to the true mean, MAP": bmf.evaluate.rmse(truth, map_fit.predict(test)["mean"]),
    "RMSE to the true mean, ALS": bmf.evaluate.rmse(truth, als.predict(test)["mean"]),
    "share of true means inside the 90 % interval":
        bmf.evaluate.coverage(truth, mean_pred["lo"], mean_pred["hi"]),
    "sigma: true": sim.sigma,
    "sigma: posterior mean": sigma.mean(),
    "sigma: 90 % interval low": np.quantile(sigma, 0.05),
    "sigma: 90 % interval high": np.quantile(sigma, 0.95),
}).round(3)"""),
    ("md", "## Diagnostics on identifiable quantities (never on U or V)"),
    ("code", """bmf.diagnostics.convergence(gibbs.result_, warn=False)"""),
    ("code", """gibbs.result_"""),
    ("md", "## Recommendations with uncertainty"),
    ("code", """gibbs.recommend(user=0, n=5, strategy="ucb")"""),
]

MOVIELENS = [
    ("md", """# MAP versus full Bayes on MovieLens 100K

Fold u1 (the canonical `u1.base` / `u1.test` split), rank 10. A point estimate (ALS),
MAP with type-II scales, and the exact Gibbs posterior, with the same split, rank, seed and
clipping. The Gibbs sampler runs with its defaults: it samples in rounds until every
identifiable quantity has converged (R-hat ≤ 1.01, bulk and tail ESS ≥ 400), a few minutes on
two cores; the flagship numbers in the README come from `bayes-mf compare` and `benchmarks/`."""),
    ("code", """import warnings

import pandas as pd

import bayes_mf as bmf
from bayes_mf import evaluate, plots
from bayes_mf.data import UnseenIdsWarning

train, test = bmf.datasets.movielens_fold("100k", 1)
titles = bmf.datasets.movielens_items("100k")["title"]
print(train, test, "unseen test rows:", test.meta["n_unseen"])"""),
    ("code", """als = bmf.ALS(n_factors=10, random_seed=0).fit(train)
map_fit = bmf.PMF(n_factors=10, method="map", random_seed=0).fit(train)
gibbs = bmf.GibbsPMF(n_factors=10, random_seed=0, progressbar=False).fit(train)
print(f"converged: {gibbs.converged_} after {gibbs.n_sweeps_} sweeps per chain "
      f"({gibbs.result_.attrs['rounds']} rounds, {gibbs.fit_seconds_:.0f} s)")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UnseenIdsWarning)   # 32 unseen pairs, predicted from the prior
    preds = {"als": als.predict(test), "map": map_fit.predict(test), "gibbs": gibbs.predict(test)}
pd.DataFrame({k: evaluate.score(v) for k, v in preds.items()}).T.assign(
    fit_seconds=[als.fit_seconds_, map_fit.fit_seconds_, gibbs.fit_seconds_]).round(4)"""),
    ("md", "## Convergence of what is identified: σ, biases, predicted ratings"),
    ("code", """bmf.diagnostics.convergence(gibbs.result_, warn=False)"""),
    ("md", """Every row passes: the fit checked this table while it sampled and stopped once it did
(it would have warned otherwise). `pred_check` (predicted ratings of 50 fixed training pairs) is
what matters for predictions. `mu` and the biases trade an additive constant (only
`mu + b_i + c_j` reaches the data) and the factor means and scales trade between U and V; the
sampler's exact moves along those directions are what make them mix. `U` and `V` are never
diagnosed (rotation, sign and permutation leave the posterior unchanged)."""),
    ("code", """plots.rank_plot(gibbs.result_);"""),
    ("md", "## Posterior mean against the point estimate, and interval width against data"),
    ("code", """plots.posterior_vs_point(preds["gibbs"], preds["als"], train);"""),
    ("code", """plots.interval_width_vs_activity(preds["gibbs"], train, label="gibbs");"""),
    ("md", "## Calibration and a posterior predictive check"),
    ("code", """plots.calibration({"gibbs": evaluate.coverage_curve(gibbs, test)});"""),
    ("code", """plots.ppc_ratings(gibbs, test);"""),
    ("md", """## Does full Bayes help users with few ratings?

BPMF (2008) reports the largest gains for users with few ratings."""),
    ("code", """evaluate.by_activity(preds, train).round(4)"""),
    ("code", """plots.rmse_by_activity(preds, train);"""),
    ("md", "## Recommendations for user 1: by mean, and optimistically (upper bound)"),
    ("code", """gibbs.recommend(1, n=5, strategy="mean", titles=titles)"""),
    ("code", """gibbs.recommend(1, n=5, strategy="ucb", titles=titles)"""),
]


OWN_CSV = [
    ("md", """# From your own CSV to a plot of posterior uncertainty

Your ratings file, read with your column names; a temporal split (each user's latest
ratings held out); a fast point estimate (ALS, λ chosen by validation) and an exact Gibbs
posterior run until converged; predictions with intervals; a figure of posterior uncertainty; ranking
metrics. The CSV here is made up on the spot (a small simulated data set written to a
temporary folder) so that the notebook runs anywhere in well under a minute: replace `path`
and the column names with yours."""),
    ("code", """import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_mf as bmf

# a stand-in for your file: 1-5 stars with a timestamp, under your own column names
sim = bmf.datasets.simulate_pmf(150, 80, 2, density=0.2, noise_sd=0.6, global_mean=3.4, bias_sd=0.4,
                                sigma_u=0.7, sigma_v=0.7, random_seed=3)
rng = np.random.default_rng(3)
stars = np.clip(np.rint(sim.ratings.rating), 1, 5).astype(int)
folder = Path(tempfile.mkdtemp())
path = folder / "my_ratings.csv"
pd.DataFrame({"user_id": sim.ratings.user_ids, "movie_id": sim.ratings.item_ids, "stars": stars,
              "timestamp": rng.integers(1_600_000_000, 1_700_000_000, stars.size)}).to_csv(path, index=False)
print(path.read_text()[:120])"""),
    ("md", "## Read it, and hold out each user's two latest ratings"),
    ("code", """frame = pd.read_csv(path)
ratings = bmf.Ratings.from_frame(frame, user_col="user_id", item_col="movie_id", rating_col="stars",
                                 scale=(1, 5))
train, test = bmf.splits.leave_last_k_out(ratings, k=2, timestamps=frame["timestamp"], unseen="prior")
train, test"""),
    ("md", "## Fit: ALS (λ by validation) and the Gibbs posterior"),
    ("code", """als = bmf.ALS(n_factors=2, random_seed=0).fit(train)
gibbs = bmf.GibbsPMF(n_factors=2, random_seed=0, progressbar=False).fit(train)
print(f"ALS chose lambda = {als.reg_:.3g}; Gibbs converged: {gibbs.converged_} "
      f"after {gibbs.n_sweeps_} sweeps per chain ({gibbs.fit_seconds_:.0f} s)")"""),
    ("md", """With its defaults `GibbsPMF` samples in rounds until every identifiable quantity passes
R-hat ≤ 1.01 and ESS ≥ 400 (`bmf.diagnostics.convergence(gibbs.result_)` shows the table),
and warns when it cannot within `max_seconds`."""),
    ("md", "## Predictions with 90 % predictive intervals"),
    ("code", """import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", bmf.UnseenIdsWarning)   # counted in pred.attrs["n_unseen"]
    pred = gibbs.predict(test)
    scores = pd.DataFrame({"ALS": bmf.evaluate.score(als.predict(test)),
                           "Gibbs": bmf.evaluate.score(pred)}).T.round(3)
pred.head()"""),
    ("code", """scores   # coverage: share of held-out ratings inside the 90 % interval; NaN: no interval"""),
    ("md", """## Posterior uncertainty

Left: interval width against how much each user and item was seen in training (less data,
wider intervals). Right: one user's top 8 with the interval of each predicted rating."""),
    ("code", """import matplotlib.pyplot as plt

fig = plt.figure(figsize=(13, 4), layout="constrained")
left, right = fig.subfigures(1, 2, width_ratios=[2, 1])
bmf.plots.interval_width_vs_activity(pred, train, label="Gibbs", fig=left)
bmf.plots.top_n_intervals(gibbs.recommend(train.users[0], 8), ax=right.subplots());"""),
    ("md", """## Ranking metrics

Relevant = a held-out rating of 4 stars or more; candidates = every item the user did not
rate in training. UCB ranks by mean + 1.645 sd, Thompson by one posterior draw per user."""),
    ("code", """rows = {"ALS, mean": bmf.ranking.evaluate_ranking(als, test, k=5, threshold=4)}
for strategy in ("mean", "ucb", "thompson"):
    rows[f"Gibbs, {strategy}"] = bmf.ranking.evaluate_ranking(gibbs, test, k=5, threshold=4,
                                                              strategy=strategy)
pd.DataFrame(rows).T.drop(columns="strategy")"""),
    ("md", "## Cross-validation: 5 folds of the whole file"),
    ("code", """cv = bmf.evaluate.cross_validate(bmf.ALS(n_factors=2), ratings, k=5, random_seed=0,
                                 ranking_k=5)
cv.round(3)"""),
    ("code", """cv.drop(columns="fold").mean().round(3)   # the cross-validated estimate"""),
]

CUSTOM = [
    ("md", """# Your own likelihood: a Student-t PMF fitted through the package

The PyMC round trip: take the package's model, change it, fit it with `PMF.from_model`, and
keep `predict`, `recommend`, the diagnostics and ArviZ. Here the Normal noise becomes a
Student-t, on small simulated data whose noise has heavy tails. Runs in well under a minute."""),
    ("code", """from dataclasses import replace

import numpy as np
import pymc as pm

import bayes_mf as bmf

sim = bmf.datasets.simulate_pmf(40, 30, 2, density=0.5, noise_sd=0.1, random_seed=3)
rng = np.random.default_rng(0)
train = replace(sim.ratings, rating=sim.ratings.rating + 0.3 * rng.standard_t(2.0, len(sim.ratings)))
train"""),
    ("md", """## Change the model

`build_model` builds the package's model; the linear predictor is the deterministic `eta`
(`mu + b_i + c_j + U_i·V_j` over the observed pairs). A `likelihood=` hook replaces the
observation model: it gets the mean, the noise scale `sigma`, the observed ratings and the
`dims` to pass on, and must return the observed variable named `rating`. More priors or
deterministics can be added inside `with m:`."""),
    ("code", """def student_t(mean, sigma, observed, **kw):
    nu = pm.Gamma("nu", 2.0, 0.1)                      # degrees of freedom, learned
    return pm.StudentT("rating", nu=nu, mu=mean, sigma=sigma, observed=observed, **kw)

# non-centred: the geometry NUTS samples well when the scales are learned
m = bmf.models.build_model(train, 2, priors="adaptive", parametrization="noncentered",
                           likelihood=student_t)
m"""),
    ("md", """## Fit it through the package

`PMF.from_model` copies the model's options (rank, priors, biases, link) and fits *this*
model: NUTS samples it as given, started at the package's MAP point (`"advi"` and `"map"`
hold the factor scales at their type-II values). The result has the usual format, plus `nu`.
The short chains here are for speed: the convergence warnings say so; use more draws for real work."""),
    ("code", """t_fit = bmf.PMF.from_model(m, method="nuts", draws=150, tune=150, chains=2,
                           progressbar=False).fit(train)
normal = bmf.PMF(2, method="nuts", draws=150, tune=150, chains=2, progressbar=False).fit(train)
print(t_fit.result_.attrs["model"], "| nu:", float(t_fit.result_["posterior"]["nu"].median()))"""),
    ("md", """## Predictions honour the likelihood

`predict` draws from the model's own posterior predictive (`pm.sample_posterior_predictive`
at the requested pairs), so the Student-t intervals have heavier tails than the Normal ones:
compare the 98 % and 50 % interval widths. Unseen users or items raise an error for a
custom model (pass `unseen="drop"`)."""),
    ("code", """import pandas as pd

pairs = (train.user_ids[:50], train.item_ids[:50])
ratio = {}
for name, fit in (("Student-t", t_fit), ("Normal", normal)):
    wide, narrow = fit.predict(pairs, interval=0.98), fit.predict(pairs, interval=0.5)
    ratio[name] = float(np.median((wide.hi - wide.lo) / (narrow.hi - narrow.lo)))
pd.Series(ratio, name="98 % / 50 % interval width").round(2)"""),
    ("code", """t_fit.predict(pairs).head()"""),
    ("md", """## Diagnostics, ArviZ and recommendations work as before

The stored `log_likelihood` and `posterior_predictive` come from the Student-t, so
`az.loo`/`az.compare` compare the two observation models on the training ratings."""),
    ("code", """import warnings

import arviz as az

print("converged:", t_fit.converged_)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")            # Pareto-k warnings on this tiny data set
    print(az.compare({"Student-t": t_fit.result_, "Normal": normal.result_})[["rank", "elpd"]])
t_fit.recommend(train.user_ids[0], n=3)"""),
]


def build(cells):
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-run", action="store_true")
    ap.add_argument("--only", default=None, help="comma-separated notebook numbers to build, e.g. 01,03")
    args = ap.parse_args()
    out = ROOT / "notebooks"
    out.mkdir(exist_ok=True)
    books = (("01_quickstart", QUICKSTART), ("02_map_vs_bayes_movielens", MOVIELENS),
             ("03_your_own_csv", OWN_CSV), ("04_custom_likelihood", CUSTOM))
    for name, cells in books:
        if args.only and name[:2] not in args.only.split(","):
            continue
        nb = build(cells)
        if not args.no_run:
            from nbclient import NotebookClient

            NotebookClient(nb, timeout=900, kernel_name="python3",
                           resources={"metadata": {"path": str(out)}}).execute()
        path = out / f"{name}.ipynb"
        nbformat.write(nb, path)
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
