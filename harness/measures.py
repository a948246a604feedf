"""The measures: for each verdict kind, the record figure that judges it and the ones that stand in
when it is missing, its unit and formatter, what counts as noise, and the threshold keys of that rule.

One table, read by all. The gate (``harness.analysis.gate``) judges a pair on the first measure of
the kind's ``CHAINS`` entry that both sides carry and writes the measure's unit, label and threshold
keys into the verdict; the report (``harness.analysis.report``: heatmaps, at-a-glance cards, the
checkpointing trade-off, the comparison tables) picks its figure with the same chain and the same
``carried`` rule, and draws noise with the same rule and thresholds; both write values with
``format_value``. The rules in words: docs/gate.md.

A new measure is a ``Measure`` row here (in a chain, or in ``ALONE``), its record field
(``harness.record.parts``, the column named by ``column``) and, for a new threshold key, its default
and check (``harness.scenario.gate_config``).

Standard library only: the runner may import it on Python 3.9.
"""
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from harness.scenario.gate_config import DEFAULTS
from harness.units import MISSING, format_bytes, format_count, format_duration
from harness.vocab import VERDICT_KINDS

# --- what counts as noise ----------------------------------------------------------------

#: Counted work (deterministic: one counted round a side decides): a change counts beyond the first
#: threshold key (a fraction) AND beyond the second times the counts' own relative spread
#: (``count_limit``). The report's heatmap draws the same limit as its band.
NOISE_COUNTS = "counts"
#: Wall time: a test between the two sides' round medians (a round is one process) where both have
#: ``min_rounds``, else between pooled samples, at most inconclusive then; a change counts beyond
#: ``time_factor`` AND at a Benjamini-Hochberg q within ``q``. The heatmap, which has no test, draws a
#: band of ``ROUND_NOISE_MULTIPLE`` times the spread of the round medians, measured where a case has
#: ``min_rounds`` rounds, else ``ASSUMED_ROUND_SD_LOG``.
NOISE_ROUNDS = "rounds"
#: A size threshold on a steady figure: a change counts beyond the first threshold key (a fraction)
#: AND beyond the second (a floor in bytes), where one is given. No band in the heatmap: an exact peak
#: has no noise to draw (a gate verdict, when given, judges the cell).
NOISE_SIZE = "size"
#: Pass or fail against a limit the record or the rule carries (a tolerance, a ratio to the expected
#: error, a bound of the arithmetic, a task metric's drop): no noise of its own.
NOISE_LIMIT = "limit"
#: Words (a status): any change counts.
NOISE_NONE = "none"

#: A wall-time change counts in the heatmap when its log ratio exceeds this many times the spread.
ROUND_NOISE_MULTIPLE = 2.0
#: The spread assumed where a case has fewer than ``min_rounds`` rounds and none can be measured: the
#: standard deviation of the log of a case's round medians measured on the 2-core CI machine kind, 0.20
#: (68 cases, 8 rounds a side; docs/gate.md, "The speed probe"; ``python benchmarks/bench_gate.py
#: --faults slow10 --rounds 8``, its "round spread" lines). Two single rounds then give a band of
#: exp(2 * 0.20 * sqrt(2)) = 1.76x, inside the 18-37 ms (2.06x) that eight fresh processes gave for one
#: step (docs/gate.md, "Time").
ASSUMED_ROUND_SD_LOG = 0.20

MIB = 1024.0 * 1024.0


@dataclass(frozen=True)
class Change:
    """How a gate reason writes a size change: ``tensor peak +1.0 KiB (+0.5%)``."""

    name: str
    unit: str
    scale: float
    pct_digits: int
    floor_digits: int


@dataclass(frozen=True)
class Measure:
    """One figure a verdict can rest on."""

    #: the record's flat column (``harness.record.schema.COLUMNS``)
    column: str
    #: the verdict kind it judges (``harness.vocab.VERDICT_KINDS``)
    kind: str
    #: its name on the page and in a verdict (a time verdict's ``basis``)
    label: str
    #: a verdict's ``unit``; ``FORMATTERS`` formats values of the units it names
    unit: str
    #: ``NOISE_*``: what counts as noise
    noise: str
    #: the ``[gate]`` keys its rule reads, in the order a verdict's ``threshold`` lists them
    thresholds: Tuple[str, ...]
    #: the tag of a heatmap cell resting on it, and what it is, in the cell's hover text
    tag: str = ""
    meaning: str = ""
    #: a side carries it only when every ok record does; False: one record suffices (counted in the first
    #: round only, as ``ab --instructions`` does: the figure is deterministic)
    every_round: bool = True
    #: (column, value): a value counts only where that column holds that value (the pass that measured it)
    only_where: Optional[Tuple[str, str]] = None
    #: ``NOISE_COUNTS``: the column of the figure's relative spread between repeats
    spread_column: Optional[str] = None
    #: how it was measured: two sides measured differently are not comparable
    method_column: Optional[str] = None
    #: the report's figure over a case's rounds (``harness.analysis.report.rounds``), where it has one
    rounds_column: Optional[str] = None
    #: ``NOISE_SIZE``: how a reason writes a change, and how the Markdown's first line names the floor
    change: Optional[Change] = None
    headline: str = ""


