"""The coordinator through ``torchmatrix matrix``: real variants (this interpreter twice, as two labels),
real workers, the misbehaving fixture. Rounds interleave, share the samples and run the extras once, the
FLOPs and tensor peak in a pass after every timed round; Ctrl-C in round 2 or in that pass keeps every
record and ``--resume`` runs only what is missing; a variant whose worker cannot start drops out while
the other goes on."""
import os
import subprocess
import sys

import pytest

from harness.record.store import read_after_rounds, read_records
from harness.runner import extras
from tests.runner.helpers import (
    MISBEHAVING,
    ROOT,
    ctrl_c_when_in_flight,
    harness_cmd,
    read_jsonl,
    run_harness,
    wait_for,
    write_scenario,
)
from tests.test_run_command import _mount_tmpfs

VARIANTS = ["--variant", "a=" + sys.executable, "--variant", "b=" + sys.executable]


def _by_round(records):
    return {(r["case"]["size"], r["round"]["index"]): r for r in records}


def test_rounds_interleave_the_variants_share_the_samples_and_run_the_extras_once(tmp_path):
    path = write_scenario(tmp_path, MISBEHAVING % "8, 9")  # samples = 3
    out = tmp_path / "out"
    proc = run_harness("matrix", path, *VARIANTS, "--rounds", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 variants (a 2 cases, b 2 cases), 3 rounds, interleaved" in proc.stdout
    assert "== a: 6 records (2 cases, 3 rounds): ok 6" in proc.stdout
    runs = {label: read_records(str(out / (label + ".jsonl"))) for label in "ab"}  # extras file merged
    for label, records in runs.items():
        by_round = _by_round(records)
        assert sorted(by_round) == [(s, r) for s in (8, 9) for r in (1, 2, 3)]
        for (_, r), rec in by_round.items():
            assert rec["status"] == "ok" and rec["env_label"] == label
            assert rec["round"]["of"] == 3 and rec["round"]["variants"] == ["a", "b"] and rec["round"]["paired"]
            assert rec["round"]["extras"] == (r == 1)
            # the extras ran once: the first round judged accuracy and took the tensor peak
            assert (rec["accuracy"] is not None) == (r == 1)
            assert (rec["memory"].get("tensor_peak_bytes") is not None) == (r == 1)
            assert (rec["extras"] is not None) == (r == 1)
        # three samples in all, one a round, each round its own worker process
        assert [len(by_round[(8, r)]["timing"]["samples_s"]) for r in (1, 2, 3)] == [1, 1, 1]
    # each case: the variants back to back, the first one changing round by round
    for size in (8, 9):
        firsts = [min("ab", key=lambda v: _by_round(runs[v])[(size, r)]["round"]["position"]) for r in (1, 2, 3)]
        assert firsts[0] != firsts[1] and firsts[1] != firsts[2]
        for r in (1, 2, 3):
            stamps = sorted((_by_round(runs[v])[(size, r)]["round"]["position"], v) for v in "ab")
            assert [p for p, _ in stamps] == [0, 1]


def test_the_first_round_defers_flops_and_tensor_peak_to_a_pass_after_every_timed_round(tmp_path):
    # 8 healthy; 11 hangs under the profiler (the FLOPs count's step), 12 segfaults there
    path = write_scenario(tmp_path, MISBEHAVING % "8, 11, 12", extra="extra_timeout_s = 6\n")
    out = tmp_path / "out"
    proc = run_harness("matrix", path, *VARIANTS, "--rounds", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # nothing of the pass beside a timed case: it starts after the last round's last visit
    head = "extras after the rounds (flops, tensor_peak): 6 cases in 2 variants"
    assert proc.stdout.index("[12/12]") < proc.stdout.index(head)
    for label in "ab":
        raw = {(r["case"]["size"], r["round"]["index"]): r for r in read_jsonl(out / (label + ".jsonl"))}
        merged = {(r["case"]["size"], r["round"]["index"]): r for r in read_records(str(out / (label + ".jsonl")))}
        for size in (8, 11, 12):
            first = raw[(size, 1)]  # the first round's own line: measured, judged, its profiled extras deferred
            assert first["status"] == "ok" and len(first["timing"]["samples_s"]) == 2
            assert first["extras"]["deferred"] == list(extras.AFTER_ROUNDS) and first["accuracy"]["passed"]
            assert first["flops"] is None and first["memory"].get("tensor_peak_bytes") is None
            assert merged[(size, 1)]["timing"] == first["timing"] and merged[(size, 2)] == raw[(size, 2)]
        healthy = merged[(8, 1)]
        assert healthy["flops"]["per_iter"] > 0 and healthy["flops"]["achieved_per_s"] > 0
        assert healthy["memory"]["tensor_peak_bytes"] > 0 and healthy["extras"]["failed"] == {}
        assert set(healthy["extras"]["seconds"]) >= {extras.FLOPS, extras.TENSOR_PEAK, extras.REFERENCES}
        hung, crashed = merged[(11, 1)]["extras"]["failed"], merged[(12, 1)]["extras"]["failed"]
        assert list(hung) == [extras.FLOPS] and "overran its 6 s" in hung[extras.FLOPS], hung
        assert list(crashed) == [extras.FLOPS] and "SIGSEGV" in crashed[extras.FLOPS], crashed
        assert merged[(11, 1)]["status"] == merged[(12, 1)]["status"] == "ok"
    # the figures are those a lone run takes right after its timed samples
    lone = write_scenario(tmp_path, MISBEHAVING % "8", name="lone")
    proc = run_harness("run", lone, "--out", str(tmp_path / "lone"), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    inline = read_jsonl(tmp_path / "lone" / "e.jsonl")[0]
    assert not inline["extras"].get("deferred") and inline["flops"]["per_iter"] > 0
    for label in "ab":
        made = {r["case"]["size"]: r for r in read_records(str(out / (label + ".jsonl"))) if r["round"]["index"] == 1}
        assert made[8]["flops"]["per_iter"] == inline["flops"]["per_iter"]
        assert made[8]["memory"]["tensor_peak_bytes"] == inline["memory"]["tensor_peak_bytes"]


def test_a_lone_run_takes_one_round_and_a_scenario_may_ask_for_more(tmp_path):
    path = write_scenario(tmp_path, MISBEHAVING % "8")
    proc = run_harness("run", path, "--out", str(tmp_path / "one"), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec, = read_jsonl(tmp_path / "one" / "e.jsonl")
    assert rec["round"] == {"index": 1, "of": 1, "variants": ["e"], "position": 0, "paired": False, "extras": True}
    assert len(rec["timing"]["samples_s"]) == 3
    more = write_scenario(tmp_path, MISBEHAVING % "8", extra="rounds = 2\n", name="more")  # inside [measure]
    proc = run_harness("run", more, "--out", str(tmp_path / "two"), "--env-label", "e")
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = read_jsonl(tmp_path / "two" / "e.jsonl")
    assert [(r["round"]["index"], r["round"]["paired"], len(r["timing"]["samples_s"])) for r in recs] == [
        (1, False, 2), (2, False, 1)]
    # --append (rounds made run by run, as a whole-round A/B does): numbered after those the file holds
    for _ in range(2):
        proc = run_harness("run", path, "--out", str(tmp_path / "app"), "--env-label", "e", "--append")
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert [(r["round"]["index"], r["round"]["of"], r["round"]["extras"])
            for r in read_jsonl(tmp_path / "app" / "e.jsonl")] == [(1, 1, True), (2, 2, True)]


def test_a_case_the_first_round_cannot_run_is_not_visited_again(tmp_path):
    path = write_scenario(tmp_path, MISBEHAVING % "8, 14")  # 14: unsupported when it runs
    out = tmp_path / "out"
    proc = run_harness("matrix", path, *VARIANTS, "--rounds", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for v in "ab":
        records = read_jsonl(out / (v + ".jsonl"))
        assert sorted((r["case"]["size"], r["round"]["index"], r["status"]) for r in records) == [
            (8, 1, "ok"), (8, 2, "ok"), (8, 3, "ok"), (14, 1, "unsupported")]
    assert "[8/8]" in proc.stdout  # the count shrank to the visits made
    # a resumed run knows it from the record file: nothing left to visit
    proc = run_harness("matrix", path, *VARIANTS, "--rounds", "3", "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "resuming: 8 of 8 (case, round) visits already recorded, 0 to go" in proc.stdout
    assert len(read_jsonl(out / "a.jsonl")) == 4


def _has_round_2(path):
    return os.path.exists(path) and any(r.get("round", {}).get("index") == 2 for r in read_jsonl(path))


def test_ctrl_c_in_round_two_keeps_every_record_and_resume_runs_only_the_missing_visits(tmp_path):
    path = write_scenario(tmp_path, MISBEHAVING % "8, 13", timeout=120)
    out = tmp_path / "out"
    flag, marker = tmp_path / "hang-now", tmp_path / "in_flight"
    env = dict(os.environ, PYTHONPATH=ROOT, MISBEHAVING_HANG_IF_EXISTS=str(flag), MISBEHAVING_HANG_MARKER=str(marker))

    def round_two_then_hang():
        wait_for(lambda: _has_round_2(str(out / "a.jsonl")) or _has_round_2(str(out / "b.jsonl")), timeout=300)
        flag.touch()  # size 13 hangs from now on: round 2's visit of it is caught in flight

    code, stdout = ctrl_c_when_in_flight(harness_cmd("matrix", path, *VARIANTS, "--rounds", "3", "--out", str(out)),
                                         env, marker, before=round_two_then_hang)
    assert code == 130, stdout[-2000:]
    assert "interrupted in round 2 of 3" in stdout and "--resume" in stdout, stdout[-2000:]
    first = {v: read_jsonl(out / (v + ".jsonl")) for v in "ab"}
    kept = {(v, r["case"]["size"], r["round"]["index"]) for v in "ab" for r in first[v]}
    assert {(v, s, 1) for v in "ab" for s in (8, 13)} <= kept  # round 1 whole
    assert not any(s == 13 and r == 2 for v in "ab" for _, s, r in [(v,) + k[1:] for k in kept if k[0] == v]) or \
        len(kept) < 12  # the visit in flight left no record
    flag.unlink()
    proc2 = run_harness("matrix", path, *VARIANTS, "--rounds", "3", "--out", str(out), "--resume")
    assert proc2.returncode == 0, proc2.stdout[-2000:] + proc2.stderr[-2000:]
    assert "resuming: %d of 12 (case, round) visits already recorded, %d to go" % (len(kept), 12 - len(kept)) \
        in proc2.stdout
    for v in "ab":
        records = read_jsonl(out / (v + ".jsonl"))
        assert records[:len(first[v])] == first[v]  # untouched
        assert sorted((r["case"]["size"], r["round"]["index"]) for r in records) == [
            (s, r) for s in (8, 13) for r in (1, 2, 3)]  # each visit once
        assert all(r["status"] == "ok" for r in records)


def test_ctrl_c_in_the_extras_after_the_rounds_keeps_everything_and_resume_runs_the_rest(tmp_path):
    path = write_scenario(tmp_path, MISBEHAVING % "8, 13", timeout=120)
    out = tmp_path / "out"
    flag, marker = tmp_path / "hang-now", tmp_path / "in_flight"
    env = dict(os.environ, PYTHONPATH=ROOT, MISBEHAVING_HANG_IF_EXISTS=str(flag), MISBEHAVING_HANG_MARKER=str(marker))
    files = [out / (v + ".jsonl") for v in "ab"]

    def rounds_over_then_hang():
        wait_for(lambda: all(f.exists() and len(read_jsonl(f)) == 4 for f in files), timeout=300)
        flag.touch()  # size 13 hangs from now on: the pass's first step of it (its workers are still starting)

    code, stdout = ctrl_c_when_in_flight(harness_cmd("matrix", path, *VARIANTS, "--rounds", "2", "--out", str(out)),
                                         env, marker, before=rounds_over_then_hang)
    assert code == 130, stdout[-2000:]
    assert "interrupted in the extras after the rounds: every record and the extras made are kept; run again " \
           "with --resume to run the rest" in stdout, stdout[-2000:]
    kept = {f.name: read_jsonl(f) for f in files}
    assert all(r["status"] == "ok" for records in kept.values() for r in records)
    made = sum(len(read_after_rounds(str(f))) for f in files)
    assert made < 4  # size 13's entries were not made
    flag.unlink()
    proc = run_harness("matrix", path, *VARIANTS, "--rounds", "2", "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "resuming: 8 of 8 (case, round) visits already recorded, 0 to go" in proc.stdout
    assert "extras after the rounds (flops, tensor_peak): %d cases in" % (4 - made) in proc.stdout
    for f in files:
        assert read_jsonl(f) == kept[f.name]  # no record rewritten, no visit run again
        for rec in read_records(str(f)):
            if rec["round"]["index"] == 1:
                assert rec["flops"]["per_iter"] > 0 and rec["memory"]["tensor_peak_bytes"] > 0, rec["case_key"]
                assert rec["extras"]["failed"] == {}


def test_a_full_disk_in_the_extras_after_the_rounds_stops_the_run_and_resume_makes_the_rest(tmp_path):
    disk = tmp_path / "disk"
    root, why = _mount_tmpfs(disk, "2m")
    if why:
        if os.environ.get("CI") == "true":  # CI has root or sudo: a skip there would hide this test for good
            pytest.fail("CI=true, and the full-disk test cannot run: %s" % why)
        pytest.skip(why)
    try:
        path = write_scenario(tmp_path, MISBEHAVING % "8, 9")
        files = [disk / (v + ".jsonl") for v in "ab"]
        filler = disk / "filler"

        def fill_once_the_rounds_are_over():  # before the pass's workers have imported torch
            wait_for(lambda: all(f.exists() and len(read_jsonl(f)) == 2 for f in files), timeout=300)
            fd = os.open(str(filler), os.O_WRONLY | os.O_CREAT)  # unbuffered: no flush left to fail at close
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            finally:
                os.close(fd)

        proc = subprocess.Popen(harness_cmd("matrix", path, *VARIANTS, "--rounds", "1", "--out", str(disk)), cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        fill_once_the_rounds_are_over()
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 1, stdout[-2000:] + stderr[-2000:]
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "error: disk full writing %s/" % disk in lines[0] and ".extras: every record " \
            "is kept" in lines[0] and "run again with --resume when there is space" in lines[0], lines
        kept = {f.name: read_jsonl(f) for f in files}
        assert all(len(records) == 2 and r["status"] == "ok" for records in kept.values() for r in records)
        filler.unlink()
        again = run_harness("matrix", path, *VARIANTS, "--rounds", "1", "--out", str(disk), "--resume")
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        for f in files:
            assert read_jsonl(f) == kept[f.name]
            assert all(r["flops"]["per_iter"] > 0 and r["memory"]["tensor_peak_bytes"] > 0
                       for r in read_records(str(f)))
    finally:
        subprocess.run((root or []) + ["umount", "-l", str(disk)], capture_output=True)


def test_a_variant_whose_worker_cannot_start_drops_out_and_the_other_goes_on(tmp_path):
    # an environment whose Python lists the cases but cannot start a worker (a broken install)
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\ncase "$*" in *harness.runner.worker*) echo "broken on purpose" >&2; exit 3;; '
                      'esac\nexec %s "$@"\n' % sys.executable)
    python.chmod(0o755)
    path = write_scenario(tmp_path, MISBEHAVING % "8, 9")
    out = tmp_path / "out"
    proc = run_harness("matrix", path, "--variant", "a=" + sys.executable, "--variant", "broken=%s" % python,
                       "--rounds", "2", "--out", str(out))
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "broken: worker failed to start" in proc.stdout and "broken on purpose" in proc.stdout
    assert "error: broken dropped out: worker failed to start" in proc.stderr
    assert [(r["case"]["size"], r["round"]["index"], r["status"]) for r in read_jsonl(out / "a.jsonl")] == [
        (8, 1, "ok"), (9, 1, "ok"), (8, 2, "ok"), (9, 2, "ok")]
    assert read_jsonl(out / "broken.jsonl") == []


def test_bad_variants_are_input_errors_and_write_nothing(tmp_path):
    path = write_scenario(tmp_path, MISBEHAVING % "8")
    out = tmp_path / "out"
    cases = [([], "no variant"), (["--variant", "a"], "expected LABEL=PYTHON"),
             (["--variant", "a=/no/such/python"], "a: /no/such/python is not an executable Python"),
             (VARIANTS[:2] + VARIANTS[:2], "variant label 'a' given twice"),
             (["--variant", "a b=" + sys.executable], "variant label 'a b'"),
             (["--variant-file", str(tmp_path / "none.json")], "variant file"),
             (VARIANTS + ["--rounds", "0"], "--rounds 0")]
    for args, words in cases:
        proc = run_harness("matrix", path, *args, "--out", str(out))
        assert proc.returncode == 2 and words in proc.stderr, (args, proc.stderr)
    # a scenario a variant refuses: its problem, named by the variant
    proc = run_harness("matrix", path, *VARIANTS, "--only", "model=nothing*", "--out", str(out))
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    assert not out.exists()


#: Stands in for valgrind: drops its options and runs the counting worker natively (nothing is counted,
#: so each count is an error naming the missing dump: enough to see where and when counts are made).
FAKE_VALGRIND = '''#!/bin/sh
if [ "$1" = "--version" ]; then echo valgrind-fake; exit 0; fi
while [ "${1#--}" != "$1" ]; do shift; done
exec "$@"
'''


def test_counts_come_after_every_timed_round_one_counting_worker_per_variant(tmp_path):
    fake_dir = tmp_path / "fakebin"
    fake_dir.mkdir()
    (fake_dir / "valgrind").write_text(FAKE_VALGRIND)
    (fake_dir / "valgrind").chmod(0o755)
    path = write_scenario(tmp_path, MISBEHAVING % "8, 9")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=ROOT, PATH=str(fake_dir) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(harness_cmd("matrix", path, *VARIANTS, "--rounds", "2", "--instructions", "--out",
                                      str(out)), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # no count beside a timed case: the pass starts after the last round's last visit
    assert proc.stdout.index("[8/8]") < proc.stdout.index("instruction pass: 4 cases in 2 variants")
    for label in "ab":
        assert [r["instructions"] for r in read_jsonl(out / (label + ".jsonl"))] == [None] * 4
        merged = read_records(str(out / (label + ".jsonl")))
        counted = {(r["case"]["size"], r["round"]["index"]): r["instructions"] for r in merged}
        assert counted[(8, 2)] is None and counted[(9, 2)] is None  # the first round's cases are counted
        assert counted[(8, 1)]["status"] == "error" and "callgrind dump" in counted[(8, 1)]["reason"]
        # size 9 segfaults when counted: the count says so, the case keeps its timing
        assert counted[(9, 1)]["status"] == "crashed" and all(r["status"] == "ok" for r in merged)


def test_a_shard_of_the_matrix_runs_its_cases_in_every_variant_and_says_so(tmp_path):
    """A CI job matrix runs `nox -s "matrix(torch=X)" -- SCENARIO --shard K/N`: the same split as `run --shard`."""
    path = write_scenario(tmp_path, MISBEHAVING % "8, 9, 15, 16")  # all healthy in the timed worker
    got = {}
    for k in (1, 2):
        out = tmp_path / ("s%d" % k)
        proc = run_harness("matrix", path, "--variant", "a=" + sys.executable, "--shard", "%d/2" % k, "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        records = read_jsonl(out / "a.jsonl")
        assert {r["shard"]["index"] for r in records} == {k} and all(r["shard"]["count"] == 2 for r in records)
        assert all(not r["round"]["paired"] for r in records)  # one variant: nothing to pair with
        got[k] = {r["case"]["size"] for r in records}
    assert got[1] | got[2] == {8, 9, 15, 16} and not got[1] & got[2]
    # shards run in rounds merge: a record per case and round, the rounds in order
    for k in (1, 2):
        proc = run_harness("matrix", path, "--variant", "a=" + sys.executable, "--shard", "%d/2" % k, "--rounds", "2",
                           "--out", str(tmp_path / ("r%d" % k)))
        assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_harness("merge", str(tmp_path / "r1"), str(tmp_path / "r2"), "--out", str(tmp_path / "merged"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    merged = read_jsonl(tmp_path / "merged" / "a.jsonl")
    assert [r["round"]["index"] for r in merged] == [1] * 4 + [2] * 4
    assert sorted(r["case"]["size"] for r in merged[:4]) == [8, 9, 15, 16]
    proc = run_harness("matrix", path, *VARIANTS, "--shard", "3/2", "--out", str(tmp_path / "bad"))
    assert proc.returncode == 2 and "3/2" in proc.stderr
