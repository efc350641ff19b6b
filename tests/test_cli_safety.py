"""The command line checks every path before any fit and never loses or misattributes files (issue 11)."""

from __future__ import annotations

import json
import os

import pytest

import bayes_mf.compare
from bayes_mf import io
from bayes_mf.cli import main


@pytest.fixture
def no_fit(monkeypatch):
    """Fail the test if a fit starts: path checks must come first."""
    def boom(*a, **k):
        raise AssertionError("a fit started before the output paths were checked")
    monkeypatch.setattr(bayes_mf.compare, "run", boom)
    monkeypatch.setattr(bayes_mf.compare, "make_estimator", boom)


@pytest.mark.parametrize("make, flag, msg", [
    (lambda t: (t / "d").mkdir() or t / "d", "--json", "is a directory"),
    (lambda t: (t / "f").write_text("x") and t / "f" / "r.json", "--json", "is a file"),
    (lambda t: (t / "f").write_text("x") and t / "f", "--out", "is a file"),
    (lambda t: (t / "f").write_text("x") and t / "f" / "sub", "--out", "is a file"),
])
def test_bad_output_paths_fail_before_fitting(tmp_path, capsys, no_fit, make, flag, msg):
    target = make(tmp_path)
    assert main(["compare", "--methods", "baseline", flag, str(target)]) == 2
    err = capsys.readouterr().err
    assert msg in err and flag in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_json_folder_fails_before_fitting(tmp_path, capsys, no_fit):
    (tmp_path / "ro").mkdir(mode=0o500)
    assert main(["compare", "--methods", "baseline", "--json", str(tmp_path / "ro" / "r.json")]) == 2
    assert "not writable" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [["compare"], ["recommend", "--user", "1"]])
def test_data_that_is_a_directory_is_one_line(tmp_path, capsys, cmd):
    assert main([*cmd, "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and len(err.strip().splitlines()) == 1


def test_save_refuses_an_existing_target_unless_overwrite(tmp_path, capsys, monkeypatch):
    m = tmp_path / "m"
    assert main(["recommend", "--user", "3", "--method", "als", "--save", str(m)]) == 0
    (m / "notes.txt").write_text("keep me")
    before = (m / "arrays.npz").read_bytes()
    with monkeypatch.context() as mp:
        mp.setattr(bayes_mf.compare, "make_estimator", lambda *a, **k: pytest.fail("fitted before the check"))
        assert main(["recommend", "--user", "3", "--method", "als", "--save", str(m)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (m / "arrays.npz").read_bytes() == before
    assert main(["recommend", "--user", "3", "--method", "als", "--rank", "3", "--save", str(m),
                 "--overwrite"]) == 0
    assert (m / "notes.txt").read_text() == "keep me" and io.load(m).n_factors == 3
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("x")
    assert main(["recommend", "--user", "3", "--method", "als", "--save", str(tmp_path / "mine"),
                 "--overwrite"]) == 2
    assert "not a saved" in capsys.readouterr().err


def test_out_into_an_old_run_folder_removes_only_that_runs_files(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "ppc.png").write_bytes(b"old run")           # written by an earlier run (recorded)
    (out / "trace.png").write_bytes(b"the user's own")  # same kind of name, not recorded
    (out / "notes.txt").write_text("keep me")
    (out / ".bayes_mf-outputs.json").write_text(json.dumps({"files": ["ppc.png", "report.md"]}))
    assert main(["compare", "--methods", "baseline", "--out", str(out)]) == 0
    assert not (out / "ppc.png").exists()
    assert (out / "trace.png").read_bytes() == b"the user's own" and (out / "notes.txt").exists()
    report = (out / "report.md").read_text()
    assert "not this run's" in report and "trace.png" in report
    record = json.loads((out / ".bayes_mf-outputs.json").read_text())["files"]
    assert set(record) == {"report.md", "results.json"}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_model_and_data_must_belong_together(tmp_path, sim_small, capsys):
    m = tmp_path / "m"
    assert main(["recommend", "--user", "3", "--method", "als", "--save", str(m)]) == 0
    p = tmp_path / "other.csv"
    sim_small.ratings.to_frame().to_csv(p, index=False)
    assert main(["recommend", "--user", "3", "--model", str(m), "--data", str(p)]) == 2
    assert "was not fitted on" in capsys.readouterr().err
    assert main(["recommend", "--user", "3", "--model", str(m), "--data", "synthetic"]) == 0


@pytest.mark.movielens
def test_model_from_other_data_gets_no_movielens_titles(movielens_dir, tmp_path, capsys):
    m = tmp_path / "m"
    assert main(["recommend", "--user", "3", "--method", "als", "--save", str(m)]) == 0
    assert main(["recommend", "--user", "3", "--model", str(m), "--data", "ml-100k"]) == 2
    assert "was not fitted on --data ml-100k" in capsys.readouterr().err
