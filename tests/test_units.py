"""Numbers as text: bytes in binary units, durations with a readable unit."""
from harness.units import format_bytes, format_duration


def test_bytes_three_significant_digits_never_an_exponent():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(1023.5 * 1024) == "1024 KiB"
    assert format_bytes(200 * 2 ** 20) == "200 MiB"
    assert format_bytes(1.5 * 2 ** 30) == "1.5 GiB"
    assert format_bytes(5000 * 2 ** 30) == "5000 GiB"
    assert format_bytes(-3 * 2 ** 20) == "-3 MiB"
    assert format_bytes(None) == format_bytes(float("nan")) == format_bytes(True) == "–"


def test_durations_pick_a_readable_unit():
    assert format_duration(0.0123) == "12.3 ms"
    assert format_duration(1.5) == "1.5 s"
    assert format_duration(4.2e-6) == "4.2 µs"
    assert format_duration(None, missing="-") == "-"
