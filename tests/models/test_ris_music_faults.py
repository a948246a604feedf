"""The ris_music fault twins reproduce their audited faults where the healthy model does not."""
import pytest
import torch

import models
from models import SeededGenerator, UnsupportedError, _array, init_parameters, ris_music


def _build(name, seed=0):
    model = models.create_model(name)
    init_parameters(model, seed)
    return model


def _step(model, batch=2, size=8, seed=0):
    inputs, target = model.example_inputs(batch, size, SeededGenerator(seed))
    model.zero_grad(set_to_none=True)
    loss = model.loss(model(*inputs), target)
    loss.backward()
    return loss, {n: p.grad for n, p in model.named_parameters()}


def test_twins_are_registered_as_faults_and_name_it():
    for name, cls in (("ris_music_eigh_fault_tiny", ris_music.RISMusicEighFault),
                      ("ris_music_detach_fault_tiny", ris_music.RISMusicDetachFault)):
        spec = models.get_spec(name)
        assert spec.fault and spec.model_cls is cls and "Fault" in cls.__name__
        assert spec.config == models.get_spec("ris_music_tiny").config
        assert name not in models.list_models("ris_music_*")


@pytest.mark.parametrize("batch,size", [(1, 8), (2, 8), (8, 8)])
def test_eigh_fault_twin_gets_nan_gradients_where_the_healthy_model_does_not(batch, size):
    healthy, fault = _build("ris_music_tiny"), _build("ris_music_eigh_fault_tiny")
    loss_h, grads_h = _step(healthy, batch, size)
    loss_f, grads_f = _step(fault, batch, size)
    # Same forward and loss, bit for bit: only eigh's backward differs.
    assert torch.equal(loss_h, loss_f) and torch.isfinite(loss_f)
    assert all(torch.isfinite(g).all() for g in grads_h.values())
    bad = [n for n, g in grads_f.items() if not torch.isfinite(g).all()]
    assert any(n.startswith("cov_fact_angle") for n in bad) and any(n.startswith("cov_fact_range") for n in bad)


def test_eigh_fault_twin_gets_nan_gradients_in_float64_too():
    fault = _build("ris_music_eigh_fault_tiny").double()
    inputs, target = fault.example_inputs(2, 8, SeededGenerator(0))
    inputs = tuple(t.double() for t in inputs)
    target = tuple(t.double() if t.is_floating_point() else t for t in target)
    fault.loss(fault(*inputs), target).backward()
    assert not torch.isfinite(fault.cov_fact_angle.fc2.weight.grad).all()


def test_eigh_fault_twin_raises_unsupported_without_complex_eigh_backward(monkeypatch):
    fault = _build("ris_music_eigh_fault_tiny")
    monkeypatch.setattr(_array, "_NATIVE_EIGH_BACKWARD", ["complex torch.linalg.eigh backward: missing"])
    with pytest.raises(UnsupportedError, match="eigh backward"):
        _step(fault)
    fault.eval()
    inputs, _ = fault.example_inputs(1, 8, SeededGenerator(0))
    with torch.no_grad():  # inference differentiates nothing and still runs
        assert torch.isfinite(fault.infer(*inputs)["spectrum"]).all()


def test_native_complex_eigh_backward_is_there_on_this_build():
    assert _array.native_complex_eigh_backward_error() is None


def test_detach_fault_twin_starves_the_factor_heads_and_gate_of_gradients():
    healthy, fault = _build("ris_music_tiny"), _build("ris_music_detach_fault_tiny")
    loss_h, grads_h = _step(healthy)
    loss_f, grads_f = _step(fault)
    assert torch.equal(loss_h, loss_f)
    assert all(g is not None for g in grads_h.values())
    missing = sorted(n for n, g in grads_f.items() if g is None)
    assert missing and all(n.split(".")[0] in ("cov_fact_angle", "cov_fact_range", "factor_gate") for n in missing)
    assert "factor_gate" in missing and any(n.startswith("cov_fact_range") for n in missing)
    # The backbone and count head still learn from the count loss, so training "works".
    assert grads_f["k_head.weight"] is not None and grads_f["blocks.0.qkv.weight"] is not None


def test_eigh_fault_twin_poisons_the_weights_in_one_step():
    # What a train loop without skip-on-NaN sees next: NaN weights, then a NaN loss, or on builds
    # whose eigh backward checks the eigenvectors' phase gauge, a RuntimeError from it.
    fault = _build("ris_music_eigh_fault_tiny")
    optimizer = torch.optim.SGD(fault.parameters(), lr=1e-4)
    _step(fault)
    optimizer.step()
    assert not torch.isfinite(fault.cov_fact_angle.fc2.weight).all()
    try:
        loss, _ = _step(fault)
    except RuntimeError as exc:
        assert "eigh" in str(exc)
    else:
        assert not torch.isfinite(loss)
