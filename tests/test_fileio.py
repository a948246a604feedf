"""Atomic writes that honour the umask, TOML with a byte-order mark."""
import os
import stat

import pytest

from harness.fileio import atomic_write_bytes, atomic_write_text, load_toml


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_mode_a_plain_open_would(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(str(tmp_path / "a" / "report.html"), "<p>x</p>")
        atomic_write_bytes(str(tmp_path / "a" / "fig.png"), b"\x89PNG")
        with open(str(tmp_path / "plain"), "w") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    for name in ("a/report.html", "a/fig.png", "plain"):
        assert stat.S_IMODE(os.stat(str(tmp_path / name)).st_mode) == mode, name
    assert (tmp_path / "a" / "report.html").read_text() == "<p>x</p>"
    assert sorted(os.listdir(str(tmp_path / "a"))) == ["fig.png", "report.html"]  # no temporary left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "v.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        atomic_write_bytes(str(path), "not bytes")
    assert path.read_text() == "old" and os.listdir(str(tmp_path)) == ["v.json"]


def test_toml_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "s.toml"
    path.write_bytes(b"\xef\xbb\xbf[scenario]\nname = \"x\"\n")
    assert load_toml(str(path)) == {"scenario": {"name": "x"}}
