"""Which models a scenario's ``model`` patterns name, and whether each can run here.

Zoo names and globs come from the registry. A source's name (``timm:resnet18``,
``transformers:GPT2LMHeadModel``, ``mypkg.nets:build``) is resolved with its
``[config]``/``[inputs]`` tables and built once, so a wrong name, override or table is
bad input before anything runs. A library that cannot be imported here, a library model
name or ``[config]`` field that this environment's release lacks (``NotInRelease``), or a
user's package whose requirement this environment could not install, is not: its models
are ``Resolved`` with the reason, and their cases become ``unsupported`` records while the
other models run.

One environment cannot tell a misspelt name from one a later (or earlier) release has: a
lone run records the cases ``unsupported`` and says so in one line (``before_run``). ``nox
-s matrix`` writes what each environment lacks (``write_names_file``) after installing it
and, before the first case, calls a name that no environment knows bad input
(``names_problems``).
"""
import difflib
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from harness.scenario import requirements
from harness.scenario.releases import LIBRARIES, is_not_in_release

#: Set by ``nox -s matrix`` once it has checked every name against every environment: the lone-run note is not said.
NAMES_CHECKED_ENV_VAR = "TORCHMATRIX_NAMES_CHECKED"
#: The names file of an environment: ``<out>/torch-X.names.json`` (``write_names_file``).
NAMES_SUFFIX = ".names.json"
#: The library sources' prefixes (``harness.sources``): the names a release may lack.
_LIBRARY_PREFIXES = tuple(name + ":" for name in LIBRARIES)


@dataclass(frozen=True)
class Resolved:
    """One model name of the scenario; ``unavailable`` says why it cannot run here (or None)."""

    name: str
    unavailable: Optional[str] = None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n")[0][:300]


def _with_install_note(reason: str, module_name: str, paths: bool) -> str:
    """``reason`` and, where this environment failed to install what could provide ``module_name``,
    the installer's word on it (``harness.scenario.requirements.failed_for``)."""
    failed = requirements.failed_for(requirements.current_report(), module_name, paths)
    note = requirements.failed_note({"failed": failed}) if failed else None
    return "%s; %s" % (reason, note) if note else reason


def check_source_model(name: str, options: Dict[str, Any]) -> Tuple[Optional[str], Optional[str]]:
    """``(problem, unavailable)`` of a source's model: a bad-input problem, or why it cannot
    run here; both None when it is usable. Builds the model once (then lets it go)."""
    import models
    from harness.sources import BadModel, NotImportable, SourceUnavailable

    try:
        spec = models.get_spec(name, options)
    except SourceUnavailable as exc:
        return None, _with_install_note(str(exc), name.partition(":")[0], paths=False)
    except NotImportable as exc:
        module = name.partition(":")[0]
        if requirements.failed_for(requirements.current_report(), module):  # its install failed here
            return None, _with_install_note(str(exc), module, paths=True)
        return str(exc), None
    except ValueError as exc:
        return str(exc), None
    except Exception as exc:  # noqa: BLE001 - the user's module raised while importing
        return "importing it raised %s: %s" % (type(exc).__name__, _first_line(exc)), None
    try:
        spec.build(spec.default_sizes[0] if spec.default_sizes else None)
    except SourceUnavailable as exc:  # an old builder refused a [config] key only when called
        return None, str(exc)
    except models.UnsupportedError:
        return None, None  # a case-level verdict: each case records it
    except BadModel as exc:
        return str(exc), None
    except Exception as exc:  # noqa: BLE001 - the user's factory or the library's constructor raised
        return "building it raised %s: %s" % (type(exc).__name__, _first_line(exc)), None
    return None, None


def resolve(patterns: Sequence[str], include_faults: bool, options_of: Callable[[str], Dict[str, Any]],
            where: str, problems: List[str], checked: Optional[Dict[str, Tuple]] = None) -> List[Resolved]:
    """The models ``patterns`` name, in order, without repeats; every bad name is appended to
    ``problems`` (naming ``where``). ``checked`` keeps each source model's check for the next
    call of one expansion (the matrix and its includes name the same models: built once)."""
    checked = {} if checked is None else checked
    import models
    from harness.sources import SourceUnavailable

    found: Dict[str, Resolved] = {}
    for pattern in patterns:
        if not models.is_import_path(pattern):
            names = models.list_models([pattern], include_faults=include_faults)
            if not names:
                close = difflib.get_close_matches(pattern, models.list_models("*", include_faults=True), n=5)
                problems.append("%s: model %r matches no registered model%s; `python -m harness list-models` lists "
                                "the zoo (and SOURCE:NAME names timm, torchvision, transformers models; "
                                "package.module:callable your own)" % (
                                    where, pattern, " (did you mean %s?)" % ", ".join(close) if close else ""))
            for name in names:
                options = options_of(name)
                if options.get("config") or options.get("inputs"):
                    problems.append("%s: model %r: [config] and [inputs] tables are for models of a source (timm:, "
                                    "torchvision:, transformers:, package.module:callable); a zoo model is "
                                    "configured by its registered variants" % (where, name))
                found.setdefault(name, Resolved(name))
            continue
        if any(c in pattern for c in "*?["):
            try:
                names = models.list_models([pattern])
            except SourceUnavailable as exc:
                found.setdefault(pattern, Resolved(pattern, _with_install_note(str(exc), pattern.partition(":")[0],
                                                                              paths=False)))
                continue
            if not names:
                problems.append("%s: model %r matches no model of its source" % (where, pattern))
        else:
            names = [pattern]
        for name in names:
            if name in found:
                continue
            if name not in checked:
                checked[name] = check_source_model(name, options_of(name))
            problem, unavailable = checked[name]
            if problem:
                problems.append("%s: model %r: %s" % (where, name, problem))
            else:
                found[name] = Resolved(name, unavailable)
    return list(found.values())


