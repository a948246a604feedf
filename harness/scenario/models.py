"""Which models a scenario's ``model`` patterns name, and whether each can run here.

Zoo names and globs come from the registry. A source's name (``timm:resnet18``,
``transformers:GPT2LMHeadModel``, ``mypkg.nets:build``) is resolved with its
``[config]``/``[inputs]`` tables and built once, so a wrong name, override or table is
bad input before anything runs. A library that cannot be imported here, or a user's
package whose requirement this environment could not install, is not: its models are
``Resolved`` with the reason, and their cases become ``unsupported`` records while the
other models run.
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from harness.scenario import requirements


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
                known = models.list_models("*", include_faults=True)
                problems.append("%s: model %r matches no registered model; known: %s (and SOURCE:NAME for timm, "
                                "torchvision, transformers, package.module:callable)" % (
                                    where, pattern, ", ".join(known)))
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
