"""Model sources: names outside the zoo, ``SOURCE:NAME`` or ``package.module:callable``.

``timm:resnet18``, ``torchvision:mobilenet_v3_small`` and ``transformers:GPT2LMHeadModel``
name a model of that library, built randomly initialised (never downloaded) and seeded
as the zoo is; anything else with a colon is a user's ``package.module:callable``
returning an ``nn.Module``. One module per source (``timm_source``, ``torchvision_source``,
``transformers_source``, ``module_source``) gives an ``ExternalSpec`` per name: its default
sizes, a size check and a builder per size; ``base`` holds what they share, ``external``
the ``nn.Module`` adapter behind the zoo interface. docs/user-models.md is the user's guide.

The sources sit beside the zoo, not in it: the zoo's registry knows them only through its
one hook (``models.register_source_resolver``), which importing this package fills, so
the zoo imports neither the sources nor the harness (``python -m tools.import_graph``).
Whatever resolves models by name for the harness (the runner's case step, the scenario's
model check, ``list-models``) imports this package first.
"""
import fnmatch
import json
from typing import Any, Dict, List, Optional, Tuple

from harness.sources.base import (
    BadModel,
    ExternalSpec,
    NotImportable,
    NotInRelease,
    Source,
    SourceUnavailable,
    is_not_in_release,
)
from harness.sources.module_source import module_spec
from harness.sources.timm_source import TimmSource
from harness.sources.torchvision_source import TorchvisionSource
from harness.sources.transformers_source import TransformersSource
from models import register_source_resolver

__all__ = ["BadModel", "ExternalSpec", "NotImportable", "NotInRelease", "Source", "SourceUnavailable", "get_spec",
           "is_not_in_release", "library_sources", "library_versions", "matching", "split"]

_SOURCES: Dict[str, Source] = {s.prefix: s for s in (TimmSource(), TorchvisionSource(), TransformersSource())}


def library_sources() -> Dict[str, Source]:
    """The library sources by prefix."""
    return _SOURCES


def library_versions(names) -> Dict[str, str]:
    """The installed version of each library that ``names`` (``timm:resnet18``, ...) come from
    (distribution -> version; read without importing), for the records of a run without nox."""
    found = {}
    for name in names:
        source, _ = split(name)
        version = source.version() if source is not None else None
        if version:
            found[source.distribution] = version
    return dict(sorted(found.items()))


def split(name: str) -> Tuple[Optional[Source], str]:
    """``(source, name within it)`` for ``SOURCE:NAME``; ``(None, name)`` for anything else."""
    prefix, sep, rest = name.partition(":")
    source = _SOURCES.get(prefix) if sep else None
    return (source, rest) if source is not None else (None, name)


def matching(pattern: str) -> List[str]:
    """Full names (``timm:resnet18``) of a library source's models matching ``pattern``
    (``timm:*vit*``); SourceUnavailable when the library cannot be imported."""
    source, inner = split(pattern)
    if source is None:
        return []
    return ["%s:%s" % (source.prefix, n) for n in source.names() if fnmatch.fnmatchcase(n, inner)]


_SPECS: Dict[Tuple[str, str], ExternalSpec] = {}


def get_spec(name: str, options: Optional[Dict[str, Any]] = None) -> ExternalSpec:
    """The spec of a source's model (cached per name and options)."""
    options = {"config": dict((options or {}).get("config") or {}), "inputs": dict((options or {}).get("inputs") or {})}
    key = (name, json.dumps(options, sort_keys=True))
    if key not in _SPECS:
        source, inner = split(name)
        if source is None:
            _SPECS[key] = module_spec(name, options)
        else:
            if options["inputs"]:
                raise ValueError("model %r: an [inputs] table is for a plain nn.Module (package.module:callable); "
                                 "%s models come with their inputs" % (name, source.prefix))
            try:
                _SPECS[key] = source.spec(inner, options)
            except (SourceUnavailable, ValueError):  # not usable here, or bad input: as they are
                raise
            except Exception as exc:  # noqa: BLE001 - the library failed looking the name up, in this release
                raise source.raised(inner, exc) from None
    return _SPECS[key]


class _Resolver:
    """What the registry asks of the sources (``models._registry.SourceResolver``)."""

    matching = staticmethod(matching)
    get_spec = staticmethod(get_spec)


#: The resolver this package installs in the zoo's registry on import (idempotent: the same object).
RESOLVER = _Resolver()
register_source_resolver(RESOLVER)
