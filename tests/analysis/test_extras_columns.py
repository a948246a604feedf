"""``analysis.extras_columns``: the columns only the round that ran the extras fills, from the schema."""
from harness.analysis.extras_columns import EXTRAS_COLUMNS, is_extras_column, ran_extras


def test_the_extras_columns_come_from_the_parts_the_extras_fill():
    for column in ("tensor_peak_bytes", "acc_passed", "acc_ratio", "out_sketch", "flops_per_iter", "checks_failed",
                   "leak_bytes_per_step", "task_after", "profile_ops", "instructions_per_iter", "instr_status"):
        assert is_extras_column(column), column
    for column in ("median_s", "samples_s", "peak_mem_bytes", "status", "round", "round_extras", "case_key"):
        assert not is_extras_column(column), column
    assert len(EXTRAS_COLUMNS) == len(set(EXTRAS_COLUMNS))


def test_a_record_before_rounds_ran_its_extras():
    assert ran_extras({"round_extras": True}) and ran_extras({}) and ran_extras({"round_extras": None})
    assert not ran_extras({"round_extras": False})
