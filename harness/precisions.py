"""Each precision a case can run in, declared once: the dtype it computes in, whether it
casts the model or runs under autocast, its unit roundoff, its fixed-tolerance fallback,
where its train step scales the loss, and the devices it is tried on.

Standard library only, no torch: the runner imports this on Python 3.9 + PyTorch 1.10 and
the analysis side without torch. Dtypes are named as torch names them (``torch.<name>``);
``harness.runner.precision.torch_dtype`` is the one place a name becomes a torch dtype.
``harness.vocab.PRECISIONS`` (the axis's values) is ``NAMES``; the accuracy rule that uses
the roundoffs and tolerances is in docs/accuracy.md.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class Dtype:
    """A floating dtype a case computes in."""

    #: torch's name for it: ``torch.<name>``
    name: str
    #: half the spacing of the numbers at 1 (``torch.finfo(dtype).eps / 2``): the relative
    #: error of one rounding, the unit of the accuracy rule's expected error
    unit_roundoff: float
    #: 5 exponent bits (float16): without loss scaling small gradients underflow, an error of
    #: range rather than rounding, so the accuracy rule allows ``fp16_range_factor`` more
    narrow_range: bool


#: In the order the roofline measures them and the report shows them: fp32, then the low dtypes.
DTYPES = (
    Dtype("float32", 2.0 ** -24, narrow_range=False),
    Dtype("bfloat16", 2.0 ** -8, narrow_range=False),
    Dtype("float16", 2.0 ** -11, narrow_range=True),
)
DTYPE: Dict[str, Dtype] = {d.name: d for d in DTYPES}
#: The dtype names a case's matrix products can run in (the roofline's matmul peaks).
COMPUTE_DTYPES = tuple(d.name for d in DTYPES)


@dataclass(frozen=True)
class Precision:
    """What one precision does to the model, its inputs and the step."""

    #: the ``precision`` axis value
    name: str
    #: the arithmetic its matrix products run in (amp: autocast's low dtype); a name in ``DTYPE``
    dtype_name: str
    #: the step runs under autocast to this dtype, the model's weights stay float32; None: no autocast
    autocast_dtype_name: Optional[str]
    #: the model and its floating inputs are cast to ``dtype_name``: the weights are that dtype themselves
    casts_model: bool
    #: the fixed relative error against fp32 allowed where there is no float64 reference (a
    #: scenario's ``[tolerance]`` number for the precision overrides it)
    fallback_tolerance: float
    #: devices where the train step scales the loss with a GradScaler, as real training there does
    loss_scaling_devices: Tuple[str, ...]
    #: devices a case of it is tried on (whether this build runs it there is found by trying:
    #: ``harness.runner.precision``); names from ``harness.vocab.DEVICES``
    devices: Tuple[str, ...]

    @property
    def unit_roundoff(self) -> float:
        """The unit roundoff of the arithmetic it runs in (autocast: its low dtype)."""
        return DTYPE[self.dtype_name].unit_roundoff

    @property
    def narrow_range(self) -> bool:
        """Whether it computes in float16's range (``Dtype.narrow_range``)."""
        return DTYPE[self.dtype_name].narrow_range


_BOTH = ("cpu", "cuda")
#: Every precision, in the axis's order. fp16 loss scaling is CUDA's only: on the CPU fp16
#: autocast has no GradScaler in most releases, and bfloat16 has float32's range and needs none.
TABLE = (
    Precision("fp32", "float32", None, casts_model=False, fallback_tolerance=1e-4,
              loss_scaling_devices=(), devices=_BOTH),
    Precision("amp_fp16", "float16", "float16", casts_model=False, fallback_tolerance=2e-2,
              loss_scaling_devices=("cuda",), devices=_BOTH),
    Precision("amp_bf16", "bfloat16", "bfloat16", casts_model=False, fallback_tolerance=1e-1,
              loss_scaling_devices=(), devices=_BOTH),
    Precision("fp16", "float16", None, casts_model=True, fallback_tolerance=2e-2,
              loss_scaling_devices=(), devices=_BOTH),
    Precision("bf16", "bfloat16", None, casts_model=True, fallback_tolerance=1e-1,
              loss_scaling_devices=(), devices=_BOTH),
)
BY_NAME: Dict[str, Precision] = {p.name: p for p in TABLE}
#: The ``precision`` axis's values, in order (``harness.vocab.PRECISIONS``).
NAMES = tuple(p.name for p in TABLE)
#: The precision of the accuracy references' arithmetic and of a model as built.
REFERENCE = "fp32"
#: ``{precision: unit roundoff}``, for readers that take a mapping.
UNIT_ROUNDOFF: Dict[str, float] = {p.name: p.unit_roundoff for p in TABLE}


def get(name: str) -> Precision:
    """The precision called ``name``; KeyError naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError("unknown precision %r; known: %s" % (name, ", ".join(NAMES))) from None
