"""Numerical fidelity: a case's outputs and gradients against the fp32 reference.

Errors are computed in float64 on the CPU over all floating outputs (or all
parameter gradients) concatenated: ``max_abs_err``, ``rel_err`` (relative L2) and
``cosine``. A gradient the reference has and the case lacks counts as zeros, so
checkpointing that drops gradients shows as a large error, not as a pass.
"""
import math
from typing import Any, Dict, List, Optional

import torch

PROBE_POINTS = 32


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
    return {n: (None if p.grad is None else p.grad.detach().to("cpu", torch.float64).clone())
            for n, p in model.named_parameters() if p.requires_grad}


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


def judge(outputs: Dict[str, Any], grads: Optional[Dict[str, Any]], tolerance: float) -> Dict[str, Any]:
    """Pass/fail against ``tolerance`` (relative error) with the failing checks named."""
    failures = []
    for name, figures in (("outputs", outputs), ("grads", grads)):
        if figures is None:
            continue
        if figures.get("problem"):
            failures.append("%s: %s" % (name, figures["problem"]))
        elif not figures["rel_err"] <= tolerance:
            failures.append("%s: rel_err %.3g > %.3g" % (name, figures["rel_err"], tolerance))
        if figures.get("missing"):
            failures.append("%s: %d parameters got no gradient" % (name, figures["missing"]))
    return {"passed": not failures, "failures": failures, "tolerance": tolerance}
