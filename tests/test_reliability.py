"""Nothing silent: mixed id types, tiny or constant data, scripts without a main guard (issue 11)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayes_mf as bmf
from bayes_mf.base import DataSupportWarning


def _gibbs(**kw):
    return bmf.GibbsPMF(2, draws=60, tune=30, chains=2, cores=1, progressbar=False, **kw)


@pytest.mark.parametrize("col", ["user", "item"])
def test_mixed_id_types_are_refused_naming_column_and_values(col):
    frame = pd.DataFrame({"user": [1, 2, 3], "item": [1, 2, 3], "rating": [1.0, 2.0, 3.0]})
    frame[col] = pd.Series(["0", 0, 1], dtype=object)
    with pytest.raises(bmf.RatingsError, match=rf"column '{col}' mixes id types: '0' \(str.*0 \(number"):
        bmf.Ratings.from_frame(frame)


def test_one_type_per_column_is_fine():
    frame = pd.DataFrame({"user": ["a", "b"], "item": pd.Series([1, 2], dtype=object), "rating": [1.0, 2.0]})
    assert bmf.Ratings.from_frame(frame).n_users == 2


def test_one_row_is_not_clipped_to_its_own_value():
    one = pd.DataFrame({"user": [1], "item": [1], "rating": [2.0]})
    with pytest.warns(DataSupportWarning, match="all 1 training ratings equal 2"):
        g = _gibbs().fit(one)
    assert g.scale_ is None
    p = g.predict((np.array([1]), np.array([1])))
    assert p["lo"].iloc[0] < 2.0 < p["hi"].iloc[0] and p.attrs["clipped_to"] is None


def test_constant_ratings_clip_to_the_declared_scale_only():
    eq = pd.DataFrame({"user": np.arange(30) % 5, "item": np.arange(30) // 5, "rating": 3.0})
    with pytest.warns(DataSupportWarning, match="no variation"):
        g = _gibbs().fit(bmf.Ratings.from_frame(eq, scale=(1, 5)))
    assert g.scale_ == (1.0, 5.0)
    p = g.predict((np.array([0]), np.array([0])))
    assert p["lo"].iloc[0] < 3.0 < p["hi"].iloc[0]
    assert (p[["lo", "hi"]] >= 1).all(axis=None) and (p[["lo", "hi"]] <= 5).all(axis=None)


def test_fewer_ratings_than_parameters_warns():
    frame = pd.DataFrame({"user": np.arange(10), "item": np.arange(10), "rating": np.arange(10.0)})
    with pytest.warns(DataSupportWarning, match="10 training ratings for 10 users and 10 items"):
        bmf.ALS(2).fit(frame)


def test_large_undeclared_scale_still_comes_from_the_data(sim_split):
    train, _ = sim_split
    als = bmf.ALS(2).fit(train)
    assert als.scale_ == (train.rating.min(), train.rating.max())


_SCRIPT = """
import bayes_mf as bmf
print("TOP-LEVEL RUN", flush=True)
sim = bmf.datasets.simulate_pmf(30, 20, 2, density=0.4, random_seed=0)
g = bmf.GibbsPMF(2, draws=20, tune=5, chains=2, cores=2, progressbar=False).fit(sim.ratings)
print("fitted", g.result_.posterior.sizes["chain"], flush=True)
"""


def test_script_without_main_guard_runs_chains_in_process(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "unguarded.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(bmf.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-W", "default", str(script)], capture_output=True, text=True,
                         env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("TOP-LEVEL RUN") == 1 and "fitted 2" in out.stdout
    assert "MainGuardWarning" in out.stderr and "__main__" in out.stderr


def test_main_guard_detection(tmp_path):
    import ast

    from bayes_mf.gibbs.parallel import _is_main_test

    assert _is_main_test(ast.parse('if __name__ == "__main__": pass').body[0].test)
    assert _is_main_test(ast.parse("if '__main__' == __name__: pass").body[0].test)
    assert not _is_main_test(ast.parse("if x == 1: pass").body[0].test)
