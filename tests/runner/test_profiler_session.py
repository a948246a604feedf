"""The raw profiler session (harness.runner.profiler_session) against torch's own parse of the same
kind of session: the same allocation records, the same ops, linked into the same tree."""
from collections import Counter

import pytest
import torch
from torch import nn

from harness.runner import flops, memory, profiler_session


def _train_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 4))
    x, y = torch.randn(2, 3, 8, 8), torch.randn(2, 4)

    def step():
        model.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
    step()
    return step


def _parsed_by_torch(step, **options):
    """One session of torch's own profiler: its raw records as a ``Recording``, and the events its
    parse made of the same records."""
    with torch.autograd.profiler.profile(use_kineto=True, **options) as prof:
        step()
    recording = profiler_session.Recording()
    recording.events = list(prof.kineto_results.events())
    return recording, [ev for ev in prof.function_events if ev.name != profiler_session.MEMORY_EVENT]


def _merged(ops, parent):
    """(name, parent's name) of each op, with torch's merge of a lone same-named child into its parent
    (``EventList._remove_dup_nodes``) applied."""
    kids = Counter(p for p in parent if p is not None)
    gone = {i for i, p in enumerate(parent) if p is not None and ops[p].name == ops[i].name and kids[p] == 1}

    def up(p):
        while p is not None and p in gone:
            p = parent[p]
        return p
    return Counter((op.name, None if up(p) is None else ops[up(p)].name)
                   for i, (op, p) in enumerate(zip(ops, parent)) if i not in gone)


def test_the_ops_and_their_tree_are_the_ones_torchs_parse_makes():
    step = _train_step()
    recording, events = _parsed_by_torch(step, record_shapes=True, profile_memory=True)
    ops = recording.ops()
    parent = flops.parents(ops)
    assert _merged(ops, parent) == Counter((ev.name, None if ev.cpu_parent is None else ev.cpu_parent.name)
                                           for ev in events)
    assert any(p is not None for p in parent)  # a tree, not a list
    assert any("conv" in op.name and "backward" in op.name for op in ops)
    addmm = next(op for op in ops if op.name == "aten::addmm")
    assert addmm.shapes()[1] == [2, 512] and addmm.shapes()[2] == [512, 4]
    assert all(op.end_ns >= op.start_ns for op in ops)


def test_the_session_records_what_torchs_profiler_records():
    step = _train_step()
    with profiler_session.session(record_shapes=True) as recording:
        step()
    _, events = _parsed_by_torch(step, record_shapes=True, profile_memory=True)
    assert {op.name for op in recording.ops()} == {ev.name for ev in events}
    assert memory._running_peak(recording.memory_deltas()) > 0


def test_memory_deltas_balance_a_step_that_frees_what_it_makes():
    def step():
        a = torch.ones(256, 256)  # 262,144 bytes
        b = a * 2.0
        return float((a + b).sum())
    with profiler_session.session() as recording:
        step()
    deltas = recording.memory_deltas()
    assert sum(deltas) == 0 and max(deltas) == 256 * 256 * 4
    peak = memory._running_peak(deltas)
    assert 3 * 256 * 256 * 4 <= peak < 3 * 256 * 256 * 4 + 1024  # a, b and a + b live at once, and scalars


def test_the_profiler_stops_when_the_block_raises():
    with pytest.raises(ValueError):
        with profiler_session.session():
            raise ValueError("the step failed")
    with profiler_session.session() as recording:  # a second session can start: the first stopped
        torch.ones(4).sum()
    assert recording.events
