"""How many rounds, each round's share of the samples, the rotating visit order."""
from collections import Counter

import pytest

from harness.engine import schedule
from harness.scenario.settings import MEASURE_DEFAULTS


def test_auto_takes_three_rounds_where_variants_are_compared_and_one_alone():
    assert schedule.resolve_rounds("auto", 7) == 3 and schedule.resolve_rounds("auto", 2) == 3
    assert schedule.resolve_rounds("auto", 1) == 1
    assert schedule.resolve_rounds(5, 1) == 5 and schedule.resolve_rounds(1, 7) == 1
    assert MEASURE_DEFAULTS["rounds"] == "auto"


@pytest.mark.parametrize("samples,rounds,shares", [(7, 3, [3, 2, 2]), (5, 3, [2, 2, 1]), (2, 3, [1, 1, 1]),
                                                   (7, 1, [7])])
def test_the_rounds_share_the_samples_and_the_budget(samples, rounds, shares):
    measure = dict(MEASURE_DEFAULTS, samples=samples, case_budget_s=10.0)
    got = [schedule.round_measure(measure, r, rounds) for r in range(1, rounds + 1)]
    assert [m["samples"] for m in got] == shares
    if samples >= rounds:  # all rounds together: what one round took alone
        assert sum(m["samples"] for m in got) == samples
        assert sum(m["case_budget_s"] for m in got) == pytest.approx(10.0)
    assert measure["samples"] == samples  # the scenario's own table is left as it was


def test_each_variant_goes_first_equally_often_over_cases_and_rounds():
    variants = list(range(7))
    first = Counter(schedule.visit_order(variants, case, r)[0] for case in range(70) for r in (1, 2, 3))
    assert set(first.values()) == {30}
    # a case's rounds put its variants in different places: a drift within a case does not favour one
    for case in range(7):
        places = {tuple(schedule.visit_order(variants, case, r)).index(0) for r in (1, 2, 3)}
        assert len(places) == 3
    # two variants: the first of each case alternates round by round (A B, B A, A B)
    assert [schedule.visit_order([0, 1], 0, r) for r in (1, 2, 3)] == [[0, 1], [1, 0], [0, 1]]
    # a case some variants lack is visited by the others only
    assert sorted(schedule.visit_order([0, 2, 5], 4, 2)) == [0, 2, 5]
