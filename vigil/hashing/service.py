"""`HashMatcher`: the object the rules engine (and later the HTTP routes) call to match content.

It keeps one in-memory index per bank, loaded from the `BankStore` on first use and kept current by
polling the bank's `seq` (at most every `refresh_interval` seconds): entries added by another process
become matchable within that interval, without rebuilding the index.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vigil.hashing.banks import Bank, BankNotFound, BankStore
from vigil.hashing.decoder import MediaDecoder
from vigil.hashing.hashers import (
    HashingError,
    SignalType,
    hex_to_packed,
    md5_hex,
    normalize_hash,
    sha256_hex,
    simhash_text,
)
from vigil.hashing.index import HammingIndex, make_index


@dataclass(frozen=True, slots=True)
class Match:
    """One bank entry that matched, for rule explanations."""

    bank: str
    entry_id: int
    hash: str  # the bank entry's hash
    distance: int  # Hamming distance (0 for exact signal types)
    tags: tuple[str, ...]
    source: str
    query_hash: str  # the hash computed from the content that matched


@dataclass(frozen=True, slots=True)
class QueryHash:
    """A hash computed from content; `quality` is PDQ's (100 for other signal types)."""

    hash: str
    quality: int = 100


class _ExactIndex:
    """Exact lookups for cryptographic digests: hex hash -> entry ids."""

    def __init__(self) -> None:
        self._ids: dict[str, set[int]] = {}
        self._hash_of: dict[int, str] = {}

    def add(self, entry_id: int, digest: str) -> None:
        self._ids.setdefault(digest, set()).add(entry_id)
        self._hash_of[entry_id] = digest

    def remove(self, entry_id: int) -> None:
        digest = self._hash_of.pop(entry_id, None)
        if digest is not None:
            self._ids[digest].discard(entry_id)

    def find(self, digest: str) -> list[int]:
        return sorted(self._ids.get(digest, ()))


@dataclass(slots=True)
class _BankState:
    """What the matcher holds for one bank (mutable, guarded by the matcher's lock)."""

    bank: Bank
    hamming: HammingIndex | None
    exact: _ExactIndex | None
    max_id: int = 0
    checked_at: float = field(default=-float("inf"))


