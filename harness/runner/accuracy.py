"""Numerical fidelity: a case's outputs and gradients against float64 and fp32 references.

Errors are computed in float64 on the CPU. Against the fp32 reference, over all
floating outputs (or all parameter gradients) concatenated: ``max_abs_err``,
``rel_err`` (relative L2) and ``cosine``. A gradient the reference has and the case
lacks counts as zeros, so checkpointing that drops gradients shows as a large error,
not as a pass.

The verdict is calibrated against a float64 reference (``calibrate``): per tensor,
the case's error against float64 is divided by the error this precision is expected
to make there, which is the fp32 run's own error scaled by the ratio of unit roundoffs
(the model's conditioning, measured) and never below one unit roundoff. The rule and
why: docs/accuracy.md.
"""
import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from harness import precisions
from harness.vocab import ACCURACY_NOT_JUDGED

PROBE_POINTS = 32
#: Values in a sketch: signed sums over interleaved elements (``sketch``).
SKETCH_SIZE = 64
#: A tensor whose float64 norm is below this share of its group's typical size (RMS per
#: element, scaled to the tensor's length) is judged against that floor, so a gradient
#: that is nearly zero in exact arithmetic (a bias before a norm layer) cannot fail on
#: rounding noise alone.
SCALE_FLOOR = 1e-2


def flat_tensors(value: Any) -> List[torch.Tensor]:
    """Floating tensors of a nested output, in a stable order."""
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() or value.is_complex() else []
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in flat_tensors(value[k])]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in flat_tensors(v)]
    return []


def snapshot(value: Any) -> List[torch.Tensor]:
    """Detached float64 CPU copies of the floating tensors (complex as real pairs)."""
    out = []
    for t in flat_tensors(value):
        t = t.detach()
        if t.is_complex():
            t = torch.view_as_real(t.to(torch.complex128) if t.dtype != torch.complex128 else t)
        out.append(t.to("cpu", torch.float64).contiguous())
    return out


def grads_snapshot(model: torch.nn.Module) -> Dict[str, Optional[torch.Tensor]]:
    """Float64 CPU copies of every trainable parameter's gradient (None: it got none)."""
    return {n: (None if p.grad is None else p.grad.detach().to("cpu", torch.float64).clone())
            for n, p in model.named_parameters() if p.requires_grad}


