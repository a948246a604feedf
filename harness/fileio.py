"""Small file helpers both sides share: the repository root, atomic writes, TOML.

Standard library only (plus ``tomli`` where ``tomllib`` is missing, Python < 3.11).
"""
import os
import tempfile
from typing import Any, Dict

try:  # Python >= 3.11
    import tomllib
except ImportError:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib

#: The checkout (or installed tree) holding ``harness/``, ``models/`` and ``scenarios/``.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOMLDecodeError = tomllib.TOMLDecodeError


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see ``atomic_write_bytes``."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one.

    The temporary file gets the mode a plain ``open(path, "w")`` would (the umask
    honoured), so a report served or uploaded stays readable.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_toml(path: str) -> Dict[str, Any]:
    """Parse the TOML file ``path`` (a UTF-8 byte-order mark, as some Windows editors write,
    is accepted). Raises ``OSError``, ``UnicodeDecodeError`` or ``TOMLDecodeError`` (both
    ValueErrors)."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return tomllib.loads(data.decode("utf-8"))
