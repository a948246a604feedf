"""A verdict in words: its case, model and kind, its values with their units, its ratio and q, and why.

The gate's Markdown (``harness.analysis.gate.markdown``) and the report's verdict table
(``harness.analysis.report.datasets``) both write a verdict through these functions, so the two say
the same thing about the same verdict. Each takes a verdict as the gate gives it
(``harness.analysis.gate.compare``: a dict) or a row with the same keys; values are formatted by
their unit (``harness.measures.format_value``), not by the verdict's kind. Plain text: each output
escapes it for its own markup.
"""
from typing import Any, Mapping

from harness.measures import CHAINS, format_value, is_number
from harness.units import MISSING
from harness.vocab import AGGREGATE_CASE_KEY


def value_text(verdict: Mapping[str, Any], which: str) -> str:
    """The verdict's ``baseline`` or ``candidate`` with its unit: ``31.1 M``, ``12.3 ms``, ``3.81 MiB``. A
    verdict that names no unit has its kind's last-resort measure's (``harness.measures.CHAINS``)."""
    unit = verdict.get("unit")
    if not isinstance(unit, str):
        chain = CHAINS.get(str(verdict.get("kind")))
        unit = chain[-1].unit if chain else None
    return format_value(unit, verdict.get(which))


def ratio_text(verdict: Mapping[str, Any]) -> str:
    """``1.11×``: candidate / baseline on the verdict's own measure."""
    ratio = verdict.get("ratio")
    if not is_number(ratio):
        return MISSING
    return "%.2f×" % ratio if 0.01 <= ratio < 100 else "%.2g×" % ratio


def q_text(verdict: Mapping[str, Any]) -> str:
    """The q-value of the verdict's own test; none where it rests on no test (instruction counts, memory)."""
    q = verdict.get("q_value")
    return "%.2g" % q if is_number(q) else MISSING


def case_text(key: Any) -> str:
    """A case key as a short label: ``cbam_tiny train b8 64 fp32 ckpt=none cpu``."""
    parts = dict(p.split("=", 1) for p in str(key).split(";") if "=" in p)
    if "model" not in parts:
        return str(key)
    bits = [parts.pop("model"), parts.pop("mode", ""), "b" + parts.pop("batch", "?"), parts.pop("size", ""),
            parts.pop("precision", ""), "ckpt=" + parts.pop("checkpoint", "?"), parts.pop("device", "")]
    bits += [k if v == "1" else "%s=%s" % (k, v) for k, v in parts.items()]
    return " ".join(b for b in bits if b)


def model_text(verdict: Mapping[str, Any]) -> str:
    """The verdict's model; the run-wide verdict's is every case (``harness.vocab.AGGREGATE_CASE_KEY``)."""
    model = verdict.get("model")
    if isinstance(model, str) and model:
        return model
    return AGGREGATE_CASE_KEY if verdict.get("case_key") == AGGREGATE_CASE_KEY else "?"


def kind_text(verdict: Mapping[str, Any]) -> str:
    """``time``, ``accuracy (fidelity)``, ``memory (max_batch)``: the kind and, where it has one, its check."""
    check = verdict.get("check")
    return "%s (%s)" % (verdict["kind"], check) if isinstance(check, str) and check else str(verdict["kind"])


def why_text(verdict: Mapping[str, Any], full: bool = True) -> str:
    """Why: the verdict's reason; with ``full`` False, a time verdict's ``how`` (what it rests on: the
    timing test, or the instruction counts with the wall-time test beside them)."""
    if not full and verdict.get("kind") == "time" and not verdict.get("aggregate"):
        how = verdict.get("how")
        return how if isinstance(how, str) else ""
    reason = verdict.get("reason")
    return reason if isinstance(reason, str) else ""
