"""Numbers as text for people: bytes in binary units, durations with a readable unit.

Shared by the runner's progress lines, the gate's Markdown and the report.
"""
import math
from typing import Optional

MISSING = "–"


def _is_num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_bytes(value: Optional[float], missing: str = MISSING) -> str:
    """Bytes in binary units with three significant digits: ``12.3 MiB``, ``512 B``."""
    if not _is_num(value):
        return missing
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if abs(value) >= scale:
            scaled = value / scale
            # three significant digits, but never an exponent: 1023.5 KiB is "1024 KiB", not "1.02e+03 KiB"
            return ("%.0f %s" if abs(scaled) >= 100 else "%.3g %s") % (scaled, unit)
    return "%d B" % value


def format_duration(seconds: Optional[float], missing: str = MISSING) -> str:
    """Seconds with a readable unit and three significant digits: ``12.3 ms``, ``4.1 s``."""
    if not _is_num(seconds):
        return missing
    if abs(seconds) >= 1.0:
        return "%.3g s" % seconds
    if abs(seconds) >= 1e-3:
        return "%.3g ms" % (seconds * 1e3)
    return "%.3g µs" % (seconds * 1e6)


def format_count(value: Optional[float], missing: str = MISSING) -> str:
    """A count in decimal units with four significant digits: ``118.5 M``, ``2.301 G``, ``950``
    (instruction counts)."""
    if not _is_num(value):
        return missing
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return "%.4g %s" % (value / scale, unit)
    return "%.4g" % value