INSTRUCTIONS = Measure(
    "instructions_per_iter", "time", "instructions", "instructions", NOISE_COUNTS,
    ("instructions_frac", "instructions_spread_factor"), tag="instr",
    meaning="CPU instructions per step (callgrind; deterministic)", every_round=False,
    only_where=("instr_status", "ok"), spread_column="instructions_spread")
WALL_TIME = Measure(
    "median_s", "time", "wall time", "s", NOISE_ROUNDS, ("time_factor", "q"), tag="wall",
    meaning="wall time per step (per case the median of its round medians)", rounds_column="median_rounds_s")
TENSOR_PEAK = Measure(
    "tensor_peak_bytes", "memory", "tensor peak", "bytes", NOISE_SIZE, ("memory_frac", "tensor_memory_floor_bytes"),
    tag="tensor", meaning="the exact CPU tensor-memory peak of one step",
    change=Change("tensor peak", "KiB", 1024.0, 1, 0), headline="CPU tensor peak")
PROCESS_PEAK = Measure(
    "peak_mem_bytes", "memory", "process peak", "bytes", NOISE_SIZE, ("memory_frac", "memory_floor_bytes"),
    tag="process", meaning="the process high-water mark on the CPU, the CUDA allocator peak on a GPU",
    method_column="mem_method", change=Change("peak", "MiB", MIB, 0, 1))
FIDELITY = Measure(
    "acc_ratio", "accuracy", "calibrated fidelity", "ratio to expected error", NOISE_LIMIT, ("accuracy_growth",),
    meaning="the error against float64 over the error the precision is expected to make (docs/accuracy.md)",
    only_where=("acc_rule", "fp64-calibrated"))
FIDELITY_FIXED = Measure(
    "out_rel_err", "accuracy", "fixed-tolerance fidelity", "relative error", NOISE_LIMIT, (),
    meaning="the largest relative error of outputs and gradients against fp32, under a fixed tolerance")
LARGEST_BATCH = Measure(
    "max_batch_size", "memory", "largest batch", "samples", NOISE_SIZE, ("memory_frac",),
    meaning="the largest batch that fits the memory cap (a batch_size = \"max\" search)")
OUTPUTS = Measure(
    "out_sketch", "accuracy", "outputs", "relative change", NOISE_LIMIT, ("outputs_change_factor",),
    meaning="the change of the case's outputs (and gradients) between revisions, against what the arithmetic "
            "explains")
TASK = Measure(
    "task_after", "accuracy", "task", "", NOISE_LIMIT, ("task_drop", "task_drop_frac"),
    meaning="the task metric after the short training run (its unit: the record's task_metric)")
STATUS = Measure("status", "status", "status", "", NOISE_NONE, (), meaning="ok, or how the case failed")

#: Per verdict kind, the measures one verdict rests on, in order of preference: a comparison rests on
#: the first that both sides carry (``carried``); the last stands in whenever each side has a value.
CHAINS: Dict[str, Tuple[Measure, ...]] = {
    "time": (INSTRUCTIONS, WALL_TIME),
    "memory": (TENSOR_PEAK, PROCESS_PEAK),
    "accuracy": (FIDELITY, FIDELITY_FIXED),
}
#: Measures judged on their own, each by its own verdict, with nothing standing in.
ALONE: Tuple[Measure, ...] = (LARGEST_BATCH, OUTPUTS, TASK, STATUS)
#: Every measure by its column.
MEASURES: Dict[str, Measure] = {m.column: m for m in sum(CHAINS.values(), ()) + ALONE}

for _m in MEASURES.values():  # an edit that names a kind or a threshold key nobody knows
    if _m.kind not in VERDICT_KINDS or set(_m.thresholds) - set(DEFAULTS):
        raise RuntimeError("measures: %s names kind %r or unknown threshold keys %s" % (
            _m.column, _m.kind, sorted(set(_m.thresholds) - set(DEFAULTS))))


# --- helpers ------------------------------------------------------------------------------

def _samples(value: float) -> str:
    return "%d samples" % value


#: How values of a unit are written (units not named here: four significant digits).
FORMATTERS: Dict[str, Callable[[float], str]] = {
    "s": format_duration, "bytes": format_bytes, "instructions": format_count, "samples": _samples}


