"""``report.loader``: the parallel load gives the rows and problems of one ``load_records`` call."""
import os

import pandas as pd

from harness.analysis.load import load_records
from harness.analysis.report.loader import UNUSED_COLUMNS, load_for_report
from tests.analysis.test_report_support import small_store, write_jsonl


def test_parallel_load_gives_the_rows_and_problems_of_load_records(tmp_path):
    paths = small_store(str(tmp_path / "store"))
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in paths:  # a copy with a bad line in one file
        with open(path, encoding="utf-8") as src, open(str(copy / os.path.basename(path)), "w") as dst:
            dst.write(src.read())
    with open(str(copy / "torch-2.0.jsonl"), "a") as fh:
        fh.write('{"truncated')
    expected, expected_problems = load_records([str(copy)])
    expected = expected.drop(columns=list(UNUSED_COLUMNS))
    got, problems = load_for_report([str(copy)], workers=2, min_bytes=0)
    assert problems == expected_problems and len(problems) == 1
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    # a file without any good record: load_records words the whole input's problems
    write_jsonl(str(copy / "torch-0.jsonl"), [], extra_lines=["nope\n"])
    expected_problems = load_records([str(copy)])[1]
    assert load_for_report([str(copy)], workers=2, min_bytes=0)[1] == expected_problems
