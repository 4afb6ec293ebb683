"""Command-line front door for hashing: `hash`, `bank …` and `match`.

`vigil.cli.SUBCOMMANDS` names `hash_command`, `bank_group` and `match_command` for the `vigil` group. Every
command takes `--db PATH` (env `VIGIL_BANKS`, default `vigil-data/banks.sqlite`, where `vigil serve` looks too),
or a postgresql:// URL. Errors exit with 2;
`match` exits 0 when something matched and 1 when nothing did, like grep.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from vigil.hashing.banks import BankError, BankStore, NewEntry, parse_tags
from vigil.hashing.csvio import EXPORT_FORMATS, ExportFormat, export_csv, import_csv
from vigil.hashing.decoder import MediaDecoder
from vigil.hashing.hashers import (
    HashingError,
    MediaTooLarge,
    SignalType,
    md5_hex,
    sha256_hex,
    simhash_text,
)
from vigil.hashing.limits import MediaLimits
from vigil.hashing.open import open_bank_store
from vigil.hashing.service import HashMatcher

DEFAULT_DB = "vigil-data/banks.sqlite"
SIGNALS = [t.value for t in SignalType]
_F = TypeVar("_F", bound=Callable[..., Any])


class CommandFailed(click.ClickException):
    """A clean failure: the message is printed without a traceback, exit status 2."""

    exit_code = 2


def db_option(func: _F) -> _F:
    """The `--db PATH|URL` option shared by every command."""
    return click.option(
        "--db",
        "db",
        type=str,  # a path or a URL (postgresql://…), which click.Path would mangle
        default=DEFAULT_DB,
        envvar="VIGIL_BANKS",
        show_default=True,
        help="Where the banks are: a SQLite file (or sqlite:///path) or a postgresql:// URL (env VIGIL_BANKS).",
    )(func)


@contextmanager
def _store(db: str) -> Iterator[BankStore]:
    """Open the store and turn domain errors into clean CLI failures."""
    try:
        store = open_bank_store(db)
    except BankError as exc:
        raise CommandFailed(str(exc)) from exc
    try:
        yield store
    except (BankError, HashingError) as exc:
        raise CommandFailed(str(exc)) from exc
    finally:
        store.close()


@contextmanager
def _decoder() -> Iterator[MediaDecoder]:
    """Decoder processes under the limits of the environment (VIGIL_MEDIA_*), as `vigil serve` uses."""
    try:
        limits = MediaLimits.from_env()
    except ValueError as exc:
        raise CommandFailed(str(exc)) from exc
    with MediaDecoder(limits) as decoder:
        yield decoder


def _file_hashes(data: bytes, signals: tuple[str, ...], decoder: MediaDecoder) -> list[tuple[str, str, str]]:
    """(signal, hash, quality) rows for one file; PDQ only for files that decode as images or video."""
    wanted = set(signals) or {"pdq", "md5", "sha256"}
    rows: list[tuple[str, str, str]] = []
    if "pdq" in wanted:
        try:
            frames = decoder.pdq(data)
        except MediaTooLarge:
            raise  # never silently left out: the file is media, only too costly to decode
        except HashingError as exc:
            if signals:  # asked for explicitly: say why there is none
                raise HashingError(f"{exc}; PDQ hashes images and videos (md5, sha256 and text_simhash "
                                   "hash any file: --signal)") from None
            frames = []
        for frame in frames:
            label = "pdq" if len(frames) == 1 else f"pdq@{frame.timestamp:.2f}s"
            rows.append((label, frame.pdq.hash, str(frame.pdq.quality)))
    if "md5" in wanted:
        rows.append(("md5", md5_hex(data), ""))
    if "sha256" in wanted:
        rows.append(("sha256", sha256_hex(data), ""))
    if "text_simhash" in wanted:
        try:
            rows.append(("text_simhash", simhash_text(data.decode("utf-8")), ""))
        except UnicodeDecodeError as exc:
            raise HashingError(f"not UTF-8 text: {exc.reason}") from exc
    return rows


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandFailed(f"cannot read {path}: {exc.strerror}") from exc


@click.command("hash")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--signal", "signals", multiple=True, type=click.Choice(SIGNALS), help="Only these signal types."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def hash_command(files: tuple[Path, ...], signals: tuple[str, ...], as_json: bool) -> None:
    """Print the hashes of FILES: signal type, hash and (for PDQ) quality. Media is decoded under the
    limits of the VIGIL_MEDIA_* variables (see docs/operations.md)."""
    with _decoder() as decoder:
        for path in files:
            _print_hashes(path, signals, decoder, as_json)


def _print_hashes(path: Path, signals: tuple[str, ...], decoder: MediaDecoder, as_json: bool) -> None:
    try:
        rows = _file_hashes(_read(path), signals, decoder)
    except HashingError as exc:
        raise CommandFailed(f"{path}: {exc}") from None
    for signal, digest, quality in rows:
        if as_json:
            record = {"file": str(path), "signal_type": signal, "hash": digest}
            if quality:
                record["quality"] = quality
            click.echo(json.dumps(record))
        else:
            click.echo(f"{path}\t{signal}\t{digest}\t{quality}".rstrip("\t"))


@click.group("bank")
def bank_group() -> None:
    """Create, fill and inspect hash banks."""


@bank_group.command("create")
@click.argument("name")
@click.option(
    "--signal", "signal", type=click.Choice(SIGNALS), required=True, help="Signal type of the bank."
)
@click.option("--max-distance", type=int, help="Match within this Hamming distance (PDQ default 31).")
@click.option("--min-quality", type=int, help="Ignore images below this PDQ quality (default 50).")
@db_option
def bank_create(name: str, signal: str, max_distance: int | None, min_quality: int | None, db: str) -> None:
    """Create bank NAME."""
    with _store(db) as store:
        bank = store.create_bank(name, SignalType(signal), max_distance=max_distance, min_quality=min_quality)
    click.echo(f"created bank {bank.name} ({bank.signal_type.value}, max distance {bank.max_distance})")


@bank_group.command("list")
@db_option
def bank_list(db: str) -> None:
    """List banks with their settings and entry counts."""
    with _store(db) as store:
        click.echo("name\tsignal_type\tentries\tmax_distance\tmin_quality\tenabled")
        for bank in store.list_banks():
            count = store.count_entries(bank.name)
            click.echo(
                f"{bank.name}\t{bank.signal_type.value}\t{count}\t{bank.max_distance}\t{bank.min_quality}\t"
                f"{'yes' if bank.enabled else 'no'}"
            )


@bank_group.command("import")
@click.argument("name")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--source", default="", help="Source recorded for lines without a source column.")
@db_option
def bank_import(name: str, file: Any, source: str, db: str) -> None:
    """Import entries into bank NAME from a CSV FILE ('-' for stdin); all lines or none."""
    with _store(db) as store:
        path = getattr(file, "name", "-")
        report = import_csv(store, name, file, default_source=source or path, path=path)
    click.echo(f"imported {report.added} entries into {name} ({report.duplicates} duplicates skipped)")
    if report.ignored_columns:
        click.echo(f"ignored columns: {', '.join(report.ignored_columns)}", err=True)


@bank_group.command("export")
@click.argument("name")
@click.argument("file", type=click.File("w", encoding="utf-8"), default="-")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="vigil", show_default=True)
@db_option
def bank_export(name: str, file: Any, fmt: ExportFormat, db: str) -> None:
    """Export the enabled entries of bank NAME as CSV to FILE (default stdout)."""
    with _store(db) as store:
        count = export_csv(store, name, file, fmt=fmt)
    if file is not sys.stdout:
        click.echo(f"exported {count} entries", err=True)


@bank_group.command("add")
@click.argument("name")
@click.argument("hashes", nargs=-1)
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Hash this file with the bank's signal type and add it.",
)
@click.option("--tag", "tags", multiple=True, help="Tag for the new entries (repeatable).")
@click.option("--source", default="cli", show_default=True)
@db_option
def bank_add(
    name: str, hashes: tuple[str, ...], files: tuple[Path, ...], tags: tuple[str, ...], source: str, db: str
) -> None:
    """Add HASHES (hex) and/or hashes of --file FILEs to bank NAME."""
    tag_tuple = parse_tags(" ".join(tags))
    with _decoder() as decoder, _store(db) as store:
        bank = store.get_bank(name)
        digests = list(hashes)
        matcher = HashMatcher(store, decoder=decoder)
        for path in files:
            data = _read(path)
            text_bank = bank.signal_type is SignalType.TEXT_SIMHASH
            try:
                found = matcher.hash_content(
                    bank.signal_type, data.decode("utf-8", "replace") if text_bank else data
                )
            except HashingError as exc:
                raise CommandFailed(f"{path}: {exc}") from None
            good = [q for q in found if q.quality >= bank.min_quality]
            if not good:
                raise CommandFailed(
                    f"{path}: PDQ quality below the bank's minimum {bank.min_quality}; the image is too "
                    "flat to hash reliably (or lower the bank's min quality)"
                )
            digests += [q.hash for q in good]
        if not digests:
            raise CommandFailed("nothing to add: give hashes or --file")
        ids = store.add_entries(name, [NewEntry(d, source, tag_tuple) for d in digests])
    click.echo(f"added {len(ids)} entries to {name}: {' '.join(map(str, ids)) or '(all duplicates)'}")


@bank_group.command("remove")
@click.argument("name")
@click.argument("entry_ids", nargs=-1, type=int, required=True)
@db_option
def bank_remove(name: str, entry_ids: tuple[int, ...], db: str) -> None:
    """Remove entries ENTRY_IDS from bank NAME."""
    with _store(db) as store:
        removed = store.remove_entries(name, entry_ids)
    click.echo(f"removed {removed} entries from {name}")


@bank_group.command("disable")
@click.argument("name")
@click.argument("entry_ids", nargs=-1, type=int)
@click.option("--enable", is_flag=True, help="Enable instead of disable.")
@db_option
def bank_disable(name: str, entry_ids: tuple[int, ...], enable: bool, db: str) -> None:
    """Disable bank NAME, or only ENTRY_IDS in it (--enable to undo)."""
    word = "enabled" if enable else "disabled"
    with _store(db) as store:
        if entry_ids:
            changed = store.set_entries_enabled(name, entry_ids, enable)
            click.echo(f"{word} {changed} entries in {name}")
        else:
            store.update_bank(name, enabled=enable)
            click.echo(f"{word} bank {name}")


@click.command("match")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--bank", "bank", required=True, help="Bank to match against.")
@click.option("--max-distance", type=int, help="Override the bank's max distance.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per match.")
@db_option
def match_command(file: Path, bank: str, max_distance: int | None, as_json: bool, db: str) -> None:
    """Match FILE against a bank (exit 0: matched, 1: no match, 2: error)."""
    data = _read(file)
    with _decoder() as decoder, _store(db) as store:
        matcher = HashMatcher(store, decoder=decoder)
        signal = store.get_bank(bank).signal_type
        content: bytes | str = data
        if signal is SignalType.TEXT_SIMHASH:
            try:
                content = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CommandFailed(f"{file}: not UTF-8 text ({exc.reason})") from exc
        try:
            matches = matcher.match(bank, content, max_distance=max_distance)
        except HashingError as exc:
            raise CommandFailed(f"{file}: {exc}") from None
    for m in matches:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "bank": m.bank,
                        "entry_id": m.entry_id,
                        "hash": m.hash,
                        "distance": m.distance,
                        "tags": list(m.tags),
                        "source": m.source,
                        "query_hash": m.query_hash,
                    }
                )
            )
        else:
            click.echo(f"{m.bank}\t{m.entry_id}\t{m.distance}\t{m.hash}\t{' '.join(m.tags)}\t{m.source}")
    if not matches:
        if not as_json:
            click.echo("no match", err=True)
        click.get_current_context().exit(1)
