"""The transformers source: ``transformers:CLASS`` is ``CLASS(CLASS.config_class(**config))``.

A Hugging Face model class is built from its config class with the library's defaults
and the scenario's ``[config."transformers:CLASS"]`` overrides (a key the config class
does not have is refused, never passed: config classes would silently keep it; it is
``NotInRelease``, as a class this release lacks). Never
``from_pretrained``: nothing is downloaded. The config's drop probabilities (dropout,
drop-path, layer drop) are set to 0 unless ``[config]`` sets one (``harness.sources.external``), and
``use_cache`` to False, so a step returns no key/value cache.

Inputs follow the class's ``main_input_name``: ``input_ids`` (b, size) over the config's
``vocab_size`` (``size`` is the sequence length, at most the config's position table) or
``pixel_values`` (b, channels, size, size). Labels follow the head, so the model returns
its own loss: the inputs again for language-model heads, (b,) classes over
``num_labels`` for sequence and image classification, (b, size) for token
classification, start/end positions for question answering; a model without a head
trains on the default reduction. Encoder-decoder models get ``decoder_input_ids`` when
no labels make them. Gradient checkpointing is ``gradient_checkpointing_enable``, with
``use_reentrant`` where the installed release takes ``gradient_checkpointing_kwargs``;
an older release checkpoints with torch's default (reentrant) only.
"""
import inspect
import logging
from typing import Any, Dict, List, Optional, Tuple

import torch

from harness.sources.base import ExternalSpec, Source, SourceUnavailable
from harness.sources.external import ExternalModel, asks_for_stochastic, is_drop_field
from models import UnsupportedError
from models._base import HAS_NON_REENTRANT_CHECKPOINT

#: Class-name endings and the labels their heads take.
_LM_HEADS = ("LMHeadModel", "ForCausalLM", "ForMaskedLM", "ForConditionalGeneration")
_CLASS_HEADS = ("ForSequenceClassification", "ForImageClassification")
_POSITION_FIELDS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
DEFAULT_SEQUENCE = 128


def _labels_kind(class_name: str) -> Optional[str]:
    if class_name.endswith(_LM_HEADS):
        return "tokens"
    if class_name.endswith(_CLASS_HEADS):
        return "class"
    if class_name.endswith("ForTokenClassification"):
        return "token_class"
    if class_name.endswith("ForQuestionAnswering"):
        return "span"
    return None


def _dropout_fields(config) -> List[str]:
    return [k for k, v in vars(config).items() if is_drop_field(k) and isinstance(v, float) and 0 < v < 1]


