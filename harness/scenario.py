"""Scenario files: a declarative matrix of cases, loaded, validated and expanded.

A scenario is TOML and pure data (never executed)::

    [scenario]
    name = "default"
    description = "..."

    [matrix]                      # every combination of these axes is a case
    model = ["*_tiny"]            # names, globs, or package.module:factory
    mode = ["train", "eval"]
    batch_size = [2]
    size = ["default"]            # the model's own default sizes, or ints / "HxW"
    precision = ["fp32", "amp_bf16"]
    checkpoint = ["none", "reentrant", "non_reentrant"]
    device = ["cpu"]
    channels_last = [false]       # optional
    compile = [false]             # optional
    sdpa_backend = ["default"]    # optional: default, math, flash, efficient, cudnn (SDPA kernel)
    python_optimized = [false]    # optional: true runs the case's worker under python -O
    include_faults = false        # let globs match the zoo's fault twins

    [[exclude]]                   # drop cases matching every key given
    mode = "eval"
    checkpoint = ["reentrant", "non_reentrant"]

    [[include]]                   # add cases: a small matrix of its own
    model = "cbam_classifier_tiny"
    size = [33]

    [measure]   warm-up, samples, time limits (see MEASURE_DEFAULTS)
    [backend]   allow_tf32, cudnn_benchmark, deterministic
    [tolerance] fp64_multiple (the calibrated accuracy rule's limit), or a fixed
                relative error per precision (an override)
    [task]      optional short training run on each model's synthetic task
    [checks]    deterministic (run each case twice from one seed, compare bitwise),
                leak_steps (n: tensor bytes live after 2n steps vs n steps)
    [gate]      regression thresholds (read by the gate; validated here)
    [config."MODEL"]  constructor keyword arguments of a model (``harness.model_options``)
    [inputs."MODEL"]  a plain nn.Module's inputs (``harness.model_options``)
    [environment]     requirements each environment installs (``harness.requirements``)

Every problem (unknown key, bad value, unknown model, empty expansion) is reported
together as ``ScenarioError``, each naming the file, the key path, the value and
what is allowed. Loading writes nothing.
"""
import fnmatch
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from harness import model_options, requirements, scenario_models
from harness.fileio import REPO_ROOT, TOMLDecodeError, load_toml
from harness.record import Case
from harness.vocab import CASE_AXES as AXES
from harness.vocab import CHECKPOINTS, DEVICES, MODES, PRECISIONS, SDPA_BACKENDS

MEASURE_DEFAULTS = {
    "warmup_iters": 2,        # at least this many untimed iterations ...
    "warmup_s": 0.05,         # ... and at least this long
    "min_sample_s": 0.02,     # each sample runs enough iterations to last this long
    "samples": 7,             # samples per case (fewer only when the budget says so)
    "case_budget_s": 10.0,    # timed work per case; beyond it fewer samples are taken
    "timeout_s": 120.0,       # the worker is killed past this, the case is 'timeout'
    "compile_warmup_s": 120.0,  # extra timeout for compile cases (first call compiles)
    "threads": 0,             # torch.set_num_threads; 0 keeps the build's default
    "speed_probe": True,      # CPU: time harness.runner.speed_probe after each sample (gate: time_basis)
    "seed": 0,
    # Instruction counts (harness.runner.instructions): after each ok case, its step again in
    # one valgrind/callgrind worker per environment, one thread. Deterministic, ~50x slower.
    "instructions": False,
    "instructions_warmup_iters": 0,   # uncounted steps after the first (always uncounted: it allocates)
    "instructions_iters": 1,          # steps per counted repeat
    "instructions_repeats": 2,        # repeats: their spread is the count's own noise
    "instructions_timeout_s": 900.0,  # one case under valgrind; the worker's start-up has its own limit
    # Not counted (instructions "skipped"): a case whose timed step took longer than this. Under
    # valgrind a step runs 50-150x slower: a 0.3 s step (batch 48 of mswr_net_tiny) took 12 min to count.
    "instructions_max_step_s": 0.1,
}
BACKEND_DEFAULTS = {"allow_tf32": False, "cudnn_benchmark": False, "deterministic": False}
# Accuracy (docs/accuracy.md): by default each case's error against a float64 reference,
# in units of the error its precision is expected to make there, must stay within
# fp64_multiple. A number for a precision switches it to a fixed relative error against
# the fp32 reference instead (the override); so does a build with no float64 reference,
# with FALLBACK_TOLERANCE.
TOLERANCE_DEFAULTS: Dict[str, Any] = {"fp32": None, "amp_fp16": None, "amp_bf16": None, "fp16": None,
                                      "bf16": None, "fp64_multiple": 10.0, "fp16_range_factor": 4.0,
                                      "tensor_factor": 10.0}
