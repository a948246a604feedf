"""The matmul roofline: measured per dtype, in the worker's threads, once per run (not per worker)."""
import torch

from harness.runner import roofline
from tests.runner.helpers import read_jsonl, run_harness, write_scenario


def test_float32_peak_is_measured_on_square_products_within_the_cap():
    out = roofline.matmul_peak("cpu", "float32", budget_s=0.1)
    assert out["flops_per_s"] > 0 and out["repeats"] >= 3
    assert roofline.START_N <= out["n"] <= roofline.MAX_N["cpu"]


def test_every_dtype_has_a_peak_or_says_why_not():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        part = roofline.measure("cpu", budget_s=0.05)
    finally:
        torch.set_num_threads(threads)
    assert part["device"] == "cpu" and part["threads"] == 1 and part["method"] == roofline.METHOD
    assert sorted(part["matmul"]) == sorted(roofline.DTYPES)
    for name, got in part["matmul"].items():
        assert (got.get("flops_per_s") or 0) > 0 or got["error"], (name, got)


def test_a_dead_worker_is_the_parts_error_and_the_worker_is_replaced():
    asked = []

    def ask(worker, case, settings, timeout_s):
        asked.append(case)
        return {"status": "crashed", "reason": "worker died (SIGSEGV)"}, False

    lines = []
    out, usable = roofline.measure_in(object(), ask, {"cpu", "cuda"}, lines.append)
    assert usable is False and asked == [{"roofline": True, "device": "cpu"}]  # no second ask of a dead worker
    assert out == {"cpu": {"device": "cpu", "error": "crashed: worker died (SIGSEGV)"}}
    assert lines == ["roofline cpu (None threads): crashed: worker died (SIGSEGV)"]


MISBEHAVING = '''
model = ["tests.fixtures.misbehaving:factory"]
mode = ["train"]
batch_size = [2]
size = [2, 8]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
'''


def test_measured_once_per_run_even_when_a_worker_crashes(tmp_path):
    # size 2 segfaults its worker; the fresh worker of size 8 is not measured again.
    path = write_scenario(tmp_path, MISBEHAVING, extra="threads = 1\n", timeout=30)
    proc = run_harness("run", path, "--out", str(tmp_path / "out"), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    crashed, ok = read_jsonl(tmp_path / "out" / "e.jsonl")
    assert crashed["status"] == "crashed" and ok["status"] == "ok"
    assert proc.stdout.count("roofline cpu (1 threads)") == 1
    assert crashed["roofline"] == ok["roofline"] and ok["roofline"]["threads"] == 1
    assert ok["flops"]["peak_per_s"] == ok["roofline"]["matmul"]["float32"]["flops_per_s"]
