"""Declared fault hooks: the named points where a benchmark may change what the runner does.

The gate's benchmarks (``benchmarks/bench_gate.py``) inject known faults into one side of an
A/B run to see whether the gate flags them. A fault registers functions for the points
below (``register``); the runner passes its values through them (``wrap``) or tells them
(``notify``) at those points. With nothing registered (every ordinary run) ``wrap`` returns
its value itself and ``notify`` does nothing: the timed step is wrapped once before
timing, never checked per iteration. ``tests/runner/test_fault_hooks.py`` runs a real case and
fails when the runner stops calling one of the points.

Points (the function gets the case's dict first):

- ``MODEL_BUILT`` ``(case, model) -> model``: right after the runner builds a model for the
  case (its own, its fp32 and float64 references, the task run's), before the seeded
  weights are drawn; may hook the model or return another (a fault twin).
- ``MODEL_CALL`` ``(case, fn) -> fn``: the case's forward and its ``infer``, each as the case
  configures it (compiled, under its attention backend); not the references'.
- ``TIMED_STEP`` ``(case, step) -> step``: ``run_case``'s step after the fidelity step, the one
  warm-up, the timed samples and the later measurements run (not the instruction pass).
- ``PEAK_RESET`` ``(case, step, mem)``: right after the peak tracker is reset, before warm-up.
- ``PEAK_READ`` ``(case, memory)``: right after the peak is read (the record's memory part).

How hooks get into a run: a worker (``harness.runner.worker``) calls ``load_injected`` once at
start-up, which installs the faults that ``ACTIVATION`` (``injected-faults/hooks.json`` at
the root of the worker's own tree, ``harness.fileio.REPO_ROOT``) names, from the module file
it names in that folder, and only when the environment variable ``ENV`` is ``"1"``; else it
does nothing. No commit of the repository holds that folder: the benchmark's throw-away
fault commit adds it (``write_activation``: a copy of ``benchmarks/gate_faults.py`` and the
JSON naming the faults and their models) and changes no existing line. In an A/B run both
sides inherit the variable, but the base side's tree has no activation and runs untouched;
a user who checks such a commit out, or writes the folder, without the variable, runs as
always. A worker that installs hooks says so on its stderr (the worker's log).
"""
import contextlib
import importlib.util
import json
import os
import shutil
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from harness.fileio import REPO_ROOT

MODEL_BUILT = "model_built"
MODEL_CALL = "model_call"
TIMED_STEP = "timed_step"
PEAK_RESET = "peak_reset"
PEAK_READ = "peak_read"
POINTS = (MODEL_BUILT, MODEL_CALL, TIMED_STEP, PEAK_RESET, PEAK_READ)

#: The activation folder and its JSON, relative to the root of the runner's tree.
ACTIVATION_DIR = "injected-faults"
ACTIVATION = ACTIVATION_DIR + "/hooks.json"
#: The environment variable that must be "1" for a worker to read the activation.
ENV = "TORCHMATRIX_INJECT_FAULTS"

#: (fault name, the models it is injected into or None for its own choice)
Faults = Sequence[Tuple[str, Optional[Sequence[str]]]]

_HOOKS: Dict[str, List[Callable]] = {}


def register(point: str, fn: Callable) -> None:
    """Call ``fn`` at ``point`` (one of ``POINTS``), after the functions registered before it."""
    if point not in POINTS:
        raise ValueError("unknown fault hook point %r; the runner declares %s" % (point, ", ".join(POINTS)))
    _HOOKS.setdefault(point, []).append(fn)


def clear() -> None:
    """Remove every registered function."""
    _HOOKS.clear()


@contextlib.contextmanager
def registered(hooks: Mapping[str, Callable]):
    """``{point: fn}`` registered for the block, all removed after it (tests, in-process tools)."""
    saved = {point: list(fns) for point, fns in _HOOKS.items()}
    try:
        for point, fn in hooks.items():
            register(point, fn)
        yield
    finally:
        _HOOKS.clear()
        _HOOKS.update(saved)


def wrap(point: str, case: Dict[str, Any], value: Any) -> Any:
    """``value`` passed through the functions registered for ``point``; ``value`` itself when none."""
    fns = _HOOKS.get(point)
    if not fns:
        return value
    for fn in fns:
        value = fn(case, value)
    return value


def notify(point: str, case: Dict[str, Any], *args: Any) -> None:
    """Call the functions registered for ``point`` with ``case`` and ``args``; nothing when none."""
    fns = _HOOKS.get(point)
    if fns:
        for fn in fns:
            fn(case, *args)


def write_activation(root: str, module_path: str, faults: Faults) -> List[str]:
    """Make ``root`` (a checkout) inject ``faults``: copy the fault module ``module_path`` (its
    ``install(faults)`` registers the hooks) into ``root``'s activation folder beside the JSON
    naming it and the faults. Returns the files written, relative to ``root``."""
    folder = os.path.join(root, ACTIVATION_DIR)
    os.makedirs(folder, exist_ok=True)
    module_rel = ACTIVATION_DIR + "/" + os.path.basename(module_path)
    shutil.copyfile(module_path, os.path.join(root, module_rel))
    doc = {"module": module_rel, "faults": [[name, None if models is None else sorted(models)]
                                            for name, models in faults]}
    with open(os.path.join(root, ACTIVATION), "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return [ACTIVATION, module_rel]


def load_injected(root: str = REPO_ROOT, environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """Install the faults ``root``'s activation names, when ``ENV`` is "1" and it is there (see the
    module docstring); returns what was installed in words, or None when nothing was."""
    path = os.path.join(root, ACTIVATION)
    if environ.get(ENV) != "1" or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    module_rel = doc["module"]
    if os.path.isabs(module_rel) or os.path.dirname(os.path.normpath(module_rel)) != ACTIVATION_DIR:
        raise ValueError("%s: the fault module must be a file of %s/, not %r" % (path, ACTIVATION_DIR, module_rel))
    spec = importlib.util.spec_from_file_location("torchmatrix_injected_faults", os.path.join(root, module_rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    faults = [(name, None if models is None else tuple(models)) for name, models in doc["faults"]]
    module.install(faults)
    return "%s from %s" % (", ".join("%s (%s)" % (name, "its own models" if models is None else ", ".join(models))
                                     for name, models in faults), module_rel)
