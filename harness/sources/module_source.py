"""The plain source: ``package.module:callable`` returning any ``nn.Module``.

The callable is called with the scenario's ``[config."NAME"]`` table as keyword
arguments. What it returns is used as it is when it already speaks the zoo interface
(``example_inputs`` and ``loss``: a ``ZooModel`` or a look-alike); any other module is
driven from the scenario's ``[inputs."NAME"]`` table (``harness.scenario.model_options``: one
entry per positional input), with the default loss of ``harness.sources.external`` and no
gradient checkpointing (a plain module has no switch the harness could honestly use).

A user's project often has its own top-level ``models`` package: it is imported beside
the zoo (``_import_beside_the_zoo``), never instead of it.
"""
import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any, Dict, Optional, Tuple

import torch

import models
from harness.scenario.model_options import FLOAT_DTYPES, PLACEHOLDERS
from harness.sources.base import BadModel, ExternalSpec, NotImportable
from harness.sources.external import ExternalModel, asks_for_stochastic
from models import UnsupportedError, ZooModel

#: The zoo's top-level package name and the folder that holds it (a checkout or site-packages).
_ZOO = models.__name__
_ZOO_PARENT = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(models.__file__))))
#: User modules imported from another package named like the zoo (see _import_beside_the_zoo).
_USER_MODULES: Dict[str, Any] = {}


def _ours(module_name: str) -> bool:
    """True when ``module_name`` is the zoo package or one of its modules."""
    return module_name == _ZOO or module_name.startswith(_ZOO + ".")


def _import_beside_the_zoo(module_name: str):
    """Import ``module_name`` from another top-level package that shares the zoo's name.

    A user's project often has its own ``models`` package. Its modules are imported with
    the zoo taken out of ``sys.modules`` and its folder out of the search path, then the
    zoo is put back; the user's modules stay loaded under ``_user_<name>`` (their code
    holds its own references, so it runs as imported).
    """
    if module_name in _USER_MODULES:
        return _USER_MODULES[module_name]
    zoo_modules = {k: v for k, v in sys.modules.items() if _ours(k)}
    saved_path, saved_finders = list(sys.path), list(sys.meta_path)
    try:
        for key in zoo_modules:
            del sys.modules[key]
        # harness._zoo's finder would answer ``models`` with the zoo again
        sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "torchmatrix_zoo_finder", False)]
        sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != _ZOO_PARENT]
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
    if _ours(module_name) and module_name != _ZOO:
        try:
            found = importlib.util.find_spec(module_name) is not None
        except ImportError:
            found = False
        if not found:  # not one of the zoo's modules: look for the user's package of that name
            return _import_beside_the_zoo(module_name)
    return importlib.import_module(module_name)


def speaks_the_zoo_interface(module: Any) -> bool:
    """True for a module that makes its own inputs and loss (a ZooModel or a look-alike)."""
    return callable(getattr(module, "example_inputs", None)) and callable(getattr(module, "loss", None))


def _dim(dim: Any, batch_size: int, size: Any) -> int:
    if dim == "batch":
        return int(batch_size)
    if dim == "size":
        return int(size)
    return int(dim)


class PlainModel(ExternalModel):
    """A user's ``nn.Module`` with the inputs of its ``[inputs]`` table."""

    source = "module"

    def __init__(self, net: torch.nn.Module, name: str, inputs: Dict[str, Dict[str, Any]],
                 keep_stochastic: bool = False):
        super().__init__(net, name, keep_stochastic=keep_stochastic)
        self.input_table = inputs

    def select_checkpointing(self, mode: str) -> None:
        if mode != "none":
            raise UnsupportedError("%s is a plain nn.Module (%s): it has no gradient-checkpointing switch the harness "
                                   "could use, so %s checkpointing cannot be selected" % (
                                       self.model_name, type(self.net).__name__, mode))

    def example_inputs(self, batch_size: int, size: Any, gen) -> Tuple[Tuple[torch.Tensor, ...], Any]:
        made = []
        for entry in self.input_table.values():  # (each as its table says; placeholders filled)
            shape = tuple(_dim(d, batch_size, size) for d in entry["shape"])
            dtype = entry.get("dtype", "float32")
            if dtype == "bool":
                made.append(gen.integers(0, 2, shape).bool())
            elif dtype not in FLOAT_DTYPES:
                made.append(gen.integers(int(entry.get("low", 0)), int(entry["high"]), shape).to(getattr(torch, dtype)))
            elif "low" in entry:
                made.append(gen.uniform(shape, float(entry["low"]), float(entry["high"]), dtype=getattr(torch, dtype)))
            else:
                made.append(gen.normal(shape, float(entry.get("std", 1.0)), dtype=getattr(torch, dtype)))
        return tuple(made), None


