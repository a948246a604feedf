"""The references a case's accuracy is judged against, made once and shared.

The fp32 and float64 references of a case are its model built in fp32 without
checkpointing, same seed, weights and inputs (``harness.runner.execute``): they depend on
the model, mode, batch size, size, device, seed and the model's options, never on the
case's precision, checkpoint mode, channels_last, compile or attention backend. So the
fifteen cases of one (model, mode, batch, size) in the default matrix need one pair of
references, not fifteen. The worker keeps the last pair it made (float64 CPU snapshots)
and hands it to the next case with the same key; the record says so
(``accuracy.reference_shared``). The cases of one key come one after another in a
scenario's expansion, so one entry suffices; a pair larger than ``MAX_SHARED_BYTES`` is
not kept (memory stays bounded whatever the model).
"""
import json
from typing import Any, Callable, Dict, Optional, Tuple

import torch

#: The largest pair of references (all their tensors, in bytes) the worker keeps for the next case.
MAX_SHARED_BYTES = 256 * 2 ** 20

#: The reference key's axes of a case: what the references depend on.
KEY_AXES = ("model", "mode", "batch_size", "size", "device")


def reference_key(case: Dict[str, Any], seed: int, options: Optional[Dict[str, Any]]) -> str:
    """The text key of the case's references (``KEY_AXES``, the seed and the model's options)."""
    return json.dumps([[case[axis] for axis in KEY_AXES], seed, options], sort_keys=True, default=str)


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0


class SharedReferences:
    """The last references made in this worker, by key."""

    def __init__(self, max_bytes: int = MAX_SHARED_BYTES):
        self.max_bytes = max_bytes
        self._key: Optional[str] = None
        self._value: Any = None

    def get(self, key: str, make: Callable[[], Any]) -> Tuple[Any, bool]:
        """(the references of ``key``, whether they were shared): made by ``make`` unless the last
        ones made were for the same key. A failure of ``make`` propagates and keeps nothing."""
        if key == self._key:
            return self._value, True
        self._key = self._value = None  # the old pair goes before the new one is made
        value = make()
        if _nbytes(value) <= self.max_bytes:
            self._key, self._value = key, value
        return value, False

    def clear(self) -> None:
        """Forget the kept references."""
        self._key = self._value = None
