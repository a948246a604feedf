"""The harness flags each fault twin of the zoo, and passes its healthy model.

Runs scenarios/faults.toml (every pair, train mode only, for time) through the real runner.
"""
import json
import subprocess
import sys

import pytest
import torch

from tests.runner.helpers import ROOT, read_jsonl, run_harness, write_scenario


@pytest.fixture(scope="module")
def fault_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults")
    proc = run_harness("run", "faults", "--out", str(out), "--env-label", "e",
                       "--only", "model=mswr_net*,attention_*,hsifusion*,cswin_v2*", "--only", "mode=train")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {(r["case"]["model"], r["case"]["precision"], r["case"]["checkpoint"], r["case"]["size"]): r
            for r in read_jsonl(out / "e.jsonl")}


def test_dropped_checkpoint_gradients_fail_fidelity(fault_records):
    twin = fault_records[("mswr_net_legacy_ckpt_tiny", "fp32", "reentrant", 32)]
    healthy = fault_records[("mswr_net_tiny", "fp32", "reentrant", 32)]
    assert twin["status"] == "ok" and not twin["accuracy"]["passed"]
    assert twin["accuracy"]["grads"]["missing"] > 0
    assert any("got no gradient" in f for f in twin["accuracy"]["failures"])
    assert healthy["status"] == "ok" and healthy["accuracy"]["passed"]
    # Without checkpointing the twin is the healthy model: only the checkpoint mode is at fault.
    assert fault_records[("mswr_net_legacy_ckpt_tiny", "fp32", "none", 32)]["accuracy"]["passed"]


def _cpu_bf16_failure():
    """Feature detection: None if this build runs the attention LM's bf16 ops on the CPU, else why not."""
    try:
        w = torch.ones(4, 4, dtype=torch.bfloat16, requires_grad=True)
        x = torch.nn.functional.embedding(torch.tensor([[0, 1, 2]]), w)
        x = torch.nn.functional.layer_norm(x, (4,)) @ w  # (1, 3, 4)
        scores = (x @ x.transpose(-2, -1)).masked_fill(torch.ones(3, 3, dtype=torch.bool).triu(1), float("-inf"))
        (torch.softmax(scores, dim=-1) @ x).sum().backward()
        return None
    except RuntimeError as exc:
        return str(exc)


def test_uncast_mask_breaks_bf16_but_the_healthy_variant_runs(fault_records):
    twin = fault_records[("attention_mask_dtype_fault_tiny", "bf16", "none", 32)]
    healthy = fault_records[("attention_gqa_tiny", "bf16", "none", 32)]
    assert twin["status"] == "error"
    assert "dtype" in twin["reason"].lower() or "scalar type" in twin["reason"]
    cannot = _cpu_bf16_failure()
    if cannot is None:
        assert healthy["status"] == "ok", healthy["reason"]
        assert healthy["accuracy"]["passed"], healthy["accuracy"]["failures"]
        assert healthy["accuracy"]["outputs"]["rel_err"] > 0  # it really ran in bf16
    else:
        assert healthy["status"] == "unsupported" and healthy["reason"], (cannot, healthy["reason"])


CSWIN = ("cswin_v2_tiny", "cswin_v2_clone_fault_tiny")


def test_clone_fault_twin_computes_exactly_what_its_healthy_model_does(fault_records):
    # The unconditional clone costs memory only: outputs and gradients are the healthy model's,
    # bit for bit, so accuracy cannot flag it and the peak memory is the only signal.
    healthy, twin = (fault_records[(m, "fp32", "none", 32)] for m in CSWIN)
    for rec in (healthy, twin):
        assert rec["status"] == "ok" and rec["accuracy"]["passed"], rec.get("reason")
        assert rec["accuracy"]["outputs"]["rel_err"] == 0.0 and rec["accuracy"]["grads"]["rel_err"] == 0.0
    assert twin["accuracy"]["output_probe"] == healthy["accuracy"]["output_probe"]
    assert twin["memory"]["method"] == healthy["memory"]["method"] and healthy["memory"]["peak_bytes"] > 0


