"""Behaviour checks of a case beyond its figures (``harness.vocab.CHECKS``): faults that no
timing, memory peak or accuracy figure shows.

* ``params_updated`` (train, always): every trainable parameter the model holds after the
  timed steps differs from what it held after the first step. A stale optimizer (made before
  the model rebuilt a layer) or a frozen parameter leaves it untouched. Not judged in pure
  fp16/bf16, where an update below half the spacing of the weight is lost by design.
* ``eval_buffers`` (eval, always): an eval call changes no buffer. A counter or cache
  mutated in forward makes two identical calls disagree.
* ``deterministic`` (``[checks] deterministic = true``): the case built and stepped a second
  time from the same seed gives bitwise the same outputs (and gradients).
* ``leak`` (``[checks] leak_steps = n``): tensor bytes still live after 2n steps against after
  n steps, per step; more than zero is memory that grows with every step (an unbounded
  cache). On the CPU from the profiler's allocation records, exact; on CUDA from the
  allocator's ``memory_allocated``.

Fingerprints (a float64 sum and sum of squares per tensor) stand in for copies, so the
checks hold no second set of weights while the case is timed.
"""
import gc
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from harness import precisions
from harness.runner import memory

#: Names listed in a failure reason at most.
_SHOWN = 5


def fingerprints(named: Dict[str, torch.Tensor]) -> Dict[str, Tuple[float, float]]:
    """``{name: (sum, sum of squares)}`` in float64 of each real tensor (integer buffers included:
    a step counter is one); complex ones by their real and imaginary parts."""
    out = {}
    with torch.no_grad():
        for name, t in named.items():
            if isinstance(t, torch.Tensor):
                wide = torch.view_as_real(t.detach()) if t.is_complex() else t.detach()
                wide = wide.double()
                out[name] = (float(wide.sum()), float((wide * wide).sum()))
    return out


def trainable(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def buffers(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return dict(model.named_buffers())


def _names(names: List[str]) -> str:
    more = " and %d more" % (len(names) - _SHOWN) if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def params_updated(before: Dict[str, Tuple[float, float]], model: torch.nn.Module, precision: str
                   ) -> Dict[str, Any]:
    """The ``params_updated`` check: ``before`` are the fingerprints after the first step."""
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    after = fingerprints(trainable(model))
    stale = [n for n, fp in after.items() if before.get(n) == fp]
    out: Dict[str, Any] = {"stale_params": stale + frozen}
    # a precision that casts the model holds its weights in the low dtype itself: an update
    # below half their spacing is lost by design
    if precisions.get(precision).casts_model:
        out["not_judged"] = "params_updated: weights in %s lose updates below half their spacing" % precision
        return out
    reasons = []
    if stale:
        reasons.append("params_updated: %d of %d trainable parameters unchanged by the timed steps' optimizer "
                       "(a stale optimizer?): %s" % (len(stale), len(after), _names(stale)))
    if frozen:
        reasons.append("params_updated: %d parameters are frozen (requires_grad=False): %s"
                       % (len(frozen), _names(frozen)))
    out["failure"] = "; ".join(reasons) or None
    return out


def eval_buffers(before: Dict[str, Tuple[float, float]], model: torch.nn.Module) -> Dict[str, Any]:
    """The ``eval_buffers`` check: ``before`` are the buffers' fingerprints before the eval call."""
    after = fingerprints(buffers(model))
    mutated = sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))
    out: Dict[str, Any] = {"mutated_buffers": mutated}
    if mutated:
        out["failure"] = "eval_buffers: an eval call changed %d buffers: %s" % (len(mutated), _names(mutated))
    return out


def _flat(kept) -> List[Tuple[str, torch.Tensor]]:
    outputs, grads = kept
    flat = [("output[%d]" % i, t) for i, t in enumerate(tensors_of(outputs))]
    if grads:
        flat.extend(("grad %s" % n, g) for n, g in grads.items() if g is not None)
    return flat


def tensors_of(value) -> List[torch.Tensor]:
    """The tensors of a (nested) output, in a fixed order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in tensors_of(value[k])]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_of(v)]
    return []


def _same_values(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Bitwise equal, NaNs at the same places counting as equal (a NaN is a fault of its own,
    which accuracy reports; it must not read as nondeterminism)."""
    if torch.equal(x, y):
        return True
    if not (x.is_floating_point() or x.is_complex()):
        return False
    x_nan, y_nan = torch.isnan(x), torch.isnan(y)
    return torch.equal(x_nan, y_nan) and torch.equal(x[~x_nan], y[~y_nan])


def deterministic(first, again) -> Dict[str, Any]:
    """The ``deterministic`` check: ``first`` and ``again`` are ``(outputs, grads)`` of two runs."""
    a, b = _flat(first), _flat(again)
    if [n for n, _ in a] != [n for n, _ in b]:
        return {"failure": "deterministic: the second run returned other tensors (%d vs %d)" % (len(a), len(b))}
    for (name, x), (_, y) in zip(a, b):
        if x.shape != y.shape or not _same_values(x, y):
            diff = float((x.double() - y.double()).nan_to_num().abs().max()) if x.shape == y.shape else float("nan")
            return {"nondeterministic": name,
                    "failure": "deterministic: %s differs between two runs from the same seed (max abs diff %.3g)"
                               % (name, diff)}
    return {}


def leak(step: Callable[[], Any], device: str, n: int) -> Dict[str, Any]:
    """The ``leak`` check: bytes retained per step, from windows of ``n`` and ``2n`` steps."""
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a window frees an earlier case's garbage by chance
    try:
        memory.net_tensor_bytes(step, 1, device)  # the profiler learns the live tensors' addresses
        short = memory.net_tensor_bytes(step, n, device)
        long = memory.net_tensor_bytes(step, 2 * n, device)
    finally:
        if gc_was_enabled:
            gc.enable()
    per_step = (long - short) / float(n)
    out: Dict[str, Any] = {"leak_bytes_per_step": per_step, "leak_steps": 2 * n}
    if per_step > 0:
        out["failure"] = ("leak: %.0f tensor bytes more live after %d steps than after %d (%.0f per step)"
                          % (long - short, 2 * n, n, per_step))
    return out


def merge(parts: Dict[str, Optional[Dict[str, Any]]]) -> Dict[str, Any]:
    """The record's ``checks`` part from each run check's result (``None``: not run)."""
    out: Dict[str, Any] = {"ran": [], "failed": [], "reasons": [], "not_judged": []}
    for name, part in parts.items():
        if part is None:
            continue
        part = dict(part)
        failure, not_judged = part.pop("failure", None), part.pop("not_judged", None)
        out["ran"].append(name)
        if not_judged:
            out["not_judged"].append(not_judged)
        elif failure:
            out["failed"].append(name)
            out["reasons"].append(failure)
        out.update(part)
    return out
