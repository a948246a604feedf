"""Precisions: what each one does to the model, its inputs and the step.

What each precision does is declared in ``harness.precisions``: ``fp32`` runs as built;
those that cast the model (``fp16``/``bf16``) cast it and its floating inputs; those with an
autocast dtype (``amp_fp16``/``amp_bf16``) keep fp32 weights and run the step under autocast.
Whether this build can do it is found out by trying (feature detection), never by version:
autocast that refuses the dtype or silently disables itself is ``UnsupportedError``.
"""
import contextlib
from typing import Any, Optional, Tuple

import torch

from harness import precisions
from models import UnsupportedError


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a dtype name of ``harness.precisions`` (``"bfloat16"``): the one place
    the runner turns the table's names into torch dtypes."""
    return getattr(torch, name)


def _cast_dtype(precision: str) -> Optional[torch.dtype]:
    """The dtype ``precision`` casts the model and floating inputs to; None: it casts nothing."""
    row = precisions.get(precision)
    return torch_dtype(row.dtype_name) if row.casts_model else None


def _autocast_enabled(device: str) -> bool:
    try:  # newer builds take the device type (and deprecate the per-device functions)
        return bool(torch.is_autocast_enabled(device))
    except TypeError:
        pass
    if device == "cpu":
        return bool(getattr(torch, "is_autocast_cpu_enabled", lambda: False)())
    return bool(torch.is_autocast_enabled())


@contextlib.contextmanager
def autocast(device: str, precision: str):
    """The autocast context of ``precision`` (a no-op for a precision without an autocast dtype)."""
    name = precisions.get(precision).autocast_dtype_name
    if name is None:
        yield
        return
    dtype = torch_dtype(name)
    if hasattr(torch, "autocast"):
        ctx = torch.autocast(device_type=device, dtype=dtype)
    elif device == "cuda" and dtype == torch.float16:  # the older API casts to float16 only
        ctx = torch.cuda.amp.autocast()
    else:
        raise UnsupportedError("autocast on %s: torch %s has no torch.autocast" % (device, torch.__version__))
    with ctx:
        if not _autocast_enabled(device):
            raise UnsupportedError("autocast(%s, %s) disabled itself on torch %s" % (
                device, name, torch.__version__))
        yield


def check_autocast(device: str, precision: str) -> None:
    """Raise UnsupportedError now, before any timing, if autocast cannot run."""
    with autocast(device, precision):
        pass


def _cast(value: Any, dtype, device: str, channels_last: bool) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.to(device)
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        if channels_last and value.dim() == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)
        return value
    if isinstance(value, tuple):
        return tuple(_cast(v, dtype, device, channels_last) for v in value)
    if isinstance(value, list):
        return [_cast(v, dtype, device, channels_last) for v in value]
    if isinstance(value, dict):
        return {k: _cast(v, dtype, device, channels_last) for k, v in value.items()}
    return value


def cast_batch(inputs: Tuple, target: Any, precision: str, device: str, channels_last: bool = False):
    """Move and cast a batch (not the model) for ``precision`` on ``device``."""
    dtype = _cast_dtype(precision)
    return _cast(inputs, dtype, device, channels_last), _cast(target, dtype, device, False)


def to_float64(model: torch.nn.Module, inputs: Tuple, target: Any, device: str):
    """The fp32-built model, inputs and target cast to float64 (the accuracy reference:
    the same fp32 weights and inputs, exactly, in a wider arithmetic)."""
    wide = torch.float64
    return model.to(wide), _cast(inputs, wide, device, False), _cast(target, wide, device, False)


def prepare(model: torch.nn.Module, inputs: Tuple, target: Any, precision: str, device: str,
            channels_last: bool = False):
    """Move and cast model, inputs and target for ``precision`` on ``device``."""
    dtype = _cast_dtype(precision)
    model = model.to(device)
    if dtype is not None:
        model = model.to(dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return (model,) + cast_batch(inputs, target, precision, device, channels_last)
