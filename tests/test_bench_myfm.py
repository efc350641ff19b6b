"""benchmarks/bench_myfm.py runs end to end on a small slice of MovieLens 100K u1 (myFM installed)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_myfm.py"
PINNED = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _load_script(monkeypatch):
    # the script pins thread pools through os.environ when loaded: give the later tests theirs back
    for var in PINNED:
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)
    spec = importlib.util.spec_from_file_location("bench_myfm", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_myfm_rows_and_summary(movielens_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("myfm")
    bench = _load_script(monkeypatch)
    monkeypatch.chdir(tmp_path)
    rows = bench.main(["--folds", "1", "--sweeps", "8", "--burn-in", "3", "--max-users", "60"])
    out = capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # nothing written unless asked

    assert [r["method"] for r in rows] == list(bench.METHODS)  # fold 1 is odd: ours before each peer
    for r in rows:
        assert r["fold"] == 1 and r["sweeps"] == 8 and r["burn_in"] == 3 and r["chains"] == 1
        assert np.isfinite(r["rmse"]) and 0.5 < r["rmse"] < 1.5, r
        assert 0.3 < r["cov90"] <= 1.0, r
        assert r["seconds"] > 0
        if r["method"] in bench.ORDINAL:
            assert -2.0 < r["log_score"] < 0 and 0 < r["rps"] < 1.5, r
        else:
            assert r["log_score"] is None and r["rps"] is None

    fold_lines, summary = out.split("SUMMARY")
    for m in bench.METHODS:
        assert sum(line.split()[:2] == [m, "u1"] for line in fold_lines.splitlines()) == 1
        line = next(line for line in summary.splitlines() if line.split()[:1] == [m])
        assert float(line.split()[2]) == pytest.approx(next(r["rmse"] for r in rows if r["method"] == m),
                                                       abs=1e-4)
        assert ("x " + bench.PEER[m] in line) if m in bench.PEER else (" x " not in line)

    # --json writes the same rows; --methods keeps a subset, still paired
    path = tmp_path / "rows.json"
    rows = bench.main(["--folds", "1", "--sweeps", "4", "--burn-in", "1", "--max-users", "30",
                       "--methods", "myfm,gibbs", "--json", str(path)])
    assert [r["method"] for r in rows] == ["gibbs", "myfm"]
    assert json.loads(path.read_text()) == rows
