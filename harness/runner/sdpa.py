"""The ``sdpa_backend`` axis: which kernel ``scaled_dot_product_attention`` may use in a case.

``default`` leaves the choice to torch. ``math``, ``flash``, ``efficient`` and ``cudnn``
allow that one backend only, through the API this build has (found by feature detection):
``torch.nn.attention.sdpa_kernel`` (2.3+), else ``torch.backends.cuda.sdp_kernel`` (2.0-2.2,
no cuDNN backend). A build without SDPA (1.x), or without the asked backend, makes the case
``unsupported`` with the reason; a backend that cannot take the case's inputs (flash with an
``attn_mask``, say) fails inside SDPA with "No available kernel", also ``unsupported``.
Only the case's own steps run under it: the fp32 and float64 references keep the default.
"""
import contextlib

import torch

from models import UnsupportedError

_NEW_NAMES = {"math": "MATH", "flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
              "cudnn": "CUDNN_ATTENTION"}
_OLD_FLAGS = {"math": "enable_math", "flash": "enable_flash", "efficient": "enable_mem_efficient"}


def backend_context(name: str):
    """A context manager allowing only SDPA backend ``name`` (a no-op for ``default``)."""
    if name == "default":
        return contextlib.nullcontext()
    if not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        raise UnsupportedError("sdpa_backend %s: torch %s has no scaled_dot_product_attention"
                               % (name, torch.__version__))
    attention = getattr(torch.nn, "attention", None)
    if attention is not None and hasattr(attention, "sdpa_kernel"):
        backend = getattr(attention.SDPBackend, _NEW_NAMES[name], None)
        if backend is None:
            raise UnsupportedError("sdpa_backend %s: torch %s has no SDPBackend.%s"
                                   % (name, torch.__version__, _NEW_NAMES[name]))
        return attention.sdpa_kernel(backend)
    if name not in _OLD_FLAGS or not hasattr(torch.backends.cuda, "sdp_kernel"):
        raise UnsupportedError("sdpa_backend %s: torch %s cannot select it" % (name, torch.__version__))
    return torch.backends.cuda.sdp_kernel(**{flag: flag == _OLD_FLAGS[name] for flag in _OLD_FLAGS.values()})
