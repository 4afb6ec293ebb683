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
from vigil.stores.base import LabelRecord, StoreUnavailable
from vigil.stores.sqlite import CHECK_ON_OPEN_BYTES, SqliteStore

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


def _damage_a_table(path: Path, extra_bytes: int = 0) -> None:
    """A store whose label_history table has its root page overwritten (the header and schema intact);
    `extra_bytes` of counter rows make it that much larger."""
    store = SqliteStore(path)
    store.write_labels([LabelRecord("user", f"u{i}", "spam", True, "rule", None, float(i), "r", "x" * 50)
                        for i in range(2000)])
    if extra_bytes:
        store._conn.executemany("INSERT INTO counter_rows (cid, key, sec, value, amount) VALUES ('c', 'k', 0, ?, 1)",
                                [("x" * (1 << 20),) for _ in range(extra_bytes >> 20)])
    root = int(store._read("SELECT rootpage FROM sqlite_master WHERE name = 'label_history'")[0][0])  # type: ignore[call-overload]
    page_size = int(store._read("PRAGMA page_size")[0][0])  # type: ignore[call-overload]
    store.close()
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xa5" * page_size)


def test_a_damaged_page_is_found_when_a_small_store_opens(tmp_path: Path) -> None:
    # quick_check's answer was read and ignored: the store opened, and failed later on that table
    path = tmp_path / "vigil.sqlite"
    _damage_a_table(path)
    with pytest.raises(StoreUnavailable, match=r"is damaged \(Page \d+: btreeInitPage\(\) returns error code 11; .*sqlite3 .* \.recover"):
        SqliteStore(path)
    result = CliRunner().invoke(main, ["run", RULES, "--db", str(path), "--events", os.devnull])
    assert result.exit_code == 1 and _one_line_error(result.output).startswith(f"Error: the SQLite store {path} is damaged")


def test_a_large_store_is_not_scanned_on_open_and_store_check_finds_its_damage(tmp_path: Path) -> None:
    path = tmp_path / "vigil.sqlite"
    _damage_a_table(path, extra_bytes=CHECK_ON_OPEN_BYTES + (1 << 20))
    SqliteStore(path).close()  # only the header and schema are read on open
    damaged = CliRunner().invoke(main, ["store", "check", "--db", str(path)])
    assert damaged.exit_code == 1
    first = damaged.stdout.splitlines()[0]  # what SQLite says: the page it cannot read, or that it cannot go on
    assert "btreeInitPage() returns error code 11" in first or first == "database disk image is malformed"
    assert f"the SQLite store {path} is damaged" in damaged.stderr
    sound = tmp_path / "sound.sqlite"
    SqliteStore(sound).close()
    for args in ([], ["--full"]):
        ok = CliRunner().invoke(main, ["store", "check", "--db", str(sound), *args])
        assert ok.exit_code == 0 and f"{sound}: ok" in ok.stderr
