"""A user's plain nn.Module by import path, driven from the scenario's [inputs] table."""
import pytest
import torch
from tmx_example_nets import nets  # the example in-house package (examples/user_project)

import models
from models import UnsupportedError, init_parameters
from tests.models.source_helpers import first_step, library_grads, same, same_grads

NAME = "tmx_example_nets.nets:build"
INPUTS = {"features": {"shape": ["batch", "size", 16]},
          "token_ids": {"shape": ["batch", "size"], "dtype": "int64", "high": 100}}


def test_inputs_follow_the_table():
    model = models.create_model(NAME, 12, {"inputs": INPUTS})
    (features, ids), target = model.example_inputs(3, 12, models.SeededGenerator(0))
    assert features.shape == (3, 12, 16) and features.dtype == torch.float32
    assert ids.shape == (3, 12) and ids.dtype == torch.int64 and 0 <= int(ids.min()) and int(ids.max()) < 100
    assert target is None


def test_first_step_is_the_modules_own_forward_and_the_default_loss():
    _, inputs, _, outputs, grads = first_step(NAME, "train", 12, {"inputs": INPUTS})
    net = nets.build()
    init_parameters(net, 0)
    scores = net(*inputs)
    scores.pow(2).mean().backward()  # the documented default loss: mean of squares of the output
    assert same(outputs, scores) and same_grads(grads, library_grads(net))


def test_config_is_the_callables_keyword_arguments():
    model = models.create_model(NAME, 12, {"inputs": INPUTS, "config": {"width": 8}})
    assert model.net.head.in_features == 8
    with pytest.raises(ValueError, match="does not fit build\\(width"):
        models.get_spec(NAME, {"inputs": INPUTS, "config": {"depth": 3}})


def test_a_plain_module_needs_an_inputs_table():
    spec = models.get_spec(NAME)
    with pytest.raises(ValueError, match="give its inputs in \\[inputs"):
        spec.build(1)


def test_sizes_follow_the_size_placeholder():
    assert models.get_spec(NAME, {"inputs": INPUTS}).default_sizes == []  # the scenario gives them
    fixed = {"x": {"shape": ["batch", 4, 16]}, "ids": {"shape": ["batch", 4], "dtype": "int64", "high": 100}}
    spec = models.get_spec(NAME, {"inputs": fixed})
    assert spec.default_sizes == [1] and "do not use size" in spec.size_error(8)


def test_no_checkpointing_switch_is_unsupported():
    with pytest.raises(UnsupportedError, match="plain nn.Module"):
        first_step(NAME, "train", 12, {"inputs": INPUTS}, checkpoint="reentrant")


def test_an_unknown_module_names_the_sources():
    from models._sources import NotImportable

    with pytest.raises(NotImportable, match="cannot import module 'tim'"):
        models.get_spec("tim:resnet18")
