"""What every model source is: ``Source`` (one library of models), ``ExternalSpec`` (one of its
models, as the zoo's registry knows a model), and the two failures a source can meet.

Two kinds of failure, kept apart on purpose: a name, config override or inputs table
that is wrong is bad input (``ValueError``, the run does not start); a library that
cannot be imported or used with this torch is ``SourceUnavailable``, and the cases of
its models are recorded ``unsupported`` with the message, while the other models run.
"""
import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from models import ModelSpec, UnsupportedError

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
