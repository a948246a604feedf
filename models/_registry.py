"""The model registry: names to factories, globs, and models from other sources.

Each zoo variant is registered under its own name, timm style (``cbam_classifier_tiny``,
``cbam_classifier_base``): a scenario names models or globs over those names. Fault
twins (models that reproduce a bug from the seed audits on purpose) are registered
with ``fault=True`` and only match a glob when faults are asked for, or when named
exactly. A name with a colon comes from a source: a library's model (``timm:resnet18``,
``torchvision:*``, ``transformers:GPT2LMHeadModel``) or a user's ``package.module:callable``
returning an ``nn.Module``. The registry knows sources only through one hook,
``register_source_resolver``: the harness fills it (``harness.sources``), so the zoo
imports neither the sources nor the harness and stands alone.
"""
import fnmatch
import importlib
import os
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol

_REGISTRY: Dict[str, "ModelSpec"] = {}
_ZOO_LOADED = False


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model variant without building it."""

    name: str
    model_cls: Any  # the ZooModel subclass: gives size_error() and size_axis
    config: Any  # frozen config dataclass
    family: str = ""
    fault: bool = False
    description: str = ""
    factory: Optional[Callable[[], Any]] = None

    @property
    def default_sizes(self) -> List[Any]:
        return list(getattr(self.config, "default_sizes", ()))

    def size_error(self, size: Any) -> Optional[str]:
        """Why ``size`` is invalid for this variant, or None."""
        return self.model_cls.size_error(self.config, size)

    def build(self, size: Any = None):
        """Instantiate the model (fp32, on the CPU, default initialisation). A zoo model is the
        same at every size; a source's model may be built for one (a ViT's image size)."""
        if self.factory is not None:
            return self.factory()
        return self.model_cls(self.config)


def register_model(name: str, model_cls: Any, config: Any, family: str = "",
                   fault: bool = False, description: str = "") -> ModelSpec:
    """Register one variant; a second registration of the same name is an error."""
    if name in _REGISTRY:
        raise ValueError("model %r is already registered (by %s)" % (name, _REGISTRY[name].family))
    spec = ModelSpec(name=name, model_cls=model_cls, config=config, family=family,
                     fault=fault, description=description)
    _REGISTRY[name] = spec
    return spec


def _load_zoo() -> None:
    # Import every model file of this package once, so each registers its variants. Found by
    # this module's folder and package name, not by importing the package (no import cycle).
    global _ZOO_LOADED
    if _ZOO_LOADED:
        return
    _ZOO_LOADED = True
    package = __name__.rpartition(".")[0]
    for info in pkgutil.iter_modules([os.path.dirname(os.path.abspath(__file__))]):
        if not info.name.startswith("_"):
            importlib.import_module(package + "." + info.name)


class SourceResolver(Protocol):
    """What the registry asks of the model sources: the one interface between the two."""

    def matching(self, pattern: str) -> List[str]:
        """Full names (``timm:resnet18``) matching a source's glob (``timm:*vit*``)."""

    def get_spec(self, name: str, options: Optional[Dict[str, Any]] = None) -> ModelSpec:
        """The spec of a source's model (``ValueError`` for bad input, ``UnsupportedError`` when
        its library cannot be used here)."""


_SOURCE_RESOLVER: Optional[SourceResolver] = None


def register_source_resolver(resolver: Optional[SourceResolver]) -> Optional[SourceResolver]:
    """Make ``resolver`` answer every name with a colon (None: no sources); returns the one it replaces."""
    global _SOURCE_RESOLVER
    previous, _SOURCE_RESOLVER = _SOURCE_RESOLVER, resolver
    return previous


def _sources(name: str) -> SourceResolver:
    if _SOURCE_RESOLVER is None:
        raise ValueError("model %r comes from a model source (a name with a colon), and no source resolver is "
                         "registered: import harness.sources first (the harness does)" % name)
    return _SOURCE_RESOLVER


def is_import_path(name: str) -> bool:
    """True for names a source answers (they hold a colon): ``timm:resnet18``, ``pkg.mod:build``."""
    return ":" in name


def list_models(patterns: Iterable[str] = ("*",), include_faults: bool = False) -> List[str]:
    """Names matching any glob, sorted; faults only if asked or named exactly. A pattern with
    a library source's prefix (``timm:*vit*``) matches that library's names (raising
    the source's ``UnsupportedError`` when it cannot be imported here)."""
    _load_zoo()
    if isinstance(patterns, str):
        patterns = [patterns]
    found = set()
    for pattern in patterns:
        if is_import_path(pattern):
            found.update(_sources(pattern).matching(pattern))
            continue
        for name, spec in _REGISTRY.items():
            if name == pattern or (fnmatch.fnmatchcase(name, pattern) and (include_faults or not spec.fault)):
                found.add(name)
    return sorted(found)


def get_spec(name: str, options: Optional[Dict[str, Any]] = None) -> ModelSpec:
    """The spec of a registered name or of a source's model. ``options``: the scenario's
    ``{"config": {...}, "inputs": {...}}`` for that model (sources only: a zoo model's variants
    are its configurations, ``harness.scenario.models`` refuses tables for them)."""
    if is_import_path(name):
        return _sources(name).get_spec(name, options)
    _load_zoo()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = fnmatch.filter(sorted(_REGISTRY), "*%s*" % name.split("_")[0])[:5]
        hint = (" (did you mean %s?)" % ", ".join(close)) if close else ""
        raise ValueError("unknown model %r%s; `python -m harness list-models` lists them" % (name, hint)) from None


def create_model(name: str, size: Any = None, options: Optional[Dict[str, Any]] = None):
    """Build the model named ``name`` (for ``size``, where the model depends on it)."""
    return get_spec(name, options).build(size)
