"""``torchmatrix merge``: a real two-shard run merged is the unsharded case list, in its order;
merging again gives the same bytes; every refusal is exit 2, one line, nothing written."""
import json
import os
import shutil

import pytest

from harness.shard import split as shard
from tests.runner.helpers import read_jsonl, run_harness, write_scenario

THREE_EVAL = '''
model = ["attention_mha_tiny"]
mode = ["eval"]
batch_size = [2, 3, 1]
size = ["default"]
precision = ["fp32"]
checkpoint = ["none"]
device = ["cpu"]
'''


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two real shards of a three-case scenario (env label ``e``) and the unsharded case keys."""
    from harness.scenario import spec as scen

    root = tmp_path_factory.mktemp("shards")
    # batch 3 (shard 1) is profiled: its trace folder travels with the merge
    scenario = write_scenario(root, THREE_EVAL, extra="speed_probe = false\n\n[profile]\ncases = [{batch_size = 3}]\n")
    folders = []
    for index in (1, 2):
        folder = root / ("s%d" % index)
        proc = run_harness("run", scenario, "--out", str(folder), "--env-label", "e", "--shard", "%d/2" % index)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "shard %d/2: " % index in proc.stdout
        folders.append(folder)
    keys = [case.key for case, _ in scen.expand(scen.load(scenario))]
    return {"scenario": scenario, "folders": folders, "keys": keys}


def _copy(shards, tmp_path):
    """Copies of the shard folders to spoil."""
    out = []
    for folder in shards["folders"]:
        dest = tmp_path / folder.name
        shutil.copytree(str(folder), str(dest))
        out.append(dest)
    return out


def _rewrite(path, change):
    records = read_jsonl(path)
    change(records)
    with open(str(path), "w") as fh:
        fh.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def test_the_records_say_their_shard(shards):
    digest = shard.scenario_hash(shards["scenario"])
    parts = {}
    for folder in shards["folders"]:
        for rec in read_jsonl(folder / "e.jsonl"):
            assert rec["status"] == "ok", rec.get("reason")
            parts[rec["case_key"]] = rec["shard"]
    assert sorted(parts) == sorted(shards["keys"])
    # batch 3 (cost 96) alone in shard 1, batch 2 and 1 (64 + 32) in shard 2; the unsharded order is
    # batch 2, 3, 1: neither the shards' order nor the keys' (what the merge must restore)
    assert [key.split(";")[2] for key in shards["keys"]] == ["batch=2", "batch=3", "batch=1"]
    for position, key in enumerate(shards["keys"]):
        index = 1 if position == 1 else 2
        assert parts[key] == {"index": index, "count": 2, "cases": 1 if index == 1 else 2, "position": position,
                              "scenario_hash": digest, "split_hash": parts[key]["split_hash"]}
    assert len({p["split_hash"] for p in parts.values()}) == 1


def test_merged_shards_are_the_unsharded_case_list_and_merging_again_changes_no_byte(shards, tmp_path):
    out = tmp_path / "merged"
    proc = run_harness("merge", *[str(f) for f in shards["folders"]], "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "e: 2 shards, 3 records -> " in proc.stdout
    merged = read_jsonl(out / "e.jsonl")
    assert [r["case_key"] for r in merged] == shards["keys"]  # every case once, in the unsharded order
    # the records are the shards' own lines, unchanged
    lines = {line for f in shards["folders"] for line in open(str(f / "e.jsonl"))}
    assert set(open(str(out / "e.jsonl"))) == lines
    assert (out / "e.env.json").read_bytes() == (shards["folders"][0] / "e.env.json").read_bytes()
    first = (out / "e.jsonl").read_bytes()
    mtime = os.stat(str(out / "e.jsonl")).st_mtime_ns
    again = run_harness("merge", *[str(f) for f in reversed(shards["folders"])], "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "(unchanged)" in again.stdout
    assert (out / "e.jsonl").read_bytes() == first and os.stat(str(out / "e.jsonl")).st_mtime_ns == mtime
    elsewhere = tmp_path / "elsewhere"
    assert run_harness("merge", *[str(f) for f in shards["folders"]], "--out", str(elsewhere)).returncode == 0
    assert (elsewhere / "e.jsonl").read_bytes() == first


def _duplicate_shard(folders, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(str(folders[0]), str(twin))
    return folders + [twin]


def _duplicate_case(folders, tmp_path):
    with open(str(folders[1] / "e.jsonl")) as fh:
        first = fh.readline()
    with open(str(folders[1] / "e.jsonl"), "a") as fh:  # an --append run into the shard's folder
        fh.write(first)
    return folders


def _other(field, value):
    """A fault: shard 2's records say another ``shard.<field>`` (another scenario file or split)."""
    def fault(folders, tmp_path):
        def change(records):
            for r in records:
                r["shard"][field] = value

        _rewrite(folders[1] / "e.jsonl", change)
        return folders
    return fault


