from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vigil.hashing.banks import BankNotFound, NewEntry
from vigil.hashing.hashers import HashingError, SignalType, md5_hex, pdq_image, sha256_hex, simhash_text
from vigil.hashing.service import HashMatcher, Match
from vigil.hashing.sqlite import SqliteBankStore

from .images import encode, flat, photo


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _flip(hex_hash: str, bits: list[int]) -> str:
    value = int(hex_hash, 16)
    for bit in bits:
        value ^= 1 << bit
    return f"{value:0{len(hex_hash)}x}"


@pytest.fixture
def image() -> Image.Image:
    return photo(11, (400, 300))


def test_image_matches_pdq_bank_with_details(store: SqliteBankStore, image: Image.Image) -> None:
    store.create_bank("csam", SignalType.PDQ)
    known = pdq_image(image).hash
    (entry_id,) = store.add_entries("csam", [NewEntry(known, "ncmec", ("csam",))])
    store.add_entries("csam", [NewEntry(pdq_image(photo(12)).hash, "other")])
    matcher = HashMatcher(store)
    recompressed = encode(image.resize((300, 225)), "JPEG", quality=75)
    (match,) = matcher.match("csam", recompressed)
    assert isinstance(match, Match)
    assert (match.bank, match.entry_id, match.hash, match.tags, match.source) == (
        "csam",
        entry_id,
        known,
        ("csam",),
        "ncmec",
    )
    assert 0 <= match.distance <= 31 and len(match.query_hash) == 64
    assert matcher.match("csam", encode(photo(13))) == []


def test_match_hash_respects_max_distance(store: SqliteBankStore) -> None:
    store.create_bank("p", SignalType.PDQ)
    base = "0" * 64
    store.add_entries("p", [NewEntry(_flip(base, list(range(d)))) for d in (0, 10, 31, 32)])
    matcher = HashMatcher(store)
    assert [m.distance for m in matcher.match_hash("p", base)] == [0, 10, 31]
    assert [m.distance for m in matcher.match_hash("p", base, max_distance=10)] == [0, 10]
    with pytest.raises(HashingError, match="64 hex characters"):
        matcher.match_hash("p", "abc")


def test_low_quality_images_match_nothing(store: SqliteBankStore) -> None:
    store.create_bank("p", SignalType.PDQ)
    store.add_entries("p", [NewEntry(pdq_image(flat()).hash)])
    matcher = HashMatcher(store)
    assert matcher.match("p", encode(flat())) == []
    store.update_bank("p", min_quality=0)
    assert len(HashMatcher(store).match("p", encode(flat()))) == 1


def test_new_entries_become_matchable_after_refresh(store: SqliteBankStore) -> None:
    clock = FakeClock()
    store.create_bank("p", SignalType.PDQ)
    matcher = HashMatcher(store, refresh_interval=1.0, clock=clock)
    target = pdq_image(photo(21)).hash
    assert matcher.match_hash("p", target) == []
    (entry_id,) = store.add_entries("p", [NewEntry(target)])
    assert matcher.match_hash("p", target) == []  # cached for refresh_interval
    clock.now = 1.5
    assert [m.entry_id for m in matcher.match_hash("p", target)] == [entry_id]
    store.set_entries_enabled("p", [entry_id], False)
    clock.now = 3.0
    assert matcher.match_hash("p", target) == []
    store.set_entries_enabled("p", [entry_id], True)
    matcher.refresh("p")
    assert len(matcher.match_hash("p", target)) == 1
    store.remove_entries("p", [entry_id])
    matcher.refresh("p")
    assert matcher.match_hash("p", target) == []


def test_large_bank_uses_the_index_and_tracks_changes(store: SqliteBankStore) -> None:
    rng = np.random.default_rng(5)
    hashes = [bytes(row).hex() for row in rng.integers(0, 256, (25_000, 32), dtype=np.uint8)]
    store.create_bank("big", SignalType.PDQ)
    ids = store.add_entries("big", [NewEntry(h) for h in hashes])
    matcher = HashMatcher(store, refresh_interval=0.0)
    probe = _flip(hashes[123], list(range(0, 250, 9)))  # 28 bits away
    assert [m.entry_id for m in matcher.match_hash("big", probe)] == [ids[123]]
    store.remove_entries("big", [ids[123]])
    assert matcher.match_hash("big", probe) == []


def test_disabled_and_deleted_banks(store: SqliteBankStore) -> None:
    store.create_bank("p", SignalType.PDQ)
    store.add_entries("p", [NewEntry("f" * 64)])
    matcher = HashMatcher(store, refresh_interval=0.0)
    assert len(matcher.match_hash("p", "f" * 64)) == 1
    store.update_bank("p", enabled=False)
    assert matcher.match_hash("p", "f" * 64) == []
    store.delete_bank("p")
    with pytest.raises(BankNotFound):
        matcher.match_hash("p", "f" * 64)
    store.create_bank("p", SignalType.PDQ)  # a new bank with the same name starts empty
    assert matcher.match_hash("p", "f" * 64) == []


def test_exact_banks(store: SqliteBankStore) -> None:
    store.create_bank("m", SignalType.MD5)
    store.create_bank("s", SignalType.SHA256)
    video = b"\x00\x00\x00\x18ftypmp42 pretend video bytes"
    store.add_entries("m", [NewEntry(md5_hex(video), tags=("video",)), NewEntry(md5_hex(b"hello"))])
    store.add_entries("s", [NewEntry(sha256_hex(video))])
    matcher = HashMatcher(store)
    (match,) = matcher.match("m", video)
    assert (match.distance, match.tags) == (0, ("video",))
    assert len(matcher.match("m", "hello")) == 1  # text is UTF-8 encoded for digest banks
    assert len(matcher.match("s", video)) == 1
    assert matcher.match("s", video + b"!") == []


def test_text_bank(store: SqliteBankStore) -> None:
    store.create_bank("spam", SignalType.TEXT_SIMHASH)
    spam = "Earn $5000 a week from home!!! Message me on telegram to learn the secret method."
    store.add_entries("spam", [NewEntry(simhash_text(spam), "reports", ("scam",))])
    matcher = HashMatcher(store)
    assert len(matcher.match("spam", spam.replace("$5000", "$5,000").upper())) == 1
    assert len(matcher.match("spam", spam.encode())) == 1
    assert matcher.match("spam", "Lovely weather in Lisbon this week, see you at the conference.") == []
    assert matcher.match("spam", "   ") == []
    with pytest.raises(HashingError, match="not UTF-8"):
        matcher.match("spam", b"\xff\xfe")


def test_pdq_bank_rejects_text_and_garbage(store: SqliteBankStore) -> None:
    store.create_bank("p", SignalType.PDQ)
    matcher = HashMatcher(store)
    with pytest.raises(HashingError, match="not text"):
        matcher.match("p", "an image, honest")
    with pytest.raises(HashingError, match="neither an image nor a video"):
        matcher.match("p", b"garbage bytes")
