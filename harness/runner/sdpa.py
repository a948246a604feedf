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

from models import UnsupportedError
from models._attention import sdpa_kernel_context


def backend_context(name: str):
    """A context manager allowing only SDPA backend ``name`` (a no-op for ``default``); the zoo's
    ``models._attention`` knows which kernels this build can pin and how."""
    if name == "default":
        return contextlib.nullcontext()
    try:
        return sdpa_kernel_context(name)
    except UnsupportedError as exc:
        raise UnsupportedError("sdpa_backend %s: %s" % (name, exc)) from None
