"""`vigil user …` and `vigil audit …` on a SQLite store: people with roles, a token of a person, the
audit log listed, verified (exit 0), and failing verification (exit 1 naming the entry) after a
tampered row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from vigil.cli import main


def _run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.output


def test_people_tokens_and_the_audit_log_from_the_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "vigil.sqlite")
    code, out = _run("user", "create", "alice", "--role", "reviewer:spam", "--role", "analyst", "--password-stdin",
                     "--as", "root", "--db", db, stdin="correct horse battery\n")
    assert code == 0, out
    assert "created alice (reviewer:spam, analyst)" in out
    code, out = _run("user", "create", "bob", "--role", "moderator", "--db", db)
    assert code == 2 and "unknown role 'moderator'" in out
    assert _run("user", "roles", "alice", "--role", "review_lead", "--as", "root", "--db", db)[0] == 0
    code, out = _run("token", "create", "alice-laptop", "--scopes", "read", "--user", "alice", "--db", db)
    assert code == 0, out
    code, out = _run("token", "create", "x", "--user", "nobody", "--db", db)
    assert code == 1 and "no person named 'nobody'" in out
    assert _run("user", "disable", "alice", "--as", "root", "--db", db)[0] == 0
    code, out = _run("user", "list", "--db", db)
    assert "alice" in out and "review_lead" in out and "disabled" in out and "password" in out
    code, out = _run("audit", "list", "--db", db)
    assert code == 0 and [line.split()[4] for line in out.splitlines()] == [
        "user.create", "user.roles", "token.create", "user.disable"]
    code, out = _run("audit", "verify", "--db", db)
    assert code == 0 and "audit log holds: 4 entries; head 4:" in out
    head = out.strip().rsplit(" ", 1)[1]

    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    conn.commit()
    conn.close()
    code, out = _run("audit", "verify", "--db", db)
    assert code == 1 and "audit log broken at entry 2: entry 2 was changed" in out
    code, out = _run("audit", "verify", "--head", head, "--db", db)
    assert code == 1
