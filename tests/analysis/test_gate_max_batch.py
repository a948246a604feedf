"""The gate on largest-batch searches (harness.analysis.gate.rules.max_batch_rule): a smaller batch that
fits is a memory regression beyond memory_frac; other caps or criteria are not comparable; a search is
never compared across machines."""
import pytest

from harness.analysis.gate import compare
from harness.analysis.gate.markdown import format_value
from tests.analysis.gate_records import frames, make_search, only


@pytest.mark.parametrize("base, cand, verdict", [
    (100, 90, "regressed"),   # -10%: memory per sample grew by about 11%
    (100, 97, "unchanged"),   # -3%, within memory_frac (5%)
    (100, 120, "improved"),
    (100, 100, "unchanged"),
])
def test_the_largest_batch_is_judged_against_memory_frac(tmp_path, base, cand, verdict):
    b, c = frames([make_search(found=base)], [make_search(found=cand)], tmp_path)
    verdicts = compare(b, c, {})
    v = only(verdicts, "memory", "max_batch")
    assert v["verdict"] == verdict
    assert (v["baseline"], v["candidate"], v["unit"]) == (base, cand, "samples")
    assert "largest batch that fits %d -> %d" % (base, cand) in v["reason"]
    assert format_value(v, "candidate") == "%d samples" % cand
    assert not [x for x in verdicts if x["kind"] in ("time", "accuracy")]  # a search has neither


def test_searches_under_other_caps_are_not_comparable(tmp_path):
    b, c = frames([make_search(found=100, cap=4 << 30)], [make_search(found=50, cap=2 << 30)], tmp_path)
    v = only(compare(b, c, {}), "memory", "max_batch")
    assert v["verdict"] == "not_comparable" and "searched differently" in v["reason"]


def test_a_search_on_another_machine_is_never_compared(tmp_path):
    # the same case and environment label, run on another machine: another fingerprint
    base = make_search(found=100)
    cand = make_search(found=50)
    cand["env"]["fingerprint"] = "0123456789ab"
    b, c = frames([base], [cand], tmp_path)
    verdicts = compare(b, c, {})
    assert [v["verdict"] for v in verdicts] == ["not_comparable"]
    assert verdicts[0]["kind"] == "status"
