"""The report's largest-batch section (harness.analysis.report.max_batch and sections/max_batch.py), a
store of searches alone, and the notes on records from different machines (environments.machine_notes)."""
import os

from harness.analysis.report.build import build_report
from tests.analysis.gate_records import make_record, make_search, write_jsonl


def _section(html, ident):
    start = html.index('<section id="%s"' % ident)
    return html[start:html.index("</section>", start)]


def test_searches_get_their_own_section_and_stay_out_of_the_measured_cases(tmp_path):
    records = [make_record(label="torch-1.10", torch_v="1.10.2"), make_search(found=277, label="torch-1.10",
                                                                              torch_v="1.10.2"),
               make_record(label="torch-2.1"), make_search(found=275, label="torch-2.1")]
    store = write_jsonl(tmp_path / "store" / "r.jsonl", records)
    out = build_report([store], str(tmp_path / "report" / "index.html"))
    assert out["records"] == 4
    html = open(out["out_path"], encoding="utf-8").read()
    section = _section(html, "max-batch")
    assert ">277<" in section and ">275<" in section
    assert "cap 4 GiB; torch.profiler memory events" in section
    assert "batch 128: fits (128 MiB)" in section  # the probes on hover
    speed = _section(html, "speed")
    assert "max" not in speed.split("<h3>")[0]  # the measured sections read the measured cases only


def test_a_store_of_searches_alone_is_reported(tmp_path):
    write_jsonl(tmp_path / "store" / "r.jsonl", [make_search(found=40), make_search(
        found=0, status="oom", label="torch-1.10", torch_v="1.10.2")])
    out = build_report([str(tmp_path / "store")], str(tmp_path / "report" / "index.html"))
    html = open(out["out_path"], encoding="utf-8").read()
    assert out["records"] == 2 and os.path.getsize(out["out_path"]) > 0
    section = _section(html, "max-batch")
    assert ">40<" in section and "s-oom" in section and "batch 64: does not fit (64 MiB)" in section
    assert '<section id="run"' in html and '<section id="speed"' not in html


def test_records_of_one_environment_from_two_machines_are_said(tmp_path):
    a = make_record(model="m1", label="torch-2.1")
    b = make_record(model="m2", label="torch-2.1")
    b["env"]["device_name"] = "Intel Xeon"
    c = make_record(model="m1", label="torch-1.10", torch_v="1.10.2")
    store = write_jsonl(tmp_path / "store" / "r.jsonl", [a, b, c])
    out = build_report([store], str(tmp_path / "report" / "index.html"))
    problems = "\n".join(out["problems"])
    assert "torch-2.1 (cpu): its records come from 2 machines (AMD EPYC: 1 records; Intel Xeon: 1 records)" in problems
    assert "the gate compares a case only with records of the same machine" in problems


def test_environments_on_different_machines_are_said(tmp_path):
    a = make_record(label="torch-2.1")
    c = make_record(label="torch-1.10", torch_v="1.10.2")
    c["env"]["device_name"] = "Intel Xeon"
    store = write_jsonl(tmp_path / "store" / "r.jsonl", [a, c])
    out = build_report([store], str(tmp_path / "report" / "index.html"))
    problems = "\n".join(out["problems"])
    assert "the environments ran on different machines (cpu: torch-1.10: Intel Xeon; torch-2.1: AMD EPYC)" in problems
    same = write_jsonl(tmp_path / "same" / "r.jsonl", [a, make_record(label="torch-1.10", torch_v="1.10.2")])
    assert not [p for p in build_report([same], str(tmp_path / "r2" / "index.html"))["problems"] if "machine" in p]
