"""benchmarks/bench_myfm.py runs end to end on a small slice of MovieLens 100K u1 (myFM installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_myfm.py"


def _run(args, cwd):
    """The script in its own process: it pins the thread pools (numba's too) for itself, not the suite."""
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          env=os.environ.copy(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _constants():
    import ast

    tree = ast.parse(SCRIPT.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("METHODS", "ORDINAL", "PEER"):
                out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def test_bench_myfm_rows_and_summary(movielens_dir, tmp_path):
    pytest.importorskip("myfm")
    bench = type("Bench", (), _constants())
    path = tmp_path / "rows.json"
    out = _run(["--folds", "1", "--sweeps", "8", "--burn-in", "3", "--max-users", "60", "--json", str(path)],
               tmp_path)
    assert list(tmp_path.iterdir()) == [path]  # nothing written but what was asked for
    rows = json.loads(path.read_text())
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

    # --methods keeps a subset, still paired
    path = tmp_path / "subset.json"
    _run(["--folds", "1", "--sweeps", "4", "--burn-in", "1", "--max-users", "30", "--methods", "myfm,gibbs",
          "--json", str(path)], tmp_path)
    assert [r["method"] for r in json.loads(path.read_text())] == ["gibbs", "myfm"]
