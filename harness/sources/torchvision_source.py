"""The torchvision source: ``torchvision:NAME`` is its builder, with no weights at all.

``torchvision.models.get_model(NAME, weights=None, **config)`` where the release has it
(0.14 and later), else the builder function found in ``torchvision.models`` or its
``segmentation`` module with ``pretrained=False``. Backbone weights are refused too
(``weights_backbone=None`` / ``pretrained_backbone=False``): nothing is downloaded.

Classification models take (b, 3, h, w) images and labels over 1000 classes (or the
``num_classes`` given); segmentation models per-pixel labels over 21 classes, trained on
their ``out`` logits. Detection, video and optical-flow models take other inputs and are
``unsupported`` with that reason. A ViT is built with ``image_size`` for sizes other than
its 224. torchvision has no gradient-checkpointing switch: checkpointed cases are
``unsupported``, never checkpointed by hand behind the library's back.
"""
import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple

from harness.sources.base import ExternalSpec, Source, unexpected_keyword
from harness.sources.external import ImageClassifier, asks_for_stochastic, image_size_problem
from models import UnsupportedError, image_hw

#: The kinds of model, by the torchvision module their builder lives in, and their defaults.
_DEFAULT_CLASSES = {"classification": 1000, "segmentation": 21}
_OTHER_KINDS = ("detection", "video", "optical_flow")


def _kind(builder: Callable) -> str:
    module = getattr(builder, "__module__", "") or ""
    for kind in _OTHER_KINDS + ("segmentation",):
        if ".%s." % kind in module + ".":
            return kind
    return "classification"


class TorchvisionModel(ImageClassifier):
    """A torchvision model: no checkpointing switch exists."""

    source = "torchvision"

    def select_checkpointing(self, mode: str) -> None:
        if mode != "none":
            raise UnsupportedError("%s: torchvision has no gradient-checkpointing switch (none of its models "
                                   "takes one), so %s checkpointing cannot be selected" % (self.described(), mode))


class TorchvisionSource(Source):
    prefix = distribution = "torchvision"
    size_axis = ImageClassifier.size_axis

    def _builders(self) -> Dict[str, Callable]:
        tv = self.import_library()
        models = tv.models
        if hasattr(models, "list_models") and hasattr(models, "get_model_builder"):
            return {name: models.get_model_builder(name) for name in models.list_models()}
        found: Dict[str, Callable] = {}
        for where in (models, getattr(models, "segmentation", None), getattr(models, "detection", None),
                      getattr(models, "video", None), getattr(models, "optical_flow", None)):
            for name in dir(where) if where is not None else ():
                obj = getattr(where, name)
                if (not name.startswith("_") and name.islower() and inspect.isfunction(obj)
                        and obj.__module__.startswith("torchvision.models")):
                    found.setdefault(name, obj)
        return found

    def names(self) -> List[str]:
        return sorted(self._builders())

    def spec(self, name: str, options: Dict[str, Any]) -> ExternalSpec:
        tv = self.import_library()
        builders = self._builders()
        if name not in builders:
            raise self.unknown(name)
        builder, kind, version = builders[name], _kind(builders[name]), self.version()
        kwargs = dict(options.get("config") or {})
        params = inspect.signature(builder).parameters
        no_weights = self._no_weights(tv, params, kind)
        problem, unknown = _kwargs_problem(builder, params, kwargs, no_weights)
        if problem:
            raise ValueError("torchvision:%s: %s" % (name, problem))
        if unknown:  # not arguments in this release (a later one may take them)
            raise self.missing_field(unknown[0], builder.__name__, sorted(params))
        num_classes = int(kwargs.get("num_classes", _DEFAULT_CLASSES.get(kind, 0)))

        def make(extra: Dict[str, Any]):
            args = dict(no_weights, **kwargs, **extra)
            try:
                if hasattr(tv.models, "get_model"):
                    return tv.models.get_model(name, **args)
                return builder(**args)
            except TypeError as exc:  # an old builder (no model class to check against) refused a key
                field = unexpected_keyword(exc, kwargs)
                if field is None:
                    raise
                raise self.missing_field(field, builder.__name__, []) from None

        def build(size: Any) -> TorchvisionModel:
            if kind not in _DEFAULT_CLASSES:
                raise UnsupportedError("torchvision %s model %s is a %s model: it takes inputs other than a batch "
                                       "of images (name a package.module:callable with an [inputs] table to drive "
                                       "it)" % (version, name, kind.replace("_", " ")))
            net = make({})
            side = getattr(net, "image_size", None)  # ViTs are built for one image size
            if isinstance(side, int) and "image_size" not in kwargs and image_hw(size) != (side, side):
                h, w = image_hw(size)
                if h != w:
                    raise UnsupportedError("torchvision %s model %s takes square images only (image_size), got %s"
                                           % (version, name, size))
                net = make({"image_size": h})
            return TorchvisionModel(net, name, version, 3, num_classes, dense=(kind == "segmentation"),
                                    keep_stochastic=asks_for_stochastic(kwargs))

        return ExternalSpec(name="torchvision:" + name, model_cls=TorchvisionModel, config=None,
                            family="torchvision", description="torchvision %s %s (%s)" % (version, name, kind),
                            sizes=(224,), size_check=image_size_problem, builder=build)

    @staticmethod
    def _no_weights(tv, params, kind: str) -> Dict[str, Any]:
        """The builder arguments that keep every weight random (never downloaded)."""
        if hasattr(tv.models, "get_model"):
            out = {"weights": None}
            if "weights_backbone" in params:
                out["weights_backbone"] = None
            return out
        out = {"pretrained": False} if "pretrained" in params else {}
        # Old segmentation and detection builders take it through **kwargs and default it to True.
        if "pretrained_backbone" in params or kind in ("segmentation", "detection"):
            out["pretrained_backbone"] = False
        return out


def _kwargs_problem(builder: Callable, params, kwargs: Dict[str, Any],
                    fixed: Dict[str, Any]) -> Tuple[Optional[str], List[str]]:
    """``(why kwargs cannot go to builder, or None; the keys neither it nor its model class
    takes)``. Builders pass ``**kwargs`` on to the model class, so a key is checked against the
    builder and that class's parameters."""
    taken = [k for k in kwargs if k in fixed]
    if taken:
        return "[config] may not set %s: the harness never loads weights" % ", ".join(taken), []
    accepted = set(params)
    returned = getattr(builder, "__annotations__", {}).get("return")  # the model class, from 0.13
    model_cls = returned if inspect.isclass(returned) else None
    if model_cls is not None:
        accepted |= set(inspect.signature(model_cls.__init__).parameters)
    if model_cls is None and any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None, []  # no class to check against: the builder will say
    return None, [k for k in kwargs if k not in accepted]
