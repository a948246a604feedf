"""The timm source: ``timm:NAME`` is ``timm.create_model(NAME, pretrained=False, **config)``.

Inputs follow the model's ``pretrained_cfg``: ``input_size`` gives the channels and the
default size, ``num_classes`` the labels of the cross-entropy loss. A model with a fixed
input size (``fixed_input_size``: ViTs and the like) is built with ``img_size`` for any
other size. Gradient checkpointing is timm's own ``set_grad_checkpointing``; which mode
it runs is the installed timm's choice: newer releases select reentrant or not with
``timm.layers.set_reentrant_ckpt`` (and pass ``use_reentrant`` to torch, which torch
builds without that parameter refuse), older ones call torch's checkpoint with its
default, reentrant. What a release cannot select is ``unsupported``, with the reason.
"""
import importlib
import inspect
from typing import Any, Callable, Dict, List, Optional

from harness.sources.base import ExternalSpec, Source, unexpected_keyword
from harness.sources.external import ImageClassifier, asks_for_stochastic, image_size_problem
from models import UnsupportedError, image_hw
from models._base import HAS_NON_REENTRANT_CHECKPOINT


def _timm_attribute(name: str, modules) -> Optional[Callable]:
    """``name`` from the first of ``modules`` that has it (timm moved its helpers between releases)."""
    for where in modules:
        try:
            module = importlib.import_module(where)
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    return None


def _checkpoint_seq() -> Optional[Callable]:
    return _timm_attribute("checkpoint_seq", ("timm.models._manipulate", "timm.models.helpers"))


def _reentrant_switch() -> Optional[Callable]:
    return _timm_attribute("set_reentrant_ckpt", ("timm.layers", "timm.layers.config"))


class TimmModel(ImageClassifier):
    """A timm model; checkpointing through timm's own switch."""

    source = "timm"

    def select_checkpointing(self, mode: str) -> None:

        if mode == "none":
            if hasattr(self.net, "set_grad_checkpointing"):
                self.net.set_grad_checkpointing(False)
            return
        if not hasattr(self.net, "set_grad_checkpointing"):
            raise UnsupportedError("%s has no set_grad_checkpointing" % self.described())
        switch = _reentrant_switch()
        seq = _checkpoint_seq()
        params = inspect.signature(seq).parameters if seq is not None else {}
        if "use_reentrant" in params and not HAS_NON_REENTRANT_CHECKPOINT:
            raise UnsupportedError("%s checkpoints with use_reentrant=..., which "
                                   "torch.utils.checkpoint.checkpoint of this torch does not take" % self.described())
        if switch is not None:
            switch(mode == "reentrant")
        else:
            # No switch: the one mode this timm runs is its checkpoint_seq's default (torch's: reentrant).
            default = params["use_reentrant"].default if "use_reentrant" in params else True
            only = "non_reentrant" if default is False else "reentrant"  # None: torch's default
            if mode != only:
                raise UnsupportedError("%s has no switch that selects %s checkpointing (it always runs %s; "
                                       "timm.layers.set_reentrant_ckpt came in a later timm)" % (
                                           self.described(), mode, only))
        try:
            self.net.set_grad_checkpointing(True)
        except (AssertionError, NotImplementedError, RuntimeError) as exc:
            raise UnsupportedError("%s: set_grad_checkpointing(True) refused: %s" % (
                self.described(), str(exc).split("\n")[0][:200] or type(exc).__name__)) from None


class TimmSource(Source):
    prefix = distribution = "timm"
    size_axis = ImageClassifier.size_axis

    def names(self) -> List[str]:
        return list(self.import_library().list_models())

    def spec(self, name: str, options: Dict[str, Any]) -> ExternalSpec:
        timm = self.import_library()
        if name.split(".")[0] not in set(timm.list_models()):
            raise self.unknown(name)
        kwargs = dict(options.get("config") or {})
        version = self.version()
        try:
            probe = timm.create_model(name, pretrained=False, **kwargs)
        except TypeError as exc:
            field = unexpected_keyword(exc, kwargs)
            if field is None:
                raise ValueError("timm:%s: a [config] key is not an argument of its constructor: %s" % (
                    name, str(exc).split("\n")[0])) from None
            # this release's constructor does not take it (a later one may)
            raise self.missing_field(field, name, []) from None
        cfg = dict(getattr(probe, "pretrained_cfg", None) or getattr(probe, "default_cfg", None) or {})
        in_chans, side = int(kwargs.get("in_chans", cfg.get("input_size", (3, 224, 224))[0])), None
        if "img_size" in kwargs:
            side = kwargs["img_size"]
        default = cfg.get("input_size", (3, 224, 224))[1:]
        default_size = side if side is not None else (default[0] if default[0] == default[1] else
                                                      "%dx%d" % tuple(default))
        fixed = bool(cfg.get("fixed_input_size", False))
        num_classes = int(getattr(probe, "num_classes", kwargs.get("num_classes", cfg.get("num_classes", 0))) or 0)
        del probe

        def build(size: Any) -> TimmModel:
            args = dict(kwargs)
            if fixed and "img_size" not in kwargs and image_hw(size) != image_hw(default_size):
                args["img_size"] = image_hw(size)
            try:
                net = timm.create_model(name, pretrained=False, **args)
            except TypeError as exc:
                raise UnsupportedError("timm %s model %s has a fixed input size (%s) and its constructor takes "
                                       "no img_size: %s" % (version, name, default_size, exc)) from None
            return TimmModel(net, name, version, in_chans, num_classes, keep_stochastic=asks_for_stochastic(kwargs))

        return ExternalSpec(name="timm:" + name, model_cls=TimmModel, config=None, family="timm",
                            description="timm %s %s, %s classes, %s input" % (
                                version, name, num_classes, "fixed" if fixed else "any"),
                            sizes=(default_size,), size_check=image_size_problem, builder=build)
