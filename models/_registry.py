"""The model registry: names to factories, globs, and user models by import path.

Each zoo variant is registered under its own name, timm style (``cbam_classifier_tiny``,
``cbam_classifier_base``): a scenario names models or globs over those names. Fault
twins (models that reproduce a bug from the seed audits on purpose) are registered
with ``fault=True`` and only match a glob when faults are asked for, or when named
exactly. A user's own model is named by import path, ``package.module:factory``; the
factory takes no arguments and returns a ``ZooModel`` (or any module with the same
interface).
"""
import fnmatch
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional

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

    def build(self):
        """Instantiate the model (fp32, on the CPU, default initialisation)."""
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
    # Import every module of the models package once, so each registers its variants.
    global _ZOO_LOADED
    if _ZOO_LOADED:
        return
    _ZOO_LOADED = True
    import models

    for info in pkgutil.iter_modules(models.__path__):
        if not info.name.startswith("_"):
            importlib.import_module("models." + info.name)


def is_import_path(name: str) -> bool:
    """True for ``package.module:factory`` names (user models)."""
    return ":" in name


def list_models(patterns: Iterable[str] = ("*",), include_faults: bool = False) -> List[str]:
    """Registered names matching any glob, sorted; faults only if asked or named exactly."""
    _load_zoo()
    if isinstance(patterns, str):
        patterns = [patterns]
    found = set()
    for pattern in patterns:
        for name, spec in _REGISTRY.items():
            if name == pattern or (fnmatch.fnmatchcase(name, pattern) and (include_faults or not spec.fault)):
                found.add(name)
    return sorted(found)


def _spec_from_import_path(path: str) -> ModelSpec:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError("a user model is named 'package.module:factory', got %r" % path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError("cannot import module %r for model %r: %s" % (module_name, path, exc)) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError("module %r has no callable %r (model %r)" % (module_name, attr, path))
    from models._base import ZooModel

    model_cls = getattr(factory, "model_cls", ZooModel)
    config = getattr(factory, "config", None)
    return ModelSpec(name=path, model_cls=model_cls, config=config, family="user",
                     description=(factory.__doc__ or "").strip().split("\n")[0], factory=factory)


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered name or of a ``package.module:factory`` path."""
    if is_import_path(name):
        return _spec_from_import_path(name)
    _load_zoo()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = fnmatch.filter(sorted(_REGISTRY), "*%s*" % name.split("_")[0])[:5]
        hint = (" (did you mean %s?)" % ", ".join(close)) if close else ""
        raise ValueError("unknown model %r%s; `python -m harness list-models` lists them" % (name, hint)) from None


def create_model(name: str):
    """Build the model registered as ``name`` (or a user model by import path)."""
    return get_spec(name).build()