def _uses_size(inputs: Dict[str, Dict[str, Any]]) -> bool:
    return any(d == PLACEHOLDERS[1] for entry in inputs.values() for d in entry.get("shape", ()))


def _call_problem(factory, kwargs: Dict[str, Any]) -> Optional[str]:
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        return "its [config] table does not fit %s%s: %s" % (
            getattr(factory, "__name__", "the callable"), _signature(factory), exc)
    except ValueError:  # no signature to check (a builtin): the call will say
        return None
    return None


def _signature(factory) -> str:
    try:
        return str(inspect.signature(factory))
    except (TypeError, ValueError):
        return "(...)"


def module_spec(path: str, options: Dict[str, Any]) -> ExternalSpec:
    """The spec of a user's ``package.module:callable``; ValueError when it cannot be used
    (no such module or callable, a [config] table that does not fit its signature)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError("a user model is named 'package.module:callable', got %r" % path)
    try:
        module = _import_user_module(module_name)
    except ImportError as exc:
        hint = "" if "." in module_name else " (the sources are timm:, torchvision:, transformers:; a user's model " \
                                            "is package.module:callable)"
        raise NotImportable("cannot import module %r for model %r: %s%s" % (module_name, path, exc, hint)) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError("module %r has no callable %r (model %r)" % (module_name, attr, path))
    kwargs, inputs = options.get("config") or {}, options.get("inputs") or {}
    problem = _call_problem(factory, kwargs)
    if problem:
        raise ValueError(problem)
    model_cls = getattr(factory, "model_cls", ZooModel)
    config = getattr(factory, "config", None)
    if not inputs:
        # A callable returning a module that makes its own inputs (a ZooModel or a look-alike): its
        # sizes and size rule are its own, from the config and class the callable carries.
        sizes: Tuple[Any, ...] = tuple(getattr(config, "default_sizes", ()))
        axis = getattr(model_cls, "size_axis", "")

        def size_check(size: Any) -> Optional[str]:
            return model_cls.size_error(config, size)
    else:
        sizes = () if _uses_size(inputs) else (1,)
        axis = "the size placeholder of its [inputs] shapes" if _uses_size(inputs) else \
            "nothing (its [inputs] shapes do not use size)"

        def size_check(size: Any) -> Optional[str]:
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                return "size must be a positive integer (%s), got %r" % (axis, size)
            if not _uses_size(inputs) and size != 1:
                return "the [inputs] shapes of %s do not use size; its only size is 1" % path
            return None

    def build(size: Any):
        built = factory(**kwargs)
        if speaks_the_zoo_interface(built):
            return built
        if not isinstance(built, torch.nn.Module):
            raise BadModel("%s returned %s, not a torch.nn.Module" % (path, type(built).__name__))
        if not inputs:
            raise BadModel("%s returned a plain nn.Module (%s): give its inputs in [inputs.\"%s\"], one entry "
                             "per positional input, e.g. x = { shape = [\"batch\", 16], dtype = \"float32\" }" % (
                                 path, type(built).__name__, path))
        return PlainModel(built, path, inputs, keep_stochastic=asks_for_stochastic(kwargs))

    return ExternalSpec(name=path, model_cls=model_cls, config=config, family="user",
                        description=(factory.__doc__ or "").strip().split("\n")[0], factory=factory,
                        sizes=sizes, size_check=size_check, builder=build)