class HashMatcher:
    """Matches content and hashes against banks in a `BankStore`. Thread-safe.

    >>> from vigil.hashing.sqlite import SqliteBankStore
    >>> from vigil.hashing.banks import NewEntry
    >>> store = SqliteBankStore(":memory:")
    >>> _ = store.create_bank("spam", SignalType.TEXT_SIMHASH)
    >>> _ = store.add_entries("spam", [NewEntry(simhash_text("Buy cheap followers at example dot com"))])
    >>> [m.distance for m in HashMatcher(store).match("spam", "BUY CHEAP f0ll0wers at example dot com")]
    [0]
    >>> [m.distance for m in HashMatcher(store).match("spam", "Buy cheap followerz at example dot com")]
    [6]
    >>> store.close()
    """

    def __init__(
        self,
        store: BankStore,
        *,
        refresh_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        video_frames_per_second: float = 1.0,
        decoder: MediaDecoder | None = None,
    ) -> None:
        self._store = store
        # Media is decoded by `decoder` (front doors give one with processes and a time budget); the
        # default decodes in the calling thread under the default limits.
        self.decoder = decoder if decoder is not None else MediaDecoder(processes=0)
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._video_fps = video_frames_per_second
        self._lock = threading.RLock()
        self._banks: dict[str, _BankState] = {}

    # --- public API ---------------------------------------------------------------------------------

    def match(self, bank: str, content: bytes | str, *, max_distance: int | None = None) -> list[Match]:
        """Hash `content` the way the bank's signal type needs and return the matching entries,
        nearest first. Bytes are image (or video) bytes for PDQ banks and hashed as they are for
        MD5/SHA-256 banks; strings are text for SimHash banks (UTF-8 encoded for MD5/SHA-256).
        Images below the bank's minimum quality, empty text and disabled banks match nothing. Media over
        the decoder's limits raises `MediaTooLarge` (a `HashingError`)."""
        state = self._state(bank)
        if not state.bank.enabled:
            return []
        queries = [
            q
            for q in self.hash_content(state.bank.signal_type, content)
            if q.quality >= state.bank.min_quality
        ]
        return self._lookup(state, [q.hash for q in queries], max_distance)

    def match_hash(self, bank: str, hash_hex: str, *, max_distance: int | None = None) -> list[Match]:
        """Match a hash already computed by the caller (hex of the bank's signal type)."""
        state = self._state(bank)
        digest = normalize_hash(state.bank.signal_type, hash_hex)
        if not state.bank.enabled:
            return []
        return self._lookup(state, [digest], max_distance)

    def hash_content(self, signal_type: SignalType, content: bytes | str) -> list[QueryHash]:
        """The hashes `match` computes for `content` (several for video: one per sampled frame)."""
        if signal_type is SignalType.TEXT_SIMHASH:
            text = content if isinstance(content, str) else _utf8(content)
            return [QueryHash(simhash_text(text))] if text.strip() else []
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        if signal_type is SignalType.MD5:
            return [QueryHash(md5_hex(data))]
        if signal_type is SignalType.SHA256:
            return [QueryHash(sha256_hex(data))]
        if isinstance(content, str):
            raise HashingError("PDQ banks match image bytes, not text; load the media first (load_media)")
        frames = self.decoder.pdq(data, self._video_fps)
        unique = {f.pdq.hash: f.pdq for f in frames}  # static video scenes repeat the same frame hash
        return [QueryHash(p.hash, p.quality) for p in unique.values()]

    def bank(self, name: str) -> Bank:
        """The bank's settings as last loaded (refreshed at most every `refresh_interval`)."""
        return self._state(name).bank

    def refresh(self, bank: str) -> Bank:
        """Bring the bank's index up to date with the store now (ignoring `refresh_interval`)."""
        with self._lock:
            state = self._banks.get(bank)
            if state is not None:
                state.checked_at = -float("inf")
            return self._state(bank).bank

    # --- internals ----------------------------------------------------------------------------------

    def _state(self, name: str) -> _BankState:
        with self._lock:
            now = self._clock()
            state = self._banks.get(name)
            if state is not None and now - state.checked_at < self._refresh_interval:
                return state
            try:
                bank = self._store.get_bank(name)
            except BankNotFound:
                self._banks.pop(name, None)  # deleted: forget its index
                raise
            if state is None or state.bank.id != bank.id:
                state = self._load(bank)
            elif bank.seq != state.bank.seq:
                self._apply_changes(state, bank)
            state.checked_at = now
            self._banks[name] = state
            return state

    def _load(self, bank: Bank) -> _BankState:
        """Load every active entry; the Hamming index is built once at the end, not per batch."""
        signal = bank.signal_type
        state = _BankState(
            bank,
            None if signal.is_exact else make_index(signal.hex_length // 2),
            _ExactIndex() if signal.is_exact else None,
        )
        self._apply_rows(state, bank, since_seq=0, bulk=True)
        if state.hamming is not None:
            state.hamming.rebuild()
        state.bank = bank
        return state

    def _apply_changes(self, state: _BankState, bank: Bank) -> None:
        self._apply_rows(state, bank, since_seq=state.bank.seq, bulk=False)
        state.bank = bank

    def _apply_rows(self, state: _BankState, bank: Bank, *, since_seq: int, bulk: bool) -> None:
        n_bytes = bank.signal_type.hex_length // 2
        for rows in self._store.hash_rows(bank.name, since_seq, bank.seq):
            ids = np.asarray(rows.ids, dtype=np.int64)
            active = np.asarray(rows.active, dtype=bool)
            # Ids only grow, so an id above max_id cannot be indexed yet; older ones changed state
            # (removed, disabled, re-enabled) and are dropped first, then re-added if active.
            seen = ids[ids <= state.max_id]
            if state.exact is not None:
                for entry_id in seen.tolist():
                    state.exact.remove(entry_id)
                for entry_id, digest, on in zip(rows.ids, rows.hashes, rows.active, strict=True):
                    if on:
                        state.exact.add(entry_id, digest)
            elif state.hamming is not None:
                if seen.size:
                    state.hamming.remove(seen)
                keep = np.flatnonzero(active)
                if keep.size:
                    packed = hex_to_packed([rows.hashes[i] for i in keep.tolist()], n_bytes)
                    state.hamming.add(ids[keep], packed, defer=bulk)
            if ids.size:
                state.max_id = max(state.max_id, int(ids.max()))

    def _lookup(self, state: _BankState, digests: list[str], max_distance: int | None) -> list[Match]:
        bank = state.bank
        radius = bank.max_distance if max_distance is None else max_distance
        best: dict[int, tuple[int, str]] = {}  # entry id -> (distance, query hash)
        with self._lock:
            for digest in digests:
                hits: list[tuple[int, int]] = []
                if state.exact is not None:
                    hits = [(entry_id, 0) for entry_id in state.exact.find(digest)]
                elif state.hamming is not None:
                    query = np.frombuffer(bytes.fromhex(digest), dtype=np.uint8)
                    found = state.hamming.search(query, radius)
                    hits = list(zip(found.labels.tolist(), found.distances.tolist(), strict=True))
                for entry_id, distance in hits:
                    if entry_id not in best or distance < best[entry_id][0]:
                        best[entry_id] = (distance, digest)
        if not best:
            return []
        entries = self._store.get_entries(bank.name, sorted(best))
        matches = [
            Match(bank.name, e.id, e.hash, best[e.id][0], e.tags, e.source, best[e.id][1]) for e in entries
        ]
        return sorted(matches, key=lambda m: (m.distance, m.entry_id))


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HashingError(f"text content is not UTF-8: {exc.reason} at byte {exc.start}") from exc
