"""The harness's first step of a source's model, for comparing with the library's own forward.
Importing this registers the sources with the zoo (``harness.sources``), so the tests may name
``SOURCE:NAME`` models through ``models.create_model`` as the runner does."""
from typing import Any, Dict, Optional

import torch

import harness.sources  # noqa: F401 - registers the sources with the zoo's registry
from harness.runner import accuracy, execute


def first_step(name: str, mode: str, size: Any, options: Optional[Dict[str, Any]] = None, checkpoint: str = "none",
               batch_size: int = 2):
    """``(model, inputs, target, outputs, grads)`` of the harness's first fp32 step of a case, as
    ``run_case`` takes it: outputs and gradients as float64 snapshots (grads None in eval)."""
    case = dict(model=name, mode=mode, batch_size=batch_size, size=size, precision="fp32", checkpoint=checkpoint,
                device="cpu")
    model, inputs, target, _, step_keep, _ = execute.case_step(case, 0, options)
    torch.manual_seed(0)
    outputs, grads = step_keep()
    return model, inputs, target, outputs, grads


def same(got, want) -> bool:
    """Bitwise equality of two snapshots (lists of tensors)."""
    want = accuracy.snapshot(want) if not isinstance(want, list) else want
    return len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want))


def library_grads(net: torch.nn.Module, prefix: str = "net.") -> Dict[str, torch.Tensor]:
    """The library model's gradients as float64, named as the harness names them."""
    return {prefix + n: p.grad.detach().double() for n, p in net.named_parameters() if p.grad is not None}


def same_grads(harness: Dict[str, Optional[torch.Tensor]], library: Dict[str, torch.Tensor]) -> bool:
    """Every gradient present on both sides, bitwise equal."""
    return set(harness) == set(library) and all(
        harness[n] is not None and torch.equal(harness[n], library[n]) for n in library)
