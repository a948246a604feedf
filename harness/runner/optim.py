"""The train step's optimizer, gradient clipping and loss scaling, as the model declares them.

A zoo model declares its optimizer (``ZooModel.make_optimizer``: AdamW by default over its
``param_groups``, as the audited systems train) and its gradient clipping
(``grad_clip_norm``); a plain ``nn.Module`` gets AdamW over its trainable parameters. Under
``amp_fp16`` on CUDA the step scales the loss with a ``GradScaler``, as real fp16 training
does (on the CPU fp16 autocast has no scaler in most releases, and bf16 needs none).

``TrainStep`` is the one place that knows the order: zero grads, forward and loss under
autocast, backward (scaled), unscale, keep the gradients, clip, optimizer step. The
gradients a caller keeps are the true (unscaled, unclipped) ones.
"""
from typing import Any, Callable, Optional

import torch

from harness import precisions

DEFAULT_LR = 1e-4


def make_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """The model's own optimizer when it declares one, else AdamW over its trainable parameters."""
    make = getattr(model, "make_optimizer", None)
    if callable(make):
        return make()
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=DEFAULT_LR, weight_decay=0.01)


def _grad_scaler():
    # torch.amp.GradScaler("cuda") since 2.3; torch.cuda.amp.GradScaler before (deprecated after).
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        return amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


def describe(optimizer: torch.optim.Optimizer, clip_norm: Optional[float], scaler: Any) -> str:
    """One line for the record: the optimizer, its first group's settings, groups, clipping, scaling."""
    group = optimizer.param_groups[0]
    settings = ", ".join("%s=%g" % (k, group[k]) for k in ("lr", "weight_decay", "momentum")
                         if isinstance(group.get(k), (int, float)) and not isinstance(group.get(k), bool))
    text = "%s(%s)" % (type(optimizer).__name__, settings)
    if len(optimizer.param_groups) > 1:
        text += ", %d parameter groups" % len(optimizer.param_groups)
    if clip_norm is not None:
        text += ", grad norm clipped to %g" % clip_norm
    if scaler is not None:
        text += ", GradScaler"
    return text


class TrainStep:
    """One training step of ``model`` on ``inputs``/``target``: ``run()``, or ``run(keep)`` to
    also return ``keep(outputs)`` taken after backward (unscaled gradients), before the update."""

    def __init__(self, model: torch.nn.Module, forward: Callable, inputs, target, device: str, precision: str,
                 autocast: Callable):
        self.model, self.forward, self.inputs, self.target = model, forward, inputs, target
        self.autocast = lambda: autocast(device, precision)
        self.optimizer = make_optimizer(model)
        self.clip_norm = getattr(model, "grad_clip_norm", None)
        self.scaler = _grad_scaler() if device in precisions.get(precision).loss_scaling_devices else None
        self.description = describe(self.optimizer, self.clip_norm, self.scaler)

    def _params(self):
        return [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]

    def run(self, keep: Optional[Callable[[Any], Any]] = None) -> Any:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            out = self.forward(*self.inputs)
            loss = self.model.loss(out, self.target)
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        kept = keep(out) if keep is not None else None
        del out, loss
        if self.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._params(), self.clip_norm)
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return kept
