"""Hash banks: named collections of known-bad hashes of one signal type, and the store protocol.

A bank holds entries (hash, source, tags, time added). Entries and banks can be disabled; removed
entries stay as tombstones so that matchers in other processes can learn about the removal by polling
`BankStore.hash_rows(bank, since_seq)`: every write to a bank bumps the bank's `seq` and stamps the
entries it touched with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from vigil.hashing.hashers import HashingError, SignalType, normalize_hash

# Defaults follow HMA: PDQ matches within 31 bits and ignores images of quality below 50.
DEFAULT_MAX_DISTANCE = {
    SignalType.PDQ: 31,
    SignalType.MD5: 0,
    SignalType.SHA256: 0,
    # 4-character-shingle SimHash: two word edits in a 25-word message move it ~6 bits (p90: 10),
    # while unrelated texts sit ~32 bits apart (13+ even when drawn from the same small vocabulary).
    SignalType.TEXT_SIMHASH: 10,
}
DEFAULT_MIN_QUALITY = {SignalType.PDQ: 50}

_BANK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TAG_SEPARATORS = re.compile(r"[\s,;]+")


class BankError(Exception):
    """A bank operation was refused; the message says why and how to fix it."""


class BankNotFound(BankError):
    """No bank has the given name."""


class BankExists(BankError):
    """A bank with the given name already exists."""


@dataclass(frozen=True, slots=True)
class Bank:
    """A named collection of hashes of one signal type, with its matching settings."""

    id: int
    name: str
    signal_type: SignalType
    max_distance: int
    min_quality: int
    enabled: bool
    created_at: datetime
    seq: int  # bumped by every write; matchers compare it to what they loaded


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to add: the hex hash (validated by the store), where it came from, and tags."""

    hash: str
    source: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BankEntry:
    """A stored entry."""

    id: int
    bank: str
    hash: str
    source: str
    tags: tuple[str, ...]
    added_at: datetime
    enabled: bool


@dataclass(frozen=True, slots=True)
class HashRows:
    """A batch of (entry id, hex hash, active) rows, as matchers load them: active means enabled and
    not removed."""

    ids: tuple[int, ...]
    hashes: tuple[str, ...]
    active: tuple[bool, ...]


class BankStore(Protocol):
    """Persistence for banks. Every method is one transaction; errors leave nothing half-written."""

    def create_bank(
        self,
        name: str,
        signal_type: SignalType,
        *,
        max_distance: int | None = None,
        min_quality: int | None = None,
    ) -> Bank:
        """Create a bank; defaults for the settings come from its signal type."""

    def get_bank(self, name: str) -> Bank:
        """The bank called `name`; raises `BankNotFound`."""

    def list_banks(self) -> list[Bank]:
        """All banks, by name."""

    def update_bank(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        max_distance: int | None = None,
        min_quality: int | None = None,
    ) -> Bank:
        """Change a bank's settings; `None` leaves a setting as it is."""

    def delete_bank(self, name: str) -> None:
        """Delete a bank and all its entries."""

    def count_entries(self, name: str) -> int:
        """Number of entries not removed (enabled or not)."""

    def add_entries(self, bank: str, entries: Sequence[NewEntry]) -> list[int]:
        """Add entries in one transaction and return their ids. Hashes already in the bank (or
        repeated in `entries`) are skipped. Any invalid hash rejects the whole batch."""

    def remove_entries(self, bank: str, entry_ids: Sequence[int]) -> int:
        """Remove entries (tombstoned); return how many were removed."""

    def set_entries_enabled(self, bank: str, entry_ids: Sequence[int], enabled: bool) -> int:
        """Enable or disable entries; return how many changed."""

    def get_entries(self, bank: str, entry_ids: Sequence[int]) -> list[BankEntry]:
        """The entries with these ids (removed ones excluded), in id order."""

    def iter_entries(self, bank: str, *, include_disabled: bool = False) -> Iterator[BankEntry]:
        """Every entry not removed, in id order."""

    def hash_rows(
        self, bank: str, since_seq: int, until_seq: int, batch_size: int = 100_000
    ) -> Iterator[HashRows]:
        """Rows last changed in (since_seq, until_seq], by id, in batches, for building match indexes.
        Read `Bank.seq` first and pass it as `until_seq`; the next poll starts from it."""

    def close(self) -> None:
        """Release the store's resources."""


def check_bank_name(name: str) -> str:
    """Validate a bank name: letters, digits, '_', '.', '-', starting with a letter or digit."""
    if not _BANK_NAME.fullmatch(name):
        raise BankError(
            f"invalid bank name {name!r}: use up to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def bank_settings(name: str, signal_type: SignalType | str, max_distance: int | None,
                  min_quality: int | None) -> tuple[SignalType, int, int]:
    """A new bank's checked name and settings, with the signal type's defaults filled in."""
    check_bank_name(name)
    kind = SignalType(signal_type)
    distance = DEFAULT_MAX_DISTANCE[kind] if max_distance is None else max_distance
    quality = DEFAULT_MIN_QUALITY.get(kind, 0) if min_quality is None else min_quality
    check_settings(kind, distance, quality)
    return kind, distance, quality


def check_settings(signal_type: SignalType, max_distance: int, min_quality: int) -> None:
    """Reject settings that cannot work for the signal type."""
    bits = signal_type.hex_length * 4
    if signal_type.is_exact and max_distance != 0:
        raise BankError(f"{signal_type.value} hashes only match exactly: max distance must be 0")
    if not 0 <= max_distance <= bits // 2:
        raise BankError(
            f"max distance {max_distance} is out of range for {signal_type.value}: use 0..{bits // 2}"
        )
    if not 0 <= min_quality <= 100:
        raise BankError(f"min quality {min_quality} is out of range: use 0..100")


def parse_tags(text: str) -> tuple[str, ...]:
    """Split a tags field on spaces, commas or semicolons, dropping duplicates, keeping order.

    >>> parse_tags("csam; known-bad,  ncmec csam")
    ('csam', 'known-bad', 'ncmec')
    """
    return tuple(dict.fromkeys(t for t in _TAG_SEPARATORS.split(text) if t))


def validate_entries(signal_type: SignalType, entries: Sequence[NewEntry]) -> list[NewEntry]:
    """Return entries with normalised (lowercase) hashes; raise `BankError` naming the first bad one."""
    checked: list[NewEntry] = []
    for i, entry in enumerate(entries):
        try:
            digest = normalize_hash(signal_type, entry.hash)
        except HashingError as exc:
            raise BankError(f"entry {i + 1}: {exc}") from None
        checked.append(NewEntry(digest, entry.source, tuple(entry.tags)))
    return checked
