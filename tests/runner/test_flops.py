"""FLOPs of real tiny zoo models against a count by hand from their layer shapes, checkpointed cases,
the two counters against each other where both exist, and the record's ``flops`` part."""
import math

import pytest
import torch
from torch import nn

import models
from harness.record.schema import Record
from harness.runner import flops
from tests.runner.helpers import read_jsonl, run_harness, write_scenario

HAS_FCM = flops.has_flop_counter_mode()
CHECKPOINTS = ["none", "reentrant"] + (["non_reentrant"] if models._base.HAS_NON_REENTRANT_CHECKPOINT else [])


def _step(name: str, mode: str, checkpoint: str = "none", batch_size: int = 2):
    size = models.get_spec(name).default_sizes[0]
    model = models.create_model(name, size, None)
    models.init_parameters(model, 0)
    inputs, target = model.example_inputs(batch_size, size, models.SeededGenerator(0))
    if mode == "train":
        model.train()
        model.set_grad_checkpointing(checkpoint)

        def step():
            model.zero_grad(set_to_none=True)
            model.loss(model(*inputs), target).backward()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                model.infer(*inputs)
    return model, step


def hand_count(model, step):
    """FLOPs by hand from the layer shapes each Linear/Conv module sees: a forward costs
    2 x output elements x inputs per output (Linear: in_features; conv: in_channels / groups x kernel);
    a call that records its graph adds its weight gradient (one forward again) and, when its input
    requires grad, its input gradient (once more). Checkpointing's recomputation is a second call."""
    calls = []

    def hook(mod, inp, out):
        x = inp[0]
        if isinstance(mod, nn.Linear):
            forward = 2 * (x.numel() // x.shape[-1]) * mod.in_features * mod.out_features
        else:
            forward = 2 * out.numel() * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)
        calls.append((forward, torch.is_grad_enabled(), x.requires_grad))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and not getattr(m, "transposed", False)]
    try:
        step()
    finally:
        for h in handles:
            h.remove()
    return sum(f + (f + (f if needs_input_grad else 0) if graph else 0) for f, graph, needs_input_grad in calls)


def _hand_expected(name, mode, checkpoint, model, step):
    """The hand count; non-reentrant checkpointing recomputes with grad enabled (the hooks cannot tell
    its recomputation from the first forward), so it is held to the reentrant case's count: both run each
    checkpointed block's forward twice and its backward once (these models have no early stop)."""
    if checkpoint == "non_reentrant":
        model, step = _step(name, mode, "reentrant")
    return hand_count(model, step)


# cbam_classifier_tiny (convs, a 1x1-conv channel MLP, a 7x7 spatial conv, a Linear head) and
# datacube_cnn_tiny (depthwise convs: groups = channels, squeeze-excite) have no matmul outside a module.
@pytest.mark.parametrize("name", ["cbam_classifier_tiny", "datacube_cnn_tiny"])
@pytest.mark.parametrize("mode, checkpoint", [("eval", "none")] + [("train", c) for c in CHECKPOINTS])
def test_profiler_counter_equals_the_hand_count(name, mode, checkpoint):
    model, step = _step(name, mode, checkpoint)
    expected = _hand_expected(name, mode, checkpoint, model, step)
    counted, uncounted = flops.count_profiler(step, model)
    assert uncounted == {}
    assert counted == expected


def test_train_is_three_forwards_but_the_first_layers_input_gradient():
    model, step = _step("cbam_classifier_tiny", "eval")
    forward, _ = flops.count_profiler(step, model)
    model, step = _step("cbam_classifier_tiny", "train")
    train, _ = flops.count_profiler(step, model)
    stem = 2 * (2 * 16 * 16 * 16) * 3 * 7 * 7  # 7x7/2 stem conv, 3 -> 16 channels, 32 px -> 16 px, batch 2
    assert train == 3 * forward - stem


def test_checkpointing_adds_the_recomputed_forward():
    counts = {}
    for checkpoint in ("none", "reentrant"):
        model, step = _step("datacube_cnn_tiny", "train", checkpoint)
        counts[checkpoint], _ = flops.count_profiler(step, model)
    model, step = _step("datacube_cnn_tiny", "eval")
    forward, _ = flops.count_profiler(step, model)
    assert counts["none"] < counts["reentrant"] < counts["none"] + forward  # the stem and head are not checkpointed


def test_the_matmuls_outside_modules_are_counted_from_their_shapes():
    # colorization_papernet_tiny decodes with an einsum over 484 colour bins: a bmm no module hook sees.
    model, step = _step("colorization_papernet_tiny", "eval")
    counted, _ = flops.count_profiler(step, model)
    transposed = 2 * (2 * 32 * 4 * 4) * 16 * 4 * 4  # the 4x4/2 ConvTranspose2d, 32 -> 16 channels, 4 px -> 8 px
    decode = 2 * 2048 * 484 * 2  # einsum: (1, 2048, 484) @ (1, 484, 2)
    assert counted == hand_count(model, step) + transposed + decode


@pytest.mark.skipif(not HAS_FCM, reason="this torch has no torch.utils.flop_counter.FlopCounterMode")
@pytest.mark.parametrize("name", ["cbam_classifier_tiny", "datacube_cnn_tiny", "colorization_papernet_tiny",
                                  "attention_mha_tiny", "cswin_v2_tiny"])
