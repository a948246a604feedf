"""Which record columns only the round that ran a case's extras fills, and which rows ran them.

An interleaved run (``harness.engine``) measures each case once per round; only the round whose
``round.extras`` is True runs the extras (``harness.vocab.EXTRA_NAMES``: FLOPs, tensor peak,
profile, checks, references, task) and the instruction counts. The other rounds' records carry the
timing, the process peak and the status, and leave every extras column null. The report and the gate
read such a column from the round that ran the extras, never as "missing" from a timing-only round.

``EXTRAS_COLUMNS`` is derived from the record schema (``harness.record.schema.COLUMNS``): the columns
of a record part named after an extra (``flops``, ``profile``, ``checks``, ``task``), of a part's
fields named after one and an underscore (``memory.tensor_peak_bytes``), of the parts ``_PART_OF`` names for the extras
whose part has another name (``references`` -> ``accuracy``), and of the parts that only the extras
round writes besides (``_ALSO``). An extra that maps to no column fails at import: a new extra must
say where its figures go. Never imports torch.
"""
from typing import Any, Mapping, Tuple

from harness.record.schema import COLUMNS
from harness.vocab import EXTRA_NAMES as NAMES

#: Extras whose record part is not named after them.
_PART_OF = {"references": "accuracy"}
#: Parts the extras round writes that are no extra of ``NAMES``: the extras' own report, and the
#: instruction counts (a deterministic pass counted once, not in every round).
_ALSO = ("extras", "instructions")


def _columns_of(name: str) -> Tuple[str, ...]:
    """The flat columns of extra (or part) ``name``: a part of that name, or fields named ``name*``."""
    part = _PART_OF.get(name, name)
    return tuple(c.name for c in COLUMNS if c.path and (
        (len(c.path) > 1 and c.path[0] == part) or (len(c.path) > 1 and c.path[-1].startswith(part + "_"))))


def _derive() -> Tuple[str, ...]:
    out = []
    for name in NAMES:
        cols = _columns_of(name)
        if not cols:
            raise ImportError("extras_columns: extra %r maps to no record column (harness.record.parts): say "
                              "which part it fills in _PART_OF" % name)
        out.extend(cols)
    for name in _ALSO:  # the extras part has no flat column today; any it gains joins here
        out.extend(_columns_of(name))
    return tuple(dict.fromkeys(out))


#: Every flat column that only the round that ran the extras fills.
EXTRAS_COLUMNS: Tuple[str, ...] = _derive()
#: The round part's flat column saying whether the record's round ran the extras (None: a record from
#: before rounds, which ran everything).
RAN_EXTRAS_COLUMN = "round_extras"


def is_extras_column(name: str) -> bool:
    """Whether only the round that ran the extras fills column ``name``."""
    return name in _EXTRAS_SET


def ran_extras(row: Mapping[str, Any]) -> bool:
    """Whether the record (a flat row) could carry the extras' figures: its round ran them, or it has no
    round part (a record from before rounds, one record per case and run)."""
    return row.get(RAN_EXTRAS_COLUMN) is not False


_EXTRAS_SET = frozenset(EXTRAS_COLUMNS)