def is_number(value: Any) -> bool:
    """A finite real number (numpy's included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def format_value(unit: Optional[str], value: Any) -> str:
    """A verdict's value with its unit's formatter: ``34.48 M``, ``12.3 ms``, ``3.81 MiB``; text as it
    is; a missing or non-finite number as ``harness.units.MISSING``."""
    if isinstance(value, str):
        return value
    if not is_number(value):
        return MISSING
    formatter = FORMATTERS.get(unit or "")
    return formatter(value) if formatter else "%.4g" % value


def measure_of(column: Optional[str]) -> Optional[Measure]:
    """The measure of a record column (a verdict's ``measure``), or None."""
    return MEASURES.get(column or "")


def thresholds_of(measure: Measure, thresholds: Mapping[str, Any]) -> Dict[str, Any]:
    """``{key: value}`` of the measure's threshold keys: a verdict's ``threshold``."""
    return {key: thresholds[key] for key in measure.thresholds}


def default_thresholds() -> Dict[str, Any]:
    """The thresholds where no scenario says otherwise (the report's, without a gate run)."""
    return dict(DEFAULTS)


#: An ok case that passed its accuracy rule with an error against float64 above this fraction (of the
#: outputs' or the gradients' norm) is a warning, in the report's accuracy section and the gate's summary: at
#: 25% the result points about 14 degrees off float64's (cosine below 0.97), more than any rounding of a correct
#: computation gives at these sizes (the default matrix's passing errors: 0.3-0.5% median; gradients of cbam and
#: sharp under amp_bf16 on 1.10-1.11 at 27-33%), while a rule scaled from fp32's own error can still call it
#: expected (docs/accuracy.md).
LARGE_ERROR_FRAC = 0.25

#: ``NOISE_COUNTS``: the most the counts' own spread may add to the limit (a fraction). Without it, a
#: tiny step whose repeats spread 2.66% got a 13% limit (5 x the spread), so a 10% heavier step passed.
#: A count's repeats differ by allocator and cache state, not by chance draws: their spread is a range
#: the medians stay inside, so a change beyond 5% (twice the 2.66% seen, 2.5x the 2% default) is beyond
#: that noise. Where the spread is larger than this cap the verdict says the limit was capped.
COUNT_SPREAD_CAP = 0.05


def count_limit(measure: Measure, thresholds: Mapping[str, Any], spread: float) -> float:
    """``NOISE_COUNTS``: the relative change a count must exceed, given its spread: beyond the first
    threshold key, and beyond the second times the spread, that product capped at ``COUNT_SPREAD_CAP``
    (a noisy repeat cannot inflate the limit past it)."""
    frac, factor = measure.thresholds
    return max(thresholds[frac], min(thresholds[factor] * spread, COUNT_SPREAD_CAP))


def count_limit_capped(measure: Measure, thresholds: Mapping[str, Any], spread: float) -> bool:
    """Whether ``count_limit`` was capped by ``COUNT_SPREAD_CAP`` for this spread."""
    frac, factor = measure.thresholds
    return thresholds[factor] * spread > max(COUNT_SPREAD_CAP, thresholds[frac])


def carried(measure: Measure, values: Sequence[Any], valid: Optional[Sequence[Any]] = None) -> bool:
    """Whether a side carries ``measure``: ``values`` are its ok records' values of ``measure.column``,
    ``valid`` their values of ``only_where``'s column (where the measure names one). Every value must
    be a number (and valid), or, where ``every_round`` is False, at least one."""
    values = list(values)
    valid = list(valid) if valid is not None else [None] * len(values)
    good = [is_number(v) and (measure.only_where is None or w == measure.only_where[1])
            for v, w in zip(values, valid)]
    if not good:
        return False
    return all(good) if measure.every_round else any(good)


def noise_words(measure: Measure, thresholds: Mapping[str, Any]) -> str:
    """What counts as a change of ``measure``, in words with the threshold values."""
    th = thresholds
    if measure.noise == NOISE_COUNTS:
        frac, factor = measure.thresholds
        return "beyond %g%% and %g\u00d7 the counts' own spread (that part at most %g%%)" % (
            100 * th[frac], th[factor], 100 * COUNT_SPREAD_CAP)
    if measure.noise == NOISE_ROUNDS:
        return ("beyond %.2f\u00d7 and significant (BH q \u2264 %g) on round medians with %d rounds a side, "
                "at most inconclusive with fewer" % (th["time_factor"], th["q"], th["min_rounds"]))
    if measure.noise == NOISE_SIZE:
        frac = measure.thresholds[0]
        floor = measure.thresholds[1] if len(measure.thresholds) > 1 else None
        return "beyond %g%%%s" % (100 * th[frac], " and %s" % format_bytes(th[floor]) if floor else "")
    if measure.noise == NOISE_LIMIT:
        return "past its limit"
    return "any change"
