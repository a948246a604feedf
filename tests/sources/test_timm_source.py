"""timm models through the harness: timm's own forward, its own checkpointing switch."""
import re

import pytest
import timm
import torch

import models
from harness.sources import NotInRelease
from harness.sources.timm_source import TimmSource, _reentrant_switch
from models import UnsupportedError, init_parameters
from models._base import HAS_NON_REENTRANT_CHECKPOINT
from tests.sources.helpers import first_step, library_grads, same, same_grads


def _timm_net(name: str, **kwargs) -> torch.nn.Module:
    net = timm.create_model(name, pretrained=False, **kwargs)
    init_parameters(net, 0)
    return net


def test_eval_first_step_is_timms_forward():
    _, inputs, _, outputs, _ = first_step("timm:resnet18", "eval", 32)
    net = _timm_net("resnet18").eval()
    with torch.no_grad():
        assert same(outputs, net(*inputs))


def test_train_first_step_is_timms_forward_and_backward():
    _, inputs, target, outputs, grads = first_step("timm:resnet18", "train", 32)
    net = _timm_net("resnet18").train()
    logits = net(*inputs)
    torch.nn.functional.cross_entropy(logits, target).backward()
    assert target.shape == (2,) and int(target.max()) < 1000
    assert same(outputs, logits) and same_grads(grads, library_grads(net))


def test_a_fixed_size_model_is_built_for_the_case_size():
    spec = models.get_spec("timm:vit_tiny_patch16_224")
    assert spec.default_sizes == [224] and "fixed" in spec.description
    model, inputs, _, outputs, _ = first_step("timm:vit_tiny_patch16_224", "eval", 48)
    assert inputs[0].shape == (2, 3, 48, 48)
    net = _timm_net("vit_tiny_patch16_224", img_size=48).eval()
    with torch.no_grad():
        assert same(outputs, net(*inputs))


@pytest.mark.parametrize("mode", ["reentrant", "non_reentrant"])
def test_checkpointing_goes_through_timms_switch_or_says_why_not(mode):
    # The library's reason comes first: it holds whatever the torch.
    if _reentrant_switch() is None and mode == "non_reentrant":
        expect = "no switch"
    elif _reentrant_switch() is not None and not HAS_NON_REENTRANT_CHECKPOINT:
        expect = "use_reentrant"
    elif mode == "non_reentrant" and not HAS_NON_REENTRANT_CHECKPOINT:
        expect = "use_reentrant parameter"
    else:
        expect = None
    if expect is not None:
        with pytest.raises(UnsupportedError, match=expect):
            first_step("timm:resnet18", "train", 32, checkpoint=mode)
        # the refusal and its reason are asserted; the checkpointed step itself cannot run here: say so
        pytest.skip("checkpoint=%s is unsupported with these releases (reason %r asserted); the checkpointed "
                    "step runs where the library and torch support it" % (mode, expect))
    model, _, _, outputs, grads = first_step("timm:resnet18", "train", 32, checkpoint=mode)
    _, _, _, plain_outputs, plain_grads = first_step("timm:resnet18", "train", 32)
    assert model.net.grad_checkpointing  # timm's own flag, set by timm's own switch
    assert same(outputs, plain_outputs)
    assert all(grads[n] is not None and torch.allclose(grads[n], plain_grads[n], rtol=1e-6, atol=1e-9)
               for n in plain_grads)


def test_names_and_constructor_arguments_this_release_lacks_are_not_in_release():
    version = re.escape(TimmSource().version())
    with pytest.raises(NotInRelease, match=r"^not in timm %s: no model 'resnet_eighteen'.*did you mean" % version):
        models.get_spec("timm:resnet_eighteen")
    with pytest.raises(NotInRelease, match=r"^not in timm %s: resnet18 has no field 'n_layer'" % version) as err:
        models.get_spec("timm:resnet18", {"config": {"n_layer": 2}})
    assert err.value.missing == "resnet18.n_layer" and err.value.first is None


def test_config_reaches_the_constructor():
    model = models.create_model("timm:resnet18", 32, {"config": {"num_classes": 10}})
    (x,), labels = model.example_inputs(3, "40x32", models.SeededGenerator(0))
    assert x.shape == (3, 3, 40, 32) and model.net.num_classes == 10 and int(labels.max()) < 10
