"""The uniform model interface every zoo model implements.

The runner knows nothing about a model beyond this interface:

* ``example_inputs(batch_size, size, gen)`` -> ``(inputs, target)``: ``inputs`` is the
  tuple of tensors passed to ``forward``/``infer``, ``target`` whatever ``loss`` needs
  (or None); all drawn from the version-stable generator ``gen`` (``models._seeded``);
* ``forward(*inputs)`` -> a tensor or a (nested) tuple/dict of tensors;
* ``loss(outputs, target)`` -> a scalar tensor for the train step;
* ``infer(*inputs)`` -> what eval mode times (defaults to ``forward``; models whose
  inference differs, such as diffusion sampling or cached decoding, override it);
* ``set_grad_checkpointing(mode)`` with mode in ``CHECKPOINT_MODES``;
* ``task_batch(batch_size, size, gen)`` -> ``(inputs, target)`` of the model's seeded
  synthetic task, and ``task_metric(outputs, target)`` -> float, named by
  ``task_metric_name`` with ``task_higher_is_better``, for short training runs;
* ``size_error(config, size)`` (a classmethod) -> ``None`` when ``size`` is valid, else
  the reason, so a scenario expansion can report an invalid size as skipped without
  building the model.

Models raise ``UnsupportedError`` when this PyTorch build lacks a feature they were
asked to use (non-reentrant checkpointing on 1.10, say); the runner records that as
``unsupported`` with the message. Input validation raises ``ValueError``, never
``assert``, so it survives ``python -O``.
"""
import inspect
import re
from typing import Any, List, Optional, Tuple

import torch
from torch import nn
from torch.utils import checkpoint as _torch_checkpoint

#: The gradient-checkpointing modes (the zoo's own API: what ``check_checkpoint_mode`` accepts).
#: The same words are ``harness.vocab.CHECKPOINTS``, the record's and the scenario's axis:
#: vocab is standard library only and cannot import the zoo (torch), and the zoo does not import
#: the harness, so each side spells the tuple and ``tests/models/test_model_layout.py`` holds them equal.
CHECKPOINT_MODES = ("none", "reentrant", "non_reentrant")


class UnsupportedError(RuntimeError):
    """This PyTorch build cannot run what was asked; the message names the feature."""


def _checkpoint_has_use_reentrant() -> bool:
    try:
        params = inspect.signature(_torch_checkpoint.checkpoint).parameters
    except (TypeError, ValueError):
        return False
    return "use_reentrant" in params


HAS_NON_REENTRANT_CHECKPOINT = _checkpoint_has_use_reentrant()


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or as it is when already float32 or float64: statistics and losses
    that half precision would spoil, without narrowing the float64 accuracy reference
    (``harness.runner.execute``: a ``.float()`` there put fp32 rounding into float64 runs)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


_HW_RE = re.compile(r"^([1-9][0-9]*)x([1-9][0-9]*)$")


def image_hw(size: Any) -> Tuple[int, int]:
    """``(height, width)`` of an image size: an int side (square) or ``"HxW"`` (the scenario's
    spelling of a non-square size, kept as text so case keys and records round-trip)."""
    if isinstance(size, str):
        match = _HW_RE.match(size)
        if match:
            return int(match.group(1)), int(match.group(2))
    if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
        return size, size
    raise ValueError("an image size is a positive integer or \"HxW\", got %r" % (size,))


def check_checkpoint_mode(mode: str) -> None:
    """Raise ValueError for an unknown mode, UnsupportedError when this build lacks it."""
    if mode not in CHECKPOINT_MODES:
        raise ValueError(
            "checkpoint mode must be one of %s, got %r" % (", ".join(CHECKPOINT_MODES), mode)
        )
    if mode == "non_reentrant" and not HAS_NON_REENTRANT_CHECKPOINT:
        raise UnsupportedError(
            "non-reentrant checkpointing: torch.utils.checkpoint.checkpoint has no "
            "use_reentrant parameter in torch %s" % torch.__version__
        )


def checkpoint_call(fn, *args, mode: str = "none"):
    """Call ``fn(*args)`` under gradient checkpointing ``mode``.

    Reentrant checkpointing returns outputs that do not require grad when no input
    does, which silently drops the gradients of every parameter inside ``fn`` (the
    bug the mswr_net audit describes). A tensor input is therefore made to require
    grad first: ``detach().requires_grad_()`` keeps values and costs nothing.
    """
    if mode == "none" or not torch.is_grad_enabled():
        return fn(*args)
    if mode == "reentrant":
        if not any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            args = tuple(
                a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                for a in args
            )
        if HAS_NON_REENTRANT_CHECKPOINT:
            return _torch_checkpoint.checkpoint(fn, *args, use_reentrant=True)
        return _torch_checkpoint.checkpoint(fn, *args)
    check_checkpoint_mode(mode)
    return _torch_checkpoint.checkpoint(fn, *args, use_reentrant=False)


