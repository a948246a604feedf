"""Split a scenario's cases into N shards of about equal cost (``run --shard K/N``).

A CI job matrix runs one shard per job, each into its own output folder, and
``torchmatrix merge`` (``harness.shard.merge``) joins the folders again. The split is
a pure function of the case list and the costs:

* **Cost of a case.** Without measurements, a simple model in *cost units*:
  ``batch_size x size_units x MODE_FACTOR[mode]``, where ``size_units`` is an integer
  size as it is (the model's own axis: an image side, a sequence length, ...) and
  ``"HxW"`` the side of the square of the same area, sqrt(H*W), so that ``"32x32"``
  and ``32`` cost the same; a largest-batch search (``batch_size = "max"``) as batch
  ``MAX_BATCH_COST_BATCH``. A case recorded without running (``NotRun``: skipped or
  unsupported) costs ``NOT_RUN_COST``. The model knows nothing of how heavy a model
  is; ``--shard-durations STORE`` gives measured seconds instead: each case's mean
  ``duration_s`` (else ``wall_s``, which also holds a fresh worker's start-up: a cost of
  the shard, not of its first case), plus ``instructions.wall_s`` when counted, over
  every record of that case in STORE; a case STORE lacks gets its model cost scaled
  by (seconds / model cost) of the cases it has.
* **Assignment.** Longest processing time first: cases by falling cost (ties by case
  key) each go to the least-loaded shard (ties: the lowest shard). Nothing depends on
  dict or hash order, so an unchanged scenario (and durations store) splits the same
  way every time, in every job. Every case lands in exactly one shard.

Each record of a sharded run carries a ``shard`` part (``harness.record.parts.Shard``):
its shard, the shard count, the shard's case count, the case's place in the unsharded
case list, the scenario's content hash and the split's hash; the merge checks them.

Standard library only: the runner imports this on Python 3.9 + PyTorch 1.10.
"""
import glob
import hashlib
import heapq
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from harness.fileio import load_toml
from harness.record.store import iter_records
from harness.vocab import MAX_BATCH

#: Cost of a train case relative to eval at the same batch and size: the backward pass costs
#: about twice the forward, plus the optimizer step.
MODE_FACTOR = {"train": 3.0, "eval": 1.0}
#: Cost of a case recorded without running: writing one line, next to an eval case of batch 1
#: at size 1 (1 unit); the smallest case that runs in the default scenario costs 64 units.
NOT_RUN_COST = 0.01
#: A largest-batch search (batch_size "max") costs as a case of this batch: some twenty probes, each a
#: fresh worker and two steps at batch sizes doubling up to the answer (a guess; --shard-durations knows).
MAX_BATCH_COST_BATCH = 256

_SPEC_RE = re.compile(r"^([0-9]+)/([0-9]+)$")


class ShardError(ValueError):
    """A shard request that cannot be honoured; the message is one line naming the value."""


def parse_spec(text: str) -> Tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with 1 <= K <= N; ``ShardError`` names a bad spelling."""
    match = _SPEC_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ShardError("--shard %r: expected K/N, e.g. 2/4 (shard K of N, counted from 1)" % text)
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ShardError("--shard %r: the shard count N must be at least 1" % text)
    if not 1 <= index <= count:
        raise ShardError("--shard %r: K must be between 1 and N (%d)" % (text, count))
    return index, count


def size_units(size: Any) -> float:
    """A case size in cost units: an integer as it is, ``"HxW"`` as sqrt(H*W)."""
    if isinstance(size, str) and "x" in size:
        height, width = size.split("x")
        return math.sqrt(int(height) * int(width))
    return float(size)


def model_cost(case: Any, not_run: Any = None) -> float:
    """The cost model's figure for ``case`` (see the module docstring), in cost units."""
    if not_run is not None:
        return NOT_RUN_COST
    batch = MAX_BATCH_COST_BATCH if case.batch_size == MAX_BATCH else case.batch_size
    return batch * size_units(case.size) * MODE_FACTOR.get(case.mode, 1.0)


