from __future__ import annotations

import io

import pytest

from vigil.hashing.banks import BankNotFound
from vigil.hashing.csvio import ImportFailed, export_csv, import_csv, parse_entries
from vigil.hashing.hashers import SignalType
from vigil.hashing.sqlite import SqliteBankStore

A = "a" * 64
B = "b" * 64
C = "c" * 64


def test_threatexchange_style_without_header(store: SqliteBankStore) -> None:
    store.create_bank("te", SignalType.PDQ)
    text = f'{A},pdq,csam known\n\n# comment\n{B.upper()},photo_pdq,"x,y"\n{C}\n'
    report = import_csv(store, "te", io.StringIO(text), default_source="te-export.csv")
    assert (report.added, report.duplicates) == (3, 0)
    entries = list(store.iter_entries("te"))
    assert [(e.hash, e.tags, e.source) for e in entries] == [
        (A, ("csam", "known"), "te-export.csv"),
        (B, ("x", "y"), "te-export.csv"),
        (C, (), "te-export.csv"),
    ]


def test_header_in_any_order_with_ignored_columns(store: SqliteBankStore) -> None:
    store.create_bank("h", SignalType.PDQ)
    text = f"tags,source,hash,added_at\nspam;scam,ncmec,{A},2024-01-01\n"
    report = import_csv(store, "h", text.splitlines(keepends=True))
    assert report.ignored_columns == ("added_at",)
    (entry,) = store.iter_entries("h")
    assert (entry.hash, entry.tags, entry.source) == (A, ("spam", "scam"), "ncmec")


def test_every_bad_line_is_reported_and_nothing_imported(store: SqliteBankStore) -> None:
    store.create_bank("b", SignalType.PDQ)
    text = "\n".join(
        [
            f"{A},pdq,ok",
            "abc,pdq,short",  # line 2
            f"{B},md5,wrong type",  # line 3
            f"{C},tmk,unknown type",  # line 4
            f"{'g' * 64},pdq,not hex",  # line 5
            f"{A},pdq,t,src,extra",  # line 6
            ",pdq,no hash",  # line 7
        ]
    )
    with pytest.raises(ImportFailed) as caught:
        import_csv(store, "b", io.StringIO(text), path="bad.csv")
    errors = caught.value.errors
    assert [e.line for e in errors] == [2, 3, 4, 5, 6, 7]
    assert "64 hex characters, got 3" in errors[0].message
    assert "does not belong in a pdq bank" in errors[1].message and "md5 bank" in errors[1].hint
    assert "unknown signal type 'tmk'" in errors[2].message
    assert "not hexadecimal" in errors[3].message
    assert "5 columns" in errors[4].message
    assert "hash is missing" in errors[5].message
    assert "bad.csv:line 2:" in str(caught.value) and "nothing was imported" in str(caught.value)
    assert store.count_entries("b") == 0 and store.get_bank("b").seq == 0


def test_error_list_is_capped() -> None:
    with pytest.raises(ImportFailed) as caught:
        parse_entries((f"bad{i}\n" for i in range(250)), SignalType.MD5)
    assert len(caught.value.errors) == 100 and caught.value.total == 250
    assert "and 150 more" in str(caught.value)


def test_malformed_csv_quote() -> None:
    with pytest.raises(ImportFailed, match="line"):
        parse_entries(io.StringIO(f'{A},pdq,"unclosed\n'), SignalType.PDQ)


def test_duplicates_are_skipped_and_counted(store: SqliteBankStore) -> None:
    store.create_bank("d", SignalType.PDQ)
    import_csv(store, "d", io.StringIO(f"{A}\n"))
    report = import_csv(store, "d", io.StringIO(f"{A}\n{B}\n{B}\n"))
    assert (report.added, report.duplicates) == (1, 2)


@pytest.mark.parametrize("fmt", ["vigil", "threatexchange"])
def test_export_round_trips(store: SqliteBankStore, fmt: str) -> None:
    store.create_bank("src", SignalType.PDQ)
    store.create_bank("dst", SignalType.PDQ)
    import_csv(store, "src", io.StringIO(f"hash,tags,source\n{A},x y,s1\n{B},,s2\n"))
    out = io.StringIO()
    assert export_csv(store, "src", out, fmt=fmt) == 2  # type: ignore[arg-type]
    header = out.getvalue().splitlines()[0]
    assert header == ("hash,signal_type,tags,source,added_at" if fmt == "vigil" else "hash,signal_type,tags")
    import_csv(store, "dst", io.StringIO(out.getvalue()), default_source="copy")
    got = [(e.hash, e.tags, e.source) for e in store.iter_entries("dst")]
    sources = ("s1", "s2") if fmt == "vigil" else ("copy", "copy")
    assert got == [(A, ("x", "y"), sources[0]), (B, (), sources[1])]


def test_import_into_missing_bank(store: SqliteBankStore) -> None:
    with pytest.raises(BankNotFound):
        import_csv(store, "missing", io.StringIO(f"{A}\n"))
