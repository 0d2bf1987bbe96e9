"""The statistics of groups (lstm_exp/compute/statistics.py) against SciPy and against cases computed
by hand from a printed t table. Tolerances: 1e-9 relative against SciPy (the same float64 arithmetic
by another route), 5e-4 absolute against the 4-digit table values.
"""

import math

import numpy as np
import pytest
from scipy import stats

from lstm_exp.compute.statistics import summarize, t_quantile, welch

SAMPLES = [
    ([0.0213, 0.0187, 0.0251, 0.0199, 0.0230], [0.0031, 0.0029, 0.0044, 0.0025, 0.0038]),
    ([1.0, 2.0, 3.0, 4.0], [2.5, 2.7, 2.9]),
    ([0.5, 0.9], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]),
    (list(np.random.default_rng(7).normal(3.0, 2.0, 12)), list(np.random.default_rng(8).normal(2.0, 0.1, 6))),
]


def test_the_t_quantile_is_the_printed_tables():
    for df, table in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)):
        assert t_quantile(df) == pytest.approx(table, abs=5e-4)


def test_a_summary_computed_by_hand():
    # 1, 2, 3: mean 2, s = 1, half width t(0.975, 2) / sqrt(3) = 4.303 / 1.732 = 2.484
    s = summarize([1.0, 2.0, 3.0])
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    assert (s.ci_low, s.ci_high) == (pytest.approx(-0.484, abs=5e-4), pytest.approx(4.484, abs=5e-4))


@pytest.mark.parametrize("values", [a for a, _ in SAMPLES] + [b for _, b in SAMPLES])
def test_a_summary_is_scipys_t_interval(values):
    s = summarize(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert s.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert s.std == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert (s.ci_low, s.ci_high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))


def test_one_value_has_no_interval_and_nan_is_left_out_and_counted():
    one = summarize([0.25, math.nan, math.inf])
    assert (one.n, one.mean, one.std, one.ci_low, one.ci_high, one.excluded) == (1, 0.25, None, None, None, 2)
    assert summarize([math.nan]).n == 0 and summarize([math.nan]).mean is None


@pytest.mark.parametrize(("a", "b"), SAMPLES)
def test_the_difference_is_scipys_welch_interval(a, b):
    d = welch(a, b)
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(0.95)
    assert d.estimate == pytest.approx(np.mean(a) - np.mean(b), rel=1e-12)
    assert d.df == pytest.approx(result.df, rel=1e-9)
    assert d.ci_low == pytest.approx(interval.low, rel=1e-9)
    assert d.ci_high == pytest.approx(interval.high, rel=1e-9)
    # The interval leaves out zero exactly when Welch's two-sided test rejects at 5 %.
    assert d.shown == (result.pvalue < 0.05)


def test_a_welch_difference_computed_by_hand():
    # a = 1, 2, 3 (s² = 1), b = 4, 6, 8 (s² = 4): se² = 1/3 + 4/3 = 5/3, df = (5/3)² / ((1/3)²/2 + (4/3)²/2)
    # = 2.778 / 0.944 = 2.941; t(0.975, 2.941) = 3.2 (between the table's 4.303 at 2 and 3.182 at 3).
    d = welch([1.0, 2.0, 3.0], [4.0, 6.0, 8.0])
    assert d.estimate == -4.0
    assert d.df == pytest.approx(2.9412, abs=5e-4)
    half = t_quantile(d.df) * math.sqrt(5 / 3)
    assert 3.182 < t_quantile(d.df) < 4.303
    assert (d.ci_low, d.ci_high) == (pytest.approx(-4 - half), pytest.approx(-4 + half))
    assert d.shown is False  # the interval reaches past zero: 4.0 is not shown at n = 3


def test_no_interval_from_one_run_or_from_no_spread():
    assert welch([1.0], [2.0, 3.0]).ci_low is None
    flat = welch([1.0, 1.0], [2.0, 2.0])
    assert (flat.estimate, flat.ci_low, flat.shown) == (-1.0, None, False)
    assert welch([math.nan], [1.0, 2.0]) is None
