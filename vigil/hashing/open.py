"""The bank store a URL names, so that banks live in the same backends as the rest of Vigil's state:

    vigil-data/banks.sqlite, sqlite:///path   SQLite (the default; `SqliteBankStore`)
    postgresql://user:pw@host/db              PostgreSQL (`PostgresBankStore`, a connection pool)
"""

from __future__ import annotations

from pathlib import Path

from vigil.hashing.banks import BankStore


def open_bank_store(url: str | Path) -> BankStore:
    """Open (creating or migrating if needed) the bank store at `url`; raises `BankError`."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from vigil.hashing.postgres import open_store as open_postgres

        return open_postgres(text)
    from vigil.hashing.sqlite import open_store as open_sqlite

    for prefix in ("sqlite:///", "sqlite://"):
        if text.startswith(prefix):
            return open_sqlite(text[len(prefix):])
    return open_sqlite(url)
