import json

import pandas as pd
import pytest

from bayes_mf.cli import main


def test_compare_default_runs_on_synthetic(capsys):
    assert main(["compare", "--methods", "baseline,als"]) == 0
    out = capsys.readouterr().out
    assert "synthetic" in out and "als" in out and "n/a" in out


def test_compare_json_schema(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["compare", "--methods", "mean,als", "--rank", "3", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["data"] == "synthetic" and doc["fold"] is None
    rows = {r["method"]: r for r in doc["results"]}
    assert set(rows) == {"mean", "als"}
    for key in ("rmse", "mae", "fit_seconds", "n_train", "n_test"):
        assert key in rows["als"]
    assert rows["als"]["rmse"] < rows["mean"]["rmse"] and rows["als"]["coverage"] is None


def test_compare_on_csv_path(tmp_path, sim_small, capsys):
    p = tmp_path / "r.csv"
    sim_small.ratings.to_frame().to_csv(p, index=False)
    assert main(["compare", "--data", str(p), "--methods", "baseline"]) == 0
    assert str(p) in capsys.readouterr().out


@pytest.mark.parametrize("args, msg", [
    (["compare", "--methods", "svd"], "unknown method"),
    (["compare", "--rank", "0"], "--rank"),
    (["compare", "--data", "/no/such/file.csv"], "error"),
    (["compare", "--fold", "2"], "--fold applies"),
])
def test_compare_bad_arguments(args, msg, capsys):
    assert main(args) == 2
    assert msg in capsys.readouterr().err


@pytest.mark.movielens
def test_compare_movielens_fold(movielens_dir, tmp_path, capsys):
    out = tmp_path / "ml.json"
    assert main(["compare", "--data", "ml-100k", "--fold", "1", "--methods", "baseline,als",
                 "--json", str(out)]) == 0
    rows = {r["method"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["als"]["rmse"] <= 0.930 and rows["baseline"]["rmse"] < 0.97


def test_cli_rejects_bad_interval_and_unknown_user(capsys):
    assert main(["compare", "--interval", "1.5", "--methods", "baseline"]) == 2
    assert "--interval" in capsys.readouterr().err
    assert main(["recommend", "--user", "no-such-user", "--method", "als"]) == 2
    assert "not in the data" in capsys.readouterr().err


def test_cli_recommend_prints_top_n(capsys):
    assert main(["recommend", "--user", "3", "--method", "als", "--n", "4"]) == 0
    out = capsys.readouterr().out
    assert "top 4 for user 3" in out and len(out.strip().splitlines()) == 6


def test_cli_reads_csv_with_own_column_names(tmp_path, sim_small, capsys):
    p = tmp_path / "r.txt"
    sim_small.ratings.to_frame().rename(columns={"user": "uid", "item": "mid", "rating": "stars"}).to_csv(
        p, sep=";", index=False)
    assert main(["compare", "--data", str(p), "--methods", "baseline", "--user-col", "uid",
                 "--item-col", "mid", "--rating-col", "stars"]) == 0


def test_compare_sampler_options_and_convergence_fields(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["compare", "--methods", "als,gibbs", "--rank", "2", "--chains", "2", "--draws", "30",
                 "--burn-in", "10", "--json", str(out)]) == 0
    rows = {r["method"]: r for r in json.loads(out.read_text())["results"]}
    g = rows["gibbs"]
    assert g["draws_total"] == 60 and isinstance(g["converged"], bool)
    assert g["rhat_max"] > 1.0 and g["ess_min"] > 0
    assert g["divergences"] is None and g["ebfmi_min"] is None  # NUTS-only fields
    assert rows["als"]["converged"] is None and rows["als"]["draws_total"] == 0
    assert "conv" in capsys.readouterr().out


@pytest.mark.parametrize("args, msg", [
    (["--chains", "1"], "--chains"),
    (["--max-seconds", "0"], "--max-seconds"),
    (["--draws", "0"], "--draws"),
    (["--burn-in", "-1"], "--burn-in"),
])
def test_sampler_options_checked_before_fitting(args, msg, capsys):
    assert main(["compare", "--methods", "gibbs", *args]) == 2
    assert msg in capsys.readouterr().err


def test_compare_fold_all_reports_every_fold_and_the_mean(tmp_path, sim_small, capsys):
    data = tmp_path / "r.csv"
    sim_small.ratings.to_frame().to_csv(data, index=False)
    js, preds = tmp_path / "all.json", tmp_path / "out" / "preds.csv"
    assert main(["compare", "--data", str(data), "--fold", "all", "--methods", "baseline,als", "--rank", "2",
                 "--json", str(js), "--predictions", str(preds)]) == 0
    out = capsys.readouterr().out
    assert "f5" in out and "mean  als" in out
    doc = json.loads(js.read_text())
    assert doc["fold"] == "all" and doc["folds"] == ["f1", "f2", "f3", "f4", "f5"]
    rows = pd.DataFrame(doc["results"])
    assert len(rows) == 12  # 5 folds x 2 methods + 2 means
    als = rows[rows.method == "als"].set_index("fold")
    assert als.loc["mean", "rmse"] == pytest.approx(als.drop("mean")["rmse"].mean())
    assert als.loc["mean", "n_test"] == len(sim_small.ratings)
    table = pd.read_csv(preds)
    assert list(table.columns) == ["fold", "user", "item", "rating", "method", "mean", "sd", "lo", "hi"]
    # k-fold: every rating is predicted exactly once by each method
    for _, g in table.groupby("method"):
        assert len(g) == len(sim_small.ratings) and not g.duplicated(["user", "item"]).any()
    assert table["sd"].isna().all()  # point estimates have no spread
    assert not list(tmp_path.joinpath("out").glob(".*"))  # no temporary file left behind


def test_compare_predictions_carry_posterior_intervals(tmp_path, sim_small, capsys):
    data, preds = tmp_path / "r.csv", tmp_path / "p.csv"
    sim_small.ratings.to_frame().to_csv(data, index=False)
    assert main(["compare", "--data", str(data), "--methods", "als,gibbs", "--rank", "2", "--draws", "40",
                 "--tune", "40", "--interval", "0.8", "--predictions", str(preds)]) == 0
    table = pd.read_csv(preds)
    assert list(table.columns) == ["user", "item", "rating", "method", "mean", "sd", "lo", "hi"]
    g = table[table.method == "gibbs"]
    assert (g["sd"] > 0).all() and (g["lo"] <= g["mean"]).all() and (g["mean"] <= g["hi"]).all()
    assert 0.7 < ((g["rating"] >= g["lo"]) & (g["rating"] <= g["hi"])).mean() < 0.9
    assert table.loc[table.method == "als", ["sd", "lo", "hi"]].isna().all().all()


def test_compare_fold_and_predictions_errors(tmp_path, capsys):
    assert main(["compare", "--data", "ml-100k", "--fold", "7"]) == 2
    assert "--fold must be 1-5 or all" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    # checked before any fit: the error comes without a fitted method's progress line
    assert main(["compare", "--predictions", str(tmp_path / "file" / "p.csv"), "--methods", "baseline"]) == 2
    err = capsys.readouterr().err
    assert "--predictions" in err and "baseline: rmse" not in err


def test_cli_recommend_at_is_checked_before_any_fit(capsys):
    assert main(["recommend", "--user", "3", "--method", "als", "--at", "1998-01-01"]) == 2
    assert "--at applies to methods with time effects" in capsys.readouterr().err
    assert main(["recommend", "--user", "3", "--method", "gibbs-time", "--at", "next tuesday"]) == 2
    assert "is not a time" in capsys.readouterr().err


@pytest.mark.movielens
def test_cli_recommend_with_time_effects_at_a_date(movielens_dir, capsys):
    """gibbs-full on ML-100K: the attributes ride with the data, the items are scored at the date."""
    assert main(["recommend", "--user", "3", "--data", "ml-100k", "--method", "gibbs-full", "--n", "3",
                 "--draws", "10", "--tune", "10", "--chains", "2", "--at", "1998-04-23"]) == 0
    out = capsys.readouterr().out
    assert "top 3 for user 3" in out and "at 1998-04-23 00:00:00" in out
    assert len(out.strip().splitlines()) == 5


def test_json_counts_stay_integers_beside_missing_values():
    import json

    import pandas as pd

    from bayes_mf.compare import to_json

    # a NUTS row beside a Gibbs row: pandas makes the divergences column float
    table = pd.DataFrame({"method": ["nuts", "gibbs"], "divergences": [0, None], "draws_total": [8000, 4000],
                          "rmse": [0.9, 0.91]})
    assert table["divergences"].dtype == float
    rows = json.loads(to_json(table, data="toy", fold=1))["results"]
    assert rows[0]["divergences"] == 0 and isinstance(rows[0]["divergences"], int)
    assert rows[1]["divergences"] is None and isinstance(rows[1]["draws_total"], int)
    assert rows[0]["rmse"] == 0.9
