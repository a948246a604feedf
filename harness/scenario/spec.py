"""Scenario files: a declarative matrix of cases, loaded, validated and expanded.

A scenario is TOML and pure data (never executed)::

    [scenario]
    name = "default"
    description = "..."

    [matrix]                      # every combination of these axes is a case
    model = ["*_tiny"]            # names, globs, or package.module:factory
    mode = ["train", "eval"]
    batch_size = [2]              # or "max": the largest batch that fits ([max_batch])
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
    [max_batch] the search of a case whose batch_size is "max": start, limit, cpu_cap_gib,
                cuda_cap_gib (see MAX_BATCH_DEFAULTS)
    [profile]   torch.profiler traces of chosen cases: cases (axis tables as [[exclude]]'s),
                wait, warmup, active (the schedule; see PROFILE_DEFAULTS, harness.runner.profile)
    [gate]      regression thresholds (read by the gate; validated here)
    [config."MODEL"]  constructor keyword arguments of a model (``harness.scenario.model_options``)
    [inputs."MODEL"]  a plain nn.Module's inputs (``harness.scenario.model_options``)
    [environment]     requirements each environment installs (``harness.scenario.requirements``)

Every problem (unknown key, bad value, unknown model, empty expansion) is reported
together as ``ScenarioError``, each naming the file, the key path, the value and
what is allowed. Loading writes nothing.
"""
import fnmatch
import itertools
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from harness.fileio import REPO_ROOT, TOMLDecodeError, load_toml
from harness.record.schema import Case
from harness.scenario import model_options, requirements
from harness.scenario import models as scenario_models
from harness.scenario.settings import (
    BACKEND_DEFAULTS,
    CHECKS_DEFAULTS,
    MAX_BATCH_DEFAULTS,
    MEASURE_DEFAULTS,
    PROFILE_DEFAULTS,
    TASK_DEFAULTS,
    TOLERANCE_DEFAULTS,
    bool_check,
    check_settings,
    checks_check,
    is_int,
    max_batch_check,
    measure_check,
    profile_check,
    task_check,
    tolerance_check,
)
from harness.vocab import CASE_AXES as AXES
from harness.vocab import CHECKPOINTS, DEVICES, MAX_BATCH, MODES, PRECISIONS, SDPA_BACKENDS

TOP_LEVEL = ("scenario", "matrix", "exclude", "include", "measure", "backend", "tolerance", "task", "checks",
             "gate", "config", "inputs", "environment", "max_batch", "profile")
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
    #: ``{"config": {key: table}, "inputs": {key: table}}`` (``harness.scenario.model_options``)
    model_tables: Dict[str, Dict[str, Dict[str, Any]]] = field(default_factory=dict)
    #: ``{"requirements": [...], "pins": {env_label: [...]}}``, paths absolute (``harness.scenario.requirements``)
    environment: Dict[str, Any] = field(default_factory=dict)
    #: the largest-batch search's settings (``MAX_BATCH_DEFAULTS``)
    max_batch: Dict[str, Any] = field(default_factory=lambda: dict(MAX_BATCH_DEFAULTS))
    #: which cases get a profiler trace and its schedule (``PROFILE_DEFAULTS``; ``profiled``)
    profile: Dict[str, Any] = field(default_factory=lambda: dict(PROFILE_DEFAULTS, cases=[]))

    def model_options(self, model: str) -> Dict[str, Any]:
        """``{"config": {...}, "inputs": {...}}`` of ``model`` (empty tables when it has none)."""
        return model_options.options_for(self.model_tables, model)


