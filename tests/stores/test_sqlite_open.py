"""A SQLite store that cannot be used (not a database, damaged, read-only) is refused when it is opened,
with what is wrong and what to do, and every command shows that as one line instead of a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.stores.base import StoreUnavailable
from vigil.stores.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
RULES = str(ROOT / "vigil" / "demo" / "rules")


def _one_line_error(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "vigil.sqlite"
    bad.write_bytes(b"this was never a database, whatever its name says" * 20)
    with pytest.raises(StoreUnavailable, match="is not a SQLite database or is damaged.*restore it from a backup"):
        SqliteStore(bad)
    for args in (["serve", "--db", str(bad), "--no-auth"], ["run", RULES, "--db", str(bad), "--events", os.devnull],
                 ["token", "list", "--db", str(bad)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1
        assert _one_line_error(result.output).startswith(f"Error: the SQLite store {bad} is not a SQLite database")


def test_a_damaged_database(tmp_path: Path) -> None:
    path = tmp_path / "vigil.sqlite"
    SqliteStore(path).close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * 3996  # the schema page, after the file header, overwritten
    path.write_bytes(bytes(data))
    with pytest.raises(StoreUnavailable, match="is not a SQLite database or is damaged"):
        SqliteStore(path)


def _read_only_runner(tmp_path: Path) -> tuple[list[str], Path] | None:
    """A way to run a command that sees a read-only store: as an ordinary user, a file without write
    permission; as root (which ignores permissions), a read-only bind mount in a private mount namespace."""
    data = tmp_path / "data"
    data.mkdir()
    SqliteStore(data / "vigil.sqlite").close()
    if os.geteuid() != 0:
        (data / "vigil.sqlite").chmod(0o444)
        data.chmod(0o555)
        return [], data
    unshare = shutil.which("unshare")
    view = tmp_path / "view"
    view.mkdir()
    if unshare is None or subprocess.run([unshare, "-m", "true"], capture_output=True, check=False).returncode:
        return None
    mount = f"mount --bind {data} {view} && mount -o remount,ro,bind {view} && exec \"$@\""
    return [unshare, "-m", "sh", "-c", mount, "sh"], view


def test_a_read_only_store(tmp_path: Path) -> None:
    found = _read_only_runner(tmp_path)
    if found is None:
        pytest.skip("no way to make a read-only file here (root without mount namespaces)")
    prefix, directory = found
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [*prefix, sys.executable, "-c", "from vigil.cli import main; main()", "serve", "--db",
               str(directory / "vigil.sqlite"), "--no-auth"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    line = _one_line_error(result.stderr)
    assert line.startswith(f"Error: the SQLite store {directory / 'vigil.sqlite'} cannot be written"), line
    assert "write access" in line
