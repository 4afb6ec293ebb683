"""Import and export of bank entries as CSV.

Accepted input, one entry per line (blank lines and lines starting with '#' are skipped):

- with a header row naming the columns (recognised by a `hash` cell): `hash` (required),
  `signal_type`, `tags`, `source`, in any order;
  other columns (`added_at`, …) are ignored and listed in the report;
- without a header, by position: `hash[,signal_type[,tags[,source]]]`, which covers the
  ThreatExchange-style `hash,signal_type,tags` files.

Tags are separated by spaces, commas (inside quotes) or semicolons. The whole file is checked before
anything is written; if any line is bad, every bad line is reported and the bank is left unchanged.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TextIO

from vigil.hashing.banks import BankError, BankStore, NewEntry, parse_tags
from vigil.hashing.hashers import HashingError, SignalType, normalize_hash, parse_signal_type

KNOWN_COLUMNS = ("hash", "signal_type", "tags", "source")
EXPORT_FORMATS = ("vigil", "threatexchange")
ExportFormat = Literal["vigil", "threatexchange"]
MAX_REPORTED_ERRORS = 100


@dataclass(frozen=True, slots=True)
class LineError:
    """What is wrong with one input line and how to fix it."""

    line: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        return f"line {self.line}: {self.message}{hint}"


class ImportFailed(BankError):
    """The file had bad lines; nothing was imported. `errors` lists them (the first 100)."""

    def __init__(self, path: str, errors: list[LineError], total: int) -> None:
        self.errors = errors
        self.total = total
        more = f"\n… and {total - len(errors)} more" if total > len(errors) else ""
        listing = "\n".join(f"{path}:{e}" for e in errors)
        super().__init__(f"{total} bad line(s) in {path}; nothing was imported:\n{listing}{more}")


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did."""

    added: int
    duplicates: int
    ignored_columns: tuple[str, ...] = ()


def parse_entries(
    lines: Iterable[str], signal_type: SignalType, *, default_source: str = "", path: str = "<csv>"
) -> tuple[list[NewEntry], tuple[str, ...]]:
    """Parse CSV lines into entries for a bank of `signal_type`; raise `ImportFailed` listing every
    bad line. Returns the entries and the names of ignored columns."""
    reader = csv.reader(lines, strict=True)
    entries: list[NewEntry] = []
    errors: list[LineError] = []
    total_errors = 0
    columns: dict[str, int] | None = None
    ignored: tuple[str, ...] = ()
    first = True

    def fail(line: int, message: str, hint: str = "") -> None:
        nonlocal total_errors
        total_errors += 1
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append(LineError(line, message, hint))

    try:
        for row in reader:
            line = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if first:
                first = False
                names = [c.lower() for c in cells]
                if "hash" in names:
                    columns = {n: i for i, n in enumerate(names) if n in KNOWN_COLUMNS}
                    ignored = tuple(n for n in names if n not in KNOWN_COLUMNS)
                    continue
            if columns is None and len(cells) > len(KNOWN_COLUMNS):
                fail(line, f"{len(cells)} columns, at most 4 expected", "hash,signal_type,tags,source")
                continue
            layout = columns or {name: i for i, name in enumerate(KNOWN_COLUMNS)}

            def cell(name: str, cells: list[str] = cells, layout: dict[str, int] = layout) -> str:
                index = layout.get(name)
                return cells[index] if index is not None and index < len(cells) else ""

            raw_type = cell("signal_type")
            if raw_type:
                try:
                    given = parse_signal_type(raw_type)
                except HashingError as exc:
                    fail(line, str(exc))
                    continue
                if given is not signal_type:
                    fail(
                        line,
                        f"signal type {raw_type!r} does not belong in a {signal_type.value} bank",
                        f"import this line into a {given.value} bank instead",
                    )
                    continue
            raw_hash = cell("hash")
            if not raw_hash:
                fail(line, "the hash is missing", "the first column must be the hash")
                continue
            try:
                digest = normalize_hash(signal_type, raw_hash)
            except HashingError as exc:
                fail(line, str(exc), f"expected {signal_type.hex_length} hex digits for {signal_type.value}")
                continue
            entries.append(NewEntry(digest, cell("source") or default_source, parse_tags(cell("tags"))))
    except csv.Error as exc:
        fail(reader.line_num, f"malformed CSV: {exc}", "check for an unclosed double quote")
    except UnicodeDecodeError as exc:
        fail(reader.line_num + 1, f"not UTF-8 text: {exc.reason}", "save the file as UTF-8")
    if total_errors:
        raise ImportFailed(path, errors, total_errors)
    return entries, ignored


def import_csv(
    store: BankStore, bank: str, lines: Iterable[str], *, default_source: str = "", path: str = "<csv>"
) -> ImportReport:
    """Check every line, then add all entries to `bank` in one transaction (or nothing)."""
    found = store.get_bank(bank)
    entries, ignored = parse_entries(lines, found.signal_type, default_source=default_source, path=path)
    added = store.add_entries(bank, entries)
    return ImportReport(len(added), len(entries) - len(added), ignored)


def export_csv(store: BankStore, bank: str, out: TextIO, *, fmt: ExportFormat = "vigil") -> int:
    """Write the bank's enabled entries as CSV with a header row; return how many were written.

    `vigil` writes hash,signal_type,tags,source,added_at; `threatexchange` writes hash,signal_type,tags.
    Both read back with `import_csv`.
    """
    if fmt not in EXPORT_FORMATS:
        raise BankError(f"unknown export format {fmt!r}; use one of: {', '.join(EXPORT_FORMATS)}")
    signal = store.get_bank(bank).signal_type.value
    writer = csv.writer(out, lineterminator="\n")
    full = fmt == "vigil"
    writer.writerow(["hash", "signal_type", "tags", *(["source", "added_at"] if full else [])])
    count = 0
    for entry in store.iter_entries(bank):
        row = [entry.hash, signal, " ".join(entry.tags)]
        if full:
            row += [entry.source, entry.added_at.isoformat()]
        writer.writerow(row)
        count += 1
    return count