def _cut_shard(folders, tmp_path):
    _rewrite(folders[1] / "e.jsonl", lambda records: records.pop())
    return folders


def _unsharded(folders, tmp_path):
    def change(records):
        for r in records:
            r["shard"] = None

    _rewrite(folders[1] / "e.jsonl", change)
    return folders


def _truncated_line(folders, tmp_path):
    with open(str(folders[0] / "e.jsonl"), "a") as fh:
        fh.write('{"schema_version": 2, "status": "o')
    return folders


@pytest.mark.parametrize("spoil, says", [
    (lambda f, t: f[:1], "e: shard 2 of 2 missing (found 1 in "),
    (_duplicate_shard, "e: shard 1/2 twice: in "),
    (_duplicate_case, "e: case model=attention_mha_tiny;mode=eval;batch=2;"),
    (_other("scenario_hash", "0123456789abcdef"), "shard.scenario_hash '0123456789abcdef', but "),
    (_other("split_hash", "fedcba9876543210"), "shard.split_hash 'fedcba9876543210', but "),
    (_cut_shard, "holds 1 of its 2 cases (an interrupted run? finish it with `run --shard 2/2 --resume`)"),
    (_unsharded, "has no shard part"),
    (_truncated_line, "e.jsonl:2: not valid JSON"),
], ids=["missing shard", "shard twice", "case twice", "scenario hash", "split", "incomplete shard", "unsharded",
        "cut line"])
def test_a_refused_merge_is_exit_2_one_line_and_writes_nothing(shards, tmp_path, spoil, says):
    folders = spoil(_copy(shards, tmp_path), tmp_path)
    out = tmp_path / "merged"
    proc = run_harness("merge", *[str(f) for f in folders], "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()


def test_merge_refuses_an_out_folder_holding_another_store_and_leaves_it_alone(shards, tmp_path):
    folders = [str(f) for f in shards["folders"]]
    other = tmp_path / "other"
    other.mkdir()
    with open(str(shards["folders"][0] / "e.jsonl")) as fh:
        rec = json.loads(fh.readline())
    rec["shard"] = None  # an unsharded run's record
    (other / "e.jsonl").write_text(json.dumps(rec) + "\n")
    before = (other / "e.jsonl").read_bytes()
    for out, says in ((other, "holds another store's records (scenario 't', not sharded)"),
                      (shards["folders"][0], "is one of the shard folders")):
        proc = run_harness("merge", *folders, "--out", str(out))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and says in lines[0], proc.stderr
    assert (other / "e.jsonl").read_bytes() == before and sorted(os.listdir(str(other))) == ["e.jsonl"]


def test_the_profiler_traces_of_the_shards_are_merged_beside_the_records(shards, tmp_path):
    out = tmp_path / "merged"
    proc = run_harness("merge", *[str(f) for f in shards["folders"]], "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (profiled,) = [r for r in read_jsonl(out / "e.jsonl") if r.get("profile")]
    assert profiled["case"]["batch_size"] == 3
    trace = os.path.join(profiled["profile"]["trace_dir"], profiled["profile"]["trace_file"])
    with open(str(shards["folders"][0] / trace), "rb") as src, open(str(out / trace), "rb") as dst:
        assert src.read() == dst.read()
    assert "1 profiler trace folders -> %s" % os.path.join(str(out), "profiles", "e") in proc.stdout

    # a shard artifact without its traces still merges, and says what is missing
    folders = _copy(shards, tmp_path)
    shutil.rmtree(str(folders[0] / "profiles"))
    again = run_harness("merge", *[str(f) for f in folders], "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert "note: %s is named by a record but missing" % os.path.join(
        str(folders[0]), *profiled["profile"]["trace_dir"].split("/")) in again.stdout
