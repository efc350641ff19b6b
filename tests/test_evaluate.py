import numpy as np
import pandas as pd
import pytest

from bayes_mf.evaluate import coverage, gaussian_lpd, mae, rmse, score


def test_metrics_known_values():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert coverage([1, 2, 3], [0, 2.5, 2], [1, 3, 4]) == pytest.approx(2 / 3)
    assert np.isnan(coverage([1, 2], [np.nan] * 2, [np.nan] * 2))
    assert gaussian_lpd([0.0], [0.0], [1.0]) == pytest.approx(-0.5 * np.log(2 * np.pi))


def test_metric_input_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        rmse([1, 2], [1])
    with pytest.raises(ValueError, match="no pairs"):
        mae([], [])


def test_score_point_estimate_has_no_coverage():
    s = score(pd.DataFrame({"mean": [1.0, 2.0], "rating": [1.0, 3.0]}))
    assert np.isnan(s["coverage"]) and np.isnan(s["lpd"]) and s["rmse"] == pytest.approx(np.sqrt(0.5))