def fallback_sizes(name: str) -> List[Any]:
    """Sizes for the records of a model whose source cannot say here (not importable)."""
    from harness.sources import split

    source, _ = split(name)
    return list(source.fallback_sizes) if source is not None else [1]


# --- names a release lacks --------------------------------------------------------------

def missing_here(cases) -> Dict[str, str]:
    """The models of ``cases`` (``(case, not_run)`` pairs, as ``expand`` gives them) whose name or
    ``[config]`` field this environment's library release lacks: model -> reason."""
    found: Dict[str, str] = {}
    for case, not_run in cases:
        if not_run is not None and not_run.status == "unsupported" and is_not_in_release(not_run.reason):
            found.setdefault(case.model, not_run.reason)
    return found


def missing_note(missing: Dict[str, str]) -> Optional[str]:
    """The one line a run of one environment says about ``missing`` (``missing_here``), or None."""
    if not missing:
        return None
    return ("note: %d model(s) not in this environment's library release, recorded unsupported: %s. One "
            "environment cannot tell a misspelt name from one that another release has; `nox -s matrix` checks "
            "every name against every environment" % (len(missing), "; ".join(
                "%s (%s)" % (name, reason) for name, reason in missing.items())))


def before_run(cases, dry_run: bool = False, print_fn=print) -> None:
    """What a run says and sets up once its cases are known: the ``missing_note`` (unless ``nox -s
    matrix`` checked the names), and, in a run without a requirements report, the versions of the
    libraries its models come from for the records (``requirements.LIBRARY_VERSIONS_ENV_VAR``)."""
    note = missing_note(missing_here(cases))
    if note and os.environ.get(NAMES_CHECKED_ENV_VAR) != "1":
        print_fn(note)
    if dry_run or os.environ.get(requirements.REPORT_ENV_VAR):
        return
    from harness.sources import library_versions

    versions = library_versions(dict.fromkeys(case.model for case, _ in cases))
    if versions:  # the workers inherit it
        os.environ[requirements.LIBRARY_VERSIONS_ENV_VAR] = json.dumps(versions, sort_keys=True)


def names_here(cases) -> Dict[str, Optional[str]]:
    """Every library model of ``cases`` (``(case, not_run)`` pairs, as ``spec.expand`` gives them
    in this environment): name -> None (this release has it and its fields) or why not
    (``NotInRelease``'s reason); other reasons a model cannot run here (a library that cannot be
    imported) are left out: they say nothing of the name."""
    out: Dict[str, Optional[str]] = {}
    for case, not_run in cases:
        if not case.model.startswith(_LIBRARY_PREFIXES):
            continue
        reason = not_run.reason if not_run is not None and not_run.status == "unsupported" else None
        if reason is None or is_not_in_release(reason):
            out.setdefault(case.model, reason)
    return out


def write_names_file(cases, out_dir: str, env_label: str) -> str:
    """Write ``names_here(cases)`` of this environment to ``<out_dir>/<env_label>.names.json``; its path."""
    from harness.fileio import atomic_write_text

    path = os.path.join(out_dir, env_label + NAMES_SUFFIX)
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(path, json.dumps({"env_label": env_label, "names": names_here(cases)},
                                       indent=1, sort_keys=True) + "\n")
    return path


def names_problems(out_dir: str, env_label: str, labels: Sequence[str],
                   newest_label: Optional[str] = None) -> Tuple[List[str], Dict[str, str]]:
    """``(problems, cannot_tell)`` of the names ``env_label`` lacks, against the names files of
    ``labels`` in ``out_dir``: a name another environment has, or that ``harness.scenario.releases``
    dates, is a newer (or older) name: unsupported here. A name no environment has is a problem
    (bad input) when every environment of ``labels`` was checked, or when ``newest_label`` (the
    environment that installs the newest releases, unpinned) lacks it too; otherwise it is in
    ``cannot_tell`` (name -> reason). Standard library only: the noxfile calls it."""
    files = {}
    for label in labels:
        try:
            with open(os.path.join(out_dir, label + NAMES_SUFFIX), encoding="utf-8") as fh:
                files[label] = json.load(fh).get("names", {})
        except (OSError, ValueError, AttributeError):
            continue
    from harness.scenario.releases import FIRST_RELEASE

    dated = {name for _, name in FIRST_RELEASE}
    problems, cannot_tell = [], {}
    for name, reason in sorted(files.get(env_label, {}).items()):
        if reason is None:
            continue
        if any(names.get(name, "") is None for label, names in files.items() if label != env_label):
            continue  # another environment's release has it
        if name.partition(":")[2] in dated or "(first in " in reason:
            continue
        every = all(label in files for label in labels)
        newest = files.get(newest_label, {}).get(name) if newest_label is not None else None
        if every or newest:
            problems.append("model %r: no environment's library release has it; here: %s%s" % (
                name, reason, "" if newest_label == env_label or not newest else "; in %s: %s" % (newest_label,
                                                                                                  newest)))
        else:
            cannot_tell[name] = reason
    return problems, cannot_tell
