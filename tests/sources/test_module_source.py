"""A user's model by import path: a plain nn.Module driven from the scenario's [inputs] table, and
a user's own package called ``models`` imported beside the zoo, never instead of it."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from tmx_example_nets import nets  # the example in-house package (examples/user_project)

import models
from models import UnsupportedError, init_parameters
from tests.sources.helpers import first_step, library_grads, same, same_grads

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
    from harness.sources import NotImportable

    with pytest.raises(NotImportable, match="cannot import module 'tim'"):
        models.get_spec("tim:resnet18")


USER_NET = '''
"""A user's model in a package that is also called models."""
import torch
from torch import nn

from models.layers import WIDTH  # absolute import inside the user's package


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, WIDTH)

    def forward(self, x):
        return self.lin(x)  # (b, WIDTH)

    def example_inputs(self, batch_size, size, gen):
        return (gen.normal((batch_size, 4)),), gen.integers(0, WIDTH, (batch_size,))

    def loss(self, outputs, target):
        return nn.functional.cross_entropy(outputs, target)

    def set_grad_checkpointing(self, mode="none"):
        pass

    def infer(self, *inputs):
        return self(*inputs)


class Config:
    default_sizes = (4,)


def build():
    """the user's tiny net"""
    return Net()


build.config = Config()
'''


def _user_project(tmp_path):
    pkg = tmp_path / "proj" / "models"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "layers.py").write_text("WIDTH = 3\n")
    (pkg / "user_net.py").write_text(USER_NET)
    return tmp_path / "proj"


def test_a_users_models_package_does_not_collide_with_the_zoo(tmp_path, monkeypatch):
    proj = _user_project(tmp_path)
    monkeypatch.syspath_prepend(str(proj))
    zoo = sys.modules["models"]
    spec = models.get_spec("models.user_net:build")
    net = spec.build()
    assert type(net).__name__ == "Net" and net.lin.out_features == 3 and spec.description == "the user's tiny net"
    assert spec.default_sizes == [4]
    # the zoo is back in place, whole
    assert sys.modules["models"] is zoo and "models.user_net" not in sys.modules
    assert models.create_model("cbam_classifier_tiny") is not None
    assert models.get_spec("models.user_net:build").build().lin.in_features == 4  # cached, still theirs


def test_a_users_models_package_runs_end_to_end_from_its_folder(tmp_path):
    proj = _user_project(tmp_path)
    scenario = proj / "mine.toml"
    scenario.write_text(textwrap.dedent('''
        [scenario]
        name = "mine"
        [matrix]
        model = ["models.user_net:build"]
        mode = ["train", "eval"]
        batch_size = [2]
        size = ["default"]
        precision = ["fp32"]
        checkpoint = ["none"]
        device = ["cpu"]
        [measure]
        warmup_iters = 1
        warmup_s = 0.0
        min_sample_s = 0.002
        samples = 3
        '''))
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(scenario), "--out", str(proj / "out"),
                           "--env-label", "e"], cwd=str(proj), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    records = [json.loads(line) for line in (proj / "out" / "e.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok"], [r.get("reason") for r in records]
    assert all(r["case"]["model"] == "models.user_net:build" for r in records)