CSWIN_ON_CUDA = """
model = ["cswin_v2_tiny", "cswin_v2_clone_fault_tiny"]
include_faults = true
mode = ["train"]
batch_size = [32]
size = [32]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cuda"]
"""


def test_clone_fault_raises_the_cpu_tensor_peak(fault_records):
    # The clone keeps one more 8x32x32x16 float32 tensor (0.5 MiB) alive for backward: invisible in
    # the process high-water mark (it moves 3-7 MiB between runs of the same case), exact in the
    # tensor peak of a profiled step.
    healthy, twin = (fault_records[(m, "fp32", "none", 32)] for m in CSWIN)
    attention_bytes = 8 * 32 * 32 * 16 * 4  # the first level's attention output, held once more
    assert twin["memory"]["tensor_peak_bytes"] >= healthy["memory"]["tensor_peak_bytes"] + attention_bytes, (
        twin["memory"], healthy["memory"])


def test_clone_fault_raises_the_cuda_allocator_peak(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA: the allocator-peak check of the cswin clone fault runs on a GPU (the CPU tensor "
                    "peak is checked above)")
    path = write_scenario(tmp_path, CSWIN_ON_CUDA)
    proc = run_harness("run", path, "--out", str(tmp_path / "out"), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    healthy, twin = sorted(read_jsonl(tmp_path / "out" / "e.jsonl"), key=lambda r: r["case"]["model"] != CSWIN[0])
    assert healthy["status"] == twin["status"] == "ok" and twin["accuracy"]["passed"]
    assert healthy["memory"]["method"] == twin["memory"]["method"] == "cuda_allocator"
    # On an H200 (torch 2.11) the allocator peak rose by 262,144 bytes at batch 8, less than one
    # attention output there, and by 5,242,880 at batch 32: the peak of a CUDA step falls where
    # fewer clones are alive than on the CPU, so the check runs at batch 32.
    attention_bytes = 32 * 32 * 32 * 16 * 4
    assert twin["memory"]["peak_bytes"] >= healthy["memory"]["peak_bytes"] + attention_bytes, (
        twin["memory"], healthy["memory"])


@pytest.mark.parametrize("size", [17, 31])
def test_prime_sides_break_the_legacy_factor_pair(fault_records, size):
    twin = fault_records[("hsifusion_prime_fault_tiny", "fp32", "none", size)]
    healthy = fault_records[("hsifusion_tiny", "fp32", "none", size)]
    assert twin["status"] == "error" and "RuntimeError" in twin["reason"]
    assert healthy["status"] == "ok" and healthy["accuracy"]["passed"]


CASE_AT_SIZE_0 = """
import json
from harness.scenario import spec as scenario
from harness.runner import execute
settings = {"measure": scenario.MEASURE_DEFAULTS, "tolerance": scenario.TOLERANCE_DEFAULTS}
out = {}
for model in ("sharp_tiny", "sharp_assert_fault_tiny"):
    case = dict(model=model, mode="train", batch_size=1, size=0, precision="fp32", checkpoint="none", device="cpu")
    r = execute.run_case(case, settings)
    out[model] = [r["status"], r["reason"]]
print(json.dumps(out))
"""


def _size_0_results(optimize):
    cmd = [sys.executable] + (["-O"] if optimize else []) + ["-c", CASE_AT_SIZE_0]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_assert_validation_is_flagged_and_vanishes_under_O():
    plain, optimized = _size_0_results(False), _size_0_results(True)
    # The healthy model rejects size 0 with ValueError, with or without -O.
    for results in (plain, optimized):
        assert results["sharp_tiny"][0] == "error" and results["sharp_tiny"][1].startswith("ValueError")
    # The twin's rejection is an assert, which the record names as the fault ...
    assert "validation by assert" in plain["sharp_assert_fault_tiny"][1]
    # ... and which python -O removes: the bad input is no longer rejected that way.
    assert "validation by assert" not in (optimized["sharp_assert_fault_tiny"][1] or "")


def test_fp16_out_of_range_twin_fails_only_where_fp16_arithmetic_runs(fault_records):
    # sqrt(sum q^2 * sum k^2) over a head leaves fp16's range: every logit 0; fp32 and bf16 pass
    # wherever the healthy model passes (bf16 gradients of both fail on 1.11 with two threads: the release).
    checked = []
    for precision in ("fp32", "bf16", "amp_bf16"):
        r = fault_records.get(("hsifusion_half_norm_fault_tiny", precision, "none", 32))
        healthy = fault_records.get(("hsifusion_tiny", precision, "none", 32))
        if r is not None and r["status"] == "ok" and healthy["accuracy"]["passed"]:
            assert r["accuracy"]["passed"], (precision, r["accuracy"]["failures"])
            checked.append(precision)
    assert "fp32" in checked  # fp32 runs on every build, and the healthy model passes in it: never an empty loop
    ran = {}
    for precision in ("fp16", "amp_fp16"):
        r = fault_records.get(("hsifusion_half_norm_fault_tiny", precision, "none", 32))
        if r is not None and r["status"] == "ok":
            ran[precision] = r
    if not ran:
        pytest.skip("neither fp16 nor amp_fp16 runs on this build's CPU: %s" % (
            fault_records.get(("hsifusion_half_norm_fault_tiny", "fp16", "none", 32)) or {}).get("reason"))
    for precision, r in ran.items():
        healthy = fault_records[("hsifusion_tiny", precision, "none", 32)]
        assert healthy["accuracy"]["passed"] and not r["accuracy"]["passed"], precision
        # Every logit is divided to exactly 0, so both spectral temperatures get an all-zero gradient:
        # a failure of its own on every CPU, whatever fp32's error here makes of the ratios.
        grads = r["accuracy"]["grads"]
        assert grads["zeroed_names"] == ["blocks.0.spectral.temperature", "blocks.1.spectral.temperature"]
        assert healthy["accuracy"]["grads"]["zeroed"] == 0
        assert any("2 tensors are all zero here" in f for f in r["accuracy"]["failures"])


def test_detached_parameter_fails_in_every_precision_through_the_fp32_reference(fault_records):
    twins = [r for k, r in fault_records.items() if k[0] == "hsifusion_detached_fault_tiny" and r["status"] == "ok"]
    assert twins and all(not r["accuracy"]["passed"] for r in twins)
    for r in twins:
        assert r["accuracy"]["grads"]["ref_missing"] == 2
        assert any("no gradient in the fp32 reference" in f for f in r["accuracy"]["failures"])
    assert fault_records[("hsifusion_tiny", "fp32", "none", 32)]["accuracy"]["passed"]


# --- the twins the behaviour checks and the python -O axis flag ---------------------------

BEHAVIOUR_TWINS = ("mswr_net_tiny,mswr_net_hw_swap_fault_tiny,cswin_v2_tiny,cswin_v2_iteration_fault_tiny,wavediff*,"
                   "sharp_tiny,sharp_key_cache_fault_tiny,sharp_assert_fault_kcap0,ris_music*")


@pytest.fixture(scope="module")
def behaviour_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("behaviour")
    proc = run_harness("run", "faults", "--out", str(out), "--env-label", "e", "--only", "model=" + BEHAVIOUR_TWINS,
                       "--only", "precision=fp32", "--only", "checkpoint=none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {(r["case"]["model"], r["case"]["mode"], r["case"]["size"], r["case"]["python_optimized"]): r
            for r in read_jsonl(out / "e.jsonl")}


def _ok_and_checked(rec, failed):
    assert rec["status"] == "ok", rec.get("reason")
    assert rec["checks"]["failed"] == failed, rec["checks"]


def test_swapped_height_and_width_break_non_square_inputs_only(behaviour_records):
    for mode in ("train", "eval"):
        twin = behaviour_records[("mswr_net_hw_swap_fault_tiny", mode, "32x16", False)]
        assert twin["status"] == "error" and "size of tensor" in twin["reason"]
        _ok_and_checked(behaviour_records[("mswr_net_hw_swap_fault_tiny", mode, 16, False)], [])
        _ok_and_checked(behaviour_records[("mswr_net_tiny", mode, "32x16", False)], [])


def test_a_counter_buffer_mutated_in_forward_fails_eval_buffers(behaviour_records):
    twin = behaviour_records[("cswin_v2_iteration_fault_tiny", "eval", 16, False)]
    _ok_and_checked(twin, ["eval_buffers"])
    assert twin["checks"]["mutated_buffers"] == ["iteration_count"]
    _ok_and_checked(behaviour_records[("cswin_v2_tiny", "eval", 16, False)], [])


def test_a_layer_rebuilt_after_the_optimizer_was_made_fails_params_updated(behaviour_records):
    twin = behaviour_records[("wavediff_lazy_head_fault_tiny", "train", 16, False)]
    _ok_and_checked(twin, ["params_updated"])
    assert set(twin["checks"]["stale_params"]) == {"denoiser.conv_out.weight", "denoiser.conv_out.bias"}
    assert twin["accuracy"]["passed"]  # its gradients are right: only the optimizer holds the wrong tensors
    _ok_and_checked(behaviour_records[("wavediff_tiny", "train", 16, False)], [])


def test_an_unbounded_cache_fails_the_leak_check_in_train_and_eval(behaviour_records):
    for mode in ("train", "eval"):
        twin = behaviour_records[("sharp_key_cache_fault_tiny", mode, 32, False)]
        _ok_and_checked(twin, ["leak"])
        assert twin["checks"]["leak_bytes_per_step"] > 0
        healthy = behaviour_records[("sharp_tiny", mode, 32, False)]
        _ok_and_checked(healthy, [])
        assert healthy["checks"]["leak_bytes_per_step"] == 0.0


def test_a_bad_config_rejected_by_assert_only_runs_under_python_O(behaviour_records):
    plain = behaviour_records[("sharp_assert_fault_kcap0", "train", 32, False)]
    optimized = behaviour_records[("sharp_assert_fault_kcap0", "train", 32, True)]
    assert plain["status"] == "error" and "validation by assert" in plain["reason"] and "k_cap" in plain["reason"]
    assert optimized["status"] == "ok" and optimized["env"]["optimize"] == 1 and plain["env"]["optimize"] == 0


def test_eigh_at_tied_eigenvalues_and_a_wrong_detach_are_flagged(behaviour_records):
    healthy = behaviour_records[("ris_music_tiny", "train", models_default_size("ris_music_tiny"), False)]
    _ok_and_checked(healthy, [])
    assert healthy["accuracy"]["passed"] and "2 parameter groups" in healthy["optimizer"]
    eigh = behaviour_records[("ris_music_eigh_fault_tiny", "train", models_default_size("ris_music_tiny"), False)]
    if eigh["status"] == "ok":
        assert not eigh["accuracy"]["passed"] and "non-finite" in " ".join(eigh["accuracy"]["failures"])
    else:  # 2.x: the NaN weights make the next step's eigh backward raise; the record names the cause
        assert eigh["status"] == "error" and "gradients held" in eigh["reason"] and "non-finite" in eigh["reason"]
    detach = behaviour_records[("ris_music_detach_fault_tiny", "train", models_default_size("ris_music_tiny"), False)]
    assert detach["status"] == "ok" and not detach["accuracy"]["passed"]
    assert "params_updated" in detach["checks"]["failed"]


def models_default_size(name):
    import models

    return models.get_spec(name).default_sizes[0]
