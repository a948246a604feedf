"""Thresholds of the regression gate: defaults, validation, per-model resolution.

Standard library only: the runner-side scenario loader imports this module (Python
3.9, no pandas) to validate the ``[gate]`` table of a scenario file, and the analysis
side (``harness.analysis.gate``) uses it to resolve each case's thresholds.

A scenario file may hold::

    [gate]
    time_factor = 1.10            # median ratio beyond which a significant change counts
    q = 0.05                      # Benjamini-Hochberg false discovery rate, all timing tests
    memory_frac = 0.05            # peak memory growth fraction ...
    memory_floor_bytes = 16777216 # ... AND growth in bytes, both must be exceeded
    tensor_memory_floor_bytes = 65536 # the byte floor when the CPU tensor peak is judged
    task_drop = 0.02              # task metric worsening, absolute (metric units) ...
    task_drop_frac = 0.01         # ... AND relative to the baseline value, both exceeded
    time_test = "auto"            # "samples" | "rounds" | "auto" (see below)
    min_rounds = 3                # rounds per side for "auto" to test round medians
    time_basis = "step"           # "step" | "probe": what the timing test compares (see below)
    instructions_frac = 0.02      # instruction counts (when both sides carry them): change beyond this ...
    instructions_spread_factor = 5  # ... AND beyond this many times the counts' own spread
    aggregate_factor = 1.20       # the run's geometric-mean wall-time ratio beyond which all cases moved
    outputs_change_factor = 2.0   # outputs/gradients changed between revisions beyond this many times
                                  # the baseline's own error against float64 (see below)
    accuracy_growth = 2.0         # a calibrated ratio already past its limit that grew this many times

    [gate.per_model."cbam_*"]     # fnmatch glob over model names; any key above
    time_factor = 1.25

``time_test``: ``"samples"`` runs a two-sided Mann-Whitney U test on the pooled raw
samples of each side; ``"rounds"`` runs Welch's t-test on the log of each round's
median (a round is one record: one process); ``"auto"`` uses ``"rounds"`` when both
sides have at least ``min_rounds`` rounds, and otherwise runs the sample test but calls
a significant change beyond the factor ``inconclusive``, never regressed or improved.
Samples taken in one process share that process's speed (fresh processes on the 2-core
CI machine gave medians from 18 to 37 ms for the same step; an A/A comparison of one
round a side called 32-41% of 68 cases regressed by the sample test), so the process, not
the sample, is the honest unit of replication: use ``ab --rounds 3`` or more. Both
figures were measured on the 68 cases of ``scenarios/gate_bench.toml``; to measure them
again, run ``python benchmarks/bench_gate.py --only-aa --rounds 8``: the first is the
"widest" case of its "round spread" lines (8 processes a side), the second its
sensitivity row "scenario +samples k=1" (32-41% in two runs). docs/gate.md
lists every figure of the gate with its command.

``instructions_frac`` and ``instructions_spread_factor``: where both sides of a case carry
instruction counts (``run --instructions``), its time verdict rests on them: regressed when the
count per step grew by more than ``instructions_frac`` and by more than
``instructions_spread_factor`` times the counts' spread (between repeats in one process, and
between rounds). ``aggregate_factor``: the run-wide verdict on the geometric mean of every
case's time ratio (docs/gate.md, "Aggregate").

``outputs_change_factor``: in one environment, the same case of two revisions runs the same
seeded weights and inputs, so its outputs (and, in train mode, gradients) may differ by no
more than the arithmetic explains: each side's relative error against its own float64
reference (``err64``; at least the precision's unit roundoff). A sketch difference beyond
``outputs_change_factor`` times the baseline's is an accuracy regression ("outputs
changed"; the candidate's own error would grow with the change under test); identical
code on a deterministic build gives identical sketches.
``accuracy_growth``: a case failing the calibrated accuracy rule on both sides regressed when its
ratio to the expected error grew by this factor.

``time_basis``: ``"step"`` tests the step times as measured. ``"probe"`` tests step time /
speed-probe time (``harness.runner.speed_probe``) where every record of both sides carries the
probe, which cancels the shared machine's speed changes and so finds more real
slowdowns there, but the probe is not fully independent of the code under test (see
``harness.analysis.gate``), so it is opt-in.

Resolution rule (``thresholds_for``): start from ``DEFAULTS``; apply the global keys of
``[gate]``; then apply every ``per_model`` pattern that matches the model name, from
the least to the most specific, where specificity is the number of non-wildcard
characters of the pattern (an exact name is the most specific) and, between equally
specific patterns, the one written later in the file wins. So for a model
``cbam_resnet18``, ``"cbam_*"`` overrides the global keys, ``"cbam_resnet*"`` overrides
``"cbam_*"``, and ``"cbam_resnet18"`` overrides both, key by key. Overrides given on
the command line (``apply_overrides``) win over everything, per-model entries included.
"""
import fnmatch
from typing import Any, Dict, List, Optional

