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
import importlib.util
import os
import pkgutil
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional

_REGISTRY: Dict[str, "ModelSpec"] = {}
_ZOO_LOADED = False
#: User modules imported from another package named like the zoo (see _import_beside_the_zoo).
_USER_MODULES: Dict[str, Any] = {}


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


def _ours(module_name: str) -> bool:
    """True when ``module_name`` is this zoo package or one of its modules."""
    return module_name == __package__ or module_name.startswith(__package__ + ".")


def _import_beside_the_zoo(module_name: str):
    """Import ``module_name`` from another top-level package that shares the zoo's name.

    A user's project often has its own ``models`` package. Its modules are imported with
    the zoo taken out of ``sys.modules`` and its folder out of the search path, then the
    zoo is put back; the user's modules stay loaded under ``_user_<name>`` (their code
    holds its own references, so it runs as imported).
    """
    if module_name in _USER_MODULES:
        return _USER_MODULES[module_name]
    zoo_parent = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    zoo_modules = {k: v for k, v in sys.modules.items() if _ours(k)}
    saved_path, saved_finders = list(sys.path), list(sys.meta_path)
    try:
        for key in zoo_modules:
            del sys.modules[key]
        # harness._zoo's finder would answer ``models`` with the zoo again
        sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "torchmatrix_zoo_finder", False)]
        sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != zoo_parent]
        importlib.invalidate_caches()
        module = importlib.import_module(module_name)
        theirs = {k: v for k, v in sys.modules.items() if _ours(k)}
    finally:
        for key in [k for k in sys.modules if _ours(k)]:
            del sys.modules[key]
        sys.modules.update(zoo_modules)
        sys.path[:], sys.meta_path[:] = saved_path, saved_finders
    for key, mod in theirs.items():
        sys.modules["_user_" + key] = mod
    _USER_MODULES[module_name] = module
    return module


def _import_user_module(module_name: str):
    if _ours(module_name) and module_name != __package__:
        try:
            found = importlib.util.find_spec(module_name) is not None
        except ImportError:
            found = False
        if not found:  # not one of the zoo's modules: look for the user's package of that name
            return _import_beside_the_zoo(module_name)
    return importlib.import_module(module_name)


def _spec_from_import_path(path: str) -> ModelSpec:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError("a user model is named 'package.module:factory', got %r" % path)
    try:
        module = _import_user_module(module_name)
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