FALLBACK_TOLERANCE = {"fp32": 1e-4, "amp_fp16": 2e-2, "amp_bf16": 1e-1, "fp16": 2e-2, "bf16": 1e-1}
TASK_DEFAULTS = {"enabled": False, "steps": 20, "batch_size": 8, "lr": 1e-3, "eval_batch_size": 16}
# Behaviour checks asked for (harness.runner.checks); params_updated and eval_buffers always run.
CHECKS_DEFAULTS = {"deterministic": False, "leak_steps": 0}
TOP_LEVEL = ("scenario", "matrix", "exclude", "include", "measure", "backend", "tolerance", "task", "checks",
             "gate", "config", "inputs", "environment")
#: Optional axes and the value a case has when a scenario does not set them.
OPTIONAL_AXES = {"channels_last": False, "compile": False, "sdpa_backend": "default", "python_optimized": False}


class ScenarioError(ValueError):
    """The scenario cannot be used; ``problems`` lists every reason, one per line."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class Scenario:
    """A validated scenario: the source, its settings and the case rules."""

    path: str
    name: str
    description: str
    matrix: Dict[str, List[Any]]
    include_faults: bool
    excludes: List[Dict[str, List[Any]]]
    includes: List[Dict[str, List[Any]]]
    measure: Dict[str, Any]
    backend: Dict[str, Any]
    tolerance: Dict[str, float]
    task: Dict[str, Any]
    gate: Dict[str, Any]
    checks: Dict[str, Any]
    #: ``{"config": {key: table}, "inputs": {key: table}}`` (``harness.model_options``)
    model_tables: Dict[str, Dict[str, Dict[str, Any]]] = field(default_factory=dict)
    #: ``{"requirements": [...], "pins": {env_label: [...]}}``, paths absolute (``harness.requirements``)
    environment: Dict[str, Any] = field(default_factory=dict)

    def model_options(self, model: str) -> Dict[str, Any]:
        """``{"config": {...}, "inputs": {...}}`` of ``model`` (empty tables when it has none)."""
        return model_options.options_for(self.model_tables, model)


# --- value checks -----------------------------------------------------------------

def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    # finite: `inf` and `1e400` (which TOML reads as inf) would only fail later, inside the run
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_SIZE_RE = re.compile(r"^[1-9][0-9]*x[1-9][0-9]*$")


def _axis_value_problem(axis: str, value: Any) -> Optional[str]:
    """Why ``value`` is not allowed on ``axis`` (None when it is)."""
    if axis == "model":
        return None if isinstance(value, str) and value else "a model name, glob or package.module:factory"
    if axis == "mode":
        return None if value in MODES else "one of %s" % ", ".join(MODES)
    if axis == "precision":
        return None if value in PRECISIONS else "one of %s" % ", ".join(PRECISIONS)
    if axis == "checkpoint":
        return None if value in CHECKPOINTS else "one of %s" % ", ".join(CHECKPOINTS)
    if axis == "device":
        return None if value in DEVICES else "one of %s" % ", ".join(DEVICES)
    if axis == "batch_size":
        return None if _is_int(value) and value >= 1 else "an integer >= 1"
    if axis == "size":
        if (_is_int(value) and value >= 1) or value == "default" or (isinstance(value, str) and _SIZE_RE.match(value)):
            return None
        return "an integer >= 1, \"HxW\" (e.g. \"64x48\") or \"default\" (the model's own sizes)"
    if axis in ("channels_last", "compile", "python_optimized"):
        return None if isinstance(value, bool) else "true or false"
    if axis == "sdpa_backend":
        return None if value in SDPA_BACKENDS else "one of %s" % ", ".join(SDPA_BACKENDS)
    return "a known axis"


def _as_list(value: Any) -> List[Any]:
    return list(value) if isinstance(value, list) else [value]


def _check_axes_table(table: Any, where: str, problems: List[str], require_all: bool) -> Dict[str, List[Any]]:
    out: Dict[str, List[Any]] = {}
    if not isinstance(table, dict):
        problems.append("%s: must be a table of axes (%s), got %r" % (where, ", ".join(AXES), table))
        return out
    for key, raw in table.items():
        if key == "include_faults" and where.endswith("matrix"):
            continue
        if key not in AXES:
            problems.append("%s.%s: unknown key; allowed: %s" % (where, key, ", ".join(AXES)))
            continue
        values = _as_list(raw)
        if not values:
            problems.append("%s.%s: empty list; give at least one value" % (where, key))
            continue
        for v in values:
            problem = _axis_value_problem(key, v)
            if problem:
                problems.append("%s.%s: value %r is not allowed; expected %s" % (where, key, v, problem))
        out[key] = values
    if require_all:
        for axis in AXES[:7]:
            if axis not in out and not any(p.startswith("%s.%s:" % (where, axis)) for p in problems):
                problems.append("%s.%s: missing; every scenario sets the axes %s" % (where, axis, ", ".join(AXES[:7])))
        for axis, default in OPTIONAL_AXES.items():
            out.setdefault(axis, [default])
    return out


def _check_settings(table: Any, defaults: Dict[str, Any], where: str, problems: List[str],
                    check) -> Dict[str, Any]:
    merged = dict(defaults)
    if table is None:
        return merged
    if not isinstance(table, dict):
        problems.append("%s: must be a table, got %r" % (where, table))
        return merged
    for key, value in table.items():
        if key not in defaults:
            problems.append("%s.%s: unknown key; allowed: %s" % (where, key, ", ".join(defaults)))
            continue
        problem = check(key, value, defaults[key])
        if problem:
            problems.append("%s.%s: value %r is not allowed; expected %s" % (where, key, value, problem))
        else:
            merged[key] = value
    return merged


def _measure_check(key, value, default):
    if key in ("speed_probe", "instructions"):
        return _bool_check(key, value, default)
    if key in ("instructions_iters", "instructions_repeats"):
        return None if _is_int(value) and value >= 1 else "an integer >= 1"
    if key in ("warmup_iters", "threads", "seed", "instructions_warmup_iters"):
        return None if _is_int(value) and value >= 0 else "an integer >= 0"
    if key == "samples":
        return None if _is_int(value) and value >= 1 else "an integer >= 1"
    if key == "warmup_s":
        return None if _is_num(value) and value >= 0 else "a finite number of seconds >= 0"
    return None if _is_num(value) and value > 0 else "a finite number of seconds > 0"


def _bool_check(key, value, default):
    return None if isinstance(value, bool) else "true or false"


def _tolerance_check(key, value, default):
    if key in ("fp64_multiple", "fp16_range_factor", "tensor_factor"):
        return None if _is_num(value) and 1 <= value <= 1e6 else "a multiple in [1, 1e6]"
    return None if _is_num(value) and 0 < value <= 10 else "a relative error in (0, 10]"


def _checks_check(key, value, default):
    if key == "deterministic":
        return _bool_check(key, value, default)
    return None if _is_int(value) and 0 <= value <= 1000 else "an integer in [0, 1000] (0: no leak check)"


def _task_check(key, value, default):
    if key == "enabled":
        return _bool_check(key, value, default)
    if key == "lr":
        return None if _is_num(value) and value > 0 else "a learning rate > 0"
    return None if _is_int(value) and value >= 1 else "an integer >= 1"


# --- loading ------------------------------------------------------------------------

def resolve_path(name: str) -> str:
    """A scenario path, or the name of one shipped in scenarios/ (``smoke``)."""
    if os.path.exists(name) or os.sep in name or name.endswith(".toml"):
        return name
    return os.path.join(REPO_ROOT, "scenarios", name + ".toml")


def load(path: str) -> Scenario:
    """Read and validate ``path``; raise ScenarioError listing every problem."""
    try:
        data = load_toml(path)
    except FileNotFoundError:
        raise ScenarioError(["%s: no such scenario file" % path]) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(["%s: not a TOML text file: byte %d is not UTF-8 (%s)" % (
            path, exc.start, exc.reason)]) from None
    except IsADirectoryError:
        raise ScenarioError(["%s: a folder, not a scenario file" % path]) from None
    except (OSError, TOMLDecodeError) as exc:
        raise ScenarioError(["%s: cannot read as TOML: %s" % (path, exc)]) from None
    return from_dict(data, path)


def from_dict(data: Dict[str, Any], path: str = "<scenario>") -> Scenario:
    """Validate a parsed scenario (what ``load`` does after parsing)."""
    problems: List[str] = []
    for key in data:
        if key not in TOP_LEVEL:
            problems.append("%s: %s: unknown table; allowed: %s" % (path, key, ", ".join(TOP_LEVEL)))
    head = data.get("scenario", {})
    if not isinstance(head, dict):
        problems.append("%s: scenario: must be a table with name and description" % path)
        head = {}
    for key in head:
        if key not in ("name", "description"):
            problems.append("%s: scenario.%s: unknown key; allowed: name, description" % (path, key))
    name = head.get("name", re.sub(r"[^A-Za-z0-9_.-]", "", os.path.splitext(os.path.basename(path))[0]) or "scenario")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_.-]+$", name):
        problems.append("%s: scenario.name: value %r is not allowed; expected letters, digits, _ . -" % (path, name))

    where = "%s: matrix" % path
    matrix = _check_axes_table(data.get("matrix", {}), where, problems, require_all=True)
    raw_matrix = data.get("matrix", {})
    include_faults = raw_matrix.get("include_faults", False) if isinstance(raw_matrix, dict) else False
    if not isinstance(include_faults, bool):
        problems.append("%s.include_faults: value %r is not allowed; expected true or false" % (where, include_faults))
    rules = {}
    for kind in ("exclude", "include"):
        raw = data.get(kind, [])
        if not isinstance(raw, list):
            problems.append("%s: %s: must be an array of tables ([[%s]]), got %r" % (path, kind, kind, raw))
            raw = []
        rules[kind] = [_check_axes_table(t, "%s: %s[%d]" % (path, kind, i), problems, require_all=False)
                       for i, t in enumerate(raw)]
    measure = _check_settings(data.get("measure"), MEASURE_DEFAULTS, "%s: measure" % path, problems, _measure_check)
    backend = _check_settings(data.get("backend"), BACKEND_DEFAULTS, "%s: backend" % path, problems, _bool_check)
    tolerance = _check_settings(data.get("tolerance"), TOLERANCE_DEFAULTS, "%s: tolerance" % path, problems,
                                _tolerance_check)
    task = _check_settings(data.get("task"), TASK_DEFAULTS, "%s: task" % path, problems, _task_check)
    checks = _check_settings(data.get("checks"), CHECKS_DEFAULTS, "%s: checks" % path, problems, _checks_check)
    gate = data.get("gate", {})
    problems.extend(_gate_problems(gate, "%s: gate" % path))
    tables = model_options.check_tables(data, path, problems)
    environment = requirements.check_table(data.get("environment"), "%s: environment" % path,
                                           os.path.dirname(os.path.abspath(path)), problems)
    if problems:
        raise ScenarioError(problems)
    return Scenario(path=path, name=name, description=head.get("description", ""), matrix=matrix,
                    include_faults=include_faults, excludes=rules["exclude"], includes=rules["include"],
                    measure=measure, backend=backend, tolerance=tolerance, task=task, gate=gate, checks=checks,
                    model_tables=tables, environment=environment)


def _gate_problems(gate: Any, where: str) -> List[str]:
    try:
        from harness.gate_config import validate_gate_table
    except ImportError:  # the gate's thresholds module is optional for the runner
        return [] if isinstance(gate, dict) else ["%s: must be a table" % where]
    return list(validate_gate_table(gate, where))


# --- expansion ---------------------------------------------------------------------

@dataclass(frozen=True)
class NotRun:
    """Why a case is recorded without running: ``skipped`` (the model declares the size
    invalid) or ``unsupported`` (its source cannot be used here), and the reason."""

    status: str
    reason: str


def _parse_size(value: Any) -> Any:
    # A square "HxW" is its side; a non-square one stays "HxW" text (the case key, the record
    # and the model's ``models.image_hw`` all read it so).
    if isinstance(value, str) and "x" in value:
        h, w = value.split("x")
        return "%dx%d" % (int(h), int(w)) if int(h) != int(w) else int(h)
    return value


def _matches(case: Case, rule: Dict[str, List[Any]]) -> bool:
    for axis, values in rule.items():
        got = getattr(case, axis)
        if axis == "model":
            if not any(fnmatch.fnmatchcase(got, str(v)) for v in values):
                return False
        elif axis == "size":
            if got not in [_parse_size(v) for v in values] and "default" not in values:
                return False
        elif got not in values:
            return False
    return True


def _cases_of(table: Dict[str, List[Any]], scenario: Scenario, where: str, problems: List[str],
              checked: Dict[str, Any]):
    import models

    for model in scenario_models.resolve(table["model"], scenario.include_faults, scenario.model_options, where,
                                         problems, checked):
        spec = None if model.unavailable else models.get_spec(model.name, scenario.model_options(model.name))
        defaults = scenario_models.fallback_sizes(model.name) if spec is None else spec.default_sizes
        sizes: List[Any] = []
        for size in table["size"]:
            sizes.extend(defaults if size == "default" else [_parse_size(size)])
        if not sizes:
            problems.append("%s: model %r declares no default sizes; give sizes explicitly" % (where, model.name))
        axes = [table[axis] for axis in AXES[1:]]
        axes[AXES.index("size") - 1] = list(dict.fromkeys(sizes))
        for combo in itertools.product(*axes):
            case = Case(model.name, *combo)
            if model.unavailable:
                yield case, NotRun("unsupported", model.unavailable)
            else:
                reason = spec.size_error(case.size)
                yield case, NotRun("skipped", "invalid size: " + reason) if reason else None


def expand(scenario: Scenario, only: Optional[Dict[str, List[str]]] = None) -> List[Tuple[Case, Optional[NotRun]]]:
    """All cases in order, each with None or why it is recorded without running (``NotRun``).

    ``only`` keeps cases whose axes match (globs for model; text compare otherwise),
    as given on the command line. Raises ScenarioError when a model is unknown or
    nothing is left.
    """
    problems: List[str] = []
    out: Dict[str, Tuple[Case, Optional[NotRun]]] = {}
    sources = [(scenario.matrix, "%s: matrix" % scenario.path)]
    for i, inc in enumerate(scenario.includes):
        table = dict(scenario.matrix)
        table.update(inc)
        sources.append((table, "%s: include[%d]" % (scenario.path, i)))
    names: List[str] = []
    checked: Dict[str, Any] = {}  # each source model checked (built) once per expansion
    for table, where in sources:
        for case, not_run in _cases_of(table, scenario, where, problems, checked):
            names.append(case.model)
            if where.endswith("matrix") and any(_matches(case, rule) for rule in scenario.excludes):
                continue
            if only and not all(_only_matches(case, axis, vals) for axis, vals in only.items()):
                continue
            out.setdefault(case.key, (case, not_run))
    if not problems:  # a key may name a model that failed above: that problem is the one to tell
        problems.extend(model_options.key_problems(scenario.model_tables, list(dict.fromkeys(names)),
                                                   scenario.path))
    if problems:
        raise ScenarioError(problems)
    if not out:
        raise ScenarioError(["%s: the matrix expands to no case%s" % (
            scenario.path, " after the filters %s" % only if only else "")])
    return list(out.values())


def _only_matches(case: Case, axis: str, values: List[str]) -> bool:
    got = getattr(case, axis)
    return any(fnmatch.fnmatchcase(str(got).lower(), str(v).lower()) for v in values)


def parse_only(items: Sequence[str]) -> Dict[str, List[str]]:
    """Parse ``axis=v1,v2`` filters; raise ScenarioError naming a bad one."""
    only: Dict[str, List[str]] = {}
    for item in items:
        axis, sep, values = item.partition("=")
        if not sep or axis not in AXES or not values:
            raise ScenarioError(["--only %r: expected AXIS=VALUE[,VALUE...] with AXIS one of %s" % (
                item, ", ".join(AXES))])
        only.setdefault(axis, []).extend(v for v in values.split(",") if v)
    return only
