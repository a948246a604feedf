"""The largest-batch search (harness.runner.batch_search): the doubling and bisection over a probe
function, each outcome of a probe, and the record part it makes. The real probe, in real
workers, is tested in test_batch_probe.py."""
from harness.record.schema import Record
from harness.runner.batch_search import cap_bytes, search

MIB = 1 << 20


def linear_probe(per_sample_bytes, base_bytes=MIB, oom_from=None, fail_at=None, calls=None):
    """A probe whose peak grows linearly with the batch (as a model's activations do)."""
    def probe(batch):
        if calls is not None:
            calls.append(batch)
        if fail_at is not None and batch >= fail_at:
            return {"status": "error", "reason": "RuntimeError: boom", "peak_bytes": None, "wall_s": 0.1}
        if oom_from is not None and batch >= oom_from:
            return {"status": "oom", "reason": "RuntimeError: DefaultCPUAllocator: can't allocate memory",
                    "peak_bytes": None, "wall_s": 0.1}
        return {"status": "ok", "reason": None, "peak_bytes": base_bytes + per_sample_bytes * batch,
                "rss_peak_bytes": 2 * base_bytes, "criterion": "torch.profiler memory events", "wall_s": 0.1}
    return probe


def quiet(_line):
    pass


def test_doubling_then_bisection_finds_the_largest_batch_within_the_cap():
    calls = []
    # 1 MiB + 1 MiB per sample, cap 101 MiB: batch 100 is the last that fits
    out = search(linear_probe(MIB, calls=calls), start=1, limit=4096, cap=101 * MIB, print_fn=quiet)
    assert out["status"] == "ok" and out["reason"] is None
    part = out["max_batch"]
    assert part["batch_size"] == 100 and part["first_unfit"] == 101 and part["limited_by"] == "cap"
    assert calls[:8] == [1, 2, 4, 8, 16, 32, 64, 128]  # doubling up to the first unfit
    assert calls[8:] == [96, 112, 104, 100, 102, 101]  # bisection between 64 and 128
    assert [p["fits"] for p in part["probes"]] == [True] * 7 + [False, True, False, False, True, False, False]
    assert part["peak_bytes"] == 101 * MIB and part["cap_bytes"] == 101 * MIB
    assert part["criterion"] == "torch.profiler memory events"
    Record.from_dict(_record(out), strict=True)  # the part is a valid record part


def test_the_limit_ends_the_search_when_it_fits():
    out = search(linear_probe(1), start=3, limit=40, cap=101 * MIB, print_fn=quiet)
    part = out["max_batch"]
    assert [p["batch_size"] for p in part["probes"]] == [3, 6, 12, 24, 40]
    assert out["status"] == "ok" and part["batch_size"] == 40 and part["limited_by"] == "limit"
    assert part["first_unfit"] is None


def test_an_out_of_memory_probe_does_not_fit_and_is_told_apart_from_the_cap():
    out = search(linear_probe(1, oom_from=50), start=1, limit=4096, cap=None, print_fn=quiet)
    part = out["max_batch"]
    assert part["batch_size"] == 49 and part["first_unfit"] == 50 and part["limited_by"] == "oom"
    assert part["cap_bytes"] is None


def test_a_first_probe_that_does_not_fit_bisects_below_the_start():
    out = search(linear_probe(MIB), start=64, limit=4096, cap=21 * MIB, print_fn=quiet)
    part = out["max_batch"]
    assert part["batch_size"] == 20 and part["probes"][0]["batch_size"] == 64
    assert out["status"] == "ok"


def test_nothing_fits_is_an_oom_record_with_the_reason():
    out = search(linear_probe(MIB, base_bytes=10 * MIB), start=1, limit=64, cap=5 * MIB, print_fn=quiet)
    assert out["status"] == "oom"
    assert out["reason"].startswith("batch 1 does not fit: needs 11 MiB, 6 MiB over the cap of 5 MiB")
    assert out["max_batch"]["batch_size"] == 0 and out["max_batch"]["peak_bytes"] is None


def test_a_failing_probe_ends_the_search_with_its_status_and_keeps_what_fitted():
    out = search(linear_probe(1, fail_at=8), start=1, limit=4096, cap=None, print_fn=quiet)
    assert out["status"] == "error"
    assert out["reason"] == "probe at batch 8: RuntimeError: boom; batch 4 fitted"
    part = out["max_batch"]
    assert part["batch_size"] == 4 and part["limited_by"] == "failed" and len(part["probes"]) == 4


def test_progress_names_each_probe():
    lines = []
    search(linear_probe(MIB), start=1, limit=4, cap=3 * MIB, print_fn=lines.append)
    assert lines[0].split() == ["probe", "batch", "1", "fits", "(2", "MiB),", "0.1", "s"]
    assert "does not fit (needs 5 MiB, 2 MiB over the cap of 3 MiB)" in lines[2]  # batch 4: 1 + 4 MiB


def test_the_cap_of_each_device():
    settings = {"cpu_cap_gib": 4.0, "cuda_cap_gib": 0.0}
    assert cap_bytes("cpu", settings) == 4 << 30
    assert cap_bytes("cuda", settings) is None  # the GPU's own memory
    assert cap_bytes("cuda", dict(settings, cuda_cap_gib=0.5)) == 1 << 29


def _record(result):
    case = {"model": "m", "mode": "train", "batch_size": "max", "size": 32, "precision": "fp32",
            "checkpoint": "none", "device": "cpu"}
    return dict(result, schema_version=2, case=case, case_key="k")
