"""Sharding (``run --shard K/N``, ``harness.shard.split``): the split partitions the cases exactly, is
stable and balanced, and a bad ``--shard`` is exit 2 with one line."""
import random

import pytest

from harness.record.parts import Case
from harness.record.schema import SCHEMA_VERSION
from harness.record.store import RecordWriter
from harness.shard import split as shard
from tests.runner.helpers import run_harness, write_scenario

THREE_EVAL = '''
model = ["attention_mha_tiny"]
mode = ["eval"]
batch_size = [1, 2, 3]
size = ["default"]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
'''


def _case(mode="eval", batch_size=2, size=32, precision="fp32", model="m"):
    return Case(model, mode, batch_size, size, precision, "none", "cpu")


@pytest.fixture(scope="module")
def default_cases():
    from harness.scenario import spec as scen

    return scen.expand(scen.load(scen.resolve_path("default")))


# --- the split ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16, 64])
def test_the_split_of_the_default_scenario_puts_every_case_in_exactly_one_shard(default_cases, count):
    keys = [case.key for case, _ in default_cases]
    costs = shard.case_costs(default_cases)
    assignment = shard.split(keys, costs, count)
    assert len(assignment) == len(keys) and set(assignment) == set(range(1, count + 1))
    # each shard's selection, put together, is the case list: nothing twice, nothing left out
    picked = []
    for index in range(1, count + 1):
        sel = shard.select(default_cases, index, count, "hash")
        assert len(sel.cases) == assignment.count(index) and set(sel.fields) == {c.key for c, _ in sel.cases}
        picked.extend(case.key for case, _ in sel.cases)
    assert sorted(picked) == sorted(keys) and len(set(picked)) == len(keys)


def test_the_split_is_stable_and_independent_of_the_case_order(default_cases):
    keys = [case.key for case, _ in default_cases]
    costs = shard.case_costs(default_cases)
    first = dict(zip(keys, shard.split(keys, costs, 5)))
    assert dict(zip(keys, shard.split(keys, costs, 5))) == first
    order = list(range(len(keys)))
    random.Random(7).shuffle(order)
    shuffled = shard.split([keys[i] for i in order], [costs[i] for i in order], 5)
    assert dict(zip([keys[i] for i in order], shuffled)) == first
    # the split's hash is the same for the same split, another for another count
    assert shard.split_hash(keys, shard.split(keys, costs, 5), 5) == shard.split_hash(keys, list(first.values()), 5)
    assert shard.split_hash(keys, shard.split(keys, costs, 4), 4) != shard.split_hash(keys, list(first.values()), 5)


# Measured on scenarios/default.toml (520 cases, cost model): N=3 loads 25344 / 25328 / 25328 units,
# max/mean 1.0004; N=64 max/mean 1.0105. The bound leaves room for a zoo that grows.
@pytest.mark.parametrize("count, bound", [(2, 1.02), (3, 1.02), (8, 1.02), (64, 1.10)])
def test_the_default_scenario_splits_into_shards_of_about_equal_cost(default_cases, count, bound):
    keys = [case.key for case, _ in default_cases]
    costs = shard.case_costs(default_cases)
    loads = shard.shard_loads(shard.split(keys, costs, count), costs, count)
    assert abs(sum(loads) - sum(costs)) < 1e-6 * sum(costs)
    ratio = max(loads) / (sum(loads) / count)
    assert ratio <= bound, (count, loads)


def test_longest_first_into_the_least_loaded_shard():
    # b5 -> 1 (empty shards: the lowest), d4 -> 2, a3 -> 2 (4 < 5), e3 -> 1 (a before e: ties by key),
    # f2 -> 2 (7 < 8), c1 -> 1 (8 < 9)
    keys = ["a", "b", "c", "d", "e", "f"]
    costs = [3.0, 5.0, 1.0, 4.0, 3.0, 2.0]
    assert shard.split(keys, costs, 2) == [2, 1, 1, 2, 1, 2]
    assert shard.shard_loads([2, 1, 1, 2, 1, 2], costs, 2) == [9.0, 9.0]
    with pytest.raises(ValueError):
        shard.split(["a", "a"], [1.0, 1.0], 2)


# --- the costs ---------------------------------------------------------------------------------------------

def test_the_cost_model_scales_with_batch_size_and_mode_and_not_run_cases_are_cheap():
    eval_cost = shard.model_cost(_case())
    assert eval_cost == 2 * 32
    assert shard.model_cost(_case(mode="train")) == 3 * eval_cost
    assert shard.model_cost(_case(batch_size=4)) == 2 * eval_cost
    assert shard.model_cost(_case(size="16x64")) == eval_cost  # the side of a square of the same area
    assert shard.model_cost(_case(), not_run=object()) < eval_cost / 1000
    # a largest-batch search: as a case of MAX_BATCH_COST_BATCH
    assert shard.model_cost(_case(batch_size="max")) == shard.MAX_BATCH_COST_BATCH / 2 * eval_cost


