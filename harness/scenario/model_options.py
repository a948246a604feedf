"""A scenario's per-model tables: ``[config."MODEL"]`` and ``[inputs."MODEL"]``.

What a key matches, where ``[config]`` goes and how each ``[inputs]`` entry is drawn:
docs/user-models.md, "``[config]`` and ``[inputs]``".

Standard library only: the scenario validates these tables before anything imports torch.
"""
import fnmatch
import math
from typing import Any, Dict, List, Optional

#: The dtypes an ``[inputs]`` entry may ask for.
FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
INT_DTYPES = ("int64", "int32")
INPUT_DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool",)
#: Shape entries that stand for a case axis.
PLACEHOLDERS = ("batch", "size")
_INPUT_KEYS = ("shape", "dtype", "low", "high", "std")
#: The per-model tables, by top-level key.
TABLES = ("config", "inputs")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _plain_value(value: Any) -> bool:
    # What a constructor argument may be: it travels to the worker as JSON (no TOML dates).
    if isinstance(value, (str, bool)) or _is_num(value):
        return True
    if isinstance(value, list):
        return all(_plain_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_value(v) for k, v in value.items())
    return False


def input_problem(entry: Any) -> Optional[str]:
    """Why one ``[inputs]`` entry is not a usable input, or None."""
    if not isinstance(entry, dict):
        return "an inline table { shape = [...], dtype = \"...\" }"
    unknown = [k for k in entry if k not in _INPUT_KEYS]
    if unknown:
        return "only the keys %s (got %s)" % (", ".join(_INPUT_KEYS), ", ".join(unknown))
    shape = entry.get("shape")
    if not isinstance(shape, list) or not shape:
        return "a shape: a non-empty list of integers >= 1 and the placeholders %s" % " / ".join(PLACEHOLDERS)
    for dim in shape:
        if not ((_is_int(dim) and dim >= 1) or dim in PLACEHOLDERS):
            return "a shape of integers >= 1 and the placeholders %s; %r is neither" % (
                " / ".join(PLACEHOLDERS), dim)
    dtype = entry.get("dtype", "float32")
    if dtype not in INPUT_DTYPES:
        return "a dtype among %s, got %r" % (", ".join(INPUT_DTYPES), dtype)
    low, high = entry.get("low"), entry.get("high")
    if dtype in INT_DTYPES:
        if "std" in entry:
            return "no std for an integer input"
        if not _is_int(high) or (low is not None and not _is_int(low)) or (low or 0) >= high:
            return "integer bounds: high (an integer) and optionally low (default 0), low < high"
    elif dtype == "bool":
        if low is not None or high is not None or "std" in entry:
            return "no low, high or std for a bool input (it is a coin flip)"
    else:
        if (low is None) != (high is None) or (low is not None and not (_is_num(low) and _is_num(high)
                                                                        and low < high)):
            return "both low and high (numbers, low < high) for a uniform input, or neither"
        if "std" in entry and not (_is_num(entry["std"]) and entry["std"] > 0):
            return "std > 0"
    return None


def check_tables(data: Dict[str, Any], path: str, problems: List[str]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Validate the top-level ``config`` and ``inputs`` tables of a parsed scenario; return
    ``{"config": {key: table}, "inputs": {key: table}}``."""
    out: Dict[str, Dict[str, Dict[str, Any]]] = {kind: {} for kind in TABLES}
    for kind in TABLES:
        raw = data.get(kind, {})
        where = "%s: %s" % (path, kind)
        if not isinstance(raw, dict):
            problems.append("%s: must be a table of model name = table, e.g. [%s.\"timm:resnet18\"], got %r" % (
                where, kind, raw))
            continue
        for key, table in raw.items():
            if not isinstance(table, dict):
                problems.append("%s.%r: must be a table, got %r" % (where, key, table))
                continue
            if kind == "config":
                for name, value in table.items():
                    if not _plain_value(value):
                        problems.append("%s.%r.%s: value %r is not allowed; expected a string, number, boolean, "
                                        "or a list or table of those" % (where, key, name, value))
            else:
                if not table:
                    problems.append("%s.%r: empty; give one entry per positional input" % (where, key))
                for name, entry in table.items():
                    problem = input_problem(entry)
                    if problem:
                        problems.append("%s.%r.%s: value %r is not allowed; expected %s" % (
                            where, key, name, entry, problem))
            out[kind][key] = table
    return out


def options_for(tables: Dict[str, Dict[str, Dict[str, Any]]], model: str) -> Dict[str, Any]:
    """The options of ``model``: ``{"config": {...}, "inputs": {...}}`` from the table whose key
    is ``model`` or a glob matching it (empty tables when none does)."""
    out: Dict[str, Any] = {}
    for kind in TABLES:
        keys = matching_keys(tables.get(kind, {}), model)
        out[kind] = dict(tables[kind][keys[0]]) if keys else {}
    return out


def matching_keys(tables: Dict[str, Any], model: str) -> List[str]:
    """The keys of ``tables`` that name ``model`` (exactly or as a glob)."""
    return [key for key in tables if key == model or fnmatch.fnmatchcase(model, key)]


def key_problems(tables: Dict[str, Dict[str, Dict[str, Any]]], models: List[str], path: str) -> List[str]:
    """Keys that name none of ``models``, and models named by two keys of one kind. A model
    name that is still a glob (its source could not list its names here) answers every key
    it matches."""
    problems = []
    for kind in TABLES:
        for key in tables.get(kind, {}):
            if not any(key == m or fnmatch.fnmatchcase(m, key) or fnmatch.fnmatchcase(key, m) for m in models):
                problems.append("%s: %s.%r: names none of the scenario's models (%s)" % (
                    path, kind, key, ", ".join(models[:8]) + (" ..." if len(models) > 8 else "")))
        for model in models:
            keys = matching_keys(tables.get(kind, {}), model)
            if len(keys) > 1:
                problems.append("%s: %s: model %r is named by %s; give it one table" % (
                    path, kind, model, " and ".join(repr(k) for k in keys)))
    return problems