@pytest.mark.parametrize("mode, checkpoint", [("eval", "none"), ("train", "none"), ("train", "reentrant")])
def test_the_two_counters_agree_where_both_exist(name, mode, checkpoint):
    # cswin in reentrant train: the newest FlopCounterMode's module tracker raised there (flops._TotalOnly)
    model, step = _step(name, mode, checkpoint)
    counted, _ = flops.count_profiler(step, model)
    assert counted == flops.count_flop_counter_mode(step)


@pytest.mark.skipif(not HAS_FCM or not models._base.HAS_NON_REENTRANT_CHECKPOINT,
                    reason="needs FlopCounterMode and non-reentrant checkpointing")
def test_flop_counter_mode_counts_non_reentrant_recomputation():
    counts = {}
    for checkpoint in ("none", "non_reentrant"):
        _, step = _step("cbam_classifier_tiny", "train", checkpoint)
        counts[checkpoint] = flops.count_flop_counter_mode(step)
    model, step = _step("cbam_classifier_tiny", "train", "non_reentrant")
    assert counts["non_reentrant"] > counts["none"]
    assert counts["non_reentrant"] == _hand_expected("cbam_classifier_tiny", "train", "non_reentrant", model, step)


def test_count_step_names_the_counter_this_build_has():
    model, step = _step("cbam_classifier_tiny", "eval")
    out = flops.count_step(step, model)
    assert out["tool"] == (flops.FLOP_COUNTER_MODE if HAS_FCM else flops.PROFILER_COUNTER)
    assert out["per_iter"] == hand_count(model, step) and out["covers"] == flops.COVERS and out["wall_s"] > 0
    forced = flops.count_step(step, model, counter="profiler")
    assert forced["tool"] == flops.PROFILER_COUNTER and forced["per_iter"] == out["per_iter"]


def test_a_failed_count_is_reported_not_raised():
    def step():
        raise RuntimeError("deliberate\nsecond line")

    out = flops.count_step(step, None, counter="profiler")
    assert out["error"] == "RuntimeError: deliberate" and "per_iter" not in out


def test_record_part_holds_achieved_flops_and_the_share_of_the_peak():
    roof = {"cpu": {"matmul": {"float32": {"flops_per_s": 1e11}, "bfloat16": {"flops_per_s": 5e10},
                               "float16": {"error": "RuntimeError: no"}}}}
    part = flops.record_part({"per_iter": 10 ** 9, "tool": "t"}, 0.1, "amp_bf16", "cpu", roof)
    assert part["achieved_per_s"] == pytest.approx(1e10)
    assert part["peak_dtype"] == "bfloat16" and part["peak_pct"] == pytest.approx(20.0)
    fp16 = flops.record_part({"per_iter": 10 ** 9, "tool": "t"}, 0.1, "fp16", "cpu", roof)
    assert "peak_pct" not in fp16 and fp16["achieved_per_s"] == pytest.approx(1e10)  # no peak: no share
    assert flops.record_part(None, 0.1, "fp32", "cpu", roof) is None
    assert flops.compute_dtype("fp32") == "float32" and flops.compute_dtype("amp_fp16") == "float16"


MATRIX = """
model = ["cbam_classifier_tiny"]
mode = ["train", "eval"]
batch_size = [2]
size = [32]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
"""


def test_every_ok_record_carries_its_flops_and_the_runs_roofline(tmp_path):
    path = write_scenario(tmp_path, MATRIX, extra="threads = 1\n")
    proc = run_harness("run", path, "--out", str(tmp_path / "out"), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = read_jsonl(tmp_path / "out" / "e.jsonl")
    assert [r["status"] for r in recs] == ["ok", "ok"]
    for rec in recs:
        Record.from_dict(rec, strict=True)
        part = rec["flops"]
        model, step = _step("cbam_classifier_tiny", rec["case"]["mode"])
        assert part["per_iter"] == hand_count(model, step), part
        assert part["achieved_per_s"] == pytest.approx(part["per_iter"] / rec["timing"]["median_s"])
        assert part["peak_dtype"] == "float32" and part["peak_per_s"] > 0 and 0 < part["peak_pct"] < 100
        assert rec["roofline"]["matmul"]["float32"]["flops_per_s"] == part["peak_per_s"]
    assert recs[0]["roofline"] == recs[1]["roofline"]
    assert proc.stdout.count("roofline cpu") == 1


def test_flops_and_roofline_can_be_switched_off(tmp_path):
    path = write_scenario(tmp_path, MATRIX.replace('"train", "eval"', '"eval"'))
    with open(path, "a") as fh:
        fh.write("flops = false\n")
    proc = run_harness("run", path, "--out", str(tmp_path / "out"), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (rec,) = read_jsonl(tmp_path / "out" / "e.jsonl")
    assert rec["status"] == "ok" and rec["flops"] is None and rec["roofline"] is None
    assert "roofline cpu" not in proc.stdout


def test_a_bad_switch_is_refused_with_one_line(tmp_path):
    path = write_scenario(tmp_path, MATRIX)
    with open(path, "a") as fh:
        fh.write('flops = "yes"\n')
    proc = run_harness("run", path, "--out", str(tmp_path / "out"), "--env-label", "e")
    assert proc.returncode == 2
    assert "flops" in proc.stderr and "true or false" in proc.stderr
    assert not (tmp_path / "out" / "e.jsonl").exists()
