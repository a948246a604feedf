"""The gate's statistics: Mann-Whitney p-values, Welch's t on logs, BH q-values, medians.

numpy and scipy only (no pandas). Why each test is used where: docs/gate.md.
"""
import math
import statistics
import warnings
from typing import Any, List, Optional, Sequence

import numpy as np
from scipy import stats


def num(value: Any) -> Optional[float]:
    """``value`` as a finite float, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def positive_samples(value: Any) -> List[float]:
    """The finite positive numbers of a list of samples (empty for None or a lone float)."""
    if value is None or isinstance(value, float):
        return []
    try:
        items = list(value)
    except TypeError:
        return []
    out = []
    for item in items:
        x = num(item)
        if x is not None and x > 0:
            out.append(x)
    return out


def min_exact_mannwhitney_p(n1: int, n2: int) -> float:
    """Smallest two-sided p-value an exact Mann-Whitney U test can give for n1 vs n2 samples.

    It is reached when the two samples do not overlap at all: ``2 / C(n1+n2, n1)``.
    """
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def mannwhitney_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value, as ``scipy.stats.mannwhitneyu(x, y)`` gives it.

    Same method choice as scipy's ``"auto"``: exact for small samples without ties,
    else the normal approximation with tie and continuity corrections, computed here
    directly because scipy's call costs ~16 times more (a full matrix has thousands of
    cases; figures in docs/gate.md).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        return 1.0
    xy = np.concatenate([x, y])
    _, inverse, counts = np.unique(xy, return_inverse=True, return_counts=True)
    ties = bool((counts > 1).any())
    if (n1 <= 8 or n2 <= 8) and not ties:
        return float(stats.mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    r1 = float(average_rank[inverse[:n1]].sum())
    u1 = r1 - n1 * (n1 + 1) / 2.0
    u = max(u1, n1 * n2 - u1)
    n = n1 + n2
    tie_term = float((counts.astype(float) ** 3 - counts).sum())
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(var)
    return float(min(1.0, max(0.0, math.erfc(z / math.sqrt(2.0)))))


def welch_log_p(candidate: Sequence[float], baseline: Sequence[float]) -> float:
    """Two-sided Welch t-test p-value on the logs of two sets of positive values (NaN possible)."""
    with warnings.catch_warnings():  # near-identical values: scipy warns of precision loss
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(np.log(candidate), np.log(baseline), equal_var=False).pvalue)


def bh_qvalues(p_values: Sequence[float]) -> List[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given."""
    p = np.asarray(list(p_values), dtype=float)
    if p.size == 0:
        return []
    fdc = getattr(stats, "false_discovery_control", None)
    if fdc is not None:
        return [float(x) for x in fdc(p, method="bh")]
    m = p.size  # pragma: no cover - scipy < 1.11
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return [float(x) for x in out]


def one_sample_log_p(ratios: Sequence[float]) -> float:
    """Two-sided one-sample t-test p-value that the logs of ``ratios`` have mean 0 (NaN possible)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_1samp(np.log(ratios), 0.0).pvalue)