#: The threshold values used when a scenario says nothing.
DEFAULTS: Dict[str, Any] = {
    "time_factor": 1.10,
    "q": 0.05,
    "memory_frac": 0.05,
    "memory_floor_bytes": 16 * 1024 * 1024,
    "tensor_memory_floor_bytes": 64 * 1024,
    "task_drop": 0.02,
    "task_drop_frac": 0.01,
    "time_test": "auto",
    "min_rounds": 3,
    "time_basis": "step",
    "instructions_frac": 0.02,
    "instructions_spread_factor": 5.0,
    "aggregate_factor": 1.20,
    "outputs_change_factor": 2.0,
    "accuracy_growth": 2.0,
}

TIME_TESTS = ("auto", "samples", "rounds")
TIME_BASES = ("step", "probe")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and value not in (float("inf"), float("-inf"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# key -> (predicate, what is allowed)
_RULES = {
    "time_factor": (lambda v: _is_number(v) and v > 1.0, "a number greater than 1 (1.10 = 10% slower)"),
    "q": (lambda v: _is_number(v) and 0.0 < v < 1.0, "a number strictly between 0 and 1 (e.g. 0.05)"),
    "memory_frac": (lambda v: _is_number(v) and v >= 0.0, "a number >= 0 (0.05 = 5% growth)"),
    "memory_floor_bytes": (lambda v: _is_int(v) and v >= 0, "an integer number of bytes >= 0"),
    "tensor_memory_floor_bytes": (lambda v: _is_int(v) and v >= 0, "an integer number of bytes >= 0"),
    "task_drop": (lambda v: _is_number(v) and v >= 0.0, "a number >= 0, in the task metric's own units"),
    "task_drop_frac": (lambda v: _is_number(v) and v >= 0.0, "a number >= 0 (0.01 = 1% of the baseline value)"),
    "time_test": (lambda v: v in TIME_TESTS, "one of %s" % ", ".join('"%s"' % t for t in TIME_TESTS)),
    "min_rounds": (lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    "time_basis": (lambda v: v in TIME_BASES, "one of %s" % ", ".join('"%s"' % t for t in TIME_BASES)),
    "instructions_frac": (lambda v: _is_number(v) and 0.0 < v < 1.0, "a number between 0 and 1 (0.02 = 2% more)"),
    "instructions_spread_factor": (lambda v: _is_number(v) and v >= 1.0, "a number >= 1"),
    "aggregate_factor": (lambda v: _is_number(v) and v > 1.0, "a number greater than 1 (1.20 = 20% slower)"),
    "outputs_change_factor": (lambda v: _is_number(v) and v >= 1.0, "a number >= 1"),
    "accuracy_growth": (lambda v: _is_number(v) and v > 1.0, "a number greater than 1"),
}

if set(_RULES) != set(DEFAULTS):  # an edit that added a key to one table and not the other
    raise RuntimeError("gate_config: _RULES and DEFAULTS name different keys: %s" % sorted(
        set(_RULES) ^ set(DEFAULTS)))


def _check_keys(table: Dict, where: str, errors: List[str]) -> None:
    for key, value in table.items():
        if key not in _RULES:
            errors.append("%s: unknown key %r (value %r); allowed keys: %s" % (
                where, key, value, ", ".join(sorted(_RULES))))
            continue
        ok, allowed = _RULES[key]
        if not ok(value):
            errors.append("%s.%s = %r: not allowed; must be %s" % (where, key, value, allowed))


def validate_gate_table(table: Dict, where: str) -> List[str]:
    """Every problem of a ``[gate]`` table, as messages naming ``where`` (file and key path).

    Returns an empty list when the table is valid. Unknown keys are errors; so are
    values of the wrong type or range, and ``per_model`` entries that are not tables
    of the same keys (without a nested ``per_model``).
    """
    errors: List[str] = []
    if not isinstance(table, dict):
        return ["%s: must be a table, got %r" % (where, table)]
    flat = {k: v for k, v in table.items() if k != "per_model"}
    _check_keys(flat, where, errors)
    if "per_model" in table:
        per_model = table["per_model"]
        if not isinstance(per_model, dict):
            errors.append("%s.per_model = %r: not allowed; must be a table of tables keyed by model-name "
                          "glob, e.g. [gate.per_model.\"cbam_*\"]" % (where, per_model))
        else:
            for pattern, entry in per_model.items():
                sub = '%s.per_model."%s"' % (where, pattern)
                if not isinstance(pattern, str) or not pattern.strip():
                    errors.append("%s: the model-name glob must be a non-empty string" % sub)
                if not isinstance(entry, dict):
                    errors.append("%s = %r: not allowed; must be a table of threshold keys (%s)" % (
                        sub, entry, ", ".join(sorted(_RULES))))
                    continue
                if "per_model" in entry:
                    errors.append("%s.per_model: not allowed; per_model tables do not nest" % sub)
                _check_keys({k: v for k, v in entry.items() if k != "per_model"}, sub, errors)
    return errors


def _specificity(pattern: str) -> int:
    return sum(1 for ch in pattern if ch not in "*?[]")


def matching_patterns(model: str, table: Optional[Dict]) -> List[str]:
    """The ``per_model`` patterns matching ``model``, in the order they are applied."""
    per_model = (table or {}).get("per_model") or {}
    hits = [(i, pat) for i, pat in enumerate(per_model) if fnmatch.fnmatchcase(str(model), pat)]
    hits.sort(key=lambda item: (_specificity(item[1]), item[0]))
    return [pat for _, pat in hits]


def thresholds_for(model: str, table: Optional[Dict]) -> Dict[str, Any]:
    """The thresholds for ``model``: defaults, then the global keys, then the matching
    ``per_model`` patterns from least to most specific (later wins among equals).

    ``table`` is a ``[gate]`` table (already validated) or None.
    """
    table = table or {}
    result = dict(DEFAULTS)
    result.update({k: v for k, v in table.items() if k != "per_model"})
    per_model = table.get("per_model") or {}
    for pattern in matching_patterns(model, table):
        result.update(per_model[pattern])
    return result


def apply_overrides(table: Optional[Dict], overrides: Optional[Dict]) -> Dict:
    """A copy of ``table`` where each key of ``overrides`` wins everywhere.

    The key is set globally and removed from every ``per_model`` entry, so a value
    given on the command line applies to every model. Raises ``ValueError`` naming the
    bad keys when ``overrides`` is not valid.
    """
    table = dict(table or {})
    if not overrides:
        return table
    errors = validate_gate_table(dict(overrides), "overrides")
    if "per_model" in overrides:
        errors.append("overrides.per_model: not allowed; override global keys only")
    if errors:
        raise ValueError("; ".join(errors))
    per_model = {pat: {k: v for k, v in entry.items() if k not in overrides}
                 for pat, entry in (table.get("per_model") or {}).items()}
    table.update(overrides)
    if per_model:
        table["per_model"] = per_model
    return table
