"""Models from outside the zoo, driven through the zoo's interface without a wrapper of the user's.

A model from timm, torchvision, Hugging Face transformers or a user's package is an
``nn.Module`` that knows nothing of example inputs, losses or checkpoint modes. Each
source (``harness/sources/*_source.py``) subclasses ``ExternalModel`` with its library's
conventions: what inputs the model takes (``example_inputs``), how it is called
(``call``), its loss, and its library's own gradient-checkpointing switch, or
``UnsupportedError`` naming why that mode cannot be selected.

What every external model shares, and why:

* its parameters are drawn as the zoo's are (``models._seeded.init_parameters``), by the
  library model's own parameter names (``seeded_module``), so the same model built by
  the library outside the harness gets the same weights from the same seed;
* its stochastic layers (dropout, drop-path, stochastic depth) are switched off
  (``stochastic_layers_off``): the accuracy verdict compares one run against fp32 and
  float64 runs of the same arithmetic, which random masks drawn per dtype would break.
  A scenario that sets a drop rate in the model's ``[config]`` (``asks_for_stochastic``)
  keeps them all, as asked;
* the default training loss is the model's own (an output named ``loss``, or a scalar
  output), else ``output_reduction``: the sum over its floating output tensors of the
  mean of their squares (in at least float32), which gives every output element a
  gradient that depends on its value.
"""
from typing import Any, List, Optional, Tuple

import torch
from torch import nn

from models import CHECKPOINT_MODES, UnsupportedError, ZooModel, check_checkpoint_mode, image_hw
from models._base import at_least_float32


def _probability_attribute(module: nn.Module) -> Optional[str]:
    # torch's dropouts (p); drop-path by class name: timm's DropPath, transformers' SwinDropPath,
    # ConvNextDropPath ... (drop_prob); torchvision's StochasticDepth (p).
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return "p"
    name = type(module).__name__
    if name.endswith("DropPath"):
        return "drop_prob"
    return "p" if name == "StochasticDepth" else None


def stochastic_layers_off(net: nn.Module) -> List[str]:
    """Set every dropout / drop-path probability in ``net`` to zero; return the names touched."""
    touched = []
    for name, module in net.named_modules():
        attr = _probability_attribute(module)
        value = getattr(module, attr, None) if attr else None
        if isinstance(value, float) and value > 0:
            setattr(module, attr, 0.0)
            touched.append(name)
    return touched


def asks_for_stochastic(config: dict) -> bool:
    """True when a ``[config]`` table sets a drop rate (dropout, drop-path, layer drop) above zero."""
    return any(is_drop_field(k) and isinstance(v, (int, float)) and v > 0 for k, v in config.items())


def is_drop_field(name: str) -> bool:
    """True for a config field holding a drop probability (``hidden_dropout_prob``, ``attn_pdrop``,
    ``drop_path_rate``, ``encoder_layerdrop``, timm's ``drop_rate``)."""
    return "drop" in name.lower()


def own_loss(outputs: Any) -> Optional[torch.Tensor]:
    """The loss a model returned itself: an output named ``loss`` or a scalar output; else None."""
    if isinstance(outputs, torch.Tensor):
        return outputs if outputs.dim() == 0 and outputs.is_floating_point() else None
    loss = outputs.get("loss") if isinstance(outputs, dict) else getattr(outputs, "loss", None)
    return loss if isinstance(loss, torch.Tensor) and loss.dim() == 0 else None


def floating_tensors(value: Any) -> List[torch.Tensor]:
    """Floating tensors of a nested output (tensors, tuples, lists, dicts), in order."""
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, dict):
        return [t for v in value.values() for t in floating_tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in floating_tensors(v)]
    return []


