"""The PostgreSQL bank store against a real server on loopback: the SQLite bank store's tests, run again
on PostgreSQL, plus matching, all-or-nothing imports, reopening and URLs."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

# The SQLite bank store's behaviours, collected again here so that they run on PostgreSQL through the
# `store` fixture below (tests/hashing runs them on SQLite).
from hashing.test_sqlite import (  # noqa: F401  (tests/ is on sys.path, as pytest's rootdir)
    test_bad_bank_settings,
    test_create_and_list_banks_with_defaults,
    test_duplicate_and_missing_banks,
    test_entries_add_skip_duplicates_and_bump_seq,
    test_hash_rows_pages,
    test_invalid_entry_rejects_the_whole_batch,
    test_remove_disable_and_change_rows,
    test_update_and_delete_bank,
)

from vigil.hashing.banks import BankError, NewEntry
from vigil.hashing.csvio import ImportFailed, import_csv
from vigil.hashing.hashers import SignalType
from vigil.hashing.open import open_bank_store
from vigil.hashing.postgres import MIGRATIONS, PostgresBankStore, migrate
from vigil.hashing.service import HashMatcher
from vigil.hashing.sqlite import SqliteBankStore

from .servers import Server, fresh_database


def _clock() -> datetime:
    return datetime(2026, 1, 2, tzinfo=UTC)


@pytest.fixture()
def database(postgres: Server) -> str:
    """A fresh database on the session's server."""
    return fresh_database(postgres, "banks")


@pytest.fixture()
def store(database: str) -> Iterator[PostgresBankStore]:
    with PostgresBankStore(database, clock=_clock) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteBankStore | PostgresBankStore]:
    if request.param == "sqlite":
        with SqliteBankStore(tmp_path / "banks.sqlite", clock=_clock) as sqlite:
            yield sqlite
        return
    yield request.getfixturevalue("store")


def _flip(hex_hash: str, bits: list[int]) -> str:
    value = int(hex_hash, 16)
    for bit in bits:
        value ^= 1 << bit
    return f"{value:0{len(hex_hash)}x}"


def test_matcher_finds_a_planted_near_duplicate(any_store: SqliteBankStore | PostgresBankStore) -> None:
    store = any_store
    store.create_bank("csam", SignalType.PDQ)
    known = "5a" * 32
    store.add_entries("csam", [NewEntry(f"{i:064x}", "filler") for i in range(1, 50)])
    (other,) = store.add_entries("csam", [NewEntry(_flip(known, [60, 100, 200]), "ncmec", ("csam",))])
    (planted,) = store.add_entries("csam", [NewEntry(known, "te", ("planted",))])
    matcher = HashMatcher(store)
    near = _flip(known, [1, 7, 42, 99, 250])  # 5 bits from the planted hash, 8 from the other
    assert [(m.entry_id, m.distance, m.tags, m.source) for m in matcher.match_hash("csam", near)] == [
        (planted, 5, ("planted",), "te"), (other, 8, ("csam",), "ncmec")]
    assert matcher.match_hash("csam", _flip(known, list(range(0, 256, 4)))) == []  # 64 bits away
    # A removal reaches the matcher through the bank's seq.
    store.remove_entries("csam", [planted])
    matcher.refresh("csam")
    assert planted not in [m.entry_id for m in matcher.match_hash("csam", near)]


def test_a_bad_import_changes_nothing(any_store: SqliteBankStore | PostgresBankStore) -> None:
    store = any_store
    store.create_bank("b", SignalType.PDQ)
    (kept,) = store.add_entries("b", [NewEntry("a" * 64, "first")])
    before = store.get_bank("b")
    text = f"{'b' * 64},pdq,ok\nabc,pdq,short\n{'c' * 64},md5,wrong type\n"
    with pytest.raises(ImportFailed):
        import_csv(store, "b", io.StringIO(text))
    with pytest.raises(BankError, match="entry 2"):
        store.add_entries("b", [NewEntry("d" * 64), NewEntry("xyz")])
    assert store.get_bank("b") == before and store.count_entries("b") == 1
    assert [e.id for e in store.iter_entries("b", include_disabled=True)] == [kept]
    assert list(store.hash_rows("b", before.seq, before.seq + 10)) == []


def test_data_survives_reopen_and_migrations_are_versioned(database: str) -> None:
    import psycopg

    with PostgresBankStore(database) as first:
        first.create_bank("a", SignalType.SHA256)
        first.add_entries("a", [NewEntry("a" * 64, tags=("t",))])
    with PostgresBankStore(database) as second:
        assert [e.tags for e in second.iter_entries("a")] == [("t",)]
    with psycopg.connect(database, autocommit=True) as conn:
        assert migrate(conn) == len(MIGRATIONS)
        assert conn.execute("SELECT version FROM bank_schema_version").fetchall() == [(len(MIGRATIONS),)]


def test_shares_a_database_with_the_state_store(database: str) -> None:
    from vigil.stores.open import open_store

    state = open_store(database)
    try:
        with PostgresBankStore(database) as banks:
            banks.create_bank("a", SignalType.MD5)
            assert [b.name for b in banks.list_banks()] == ["a"]
        assert state.count_dead_letters() == 0
    finally:
        state.close()


def test_a_pool_given_is_used_and_left_open(database: str) -> None:
    from psycopg_pool import ConnectionPool

    with ConnectionPool(database, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        with PostgresBankStore(pool) as banks:
            banks.create_bank("a", SignalType.PDQ)
        with PostgresBankStore(pool) as again:
            assert again.get_bank("a").signal_type is SignalType.PDQ
        assert not pool.closed


@pytest.mark.parametrize("form", ["{}", "sqlite:///{}", "postgresql"])
def test_open_bank_store_urls(form: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if form == "postgresql":
        url = request.getfixturevalue("database")
        kind: type = PostgresBankStore
    else:
        url = form.format(tmp_path / "sub" / "banks.sqlite")
        kind = SqliteBankStore
    store = open_bank_store(url)
    try:
        assert isinstance(store, kind)
        store.create_bank("x", SignalType.MD5)
        assert store.count_entries("x") == 0
    finally:
        store.close()
    if kind is SqliteBankStore:
        assert (tmp_path / "sub" / "banks.sqlite").exists()


def test_a_missing_database_is_a_bank_error(postgres: Server) -> None:
    from vigil.hashing.postgres import open_store

    url = postgres.url.rsplit("/", 1)[0] + "/no_such_database"
    started = time.monotonic()
    with pytest.raises(BankError, match="cannot open bank database"):
        open_store(url)
    print(time.monotonic() - started)


def test_cli_takes_a_postgresql_url(database: str) -> None:
    from click.testing import CliRunner

    from vigil.hashing.cli import bank_group

    runner = CliRunner()
    env = {"VIGIL_BANKS": database}
    assert runner.invoke(bank_group, ["create", "p", "--signal", "md5"], env=env).exit_code == 0
    added = runner.invoke(bank_group, ["add", "p", "a" * 32, "--tag", "t"], env=env)
    assert added.exit_code == 0, added.output
    listed = runner.invoke(bank_group, ["list"], env=env)
    assert listed.exit_code == 0 and "p" in listed.output
    with PostgresBankStore(database) as store:
        assert [(e.hash, e.tags) for e in store.iter_entries("p")] == [("a" * 32, ("t",))]