def named_outputs(tensors: List[torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A snapshot's outputs by name: ``output`` alone, else ``output[i]``."""
    if len(tensors) == 1:
        return {"output": tensors[0]}
    return {"output[%d]" % i: t for i, t in enumerate(tensors)}


_SIGNS: Dict[int, torch.Tensor] = {}


def _signs(n: int) -> torch.Tensor:
    # +-1 per element from a counter hash (SplitMix64, as models/_seeded.py): identical on
    # every version, so sketches compare across environments and revisions.
    if n not in _SIGNS:
        with np.errstate(over="ignore"):
            x = np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x5DEECE66D)
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            x = x ^ (x >> np.uint64(31))
        _SIGNS.clear()  # one length at a time: the case and its references share it
        _SIGNS[n] = torch.from_numpy(((x >> np.uint64(63)).astype(np.float64) * 2.0 - 1.0))
    return _SIGNS[n]


def sketch(tensors: List[Optional[torch.Tensor]]) -> Optional[List[float]]:
    """``SKETCH_SIZE`` signed sums of the concatenated tensors, element i going to sum
    i mod ``SKETCH_SIZE`` with a fixed random sign: every element counts, so a change
    anywhere moves the sketch by about its own norm (relative: ``harness.sketches.relative_change``)."""
    parts = [t.reshape(-1) for t in tensors if t is not None]
    if not parts:
        return None
    flat = torch.cat(parts)
    if not bool(torch.isfinite(flat).all()):
        return None
    n = flat.numel()
    pad = (-n) % SKETCH_SIZE
    signed = flat * _signs(n)
    if pad:
        signed = torch.cat([signed, signed.new_zeros(pad)])
    return [float(v) for v in signed.reshape(-1, SKETCH_SIZE).sum(0)]


def compare(got: List[torch.Tensor], ref: List[torch.Tensor]) -> Dict[str, Any]:
    """Error figures of ``got`` against ``ref`` (lists of float64 tensors)."""
    if len(got) != len(ref) or any(g.shape != r.shape for g, r in zip(got, ref)):
        return {"max_abs_err": None, "rel_err": math.inf, "cosine": None,
                "problem": "shape mismatch: %s vs %s" % ([tuple(g.shape) for g in got], [tuple(r.shape) for r in ref])}
    if not ref:
        return {"max_abs_err": 0.0, "rel_err": 0.0, "cosine": 1.0}
    a = torch.cat([g.reshape(-1) for g in got])
    b = torch.cat([r.reshape(-1) for r in ref])
    if not bool(torch.isfinite(a).all()):
        bad = int((~torch.isfinite(a)).sum())
        return {"max_abs_err": math.inf, "rel_err": math.inf, "cosine": None,
                "problem": "%d non-finite values" % bad}
    diff = a - b
    ref_norm = float(b.norm())
    denom = float(a.norm()) * ref_norm
    return {
        "max_abs_err": float(diff.abs().max()) if diff.numel() else 0.0,
        "rel_err": float(diff.norm()) / max(ref_norm, 1e-30),
        "cosine": float((a * b).sum()) / denom if denom > 0 else (1.0 if float(diff.abs().max()) == 0 else 0.0),
    }


def compare_grads(got: Dict[str, Optional[torch.Tensor]], ref: Dict[str, Optional[torch.Tensor]]) -> Dict[str, Any]:
    names = [n for n in ref if ref[n] is not None]
    missing = [n for n in names if got.get(n) is None]
    got_list = [got[n] if got.get(n) is not None else torch.zeros_like(ref[n]) for n in names]
    out = compare(got_list, [ref[n] for n in names])
    out["missing"] = len(missing)
    if missing:
        out["missing_names"] = missing[:5]
    return out


def probe(ref: List[torch.Tensor]) -> Dict[str, Any]:
    """A cross-environment fingerprint: values at fixed positions and the L2 norm."""
    if not ref:
        return {"output_probe": [], "output_norm": 0.0}
    flat = torch.cat([r.reshape(-1) for r in ref])
    n = flat.numel()
    k = min(PROBE_POINTS, n)
    idx = [(i * (n - 1)) // (k - 1) for i in range(k)] if k > 1 else [0]
    return {"output_probe": [float(flat[i]) for i in idx], "output_norm": float(flat.norm())}


def _floor_norms(ref: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Per tensor: the smallest norm ``_rel_errors`` judges it against (``SCALE_FLOOR`` of the
    group's typical size, scaled to the tensor's length)."""
    total = sum(t.numel() for t in ref.values())
    rms = math.sqrt(sum(float(t.pow(2).sum()) for t in ref.values()) / total) if total else 0.0
    return {n: SCALE_FLOOR * rms * math.sqrt(t.numel()) for n, t in ref.items()}


def _rel_errors(got: Dict[str, Optional[torch.Tensor]], ref: Dict[str, torch.Tensor],
                floors: Dict[str, float]) -> Dict[str, float]:
    """Per tensor: ||got - ref|| / max(||ref||, floor), the floor a share of the group's
    typical size (``_floor_norms``); a missing tensor counts as zeros."""
    out = {}
    for name, r in ref.items():
        g = got.get(name)
        if g is not None and g.shape != r.shape:
            out[name] = math.inf
            continue
        diff = float(r.norm()) if g is None else float((g - r).norm())
        denom = max(float(r.norm()), floors[name], 1e-300)
        out[name] = diff / denom
    return out


def zeroed(got: Dict[str, Optional[torch.Tensor]], fp32: Dict[str, Optional[torch.Tensor]],
           fp64: Dict[str, Optional[torch.Tensor]], floors: Optional[Dict[str, float]] = None) -> List[str]:
    """The tensors that are exactly zero in the case but not in the fp32 reference, and above the
    group's floor in float64: every value lost, which rounding cannot do (an all-zero result needs
    each value to fall out of the precision's range, or an input of it to). fp16 without loss
    scaling loses small gradient values this way; a whole tensor of a size its group calls
    ordinary is a fault (a norm that overflows to inf divides every logit to 0). ``floors``: the
    group's ``_floor_norms``, where the caller has them."""
    ref = {n: t for n, t in fp64.items() if t is not None}
    floors = floors if floors is not None else _floor_norms(ref)
    return [n for n, r in ref.items()
            if got.get(n) is not None and got[n].shape == r.shape and not bool(got[n].any())
            and fp32.get(n) is not None and bool(fp32[n].any()) and float(r.norm()) > floors[n]]


def calibrate(got: Dict[str, Optional[torch.Tensor]], fp32: Dict[str, Optional[torch.Tensor]],
              fp64: Dict[str, Optional[torch.Tensor]], precision: str) -> Dict[str, Any]:
    """The case's error against float64 in units of what ``precision`` is expected to make.

    ``e`` is a relative error against float64, ``u`` the precision's unit roundoff:
    ``expected = max(e(fp32) * u / u_fp32, u)`` and ``ratio = e(case) / expected``, for
    the group's tensors concatenated (``ratio``, what the verdict judges) and for each
    tensor alone (``worst_ratio``: the largest, with its name; ``_rel_errors``).
    """
    ref = {n: t for n, t in fp64.items() if t is not None}
    if not ref:
        return {"ratio": 0.0, "err64": 0.0, "fp32_err64": 0.0, "expected_err": None, "worst": None,
                "worst_ratio": 0.0, "worst_err64": None}
    u, u32 = precisions.get(precision).unit_roundoff, precisions.get(precisions.REFERENCE).unit_roundoff
    if any(g is not None and not bool(torch.isfinite(g).all()) for g in got.values()):
        return {"ratio": math.inf, "err64": math.inf, "fp32_err64": None, "expected_err": None,
                "worst": None, "worst_ratio": math.inf, "worst_err64": math.inf}
    floors = _floor_norms(ref)
    lost = zeroed(got, fp32, ref, floors)
    e_case, e_32 = _rel_errors(got, ref, floors), _rel_errors(fp32, ref, floors)
    ratios = {n: e_case[n] / max(e_32[n] * u / u32, u) for n in ref}
    worst = max(ratios, key=lambda n: ratios[n])
    names = [n for n in ref if got.get(n) is None or got[n].shape == ref[n].shape]
    ref_all = torch.cat([ref[n].reshape(-1) for n in names])
    norm = max(float(ref_all.norm()), 1e-300)

    def whole_err(side):
        parts = [(side.get(n) if side.get(n) is not None else torch.zeros_like(ref[n])).reshape(-1) for n in names]
        return float((torch.cat(parts) - ref_all).norm()) / norm

    err64, fp32_err64 = whole_err(got), whole_err(fp32)
    if len(names) < len(ref):
        err64 = math.inf
    expected = max(fp32_err64 * u / u32, u)
    out = {"ratio": err64 / expected, "err64": err64, "fp32_err64": fp32_err64, "expected_err": expected,
           "worst": worst, "worst_ratio": ratios[worst], "worst_err64": e_case[worst], "zeroed": len(lost)}
    if lost:
        out["zeroed_names"] = lost[:5]
    return out


def limits(precision: str, tolerance: Dict[str, Any]) -> Tuple[float, float]:
    """(group limit, single-tensor limit) on the calibrated ratio for ``precision``.

    fp16 without loss scaling loses small gradients to underflow (its range, not its
    rounding), so its limit is ``fp16_range_factor`` times the others'.
    """
    group = float(tolerance["fp64_multiple"])
    if precisions.get(precision).narrow_range:
        group *= float(tolerance["fp16_range_factor"])
    return group, group * float(tolerance["tensor_factor"])


#: The words that open a not-judged note (``judge``): the record's ``passed`` is None, never True.
NOT_JUDGED = ACCURACY_NOT_JUDGED


def judgeable(expected_err: Optional[float], group_limit: float) -> bool:
    """Whether the calibrated rule can tell a fault from rounding for a group whose expected error is
    ``expected_err``: a result that carries no information (all zeros: 100% off float64; an
    unrelated one: more) must be able to fail, so ``group_limit`` times the expected error must stay
    below 1. With the default limit (10x) the bound is an expected error of 10%; a precision whose
    expected error is above it (fp32's own error here, scaled by 65,536 for bf16, reached 195%)
    would pass any result."""
    return expected_err is None or expected_err * group_limit < 1.0


def judge(outputs: Dict[str, Any], grads: Optional[Dict[str, Any]], tolerance: Optional[float],
          limit: Tuple[float, float]) -> Dict[str, Any]:
    """Pass/fail with the failing checks named: the calibrated ratios within ``limit``
    (group, single tensor) when the figures carry them, else the relative error against
    fp32 within ``tolerance``. A parameter without gradient (in the case or in the fp32
    reference) always fails, and so does a tensor all zero here but not in the references
    (``zeroed``). A group whose expected error is too large to judge (``judgeable``)
    makes the case not judged: ``passed`` None, never a pass, with the figures in ``failures``
    (each note opens with ``NOT_JUDGED``); a real failure elsewhere still fails it."""
    group_limit, tensor_limit = limit
    failures = []
    not_judged = []
    ratios = []
    for name, figures in (("outputs", outputs), ("grads", grads)):
        if figures is None:
            continue
        if figures.get("problem"):
            failures.append("%s: %s" % (name, figures["problem"]))
        elif tolerance is None and figures.get("ratio") is not None and not judgeable(
                figures.get("expected_err"), group_limit):
            not_judged.append("%s (%s): expected error %.3g against float64 (fp32's own %.3g scaled to this "
                              "precision), and %gx that is past 100%%: even an all-zero result would pass; its "
                              "error %.3g, cosine with fp32 %.3g" % (
                                  NOT_JUDGED, name, figures["expected_err"], figures.get("fp32_err64") or math.nan,
                                  group_limit, figures.get("err64") or math.nan,
                                  figures.get("cosine") if figures.get("cosine") is not None else math.nan))
        elif tolerance is None and figures.get("ratio") is not None:
            ratios.append((figures["ratio"], name, figures.get("worst")))
            if not figures["ratio"] <= group_limit:
                failures.append("%s: error %.3g against float64 is %.3gx the expected %.3g (limit %gx)" % (
                    name, figures["err64"], figures["ratio"], figures["expected_err"] or math.nan, group_limit))
            elif not figures["worst_ratio"] <= tensor_limit:
                failures.append("%s: %s alone: error %.3g is %.3gx its expected (limit %gx per tensor)" % (
                    name, figures["worst"], figures["worst_err64"], figures["worst_ratio"], tensor_limit))
        elif tolerance is not None and not figures["rel_err"] <= tolerance:
            failures.append("%s: rel_err %.3g > %.3g" % (name, figures["rel_err"], tolerance))
        if figures.get("missing"):
            failures.append("%s: %d parameters got no gradient" % (name, figures["missing"]))
        if figures.get("zeroed"):
            failures.append("%s: %d tensors are all zero here but not in fp32 or float64 (every value out of "
                            "this precision's range): %s" % (name, figures["zeroed"],
                                                             ", ".join(figures.get("zeroed_names") or [])))
        if figures.get("ref_missing"):
            failures.append("%s: %d trainable parameters get no gradient in the fp32 reference (a detached "
                            "branch or an unused layer): %s" % (name, figures["ref_missing"],
                                                                ", ".join(figures.get("ref_missing_names") or [])))
    worst = max(ratios) if ratios else None
    passed: Optional[bool] = not failures
    if not failures and not_judged:
        passed, failures = None, not_judged
    return {"passed": passed, "failures": failures, "tolerance": tolerance,
            "limit": group_limit if tolerance is None else None,
            "ratio": worst[0] if worst else None,
            "worst": ("%s: %s" % (worst[1], worst[2]) if worst and worst[2] else None)}