class ZooModel(nn.Module):
    """Base class of the zoo: holds the config and the checkpoint mode.

    Subclasses set ``size_axis`` (what the scenario's ``size`` means for them) and
    ``default_sizes`` via their config, and implement ``example_inputs`` and ``loss``.
    """

    #: What the scenario's ``size`` value means for this model, for humans.
    size_axis = "image side in pixels"
    #: True for image models that take ``"HxW"`` sizes (``image_hw``) as well as a square side.
    non_square = False
    #: Gradient-norm clipping of the train step (``None``: none), as the audited training loop does.
    grad_clip_norm: Optional[float] = None

    def __init__(self, config: Any = None):
        super().__init__()
        self.config = config
        self.grad_checkpointing = "none"

    # -- sizes -----------------------------------------------------------------
    @classmethod
    def size_error(cls, config: Any, size: Any) -> Optional[str]:
        """Return why ``size`` is invalid for ``config``, or None when it is valid."""
        if cls.non_square and isinstance(size, str) and _HW_RE.match(size):
            return None
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            if isinstance(size, str) and _HW_RE.match(size):
                return "this model takes square sizes only (%s), got %r" % (cls.size_axis, size)
            return "size must be a positive integer (%s), got %r" % (cls.size_axis, size)
        return None

    def check_size(self, size: Any) -> None:
        """Raise ValueError naming the size and the rule when ``size`` is invalid."""
        reason = self.size_error(self.config, size)
        if reason is not None:
            raise ValueError(reason)

    # -- the interface -----------------------------------------------------------
    def set_grad_checkpointing(self, mode: str = "none") -> None:
        """Choose gradient checkpointing for training: none, reentrant, non_reentrant."""
        check_checkpoint_mode(mode)
        self.grad_checkpointing = mode

    def checkpointed(self, fn, *args):
        """Run ``fn(*args)`` under this model's checkpoint mode while training."""
        mode = self.grad_checkpointing if self.training else "none"
        return checkpoint_call(fn, *args, mode=mode)

    def param_groups(self) -> List[dict]:
        """The optimizer's parameter groups (trainable parameters only); one group unless the
        audited system trains parts at different rates (ris_music: trunk and heads)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    #: The optimizer the train step uses, by name (``make_optimizer``), and its learning rate.
    optimizer_name = "adamw"
    learning_rate = 1e-4

    def make_optimizer(self) -> "torch.optim.Optimizer":
        """The model's own optimizer over ``param_groups()``: AdamW by default, as the audited
        systems train (its two state tensors per parameter are a large share of training memory)."""
        groups = self.param_groups()
        if self.optimizer_name == "adamw":
            return torch.optim.AdamW(groups, lr=self.learning_rate, weight_decay=0.01)
        if self.optimizer_name == "adam":
            return torch.optim.Adam(groups, lr=self.learning_rate)
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(groups, lr=self.learning_rate, momentum=0.9)
        raise ValueError("optimizer_name must be adamw, adam or sgd, got %r" % (self.optimizer_name,))

    def example_inputs(self, batch_size: int, size: Any, gen) -> Tuple[Tuple[torch.Tensor, ...], Any]:
        """One step's ``(inputs, target)`` for ``batch_size`` and ``size``, drawn from ``gen``."""
        raise NotImplementedError

    def loss(self, outputs: Any, target: Any) -> torch.Tensor:
        """The scalar training loss of ``outputs`` against ``target``."""
        raise NotImplementedError

    #: Name of the synthetic task's metric (``"top1"``, ``"psnr_db"``...), and its sense.
    task_metric_name = "loss"
    task_higher_is_better = False

    def task_batch(self, batch_size: int, size: Any, gen) -> Tuple[Tuple[torch.Tensor, ...], Any]:
        """A batch of the model's synthetic task; the benchmark inputs unless overridden."""
        return self.example_inputs(batch_size, size, gen)

    def task_metric(self, outputs: Any, target: Any) -> float:
        """The task metric of ``outputs`` (from eval mode) against ``target``."""
        return float(self.loss(outputs, target).detach().float())

    def infer(self, *inputs):
        """What eval mode times; ``forward`` unless inference differs from training."""
        return self(*inputs)
