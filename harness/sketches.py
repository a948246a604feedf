"""Comparing output sketches (``harness.runner.accuracy.sketch``): standard library only,
so that the runner, the gate and the report share one definition."""
import math
from typing import Optional, Sequence


def relative_change(new: Optional[Sequence[float]], old: Optional[Sequence[float]]) -> Optional[float]:
    """||new - old|| / ||old|| of two sketches of the same tensors; None when either is
    missing or they differ in length (different tensors)."""
    if not new or not old or len(new) != len(old):
        return None
    ref = math.sqrt(sum(float(b) * float(b) for b in old))
    diff = math.sqrt(sum((float(a) - float(b)) ** 2 for a, b in zip(new, old)))
    return diff / ref if ref > 0 else (0.0 if diff == 0 else math.inf)