def read_durations(path: str) -> Dict[str, float]:
    """Case key -> mean seconds over the records of ``path`` (a record file, or a folder whose
    ``*.jsonl`` files are read); ``ShardError`` when there is nothing to read."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.jsonl")))
        if not files:
            raise ShardError("--shard-durations %s: the folder holds no *.jsonl record files" % path)
    elif os.path.isfile(path):
        files = [path]
    else:
        raise ShardError("--shard-durations %s: no such record file or folder" % path)
    seconds: Dict[str, List[float]] = {}
    for name in files:
        try:
            for _, rec, _ in iter_records(name):
                if rec is None or not rec.get("case_key"):
                    continue
                case_s = rec.get("duration_s") if rec.get("duration_s") is not None else rec.get("wall_s")
                if case_s is None:
                    continue
                counted = rec.get("instructions") or {}
                seconds.setdefault(rec["case_key"], []).append(float(case_s) + float(counted.get("wall_s") or 0.0))
        except OSError as exc:
            raise ShardError("--shard-durations %s: cannot read: %s" % (name, exc.strerror or exc)) from None
    if not seconds:
        raise ShardError("--shard-durations %s: no record with duration_s or wall_s" % path)
    return {key: sum(values) / len(values) for key, values in seconds.items()}


def case_costs(cases: Sequence[Tuple[Any, Any]], durations: Optional[Dict[str, float]] = None,
               source: str = "STORE") -> List[float]:
    """The cost of each ``(case, not_run)``: the cost model's, or with ``durations`` the measured
    seconds (see the module docstring). ``ShardError`` when ``durations`` (read from ``source``)
    knows none of the cases."""
    model = [model_cost(case, not_run) for case, not_run in cases]
    if durations is None:
        return model
    known = [i for i, (case, not_run) in enumerate(cases) if not_run is None and case.key in durations]
    if not known:
        raise ShardError("--shard-durations %s: none of the %d cases has a record there (another scenario?)" % (
            source, len(cases)))
    seconds_per_unit = sum(durations[cases[i][0].key] for i in known) / sum(model[i] for i in known)
    known_set = set(known)
    return [durations[case.key] if i in known_set else model[i] * seconds_per_unit
            for i, (case, _) in enumerate(cases)]


def split(keys: Sequence[str], costs: Sequence[float], count: int) -> List[int]:
    """The shard (1..count) of each case: longest cost first, ties by key, each into the
    least-loaded shard (ties: the lowest). ``keys`` must be unique."""
    if len(set(keys)) != len(keys):
        raise ValueError("case keys must be unique to split them")
    order = sorted(range(len(keys)), key=lambda i: (-costs[i], keys[i]))
    loads = [(0.0, shard) for shard in range(1, count + 1)]  # a heap of (load, shard)
    out = [0] * len(keys)
    for i in order:
        load, shard = heapq.heappop(loads)
        out[i] = shard
        heapq.heappush(loads, (load + costs[i], shard))
    return out


def shard_loads(assignment: Sequence[int], costs: Sequence[float], count: int) -> List[float]:
    """The summed cost of each shard 1..count."""
    loads = [0.0] * count
    for shard, cost in zip(assignment, costs):
        loads[shard - 1] += cost
    return loads


def split_hash(keys: Sequence[str], assignment: Sequence[int], count: int) -> str:
    """A short hash of the whole split (every case key and its shard): shards of one split agree on it."""
    text = "%d\n" % count + "".join("%d\t%s\n" % (shard, key) for key, shard in zip(keys, assignment))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def scenario_hash(path: str) -> str:
    """A short hash of the scenario file's parsed content (canonical JSON of its TOML data):
    the same for the same settings whatever the comments, spacing or key order."""
    canonical = json.dumps(load_toml(path), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@dataclass
class Selection:
    """One shard of a case list: its cases (in the unsharded order) and each one's record part."""

    index: int
    count: int
    cases: List[Tuple[Any, Any]]
    #: case key -> the record's ``shard`` part (``harness.record.parts.Shard`` as a dict)
    fields: Dict[str, Dict[str, Any]]
    total_cases: int
    #: the summed cost of every shard 1..count, and the unit it is in
    loads: List[float]
    cost_unit: str

    def summary(self) -> str:
        """One line: which shard, how many cases of how many, its share of the cost."""
        total = sum(self.loads)
        share = 100.0 * self.loads[self.index - 1] / total if total else 0.0
        each = " / ".join(("%.3g" if self.cost_unit == "s" else "%.0f") % load for load in self.loads)
        return "shard %d/%d: %d of %d cases (%.1f%% of the estimated cost; shards %s %s)" % (
            self.index, self.count, len(self.cases), self.total_cases, share, each, self.cost_unit)


def select(cases: Sequence[Tuple[Any, Any]], index: int, count: int, scenario_digest: str,
           durations: Optional[Dict[str, float]] = None, durations_source: str = "STORE") -> Selection:
    """Shard ``index`` of ``count`` of ``cases`` (``harness.scenario.spec.expand``'s list) and the record
    part of each of its cases. ``ShardError`` when there are fewer cases than shards."""
    if count > len(cases):
        raise ShardError("--shard %d/%d: the scenario has %d case%s, fewer than %d shards; use N <= %d" % (
            index, count, len(cases), "" if len(cases) == 1 else "s", count, len(cases)))
    keys = [case.key for case, _ in cases]
    costs = case_costs(cases, durations, durations_source)
    assignment = split(keys, costs, count)
    digest = split_hash(keys, assignment, count)
    chosen = [i for i, shard in enumerate(assignment) if shard == index]
    fields = {keys[i]: {"index": index, "count": count, "cases": len(chosen), "position": i,
                        "scenario_hash": scenario_digest, "split_hash": digest} for i in chosen}
    return Selection(index, count, [cases[i] for i in chosen], fields, len(cases),
                     shard_loads(assignment, costs, count), "s" if durations is not None else "cost units")
