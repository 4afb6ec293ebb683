from __future__ import annotations

from pathlib import Path

import pytest

from vigil.hashing.banks import BankError, BankExists, BankNotFound, NewEntry
from vigil.hashing.hashers import SignalType
from vigil.hashing.sqlite import SqliteBankStore

PDQ_A = "f" * 64
PDQ_B = "0" * 63 + "1"


def test_create_and_list_banks_with_defaults(store: SqliteBankStore) -> None:
    pdq = store.create_bank("csam", SignalType.PDQ)
    assert (pdq.max_distance, pdq.min_quality, pdq.enabled, pdq.seq) == (31, 50, True, 0)
    md5 = store.create_bank("videos", SignalType.MD5)
    assert (md5.max_distance, md5.min_quality) == (0, 0)
    assert [b.name for b in store.list_banks()] == ["csam", "videos"]
    assert store.get_bank("csam") == pdq


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "invalid bank name"),
        ({"name": "x", "signal_type": SignalType.MD5, "max_distance": 3}, "only match exactly"),
        ({"name": "x", "max_distance": 200}, "out of range"),
        ({"name": "x", "min_quality": 101}, "out of range"),
    ],
)
def test_bad_bank_settings(store: SqliteBankStore, kwargs: dict[str, object], message: str) -> None:
    args = {"signal_type": SignalType.PDQ} | kwargs
    with pytest.raises(BankError, match=message):
        store.create_bank(**args)  # type: ignore[arg-type]
    assert store.list_banks() == []


def test_duplicate_and_missing_banks(store: SqliteBankStore) -> None:
    store.create_bank("a", SignalType.PDQ)
    with pytest.raises(BankExists):
        store.create_bank("a", SignalType.MD5)
    with pytest.raises(BankNotFound, match="no bank called 'nope'"):
        store.get_bank("nope")


def test_entries_add_skip_duplicates_and_bump_seq(store: SqliteBankStore) -> None:
    store.create_bank("a", SignalType.PDQ)
    ids = store.add_entries(
        "a", [NewEntry(PDQ_A.upper(), "te", ("x", "y")), NewEntry(PDQ_B), NewEntry(PDQ_A)]
    )
    assert len(ids) == 2
    assert store.add_entries("a", [NewEntry(PDQ_B)]) == []
    entries = store.get_entries("a", ids)
    assert [e.hash for e in entries] == [PDQ_A, PDQ_B]
    assert entries[0].tags == ("x", "y") and entries[0].source == "te"
    assert store.get_bank("a").seq == 1
    assert store.count_entries("a") == 2


def test_invalid_entry_rejects_the_whole_batch(store: SqliteBankStore) -> None:
    store.create_bank("a", SignalType.PDQ)
    with pytest.raises(BankError, match="entry 2: a pdq hash has 64 hex characters"):
        store.add_entries("a", [NewEntry(PDQ_A), NewEntry("abc")])
    assert store.count_entries("a") == 0 and store.get_bank("a").seq == 0


def test_remove_disable_and_change_rows(store: SqliteBankStore) -> None:
    store.create_bank("a", SignalType.PDQ)
    first, second = store.add_entries("a", [NewEntry(PDQ_A), NewEntry(PDQ_B)])
    seq = store.get_bank("a").seq
    assert store.set_entries_enabled("a", [first], False) == 1
    assert store.set_entries_enabled("a", [first], False) == 0  # already disabled: no change
    assert [e.id for e in store.iter_entries("a")] == [second]
    assert [e.id for e in store.iter_entries("a", include_disabled=True)] == [first, second]
    assert store.remove_entries("a", [second, 12345]) == 1
    now = store.get_bank("a").seq
    rows = [r for batch in store.hash_rows("a", seq, now) for r in zip(batch.ids, batch.active, strict=True)]
    assert rows == [(first, False), (second, False)]
    assert list(store.hash_rows("a", now, now)) == []
    # Re-adding a removed hash creates a fresh entry.
    assert store.add_entries("a", [NewEntry(PDQ_B)]) != []


def test_update_and_delete_bank(store: SqliteBankStore) -> None:
    store.create_bank("a", SignalType.PDQ)
    store.add_entries("a", [NewEntry(PDQ_A)])
    bank = store.update_bank("a", enabled=False, max_distance=20)
    assert (bank.enabled, bank.max_distance, bank.min_quality) == (False, 20, 50)
    store.delete_bank("a")
    with pytest.raises(BankNotFound):
        store.count_entries("a")


def test_hash_rows_pages(store: SqliteBankStore) -> None:
    store.create_bank("a", SignalType.MD5)
    store.add_entries("a", [NewEntry(f"{i:032x}") for i in range(25)])
    batches = list(store.hash_rows("a", 0, store.get_bank("a").seq, batch_size=10))
    assert [len(b.ids) for b in batches] == [10, 10, 5]


def test_data_survives_reopen_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "db.sqlite"
    with SqliteBankStore(path) as first:
        first.create_bank("a", SignalType.SHA256)
        first.add_entries("a", [NewEntry("a" * 64, tags=("t",))])
    with SqliteBankStore(path) as second:
        assert [e.tags for e in second.iter_entries("a")] == [("t",)]
    assert (tmp_path / "sub" / "db.sqlite-wal").exists() or path.exists()
