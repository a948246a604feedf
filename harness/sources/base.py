"""What every model source is: ``Source`` (one library of models), ``ExternalSpec`` (one of its
models, as the zoo's registry knows a model), and the two failures a source can meet.

Two kinds of failure, kept apart on purpose: a name, config override or inputs table
that is wrong is bad input (``ValueError``, the run does not start); a library that
cannot be imported or used with this torch is ``SourceUnavailable``, and the cases of
its models are recorded ``unsupported`` with the message, while the other models run.
A library model name or ``[config]`` field that the installed release lacks is
``NotInRelease`` (a ``SourceUnavailable``): a fact about this environment, since another
release may have it; ``nox -s matrix`` tells a name that no environment knows (a typo)
from one that only this release lacks (``harness.scenario.models``).
"""
import difflib
import importlib
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from harness.scenario.releases import NOT_IN_RELEASE_PREFIX, first_release, is_not_in_release  # noqa: F401
from models import ModelSpec, UnsupportedError

try:  # Python >= 3.8
    from importlib import metadata as _metadata
except ImportError:  # pragma: no cover
    _metadata = None


class SourceUnavailable(UnsupportedError):
    """The source's library cannot be imported or used here; the message says why."""


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n")[0][:300]


class NotInRelease(SourceUnavailable):
    """The installed release of a library lacks a model name or a ``[config]`` field.

    The message reads ``not in torchvision 0.11.3: no model 'swin_t' (first in torchvision 0.13.0)``;
    ``library``, ``release``, ``missing`` (the name, or ``Config.field``) and ``first`` (the first
    release that has it, where ``harness.scenario.releases`` knows it) say the same as fields."""

    def __init__(self, library: str, release: Optional[str], missing: str, what: str, hint: str = ""):
        self.library, self.release, self.missing = library, release or "(version unknown)", missing
        self.first = first_release(library, missing)
        # a release known to have it says it all: close names of this release would only mislead
        tail = " (first in %s %s)" % (library, self.first) if self.first else hint
        super().__init__("%s%s %s: %s%s" % (NOT_IN_RELEASE_PREFIX, library, self.release, what, tail))


def unexpected_keyword(exc: TypeError, given: Dict[str, Any]) -> Optional[str]:
    """The ``[config]`` key of ``given`` that a constructor refused in ``exc`` ("got an unexpected
    keyword argument 'x'"), or None when the TypeError says something else."""
    found = re.search(r"keyword argument '([^']+)'", str(exc))
    return found.group(1) if found and found.group(1) in given else None


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
                _first_line(exc))) from None

    def names(self) -> List[str]:
        """Every model name the library offers (without the prefix)."""
        raise NotImplementedError

    def spec(self, name: str, options: Dict[str, Any]) -> ExternalSpec:
        """The spec of ``name``; ValueError for bad input, SourceUnavailable when not usable here."""
        raise NotImplementedError

    def raised(self, name: str, exc: BaseException) -> SourceUnavailable:
        """The error of a name whose lookup the library itself failed (a release that imports a part
        of torch this torch lacks): a fact about this environment, its cases unsupported here."""
        import torch

        cause = exc.__cause__ if exc.__cause__ is not None else exc
        said = "%s: %s" % (type(exc).__name__, _first_line(exc))
        if cause is not exc:
            said += " (%s: %s)" % (type(cause).__name__, _first_line(cause))
        return SourceUnavailable("%s %s cannot provide %r with torch %s here: %s" % (
            self.prefix, self.version() or "(version unknown)", name, torch.__version__.split("+")[0], said))

    def unknown(self, name: str) -> "NotInRelease":
        """The error of a name the installed release does not have, with close names."""
        close = difflib.get_close_matches(name, self.names(), n=5, cutoff=0.6)
        return NotInRelease(self.prefix, self.version(), name, "no model %r" % name,
                            "%s; `python -m harness list-models '%s:*'` lists this release's names" % (
                                " (did you mean %s?)" % ", ".join(close) if close else "", self.prefix))

    def missing_field(self, field: str, owner: str, known: List[str]) -> "NotInRelease":
        """The error of a ``[config]`` ``field`` that ``owner`` (a config class, a constructor) of
        this release does not take, with close fields among ``known``; ``missing`` is ``owner.field``."""
        close = difflib.get_close_matches(field, known, n=3)
        return NotInRelease(self.prefix, self.version(), "%s.%s" % (owner, field),
                            "%s has no field %r" % (owner, field),
                            " (did you mean %s?)" % ", ".join(close) if close else "")