# --- value checks -----------------------------------------------------------------

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
        if (is_int(value) and value >= 1) or value == MAX_BATCH:
            return None
        return "an integer >= 1, or \"%s\" (search for the largest batch that fits: [max_batch])" % MAX_BATCH
    if axis == "size":
        if (is_int(value) and value >= 1) or value == "default" or (isinstance(value, str) and _SIZE_RE.match(value)):
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
    measure = check_settings(data.get("measure"), MEASURE_DEFAULTS, "%s: measure" % path, problems, measure_check)
    backend = check_settings(data.get("backend"), BACKEND_DEFAULTS, "%s: backend" % path, problems, bool_check)
    tolerance = check_settings(data.get("tolerance"), TOLERANCE_DEFAULTS, "%s: tolerance" % path, problems,
                                tolerance_check)
    task = check_settings(data.get("task"), TASK_DEFAULTS, "%s: task" % path, problems, task_check)
    checks = check_settings(data.get("checks"), CHECKS_DEFAULTS, "%s: checks" % path, problems, checks_check)
    max_batch = check_settings(data.get("max_batch"), MAX_BATCH_DEFAULTS, "%s: max_batch" % path, problems,
                                max_batch_check)
    if max_batch["start"] > max_batch["limit"]:
        problems.append("%s: max_batch.start: value %r is not allowed; expected at most limit (%r)" % (
            path, max_batch["start"], max_batch["limit"]))
    profile = check_settings(data.get("profile"), PROFILE_DEFAULTS, "%s: profile" % path, problems, profile_check)
    profile["cases"] = [_check_axes_table(t, "%s: profile.cases[%d]" % (path, i), problems, require_all=False)
                        for i, t in enumerate(profile["cases"])]
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
                    model_tables=tables, environment=environment, max_batch=max_batch, profile=profile)


def _gate_problems(gate: Any, where: str) -> List[str]:
    try:
        from harness.scenario.gate_config import validate_gate_table
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


def profiled(scenario: Scenario, case: Case) -> bool:
    """Whether ``case`` gets a profiler trace: it matches one of the ``[profile]`` table's (and
    ``--profile``'s) axis tables, as a case matches an ``[[exclude]]`` table (a largest-batch search
    never: it takes no timed steps)."""
    return case.batch_size != MAX_BATCH and any(_matches(case, rule) for rule in scenario.profile.get("cases", []))


def _cli_value(axis: str, text: str) -> Any:
    """A command-line value as a scenario file would write it (numbers, booleans)."""
    if axis in ("batch_size", "size") and text.isdigit():
        return int(text)
    if axis in ("channels_last", "compile", "python_optimized"):
        return {"true": True, "1": True, "false": False, "0": False}.get(text.lower(), text)
    return text


def add_profile_rules(scenario: Scenario, items: Sequence[str],
                      cases: Sequence[Tuple[Case, Optional[NotRun]]]) -> None:
    """Add ``run --profile`` rules to ``scenario.profile["cases"]``: each item is ``AXIS=V[,V...]`` parts
    joined by ';' (``model=cbam*;precision=bf16;mode=train``), the keys and values of an ``[[exclude]]``
    table. Raise ScenarioError for a bad item, and for one that matches none of ``cases`` that run."""
    problems: List[str] = []
    for item in items:
        table: Dict[str, List[Any]] = {}
        for part in item.split(";"):
            axis, sep, values = part.strip().partition("=")
            axis = axis.strip()
            if not sep or not axis or not values.strip():
                problems.append("--profile %r: expected AXIS=VALUE[,VALUE...] parts joined by ';' with AXIS one of "
                                "%s" % (item, ", ".join(AXES)))
                table = {}
                break
            table.setdefault(axis, []).extend(_cli_value(axis, v.strip()) for v in values.split(",") if v.strip())
        if not table:
            continue
        before = len(problems)
        rule = _check_axes_table(table, "--profile", problems, require_all=False)
        if len(problems) > before:
            continue
        if not any(not_run is None and case.batch_size != MAX_BATCH and _matches(case, rule)
                   for case, not_run in cases):
            problems.append("--profile %r: matches none of the %d cases that run" % (
                item, sum(1 for _, not_run in cases if not_run is None)))
            continue
        scenario.profile["cases"].append(rule)
    if problems:
        raise ScenarioError(problems)
