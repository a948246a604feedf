"""Thresholds of the regression gate: defaults, validation, per-model resolution.

Every key, its default and meaning, the ``per_model`` resolution rule and ``--set``:
docs/gate.md, "Thresholds".

Standard library only: the runner-side scenario loader imports this module (Python
3.9, no pandas) to validate the ``[gate]`` table of a scenario file, and the analysis
side (``harness.analysis.gate``) uses it to resolve each case's thresholds.
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


def _flat(table: Optional[Dict]) -> Dict[str, Any]:
    """``{key path: value}`` of a ``[gate]`` table: global keys with their defaults filled in,
    ``per_model."glob".key`` for the per-model entries."""
    table = table or {}
    flat: Dict[str, Any] = dict(DEFAULTS)
    flat.update({k: v for k, v in table.items() if k != "per_model"})
    for pattern, entry in (table.get("per_model") or {}).items():
        for key, value in (entry or {}).items():
            flat['per_model."%s".%s' % (pattern, key)] = value
    return flat


def diff_gate_tables(base: Optional[Dict], head: Optional[Dict]) -> List[Dict[str, Any]]:
    """The thresholds ``head`` sets differently from ``base``: ``[{"key", "base", "head"}]`` in key
    order, a value a side does not set being None (a global key then has its default). The gate's
    policy comes from the base; ``ab`` shows these changes and does not apply them unless trusted."""
    fb, fh = _flat(base), _flat(head)
    return [{"key": key, "base": fb.get(key), "head": fh.get(key)}
            for key in sorted(set(fb) | set(fh)) if fb.get(key) != fh.get(key)]
