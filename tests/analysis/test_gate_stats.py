"""harness.analysis.gate.stats: the gate's statistics, checked against scipy and by hand."""
import subprocess
import sys

import numpy as np
import pytest

from harness.analysis.gate.stats import (
    bh_qvalues,
    mannwhitney_p,
    median,
    min_exact_mannwhitney_p,
    num,
    positive_samples,
    welch_log_p,
)
from tests.analysis.gate_records import ROOT


def test_min_exact_p_matches_scipy_on_fully_separated_samples():
    from scipy import stats
    for n1, n2 in ((3, 3), (4, 4), (5, 5), (3, 7), (2, 9)):
        p = stats.mannwhitneyu(range(n1), range(100, 100 + n2), method="exact").pvalue
        assert min_exact_mannwhitney_p(n1, n2) == pytest.approx(p)
    assert min_exact_mannwhitney_p(3, 3) == pytest.approx(0.1)
    assert min_exact_mannwhitney_p(1, 1) == 1.0


def test_bh_qvalues_by_hand():
    p = [0.01, 0.04, 0.03, 0.5]
    # sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.0533, 0.0533, 0.5
    assert bh_qvalues(p) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert bh_qvalues([]) == []


def test_mannwhitney_p_matches_scipy():
    from scipy import stats
    rng = np.random.default_rng(13)
    for n1, n2, rounding in ((5, 5, None), (4, 12, None), (30, 25, None), (12, 12, 3), (40, 9, 2), (7, 7, 2)):
        for _ in range(5):
            x, y = rng.lognormal(0, 0.3, n1), rng.lognormal(0.1, 0.3, n2)
            if rounding:
                x, y = np.round(x, rounding - 2), np.round(y, rounding - 2)
            expected = stats.mannwhitneyu(x, y, alternative="two-sided").pvalue
            assert mannwhitney_p(x, y) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert mannwhitney_p([1.0] * 10, [1.0] * 10) == 1.0


def test_welch_log_p_matches_scipy_on_the_logs():
    from scipy import stats
    rng = np.random.default_rng(14)
    b, c = rng.lognormal(0, 0.1, 4), rng.lognormal(0.2, 0.1, 5)
    expected = stats.ttest_ind(np.log(c), np.log(b), equal_var=False).pvalue
    assert welch_log_p(c, b) == pytest.approx(expected)


def test_value_helpers():
    assert num("1.5") == 1.5 and num(True) is None and num(float("nan")) is None and num("x") is None
    assert positive_samples([0.1, -1, None, float("inf"), 0, "0.2"]) == [0.1, 0.2]
    assert positive_samples(0.5) == [] and positive_samples(None) == []
    assert median([3.0, 1.0, 2.0, 10.0]) == 2.5


def test_stats_module_does_not_import_pandas():
    """Loaded as a file (importing it through the package would run the package's imports)."""
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('s', "
            "'harness/analysis/gate/stats.py'); m = importlib.util.module_from_spec(spec); "
            "spec.loader.exec_module(m); assert 'pandas' not in sys.modules, 'pandas imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
