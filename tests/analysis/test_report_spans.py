"""``report.spans``: failure causes normalised, the release span of each failing cell, the group's finding,
checked against the records of a synthetic store with planted spans."""
import collections
import json
import os

import pytest

from harness.analysis.report import aggregate as agg
from harness.analysis.report import spans
from harness.analysis.report.build import make_context
from tests.analysis.report_synth import MODELS, PLANTED_GAP, PLANTED_SPANS, write_synthetic_store

ENV_NAMES = ["torch-1.10", "torch-1.11", "torch-1.12", "torch-1.13", "torch-2.0", "torch-2.1", "torch-latest"]
BF16_CAUSE = PLANTED_SPANS[0][4]


def planted_store(folder: str, **kwargs):
    """Every model, no random failure: the planted spans and the zoo's own faults alone."""
    return write_synthetic_store(folder, **dict(dict(
        batches=(1,), n_sizes=1, precisions=("fp32", "fp16", "amp_fp16", "amp_bf16"), failure_rate=0.0,
        planted_spans=True), **kwargs))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("spans"))
    return folder, planted_store(folder)


@pytest.fixture(scope="module")
def groups(store):
    ctx, _ = make_context([store[0]])
    return agg.failure_groups(ctx.df)


def records(folder):
    for name in sorted(os.listdir(folder)):
        if name.endswith(".jsonl"):
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                yield from (json.loads(line) for line in fh)


def test_normalise_cause_folds_reraised_prefixes_and_numbers():
    assert spans.normalise_cause("RuntimeError: RuntimeError: expected scalar type BFloat16 but found Float") == \
        spans.normalise_cause("RuntimeError: expected scalar type BFloat16 but found Float")
    assert spans.normalise_cause("CUDA out of memory. Tried to allocate 2.00 GiB") == \
        spans.normalise_cause("CUDA out of memory. Tried to allocate 4.50 GiB")
    assert spans.normalise_cause("ValueError: bad") != spans.normalise_cause("RuntimeError: bad")


@pytest.mark.parametrize("marks, pattern, last_good, first_bad, again", [
    ("\u2713\u2717\u2717\u2713", "between", "a", "b", "d"),
    ("\u2713\u2713\u2717\u2717", "from", "b", "c", None),
    ("\u2717\u2717\u2713\u2713", "until", None, "a", "c"),
    ("\u2717\u2713\u2717\u2713", "gaps", None, "a", "d"),
    ("\u2013\u2717\u2717\u2717", "everywhere", None, "b", None),
])
def test_cell_span_reads_its_pattern(marks, pattern, last_good, first_bad, again):
    states = [{m: s for s, m in spans.STATE_MARKS.items()}[m] for m in marks]
    span = spans.cell_span(states, ["a", "b", "c", "d"])
    assert (span["pattern"], span["last_good"], span["first_bad"], span["works_again"]) == (
        pattern, last_good, first_bad, again)
    assert span["marks"] == marks


def test_reraised_prefix_is_one_group_counted_as_the_records(store, groups):
    bf16 = [g for g in groups if BF16_CAUSE in g["reason"]]
    assert len(bf16) == 1
    expected = sum(1 for r in records(store[0]) if r["status"] == "error" and BF16_CAUSE in (r["reason"] or ""))
    assert bf16[0]["count"] == expected > 0


def test_planted_span_models_per_release_match_the_records(store, groups):
    group = next(g for g in groups if BF16_CAUSE in g["reason"])
    from_records = collections.defaultdict(set)
    for r in records(store[0]):
        if BF16_CAUSE in (r["reason"] or ""):
            from_records[(r["env_label"], r["case"]["mode"])].add(r["case"]["model"])
    from_spans = collections.defaultdict(set)
    for cell in group["spans"]:
        for env in cell["fails"]:
            from_spans[(env, cell["mode"])].add(cell["model"])
    assert from_spans == from_records
    failing = PLANTED_SPANS[0][3]
    assert {env: len(from_spans[(env, "train")]) for env in failing} == failing
    cell = next(c for c in group["spans"] if c["model"] == MODELS[0][0] and c["mode"] == "train")
    # 1.10 has no non-reentrant mode: not run, neither working nor failing; fixed in 2.0
    assert cell["marks"] == "\u2013\u2717\u2717\u2717\u2713\u2713\u2713"
    assert (cell["pattern"], cell["first_bad"], cell["last_good"], cell["works_again"]) == (
        "until", "torch-1.11", None, "torch-2.0")
    assert cell["not_run"] == ["torch-1.10"]


def test_finding_states_the_span_in_one_line(groups):
    finding = next(g for g in groups if BF16_CAUSE in g["reason"])["finding"]
    assert "\n" not in finding
    assert "amp_bf16 train with non_reentrant checkpointing fails on torch-1.11\u2013torch-1.12 for 11\u201312 of " \
           "12 models, torch-1.13 for 3 of 12 models; works from torch-2.0; not run (unsupported) on torch-1.10" \
           in finding


def test_a_span_with_a_gap_is_shown_as_such(groups):
    model, precision, ckpt, failing, reason = PLANTED_GAP
    group = next(g for g in groups if g["reason"] == reason)
    cells = [c for c in group["spans"] if (c["model"], c["precision"], c["checkpoint"]) == (model, precision, ckpt)]
    assert len(cells) == 2  # train and eval
    for cell in cells:
        assert cell["fails"] == list(failing)
        assert cell["marks"] == "\u2713\u2717\u2713\u2717\u2713\u2713\u2713"
        assert (cell["pattern"], cell["last_good"], cell["first_bad"], cell["works_again"]) == (
            "gaps", "torch-1.10", "torch-1.11", "torch-2.0")


def test_a_fault_everywhere_reads_as_the_models(groups):
    group = next(g for g in groups if "slow_conv3d_cpu" in g["reason"])
    assert all(c["pattern"] == "everywhere" for c in group["spans"])
    assert group["finding"].startswith("Fails on every release where it ran (datacube_unet3d): the model's fault")


def test_unsupported_groups_have_no_span(groups):
    assert [g for g in groups if g["status"] == "unsupported"]
    assert all(not g["spans"] and not g["finding"] for g in groups if g["status"] == "unsupported")