def output_reduction(outputs: Any) -> torch.Tensor:
    """The default loss of a model without its own: sum over floating outputs of mean(t ** 2)."""
    tensors = floating_tensors(outputs)
    if not tensors:
        raise ValueError("the model returned no floating tensor to train on (got %s)" % type(outputs).__name__)
    return sum(at_least_float32(t).pow(2).mean() for t in tensors)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (b, classes[, h, w]) logits against (b[, h, w]) integer labels."""
    return nn.functional.cross_entropy(at_least_float32(logits), labels)


class ExternalModel(ZooModel):
    """A library's (or a user's) ``nn.Module`` behind the zoo interface; sources subclass it.

    ``net`` is the untouched library model; ``source`` and ``library_version`` say where it
    came from. Subclasses implement ``example_inputs`` and, where they differ from the
    defaults, ``call``, ``loss`` and ``select_checkpointing``.
    """

    source = "module"
    size_axis = "the size placeholder of its [inputs] shapes"

    def __init__(self, net: nn.Module, name: str, library_version: Optional[str] = None,
                 keep_stochastic: bool = False):
        super().__init__(config=None)
        self.net = net
        self.model_name = name
        self.library_version = library_version
        # A scenario that sets a drop rate in [config] asked for it: kept (and the accuracy verdict will say so).
        self.stochastic_off = [] if keep_stochastic else stochastic_layers_off(net)

    @property
    def seeded_module(self) -> nn.Module:
        """The module whose parameter names seed the initial weights (the library's own)."""
        return self.net

    def call(self, inputs: Tuple, training: bool) -> Any:
        """Run the library model on ``inputs`` (``training``: the train step's call)."""
        return self.net(*inputs)

    def forward(self, *inputs):
        return self.call(inputs, training=True)

    def infer(self, *inputs):
        return self.call(inputs, training=False)

    def loss(self, outputs: Any, target: Any) -> torch.Tensor:
        found = own_loss(outputs)
        return found if found is not None else output_reduction(outputs)

    def set_grad_checkpointing(self, mode: str = "none") -> None:
        if mode not in CHECKPOINT_MODES:
            check_checkpoint_mode(mode)  # the ValueError naming the modes
        self.select_checkpointing(mode)  # the library's reason first: it holds on every torch
        check_checkpoint_mode(mode)
        self.grad_checkpointing = mode

    def select_checkpointing(self, mode: str) -> None:
        """Switch the library's own checkpointing to ``mode``; UnsupportedError where it cannot."""
        if mode != "none":
            raise UnsupportedError("%s has no gradient-checkpointing switch that selects %s checkpointing" % (
                self.described(), mode))

    def described(self) -> str:
        """``timm 1.0.31 model resnet18``: the library, its version and the model, for reasons."""
        version = (" " + self.library_version) if self.library_version else ""
        return "%s%s model %s" % (self.source, version, self.model_name)


def image_size_problem(size: Any) -> Optional[str]:
    """Why ``size`` is not an image size (a positive side or ``"HxW"``), or None."""
    try:
        image_hw(size)
    except ValueError as exc:
        return str(exc)
    return None


class ImageClassifier(ExternalModel):
    """An image model: inputs (b, in_chans, h, w) from a normal distribution, integer labels
    in [0, num_classes) and cross-entropy on its logits (per pixel for dense outputs); with
    no classes (a feature extractor) the default reduction."""

    size_axis = "image side in pixels, or \"HxW\""
    non_square = True

    def __init__(self, net: nn.Module, name: str, library_version: Optional[str], in_chans: int,
                 num_classes: int, dense: bool = False, keep_stochastic: bool = False):
        super().__init__(net, name, library_version, keep_stochastic)
        self.in_chans, self.num_classes, self.dense = int(in_chans), int(num_classes), dense

    def example_inputs(self, batch_size: int, size: Any, gen):
        h, w = image_hw(size)
        images = gen.normal((batch_size, self.in_chans, h, w))  # (b, c, h, w)
        if not self.num_classes:
            return (images,), None
        labels = gen.integers(0, self.num_classes, (batch_size, h, w) if self.dense else (batch_size,))
        return (images,), labels

    def loss(self, outputs: Any, target: Any) -> torch.Tensor:
        if target is None:
            return super().loss(outputs, target)
        return classification_loss(self.logits(outputs), target)

    def logits(self, outputs: Any) -> torch.Tensor:
        """The main logits of an output: the tensor, a dict's ``out``, a tuple's first."""
        if isinstance(outputs, dict) and "out" in outputs:
            return outputs["out"]
        if isinstance(outputs, (tuple, list)):
            return outputs[0]
        return outputs
