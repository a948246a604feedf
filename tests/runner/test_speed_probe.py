"""The machine-speed probe: a fixed CPU workload, built once, none on CUDA."""
from harness.runner import speed_probe


def test_cpu_probe_is_built_once():
    probe = speed_probe.make_probe("cpu")
    assert callable(probe) and probe is speed_probe.make_probe("cpu")
    seconds = probe()
    assert isinstance(seconds, float) and 0.0 < seconds < 1.0


def test_no_probe_on_cuda():
    assert speed_probe.make_probe("cuda") is None
