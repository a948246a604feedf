"""Model sources: names outside the zoo, ``SOURCE:NAME`` or ``package.module:callable``.

``timm:resnet18``, ``torchvision:mobilenet_v3_small`` and ``transformers:GPT2LMHeadModel``
name a model of that library, built randomly initialised (never downloaded) and seeded
as the zoo is; anything else with a colon is a user's ``package.module:callable``
returning an ``nn.Module``. Each source lives in ``models/_source_<name>.py`` and gives
an ``ExternalSpec`` per name: its default sizes, a size check and a builder per size.

Two kinds of failure, kept apart on purpose: a name, config override or inputs table
that is wrong is bad input (``ValueError``, the run does not start); a library that
cannot be imported or used with this torch is ``SourceUnavailable``, and the cases of
its models are recorded ``unsupported`` with the message, while the other models run.
"""
import difflib
import fnmatch
import importlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from models._base import UnsupportedError
from models._registry import ModelSpec

try:  # Python >= 3.8
    from importlib import metadata as _metadata
except ImportError:  # pragma: no cover
    _metadata = None


class SourceUnavailable(UnsupportedError):
    """The source's library cannot be imported or used here; the message says why."""


class BadModel(ValueError):
    """What the scenario names or configures cannot be built as asked (bad input, said by the harness)."""


class NotImportable(ValueError):
    """A user's ``package.module`` cannot be imported: bad input, unless its environment
    failed to install a requirement (then its cases are unsupported)."""


@dataclass(frozen=True)
class ExternalSpec(ModelSpec):
    """A model of a source: sizes and the builder come from the source, not a zoo config."""

    sizes: Tuple[Any, ...] = ()
    size_check: Optional[Callable[[Any], Optional[str]]] = None
    builder: Optional[Callable[[Any], Any]] = None

    @property
    def default_sizes(self) -> List[Any]:
        return list(self.sizes)

    def size_error(self, size: Any) -> Optional[str]:
        return self.size_check(size) if self.size_check is not None else None

    def build(self, size: Any = None):
        return self.builder(self.sizes[0] if size is None and self.sizes else size)


class Source:
    """One library of models. Subclasses set the names and implement ``names`` and ``spec``."""

    #: The name before the colon (``timm``) and the distribution that provides it.
    prefix = ""
    distribution = ""
    #: What the scenario's ``size`` means for this source's models.
    size_axis = ""
    #: Sizes for the records of a source that cannot be imported here (its models cannot say).
    fallback_sizes: Tuple[Any, ...] = (224,)

    def version(self) -> Optional[str]:
        """The installed distribution's version (read without importing it), or None."""
        if _metadata is None:
            return None
        try:
            return _metadata.version(self.distribution)
        except Exception:  # noqa: BLE001 - not installed, or broken metadata
            return None

    def import_library(self):
        """The library's module; SourceUnavailable with the import's message when it fails."""
        try:
            return importlib.import_module(self.prefix)
        except Exception as exc:  # noqa: BLE001 - any import failure means: not usable here
            version = self.version()
            raise SourceUnavailable("cannot import %s%s here: %s: %s" % (
                self.prefix, " " + version if version else " (not installed)", type(exc).__name__,
                str(exc).strip().split("\n")[0][:300])) from None

    def names(self) -> List[str]:
        """Every model name the library offers (without the prefix)."""
        raise NotImplementedError

    def spec(self, name: str, options: Dict[str, Any]) -> ExternalSpec:
        """The spec of ``name``; ValueError for bad input, SourceUnavailable when not usable here."""
        raise NotImplementedError

    def unknown(self, name: str) -> ValueError:
        """The bad-input error of a name the library does not have, with close names."""
        close = difflib.get_close_matches(name, self.names(), n=5, cutoff=0.6)
        return ValueError("%s %s has no model %r%s; `python -m harness list-models '%s:*'` lists them" % (
            self.prefix, self.version() or "", name, " (did you mean %s?)" % ", ".join(close) if close else "",
            self.prefix))


def _sources() -> Dict[str, Source]:
    from models._source_timm import TimmSource
    from models._source_torchvision import TorchvisionSource
    from models._source_transformers import TransformersSource

    return {s.prefix: s for s in (TimmSource(), TorchvisionSource(), TransformersSource())}


_SOURCES: Dict[str, Source] = {}


def library_sources() -> Dict[str, Source]:
    """The library sources by prefix."""
    if not _SOURCES:
        _SOURCES.update(_sources())
    return _SOURCES


def split(name: str) -> Tuple[Optional[Source], str]:
    """``(source, name within it)`` for ``SOURCE:NAME``; ``(None, name)`` for anything else."""
    prefix, sep, rest = name.partition(":")
    source = library_sources().get(prefix) if sep else None
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
            from models._source_module import module_spec

            _SPECS[key] = module_spec(name, options)
        else:
            if options["inputs"]:
                raise ValueError("model %r: an [inputs] table is for a plain nn.Module (package.module:callable); "
                                 "%s models come with their inputs" % (name, source.prefix))
            _SPECS[key] = source.spec(inner, options)
    return _SPECS[key]
