"""Every registered model keeps the interface the runner relies on.

Run on the oldest (1.10) and newest PyTorch by the nox ``tests`` sessions. Each model
is driven at its tiny size: a train step, eval, checkpointed gradients equal to the
un-checkpointed ones, odd and prime sizes either working or declared invalid.
"""
import subprocess
import sys

import pytest
import torch

import models
from models import SeededGenerator, init_parameters

TINY = models.list_models("*_tiny", include_faults=False)
ALL_TINY = models.list_models("*_tiny", include_faults=True)
# assert_close arrived in 1.9 but only became the recommended API in 1.12.
assert_close = getattr(torch.testing, "assert_close", None) or torch.testing.assert_allclose
HEALTHY_CKPT_MODES = ["reentrant"] + (["non_reentrant"] if models._base.HAS_NON_REENTRANT_CHECKPOINT else [])


def _build(name, seed=0):
    model = models.create_model(name)
    init_parameters(model, seed)
    return model


def _flat_outputs(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _flat_outputs(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flat_outputs(o)]
    return []


def _train_grads(model, inputs, target):
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model.loss(model(*inputs), target)
    loss.backward()
    return loss, {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()}


def test_zoo_has_tiny_and_base_of_each_model():
    names = models.list_models("*", include_faults=True)
    healthy_tiny = {n[: -len("_tiny")] for n in names if n.endswith("_tiny") and not models.get_spec(n).fault}
    base = {n[: -len("_base")] for n in names if n.endswith("_base")}
    assert healthy_tiny and healthy_tiny <= base, "tiny without base: %s" % (healthy_tiny - base)


@pytest.mark.parametrize("name", TINY)
def test_train_step_gives_finite_loss_and_every_gradient(name):
    model = _build(name)
    spec = models.get_spec(name)
    inputs, target = model.example_inputs(2, spec.default_sizes[0], SeededGenerator(0))
    loss, grads = _train_grads(model, inputs, target)
    assert torch.isfinite(loss).item()
    missing = [n for n, g in grads.items() if g is None]
    assert not missing, "parameters without gradient: %s" % missing[:5]


@pytest.mark.parametrize("name", TINY)
def test_eval_infer_runs_without_grad(name):
    model = _build(name).eval()
    spec = models.get_spec(name)
    inputs, _ = model.example_inputs(1, spec.default_sizes[0], SeededGenerator(1))
    with torch.no_grad():
        outs = _flat_outputs(model.infer(*inputs))
    assert outs and all(torch.isfinite(o.float()).all().item() for o in outs if o.is_floating_point())


@pytest.mark.parametrize("mode", HEALTHY_CKPT_MODES)
@pytest.mark.parametrize("name", TINY)
def test_checkpointed_gradients_equal_plain_ones(name, mode):
    spec = models.get_spec(name)
    model = _build(name)
    inputs, target = model.example_inputs(2, spec.default_sizes[0], SeededGenerator(2))
    assert not any(t.requires_grad for t in inputs if isinstance(t, torch.Tensor))
    torch.manual_seed(0)
    _, ref = _train_grads(model, inputs, target)
    model.set_grad_checkpointing(mode)
    torch.manual_seed(0)
    _, got = _train_grads(model, inputs, target)
    for pname, g_ref in ref.items():
        assert got[pname] is not None, "%s lost its gradient under %s checkpointing" % (pname, mode)
        assert_close(got[pname], g_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", TINY)
def test_odd_prime_and_batch_one_sizes_work_or_are_declared_invalid(name):
    spec = models.get_spec(name)
    base = spec.default_sizes[0]
    candidates = [base + 1, 17, 31] if isinstance(base, int) else []
    model = _build(name)
    for size in candidates:
        reason = spec.size_error(size)
        if reason is not None:
            assert isinstance(reason, str) and str(size) in reason
            with pytest.raises(ValueError):
                model.example_inputs(1, size, SeededGenerator(0))
            continue
        inputs, target = model.example_inputs(1, size, SeededGenerator(3))
        loss, _ = _train_grads(model, inputs, target)
        assert torch.isfinite(loss).item(), "size %r" % (size,)


@pytest.mark.parametrize("name", ALL_TINY)
def test_seeded_build_is_deterministic(name):
    spec = models.get_spec(name)
    outs = []
    for _ in range(2):
        model = _build(name, seed=5).eval()
        inputs, _ = model.example_inputs(1, spec.default_sizes[0], SeededGenerator(5))
        with torch.no_grad():
            outs.append([o.clone() for o in _flat_outputs(model(*inputs))])
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_invalid_sizes_raise_valueerror_under_python_O():
    # Each healthy model must reject a size of 0 with ValueError even when asserts are gone.
    code = (
        "import models\n"
        "bad = []\n"
        "for name in models.list_models('*_tiny'):\n"
        "    m = models.create_model(name)\n"
        "    try:\n"
        "        m.example_inputs(1, 0, models.SeededGenerator(0))\n"
        "        bad.append(name)\n"
        "    except ValueError:\n"
        "        pass\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=models.__path__[0] + "/..")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", "accepted size 0 under -O: " + proc.stdout
