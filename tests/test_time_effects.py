"""Time effects of GibbsPMF (gibbs.effects): level coding, exact conditionals, fit/predict API."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bayes_mf.data import Ratings
from bayes_mf.evaluate import rmse
from bayes_mf.gibbs import GibbsPMF
from bayes_mf.gibbs.chain import Sweeper, _Settings, initial_state
from bayes_mf.gibbs.effects import DAY, TimeCoding

T0 = 880_000_000  # a Unix time in the ML-100K period


def _settings(**kw):
    base = dict(n_factors=1, prior="fixed", biases=True, global_mean=True, sigma=0.5, sigma_u=1e-3,
                sigma_v=1e-3, sigma_bias=1.0, gamma_prior=(1.0, 1.0), init_scale=1e-3, backend="numpy",
                store_factors=True)
    base.update(kw)
    return _Settings(**base)


def _tiny(seed=0, n_users=4, n_items=6, n_days=3):
    """Ratings of every (user, item) on a few days, with a real day effect per user."""
    rng = np.random.default_rng(seed)
    rows = []
    day_effect = rng.normal(0, 0.8, (n_users, n_days))
    for u in range(n_users):
        for i in range(n_items):
            d = int(rng.integers(n_days))
            t = T0 + d * DAY + int(rng.integers(0, 3600))
            rows.append((u, i, 3.0 + 0.3 * u - 0.1 * i + day_effect[u, d] + rng.normal(0, 0.5), t))
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def _problem(frame, sides, n_bins=2):
    r = Ratings.from_frame(frame)
    t = frame["timestamp"].to_numpy()
    code = TimeCoding(sides, n_bins, t, r.user, r.item, r.n_users, r.n_items)
    problem = {"user": r.user.astype(np.int64), "item": r.item.astype(np.int64), "rating": r.rating.copy(),
               "n_users": r.n_users, "n_items": r.n_items, "check_user": np.zeros(0, np.int64),
               "check_item": np.zeros(0, np.int64), "user_features": None, "item_features": None,
               "effects": code.families(r.user, r.item, t), "check_pos": np.zeros(0, np.int64)}
    return r, code, problem


def _incidence(problem):
    """Rating x level indicator matrix of every family, side by side."""
    blocks = []
    for f in problem["effects"]:
        Z = np.zeros((len(problem["rating"]), len(f["parent"])))
        Z[np.arange(len(problem["rating"])), f["index"]] = 1.0
        blocks.append(Z)
    return np.hstack(blocks)


# ----------------------------------------------------------------------------- coding
def test_time_coding_bins_days_and_unseen_levels():
    t = np.array([T0, T0 + 10 * DAY, T0 + 30 * DAY, T0 + 30 * DAY + 60])
    user, item = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 0])
    code = TimeCoding(("item", "user"), 3, t, user, item, 2, 2)
    item_f, user_f = code.families(user, item, t)
    # item bins of width 10 days: t0 -> bin 0, +10 d -> bin 1, +30 d -> last bin (2);
    # levels (item 0, bin 0), (item 0, bin 2), (item 1, bin 1)
    assert list(item_f["parent"]) == [0, 0, 1] and list(item_f["index"]) == [0, 2, 1, 1]
    # user days: user 1's two ratings on one day share a level
    assert user_f["index"][2] == user_f["index"][3] and len(user_f["parent"]) == 3
    # a test time past the training range goes to the last item bin; a new day of a user is unseen
    assert code.levels("item", np.array([0]), np.array([T0 + 99 * DAY]))[0] == 1
    assert code.levels("item", np.array([1]), np.array([T0 + 99 * DAY]))[0] == -1  # item 1's last bin: unseen
    assert code.levels("user", np.array([0]), np.array([T0 + 5 * DAY]))[0] == -1
    assert code.levels("user", np.array([-1]), np.array([T0]))[0] == -1  # unseen user
    assert code.levels("user", np.array([1]), np.array([T0 - 400 * DAY]))[0] == -1  # before training


# ----------------------------------------------------------------------------- exactness
def test_effect_step_samples_the_exact_joint_conditional():
    """Drawing the two families in turn (the rest fixed) has the Gaussian conditional of both as its
    stationary law: precision diag(lambda) + tau Z'Z, mean its inverse times tau Z'(R - eta)."""
    frame = _tiny(seed=1)
    _, _, problem = _problem(frame, ("item", "user"))
    st = _settings()
    s = initial_state(problem, st, 3)
    sw = Sweeper(problem, st)
    s.effects.lam = {"time_item": 2.0, "time_user": 0.7}
    eta = s.mu + (s.X["user"][sw.user, :1] * s.X["item"][sw.item, :1]).sum(1)
    eta += s.X["user"][sw.user, 1] + s.X["item"][sw.item, 1]
    Z = _incidence(problem)
    lam = np.concatenate([np.full(len(f["parent"]), s.effects.lam[f["name"]]) for f in problem["effects"]])
    prec = np.diag(lam) + s.tau * Z.T @ Z
    cov = np.linalg.inv(prec)
    mean = cov @ (s.tau * Z.T @ (problem["rating"] - eta))
    draws = []
    for t in range(6000):
        sw.effects.step(sw, s)
        if t >= 200:
            draws.append(np.concatenate([s.effects.values[f["name"]] for f in problem["effects"]]))
    draws = np.array(draws)
    # batch means absorb the autocorrelation of the two-block sweep
    batches = draws.reshape(58, 100, -1).mean(axis=1)
    se = batches.std(axis=0, ddof=1) / math.sqrt(len(batches))
    assert np.all(np.abs(draws.mean(0) - mean) <= 4.5 * se + 1e-9)
    np.testing.assert_allclose(draws.std(0), np.sqrt(np.diag(cov)), rtol=0.08)
    # and the core sees the working response R - offsets
    np.testing.assert_allclose(sw.rating, problem["rating"] - Z @ draws[-1])


def test_parent_shift_draws_its_exact_conditional():
    """The shift a_p of one item's own bias against its bins: empirical moments from a fixed
    state match the density pi(c + a, e - a) integrated on a grid."""
    frame = _tiny(seed=2)
    _, _, problem = _problem(frame, ("item",), n_bins=3)
    st = _settings()
    s = initial_state(problem, st, 5)
    sw = Sweeper(problem, st)
    s.effects.lam["time_item"] = 3.0
    s.lam_b["item"] = 0.5
    own = {side: s.X[side].copy() for side in ("user", "item")}  # no features: own = effective
    c0, e0 = own["item"][:, 1].copy(), s.effects.values["time_item"].copy()
    parent = problem["effects"][0]["parent"]
    shifts = []
    for _ in range(20000):
        s.effects.values["time_item"] = e0.copy()
        o = {side: v.copy() for side, v in own.items()}
        s.X["item"][:, 1] = c0
        sw.effects.shift(sw, s, o)
        shifts.append(o["item"][:, 1] - c0)
        # predictions unchanged: every level moved against its parent
        np.testing.assert_allclose(s.effects.values["time_item"] + o["item"][parent, 1], e0 + c0[parent])
    shifts = np.array(shifts)
    grid = np.linspace(-6, 6, 4001)
    for p in range(len(c0)):
        mine = parent == p
        logp = (-0.5 * 0.5 * (c0[p] + grid) ** 2
                - 0.5 * 3.0 * ((e0[mine][:, None] - grid) ** 2).sum(0))
        w = np.exp(logp - logp.max())
        w /= w.sum()
        m = float(w @ grid)
        sd = math.sqrt(float(w @ (grid - m) ** 2))
        assert abs(shifts[:, p].mean() - m) < 4 * sd / math.sqrt(len(shifts))
        assert shifts[:, p].std() == pytest.approx(sd, rel=0.03)


def test_effect_scale_move_keeps_its_exact_orbit_conditional():
    """Rescaling a family (e -> g e, lambda -> lambda / g^2) again and again from one state: log g
    has the density the model gives on that orbit, written out here from the ratings, the effects'
    Normal prior, the Gamma prior of lambda and the Jacobian g^(L - 2)."""
    frame = _tiny(seed=5)
    _, _, problem = _problem(frame, ("user",))
    st = _settings()
    s = initial_state(problem, st, 3)
    sw = Sweeper(problem, st)
    name, idx = "time_user", problem["effects"][0]["index"]
    s.effects.lam[name] = lam0 = 2.0
    n_levels = len(problem["effects"][0]["parent"])
    s.effects.values[name] = e0 = np.random.default_rng(1).normal(0.0, 0.6, n_levels)
    sw.effects.sync(sw, s)
    y, eta, tau = problem["rating"], sw.linear_predictor(s), s.tau
    ts = []
    for _ in range(20000):
        sw.effects.rescale(sw, s, 0.0)
        g = s.effects.values[name] / e0
        np.testing.assert_allclose(g, g[0], rtol=1e-9)
        assert s.effects.lam[name] == pytest.approx(lam0 / g[0] ** 2, rel=1e-9)
        ts.append(math.log(g[0]))
    # the core sees the rescaled offsets
    np.testing.assert_allclose(sw.rating, y - s.effects.values[name][idx], rtol=1e-12)
    a0, b0 = st.gamma_prior
    L = len(e0)
    grid = np.linspace(-3, 3, 6001)
    logp = np.array([-0.5 * tau * np.sum((y - eta - math.exp(t) * e0[idx]) ** 2)
                     + np.sum(0.5 * math.log(lam0 * math.exp(-2 * t)) - 0.5 * lam0 * e0**2)
                     + (a0 - 1) * math.log(lam0 * math.exp(-2 * t)) - b0 * lam0 * math.exp(-2 * t)
                     + (L - 2) * t for t in grid])
    w = np.exp(logp - logp.max())
    w /= w.sum()
    m = float(w @ grid)
    sd = math.sqrt(float(w @ (grid - m) ** 2))
    ts = np.array(ts)
    assert abs(ts.mean() - m) < 4 * sd / math.sqrt(len(ts) / 10), (ts.mean(), m)
    assert ts.std() == pytest.approx(sd, rel=0.05)


def test_full_chain_matches_the_brute_force_posterior():
    """End to end (every block and move of the sweep): with factors all but switched off (prior
    sd 0.02), known noise and fixed bias priors the model is Gaussian given the two effect
    precisions; integrating those on a grid gives the exact posterior means of mu, the effects
    and sigma_time_*."""
    import arviz as az

    frame = _tiny(seed=3)
    sigma = 0.5
    model = GibbsPMF(1, prior="fixed", sigma=sigma, sigma_u=0.02, sigma_v=0.02, sigma_bias=1.0,
                     time_effects="both", time_bins=2, rating_unit=1, draws=1500, tune=200, chains=2,
                     cores=1, random_seed=4).fit(frame)
    r, _, problem = _problem(frame, ("item", "user"))
    fam = problem["effects"]
    n_b, n_c = r.n_users, r.n_items
    Z = np.hstack([np.ones((len(r), 1)), np.eye(n_b)[r.user], np.eye(n_c)[r.item], _incidence(problem)])
    sizes = [len(f["parent"]) for f in fam]
    y = r.rating
    # the prior precision of (mu, b, c) is fixed; the two effect precisions are integrated out
    base = np.concatenate([[1e-4], np.ones(n_b + n_c)])
    logs = np.linspace(-5, 4, 70)
    post_logp, theta_means, inv_sqrt = [], [], []
    for li in logs:
        for lu in logs:
            lam = np.concatenate([base, np.full(sizes[0], math.exp(li)), np.full(sizes[1], math.exp(lu))])
            S = sigma**2 * np.eye(len(y)) + (Z / lam) @ Z.T
            sign, logdet = np.linalg.slogdet(S)
            loglik = -0.5 * (logdet + y @ np.linalg.solve(S, y))
            # Gamma(1, 1) prior on each precision, on the log scale (Jacobian lambda)
            post_logp.append(loglik + li - math.exp(li) + lu - math.exp(lu))
            P = np.diag(lam) + Z.T @ Z / sigma**2
            theta_means.append(np.linalg.solve(P, Z.T @ y / sigma**2))
            inv_sqrt.append((math.exp(-li / 2), math.exp(-lu / 2)))
    w = np.exp(np.array(post_logp) - max(post_logp))
    w /= w.sum()
    exact = w @ np.array(theta_means)
    exact_sig = w @ np.array(inv_sqrt)
    post = model.result_["posterior"]
    checks = (("mu", exact[0]), ("sigma_time_item", exact_sig[0]), ("sigma_time_user", exact_sig[1]))
    for name, value in checks:
        err = float(az.mcse(post[name]))
        got = float(post[name].mean())
        assert abs(got - value) <= 4 * err + 0.01, (name, got, value)
    # every effect's posterior mean (their draws are kept, over the levels of each family)
    got = np.concatenate([post[name].mean(("chain", "draw")) for name in ("time_item", "time_user")])
    want = exact[1 + n_b + n_c:]
    assert np.max(np.abs(got - want)) < 0.08, np.abs(got - want)


# ----------------------------------------------------------------------------- API
def test_fit_predict_with_timestamps_and_clear_errors():
    frame = _tiny(seed=5, n_users=12, n_items=16, n_days=4)
    test_rows = frame.sample(frac=0.25, random_state=0)
    train = frame.drop(test_rows.index)
    fast = dict(draws=80, tune=40, chains=2, cores=1, random_seed=0)
    plain = GibbsPMF(2, **fast).fit(train)
    timed = GibbsPMF(2, time_effects="user", **fast).fit(train)
    assert "time effects (user)" in timed.result_.attrs["model"]
    assert "sigma_time_user" in timed.convergence_.index  # in the convergence check set
    pred = timed.predict(test_rows)
    # the simulated day effects are large: modelling them must beat the plain model on held-out days
    plain_rmse = rmse(test_rows["rating"], plain.predict(test_rows)["mean"])
    assert rmse(test_rows["rating"], pred["mean"]) < plain_rmse
    assert (pred["lo"] < pred["mean"]).all() and (pred["mean"] < pred["hi"]).all()
    draws = timed.predict_draws(test_rows.iloc[:5])
    np.testing.assert_allclose(draws.mean(("chain", "draw")), pred["mean"].iloc[:5], atol=0.25)
    # a day the user never rated on in training: the effect's prior mean, 0, exactly; a seen day:
    # that level's draws, draw by draw
    post = timed.result_["posterior"]
    u, i = train["user"].iloc[0], train["item"].iloc[0]
    uc, ic = timed.users_.get_loc(u), timed.items_.get_loc(i)
    base = (post["mu"] + post["user_bias"][:, :, uc] + post["item_bias"][:, :, ic]
            + (post["U"][:, :, uc] * post["V"][:, :, ic]).sum("factor"))
    level = timed.time_coding_.levels("user", np.array([uc]), train["timestamp"].iloc[:1].to_numpy())[0]
    far = pd.DataFrame({"user": [u, u], "item": [i, i],
                        "timestamp": [T0 + 300 * DAY, int(train["timestamp"].iloc[0])]})
    both = timed.predict(far)
    assert both["mean"].iloc[0] == pytest.approx(float(base.mean()))
    assert both["mean"].iloc[1] == pytest.approx(float((base + post["time_user"][:, :, level]).mean()))
    with pytest.raises(ValueError, match="needs a 'timestamp' column"):
        timed.predict(test_rows.drop(columns="timestamp"))
    with pytest.raises(ValueError, match="needs a 'timestamp' column"):
        GibbsPMF(2, time_effects="item", **fast).fit(train.drop(columns="timestamp"))
    bad = train.assign(timestamp=train["timestamp"].astype(float))
    bad.iloc[3, bad.columns.get_loc("timestamp")] = np.nan
    with pytest.raises(ValueError, match="'timestamp' of row 3 is nan"):
        GibbsPMF(2, time_effects="item", **fast).fit(bad)
    dup = pd.concat([train, train.iloc[:1]])
    with pytest.raises(ValueError, match="duplicate pairs were merged"):
        GibbsPMF(2, time_effects="user", **fast).fit(dup, duplicates="mean")
    with pytest.raises(ValueError, match="biases=True"):
        GibbsPMF(2, time_effects="item", biases=False, **fast).fit(train)
    with pytest.raises(ValueError, match="time_effects must be"):
        GibbsPMF(2, time_effects="day", **fast).fit(train)


def test_ratings_meta_timestamps_and_unit_scaling():
    frame = _tiny(seed=6, n_users=6, n_items=5)
    r = Ratings.from_frame(frame)
    r.meta["timestamp"] = frame["timestamp"].to_numpy()
    fast = dict(draws=30, tune=10, chains=1, cores=1, random_seed=2, time_effects="both")
    a = GibbsPMF(2, **fast).fit(r)
    # the same ratings in cents: every effect and its scale 100 x, predictions too
    cents = Ratings.from_frame(frame.assign(rating=frame["rating"] * 100))
    cents.meta["timestamp"] = r.meta["timestamp"]
    b = GibbsPMF(2, rating_unit=100.0, **fast).fit(cents)
    np.testing.assert_allclose(b.result_["posterior"]["time_user"], 100 * a.result_["posterior"]["time_user"],
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(b.result_["posterior"]["sigma_time_item"],
                               100 * a.result_["posterior"]["sigma_time_item"], rtol=1e-6)
    np.testing.assert_allclose(b.predict(cents)["mean"], 100 * a.predict(r)["mean"], rtol=1e-6)


def test_a_time_effects_fit_saves_and_loads_with_its_time_coding(tmp_path):
    """A loaded fit predicts exactly as the fitted one: same time levels, same per-level draws."""
    from bayes_mf import io

    frame = _tiny(seed=7)
    model = GibbsPMF(2, time_effects="both", time_bins=2, draws=10, tune=5, chains=1, cores=1).fit(frame)
    io.save(model, tmp_path / "m")
    loaded = io.load(tmp_path / "m")
    code, back = model.time_coding_, loaded.time_coding_
    assert back.sides == code.sides and (back.t_min, back.t_max) == (code.t_min, code.t_max)
    for side in code.sides:
        np.testing.assert_array_equal(back.keys[side], code.keys[side])
    # a seen day, an unseen day and a time before training: levels and predictions agree
    test = frame.iloc[:6].copy()
    test.loc[test.index[1], "timestamp"] += 40 * DAY
    test.loc[test.index[2], "timestamp"] -= 40 * DAY
    pd.testing.assert_frame_equal(loaded.predict(test), model.predict(test))
    a = model.predict_draws(test, max_draws=10, random_seed=1)
    b = loaded.predict_draws(test, max_draws=10, random_seed=1)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_time_effects_save_without_its_coding_is_refused(tmp_path):
    from bayes_mf import io
    from bayes_mf._saveschema import CorruptSaveError

    model = GibbsPMF(2, time_effects="user", draws=10, tune=5, chains=1, cores=1).fit(_tiny(seed=7))
    model.time_keys_user_ = model.time_keys_user_[1:]  # one level fewer than the posterior has
    io.save(model, tmp_path / "m")
    with pytest.raises(CorruptSaveError, match="time level"):
        io.load(tmp_path / "m")
    model.time_keys_user_ = model.time_coding_.keys["user"][::-1].copy()
    io.save(model, tmp_path / "m2")
    with pytest.raises(CorruptSaveError, match="sorted and unique"):
        io.load(tmp_path / "m2")
    del model.time_range_
    io.save(model, tmp_path / "m3")
    with pytest.raises(CorruptSaveError, match="no time coding"):
        io.load(tmp_path / "m3")


def test_recommend_scores_every_item_at_one_time():
    """recommend() of a time-effects fit: the means predict() gives at that time, from a date too."""
    frame = _tiny(seed=5, n_users=12, n_items=16, n_days=4)
    timed = GibbsPMF(2, time_effects="both", time_bins=2, draws=60, tune=30, chains=2, cores=1,
                     random_seed=0).fit(frame)
    code, user = timed.time_coding_, frame["user"].iloc[0]
    # default: the day after training, a day nobody rated on (user-day effects from their prior)
    recs = timed.recommend(user, 16, exclude_rated=False)
    assert recs.attrs["at"] == code.t_max + DAY
    new_day = pd.DataFrame({"user": user, "item": recs["item"], "timestamp": code.t_max + DAY})
    np.testing.assert_allclose(recs["mean"], timed.predict(new_day)["mean"], rtol=1e-12)
    # a day the user rated on: that day's effect moves every item's mean by the same amount
    t_seen = int(frame.loc[frame["user"] == user, "timestamp"].iloc[0])
    seen = timed.recommend(user, 16, exclude_rated=False, at=t_seen).set_index("item")
    new = recs.set_index("item").loc[seen.index]
    level = code.levels("user", np.array([timed.users_.get_loc(user)]), np.array([t_seen]))[0]
    assert level >= 0
    shift = float(timed.result_["posterior"]["time_user"][:, :, level].mean())
    assert abs(shift) > 0.05  # the simulated day effects are large
    old_bin = code.levels("item", np.arange(16), np.full(16, t_seen)) >= 0
    new_bin = code.levels("item", np.arange(16), np.full(16, code.t_max + DAY)) >= 0
    assert old_bin.any() and new_bin.any()
    on_day = pd.DataFrame({"user": user, "item": seen.index, "timestamp": t_seen})
    np.testing.assert_allclose(seen["mean"], timed.predict(on_day)["mean"], rtol=1e-12)
    assert not np.allclose(seen["mean"], new["mean"])
    # the same time as a date string (naive = UTC), and as float seconds
    stamp = pd.Timestamp(t_seen, unit="s").strftime("%Y-%m-%d %H:%M:%S")
    pd.testing.assert_frame_equal(timed.recommend(user, 16, exclude_rated=False, at=stamp).set_index("item"),
                                  seen, check_like=True)
    assert timed.recommend(user, 3, at=float(t_seen)).attrs["at"] == t_seen
    # Thompson sampling and UCB include the time effects as well
    for strategy in ("thompson", "ucb"):
        a = timed.recommend(user, 16, exclude_rated=False, strategy=strategy, random_seed=3)
        b = timed.recommend(user, 16, exclude_rated=False, strategy=strategy, random_seed=3, at=t_seen)
        assert np.isfinite(a["score"]).all() and not np.allclose(np.sort(a["score"]), np.sort(b["score"]))
    with pytest.raises(ValueError, match="at='soon' is not a time"):
        timed.recommend(user, 3, at="soon")
    with pytest.raises(ValueError, match="only a fit with time effects"):
        GibbsPMF(2, draws=10, tune=5, chains=1, cores=1).fit(frame).recommend(user, 3, at=t_seen)


def test_unseen_levels_share_one_prior_draw_when_asked():
    """shared=True: pairs of one unseen level get one draw (a user's new day moves all items alike)."""
    from bayes_mf.gibbs.timefit import offset_function

    frame = _tiny(seed=4, n_users=5, n_items=6)
    timed = GibbsPMF(2, time_effects="user", draws=40, tune=10, chains=1, cores=1, random_seed=1).fit(frame)
    code, post = timed.time_coding_, timed.result_["posterior"]
    t_new = code.t_max + 5 * DAY
    u = np.array([0, 0, 0, 1, 1])
    i = np.array([0, 1, 2, 0, 1])
    t = np.full(5, t_new)
    shared = offset_function(code, post, u, i, t, shared=True)(0, 5, np.random.default_rng(0))
    apart = offset_function(code, post, u, i, t)(0, 5, np.random.default_rng(0))
    assert np.array_equal(shared[:, 0], shared[:, 2]) and np.array_equal(shared[:, 3], shared[:, 4])
    assert not np.array_equal(shared[:, 0], shared[:, 3])  # another user's new day: its own draw
    assert not np.array_equal(apart[:, 0], apart[:, 1])
    # either way each draw has the prior's spread: N(0, sigma_time_user^2) draw by draw
    sd = post["sigma_time_user"].to_numpy().reshape(-1)
    z = np.concatenate([shared[:, [0, 3]] / sd[:, None], apart / sd[:, None]], axis=1).ravel()
    assert abs(z.mean()) < 0.25 and 0.75 < z.std() < 1.25
    # chunks see the same shared draws as one call
    f = offset_function(code, post, u, i, t, shared=True)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(np.hstack([f(0, 2, rng), f(2, 5, rng)]), shared)