def test_measured_durations_replace_the_model_and_scale_it_for_unmeasured_cases(tmp_path):
    cases = [(_case(batch_size=1), None), (_case(batch_size=2), None), (_case(batch_size=4), None),
             (_case(batch_size=8), object())]
    store = tmp_path / "e.jsonl"
    with RecordWriter(str(store)) as writer:
        for case, case_s, instr_s in ((cases[0][0], 1.0, None), (cases[0][0], 3.0, 2.0), (cases[1][0], 4.0, None)):
            writer.append({"schema_version": SCHEMA_VERSION, "status": "ok", "case": case.to_dict(),
                           "case_key": case.key, "duration_s": case_s, "wall_s": case_s + 5.0,
                           "instructions": {"wall_s": instr_s} if instr_s else None})
    durations = shard.read_durations(str(tmp_path))
    # duration_s (not wall_s): the mean of 1 and 3 + 2 (instructions)
    assert durations == {cases[0][0].key: 3.0, cases[1][0].key: 4.0}
    costs = shard.case_costs(cases, durations)
    seconds_per_unit = (3.0 + 4.0) / (32 + 64)
    assert costs[:2] == [3.0, 4.0]
    assert costs[2] == pytest.approx(128 * seconds_per_unit)
    assert costs[3] == pytest.approx(shard.NOT_RUN_COST * seconds_per_unit)
    with pytest.raises(shard.ShardError, match="none of the 1 cases has a record there"):
        shard.case_costs([(_case(model="other"), None)], durations, str(store))
    with pytest.raises(shard.ShardError, match="no such record file or folder"):
        shard.read_durations(str(tmp_path / "missing"))


def test_the_scenario_hash_follows_the_content_not_the_formatting(tmp_path):
    one = tmp_path / "one.toml"
    one.write_text('[scenario]\nname = "t"\n[measure]\nsamples = 3\nseed = 0\n')
    same = tmp_path / "same.toml"
    same.write_text('# a comment\n[measure]\nseed = 0\nsamples   = 3\n\n[scenario]\nname = "t"\n')
    other = tmp_path / "other.toml"
    other.write_text('[scenario]\nname = "t"\n[measure]\nsamples = 4\nseed = 0\n')
    assert shard.scenario_hash(str(one)) == shard.scenario_hash(str(same)) != shard.scenario_hash(str(other))


@pytest.mark.parametrize("text, says", [("2/4", None), (" 1/1 ", None), ("0/2", "K must be between 1 and N"),
                                        ("3/2", "K must be between 1 and N"), ("1/0", "N must be at least 1"),
                                        ("1-2", "expected K/N"), ("a/b", "expected K/N"), ("", "expected K/N")])
def test_parse_spec(text, says):
    if says is None:
        assert shard.parse_spec(text) == tuple(int(v) for v in text.strip().split("/"))
    else:
        with pytest.raises(shard.ShardError, match=says):
            shard.parse_spec(text)


# --- the command line --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--shard", "0/2"], "--shard '0/2': K must be between 1 and N (2)"),
    (["--shard", "3/2"], "--shard '3/2': K must be between 1 and N (2)"),
    (["--shard", "1/0"], "--shard '1/0': the shard count N must be at least 1"),
    (["--shard", "half"], "--shard 'half': expected K/N"),
    (["--shard", "1/4"], "--shard 1/4: the scenario has 3 cases, fewer than 4 shards; use N <= 3"),
    (["--shard-durations", "STORE"], "needs --shard K/N"),
    (["--shard", "1/2", "--shard-durations", "MISSING"], "missing: no such record file or folder"),
])
def test_a_bad_shard_is_exit_2_one_line_and_writes_nothing(tmp_path, args, says):
    scenario = write_scenario(tmp_path, THREE_EVAL)
    out = tmp_path / "out"
    names = {"STORE": str(tmp_path), "MISSING": str(tmp_path / "missing")}
    proc = run_harness("run", scenario, "--out", str(out), "--env-label", "e", *[names.get(a, a) for a in args])
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()


def test_a_dry_run_of_each_shard_lists_its_part_of_the_case_list(tmp_path):
    from harness.scenario import spec as scen

    scenario = write_scenario(tmp_path, THREE_EVAL)
    all_keys = [case.key for case, _ in scen.expand(scen.load(scenario))]
    assert len(all_keys) == 3
    listed = []
    for index in (1, 2):
        proc = run_harness("run", scenario, "--dry-run", "--shard", "%d/2" % index)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        # batch 3 (cost 96) alone in shard 1; batch 2 and 1 (64 + 32) in shard 2, in the unsharded order
        want = [all_keys[2]] if index == 1 else all_keys[:2]
        assert lines[:-1] == want
        assert lines[-1].startswith("shard %d/2: %d of 3 cases (50.0%% of the estimated cost; shards 96 / 96 "
                                    "cost units)" % (index, len(want))), lines[-1]
        listed.extend(lines[:-1])
    assert sorted(listed) == sorted(all_keys)