def max_positions(config) -> Optional[int]:
    """The longest sequence the config's position table takes (None: not limited)."""
    for field in _POSITION_FIELDS:
        value = getattr(config, field, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class TransformersModel(ExternalModel):
    """A Hugging Face model: called with keyword inputs; its own loss when labels are given."""

    source = "transformers"
    size_axis = "sequence length in tokens (image side for pixel_values models)"

    def __init__(self, net, name: str, library_version: Optional[str], labels: Optional[str],
                 keep_stochastic: bool = False):
        super().__init__(net, name, library_version, keep_stochastic)
        self.labels_kind = labels
        self.main_input = net.main_input_name
        self.encoder_decoder = bool(getattr(net.config, "is_encoder_decoder", False))

    def example_inputs(self, batch_size: int, size: Any, gen) -> Tuple[Tuple[torch.Tensor, ...], Any]:
        config = self.net.config
        if self.main_input == "input_ids":
            main = gen.integers(0, config.vocab_size, (batch_size, size))  # (b, t)
        elif self.main_input == "pixel_values":
            main = gen.normal((batch_size, getattr(config, "num_channels", 3), size, size))  # (b, c, h, w)
        else:
            raise UnsupportedError("%s takes %s; the harness makes input_ids and pixel_values (name a "
                                   "package.module:callable with an [inputs] table to drive it)" % (
                                       self.described(), self.main_input))
        labels: Tuple[torch.Tensor, ...] = ()
        classes = getattr(config, "num_labels", 2)
        if self.labels_kind == "tokens":
            labels = (main.clone(),)
        elif self.labels_kind == "class":
            labels = (gen.integers(0, classes, (batch_size,)),)
        elif self.labels_kind == "token_class":
            labels = (gen.integers(0, classes, (batch_size, size)),)
        elif self.labels_kind == "span":
            labels = (gen.integers(0, size, (batch_size,)), gen.integers(0, size, (batch_size,)))
        return (main,) + labels, None

    def call(self, inputs: Tuple, training: bool) -> Any:
        kwargs = {self.main_input: inputs[0]}
        if training and len(inputs) > 1:
            names = ("start_positions", "end_positions") if self.labels_kind == "span" else ("labels",)
            kwargs.update(zip(names, inputs[1:]))
        if self.encoder_decoder and "labels" not in kwargs:
            kwargs["decoder_input_ids"] = inputs[0]  # no labels to shift into decoder inputs
        return self.net(**kwargs)

    def _switch(self, what: str):
        # transformers 5 renamed gradient_checkpointing_* to activation_checkpointing_* (the old
        # names warn); the newer name where the release has it.
        return getattr(self.net, "activation_checkpointing_" + what, None) or \
            getattr(self.net, "gradient_checkpointing_" + what)

    def select_checkpointing(self, mode: str) -> None:
        if mode == "none":
            if self.checkpointing_on:
                self._switch("disable")()
            return
        if not getattr(self.net, "supports_gradient_checkpointing", False):
            raise UnsupportedError("%s does not support gradient checkpointing (supports_gradient_checkpointing "
                                   "is False)" % self.described())
        enable = self._switch("enable")
        takes = [k for k in ("activation_checkpointing_kwargs", "gradient_checkpointing_kwargs")
                 if k in inspect.signature(enable).parameters]
        if takes:
            if not HAS_NON_REENTRANT_CHECKPOINT:
                raise UnsupportedError("%s passes use_reentrant to torch.utils.checkpoint.checkpoint, which this "
                                       "torch does not take" % self.described())
            enable(**{takes[0]: {"use_reentrant": mode == "reentrant"}})
        elif mode == "reentrant":
            enable()
        else:
            raise UnsupportedError("%s: gradient_checkpointing_enable takes no gradient_checkpointing_kwargs in "
                                   "this release, so it runs torch's default (reentrant) only" % self.described())

    @property
    def checkpointing_on(self) -> bool:
        """Whether the library says its checkpointing is on (under either name)."""
        flag = getattr(self.net, "is_activation_checkpointing", None)
        return bool(flag if flag is not None else self.net.is_gradient_checkpointing)


class _TorchMessages(logging.Handler):
    """Keeps what transformers logs about torch: it decides at import whether it supports this
    torch and says why only in its log (and timm, among others, may import it first)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "torch" in message.lower() and message not in self.messages:
            self.messages.append(message)


_TORCH_LOG = _TorchMessages()
logging.getLogger("transformers").addHandler(_TORCH_LOG)


class TransformersSource(Source):
    prefix = distribution = "transformers"
    size_axis = TransformersModel.size_axis
    fallback_sizes = (DEFAULT_SEQUENCE,)

    def import_library(self):
        transformers = super().import_library()
        if not getattr(getattr(transformers, "utils", None), "is_torch_available", lambda: True)():
            said = next((m for m in _TORCH_LOG.messages if "required" in m), None)
            raise SourceUnavailable("transformers %s does not enable its PyTorch models with torch %s (%s)" % (
                self.version(), torch.__version__.split("+")[0],
                "it says: %s" % said if said else "transformers.utils.is_torch_available() is False"))
        return transformers

    def names(self) -> List[str]:
        self.import_library()
        from transformers.models.auto import modeling_auto

        found = set()
        for attr in dir(modeling_auto):
            if attr.startswith("MODEL") and attr.endswith("_MAPPING_NAMES"):
                for value in getattr(modeling_auto, attr).values():
                    found.update(value if isinstance(value, (list, tuple)) else [value])
        return sorted(found)

    def spec(self, name: str, options: Dict[str, Any]) -> ExternalSpec:
        transformers = self.import_library()
        cls = getattr(transformers, name, None) if name[:1].isupper() else None
        if cls is None or not hasattr(cls, "config_class") or not inspect.isclass(cls):
            raise self.unknown(name)
        overrides = dict(options.get("config") or {})
        defaults = cls.config_class()
        for key in overrides:
            if not hasattr(defaults, key):  # this release's config class lacks it (a later one may have it)
                raise self.missing_field(key, cls.config_class.__name__,
                                         [k for k in vars(defaults) if not k.startswith("_")])
        version, labels = self.version(), _labels_kind(name)
        keep_stochastic = asks_for_stochastic(overrides)

        def make_config(size: Any):
            config = cls.config_class(**overrides)
            if not keep_stochastic:
                for field in _dropout_fields(config):
                    setattr(config, field, 0.0)
            if hasattr(config, "use_cache") and "use_cache" not in overrides:
                config.use_cache = False
            if cls.main_input_name == "pixel_values" and "image_size" not in overrides and size is not None:
                config.image_size = int(size)
            return config

        probe = make_config(None)
        vision = cls.main_input_name == "pixel_values"
        limit = None if vision else max_positions(probe)
        default = int(getattr(probe, "image_size", 224)) if vision else min(DEFAULT_SEQUENCE, limit or DEFAULT_SEQUENCE)

        def size_check(size: Any) -> Optional[str]:
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                return "size must be a positive integer (%s), got %r" % (self.size_axis, size)
            if limit is not None and size > limit:
                return "sequence length %d exceeds the %d positions of %s" % (size, limit, cls.config_class.__name__)
            return None

        def build(size: Any) -> TransformersModel:
            return TransformersModel(cls(make_config(size)), name, version, labels, keep_stochastic)

        return ExternalSpec(name="transformers:" + name, model_cls=TransformersModel, config=None,
                            family="transformers", description="transformers %s %s (%s, labels: %s)" % (
                                version, name, cls.main_input_name, labels or "none: default reduction"),
                            sizes=(default,), size_check=size_check, builder=build)
