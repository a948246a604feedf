"""How many rounds, what each round measures, and in which order the variants see a case.

Standard library only: the coordinator runs in nox's own interpreter, without torch.
"""
import math
from typing import Any, Dict, List, Sequence

#: ``[measure] rounds = "auto"``: this many rounds where variants are compared (two or more), one for
#: a lone variant, whose rounds would only repeat what its samples say (docs/engine.md, "Rounds").
AUTO_ROUNDS_COMPARED = 3
AUTO = "auto"


def resolve_rounds(setting: Any, variants: int) -> int:
    """The number of rounds of a run of ``variants`` variants for ``[measure] rounds`` (an int >= 1, or
    ``"auto"``: ``AUTO_ROUNDS_COMPARED`` for two or more variants, else 1)."""
    if setting == AUTO or setting is None:
        return AUTO_ROUNDS_COMPARED if variants > 1 else 1
    return int(setting)


def round_measure(measure: Dict[str, Any], round_index: int, rounds: int) -> Dict[str, Any]:
    """``measure`` for round ``round_index`` (from 1) of ``rounds``: the rounds share the samples and the
    case budget, so all rounds together take what one round took alone (7 samples in 3 rounds: 3, 2, 2;
    never fewer than one a round)."""
    if rounds <= 1:
        return measure
    samples = int(measure["samples"])
    share = samples // rounds + (1 if round_index <= samples % rounds else 0)
    out = dict(measure)
    out["samples"] = max(1, share)
    out["case_budget_s"] = float(measure["case_budget_s"]) * out["samples"] / max(samples, 1)
    return out


def visit_order(variants: Sequence[int], case_index: int, round_index: int) -> List[int]:
    """The order in which ``variants`` (indices into the run's variants, those that have the case) measure
    case ``case_index`` (from 0) in round ``round_index`` (from 1): rotated by one per case and per round,
    so each variant goes first equally often over the cases of a round and over the rounds of a case, and
    a drift across a case's visits does not favour one variant."""
    n = len(variants)
    if n <= 1:
        return list(variants)
    start = (case_index + round_index - 1) % n
    return [variants[(start + k) % n] for k in range(n)]


def eta_s(done: int, total: int, elapsed_s: float) -> float:
    """Seconds left at the pace so far (NaN before the first visit)."""
    if done <= 0:
        return math.nan
    return elapsed_s / done * (total - done)
