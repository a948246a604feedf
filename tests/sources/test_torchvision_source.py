"""torchvision models through the harness: no weights, its own forward, no checkpointing switch."""
import os

import pytest
import torch
import torchvision

import models
from harness.sources import NotInRelease
from harness.sources.torchvision_source import TorchvisionSource
from models import UnsupportedError, init_parameters
from tests.sources.helpers import first_step, library_grads, same, same_grads


def _tv_net(name: str) -> torch.nn.Module:
    builder = getattr(torchvision.models, name)
    net = builder(weights=None) if hasattr(torchvision.models, "get_model") else builder(pretrained=False)
    init_parameters(net, 0)
    return net


def test_eval_and_train_first_steps_are_torchvisions_forward():
    _, inputs, _, outputs, _ = first_step("torchvision:mobilenet_v3_small", "eval", 32)
    net = _tv_net("mobilenet_v3_small").eval()
    with torch.no_grad():
        assert same(outputs, net(*inputs))
    _, inputs, target, outputs, grads = first_step("torchvision:resnet18", "train", 32)
    net = _tv_net("resnet18").train()
    logits = net(*inputs)
    torch.nn.functional.cross_entropy(logits, target).backward()
    assert same(outputs, logits) and same_grads(grads, library_grads(net))


def test_dropout_is_off_in_the_harness_and_only_there():
    model = models.create_model("torchvision:mobilenet_v3_small", 32)
    assert model.stochastic_off == ["classifier.2"] and model.net.classifier[2].p == 0.0
    assert _tv_net("mobilenet_v3_small").classifier[2].p > 0


@pytest.mark.parametrize("mode", ["reentrant", "non_reentrant"])
def test_checkpointing_is_unsupported_with_the_reason(mode):
    with pytest.raises(UnsupportedError, match="torchvision has no gradient-checkpointing switch"):
        first_step("torchvision:resnet18", "train", 32, checkpoint=mode)


def test_a_segmentation_model_trains_on_per_pixel_labels_and_downloads_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # where torch.hub would put downloaded weights
    model = models.create_model("torchvision:fcn_resnet50", 32)
    (x,), labels = model.example_inputs(2, 32, models.SeededGenerator(0))
    assert labels.shape == (2, 32, 32) and int(labels.max()) < 21
    assert model.loss(model(x), labels).dim() == 0
    assert not any(files for _, _, files in os.walk(str(tmp_path)))


def test_a_detection_model_is_unsupported_not_faked():
    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    with pytest.raises(UnsupportedError, match="detection model"):
        models.create_model("torchvision:" + name, 64)


def test_names_and_arguments_this_release_lacks_are_not_in_release():
    with pytest.raises(NotInRelease, match="^not in torchvision .*: no model 'resnet_18'"):
        models.get_spec("torchvision:resnet_18")
    with pytest.raises(NotInRelease, match="resnet18 has no field 'n_layer'"):
        # checked against the model class (0.13 and later) or refused by the builder's call (older)
        models.get_spec("torchvision:resnet18", {"config": {"n_layer": 2}}).build(32)


@pytest.mark.skipif(hasattr(torchvision.models, "swin_t"), reason="this torchvision has swin_t (0.13 and later)")
def test_a_model_of_a_later_release_names_that_release():
    with pytest.raises(NotInRelease) as err:
        models.get_spec("torchvision:swin_t")
    assert str(err.value) == "not in torchvision %s: no model 'swin_t' (first in torchvision 0.13.0)" % (
        TorchvisionSource().version())
