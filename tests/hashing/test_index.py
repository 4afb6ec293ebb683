from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.hashing.index import BruteForceIndex, MultiIndexHashIndex, make_index


def _flip(rng: np.random.Generator, row: np.ndarray, distance: int) -> np.ndarray:
    bits = np.unpackbits(row)
    bits[rng.choice(bits.shape[0], distance, replace=False)] ^= 1
    return np.packbits(bits)


def _clustered(rng: np.random.Generator, n: int, n_bytes: int = 32) -> np.ndarray:
    """Hashes drawn around a few centres (real PDQ banks cluster), not uniformly."""
    centres = rng.integers(0, 256, (8, n_bytes), dtype=np.uint8)
    rows = centres[rng.integers(0, 8, n)]
    noise = np.packbits(rng.random((n, n_bytes * 8)) < 0.08, axis=1)
    return rows ^ noise


def _same(
    a: BruteForceIndex | MultiIndexHashIndex,
    b: BruteForceIndex | MultiIndexHashIndex,
    query: np.ndarray,
    radius: int,
) -> None:
    ra, rb = a.search(query, radius), b.search(query, radius)
    assert ra.labels.tolist() == rb.labels.tolist()
    assert ra.distances.tolist() == rb.distances.tolist()


@pytest.fixture(scope="module")
def bank() -> tuple[np.ndarray, BruteForceIndex, MultiIndexHashIndex]:
    rng = np.random.default_rng(7)
    hashes = np.concatenate([rng.integers(0, 256, (30_000, 32), dtype=np.uint8), _clustered(rng, 30_000)])
    labels = np.arange(hashes.shape[0], dtype=np.int64) * 3 + 1000
    brute, mih = BruteForceIndex(32), MultiIndexHashIndex(32, min_indexed=1000)
    brute.add(labels, hashes)
    mih.add(labels, hashes)
    return hashes, brute, mih


def test_mih_builds_tables(bank: tuple[np.ndarray, BruteForceIndex, MultiIndexHashIndex]) -> None:
    _, _, mih = bank
    assert mih.key_bits >= 8 and len(mih) == 60_000 and mih.nbytes > 0


@pytest.mark.parametrize("distance", range(32))
def test_planted_near_duplicates_are_always_found(
    bank: tuple[np.ndarray, BruteForceIndex, MultiIndexHashIndex], distance: int
) -> None:
    hashes, brute, mih = bank
    rng = np.random.default_rng(distance)
    for row in rng.integers(0, hashes.shape[0], 5):
        query = _flip(rng, hashes[row], distance)
        found = mih.search(query, 31)
        assert row * 3 + 1000 in found.labels.tolist()
        _same(brute, mih, query, 31)


@pytest.mark.parametrize("radius", [0, 1, 5, 10, 31, 40, 64])
def test_any_radius_agrees_with_brute_force(
    bank: tuple[np.ndarray, BruteForceIndex, MultiIndexHashIndex], radius: int
) -> None:
    hashes, brute, mih = bank
    rng = np.random.default_rng(radius)
    for row in rng.integers(0, hashes.shape[0], 3):
        _same(brute, mih, _flip(rng, hashes[row], min(radius, 20)), radius)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    distances=st.lists(st.integers(0, 31), min_size=1, max_size=6),
    radius=st.integers(0, 40),
    substrings=st.integers(1, 16),
    clustered=st.booleans(),
)
def test_mih_equals_brute_force_property(
    seed: int, distances: list[int], radius: int, substrings: int, clustered: bool
) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    hashes = _clustered(rng, n) if clustered else rng.integers(0, 256, (n, 32), dtype=np.uint8)
    labels = np.arange(n, dtype=np.int64)
    brute = BruteForceIndex(32)
    mih = MultiIndexHashIndex(32, substrings=substrings, min_indexed=500, merge_threshold=64)
    brute.add(labels[:2000], hashes[:2000])
    mih.add(labels[:2000], hashes[:2000])
    for start in range(2000, n, 250):  # incremental adds exercise the merge path
        brute.add(labels[start : start + 250], hashes[start : start + 250])
        mih.add(labels[start : start + 250], hashes[start : start + 250])
    for d in distances:
        row = int(rng.integers(0, n))
        query = _flip(rng, hashes[row], d)
        _same(brute, mih, query, radius)
        if d <= radius:
            assert row in mih.search(query, radius).labels.tolist()


def test_incremental_adds_are_searchable_at_once() -> None:
    rng = np.random.default_rng(1)
    mih = MultiIndexHashIndex(32, min_indexed=1000, merge_threshold=100)
    base = rng.integers(0, 256, (5000, 32), dtype=np.uint8)
    mih.add(np.arange(5000), base)
    key_bits = mih.key_bits
    for i in range(5000, 5350):
        new = rng.integers(0, 256, (1, 32), dtype=np.uint8)
        mih.add(np.array([i]), new)
        assert i in mih.search(_flip(rng, new[0], 25), 31).labels.tolist()
    assert mih.key_bits == key_bits  # merged, not rebuilt
    assert 0 in mih.search(base[0], 0).labels.tolist()


def test_remove_and_compaction() -> None:
    rng = np.random.default_rng(2)
    hashes = rng.integers(0, 256, (4000, 32), dtype=np.uint8)
    mih, brute = MultiIndexHashIndex(32, min_indexed=1000, merge_threshold=100), BruteForceIndex(32)
    for index in (mih, brute):
        index.add(np.arange(4000), hashes)
        assert index.remove(np.array([5, 6, 99_999])) == 2
        assert index.search(hashes[5], 0).labels.tolist() == []
        assert index.search(hashes[7], 0).labels.tolist() == [7]
    assert mih.remove(np.arange(0, 3000)) == 2998  # triggers a rebuild without the tombstones
    assert len(mih) == 1000
    assert mih.search(hashes[3500], 3).labels.tolist() == [3500]
    brute.remove(np.arange(0, 3000))
    for row in (100, 3500):
        _same(brute, mih, hashes[row], 64)
        _same(brute, mih, hashes[row], 31)


def test_duplicate_hashes_return_every_label() -> None:
    index = make_index(32)
    row = np.full((3, 32), 0xAB, dtype=np.uint8)
    index.add(np.array([10, 11, 12]), row)
    result = index.search(row[0], 0)
    assert result.labels.tolist() == [10, 11, 12] and result.distances.tolist() == [0, 0, 0]


def test_64_bit_hashes() -> None:
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 256, (30_000, 8), dtype=np.uint8)
    mih, brute = MultiIndexHashIndex(8, min_indexed=1000), BruteForceIndex(8)
    mih.add(np.arange(30_000), hashes)
    brute.add(np.arange(30_000), hashes)
    for d in (0, 3, 10):
        _same(brute, mih, _flip(rng, hashes[42], d), 10)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i: i.add(np.arange(2), np.zeros((2, 31), np.uint8)), r"shape \(n, 32\)"),
        (lambda i: i.add(np.arange(3), np.zeros((2, 32), np.uint8)), "3 labels for 2 hashes"),
        (lambda i: i.search(np.zeros(8, np.uint8), 3), "32 bytes"),
        (lambda i: i.search(np.zeros(32, np.uint8), -1), "max_distance"),
    ],
)
def test_bad_input_is_rejected(call: object, message: str) -> None:
    for index in (BruteForceIndex(32), MultiIndexHashIndex(32)):
        with pytest.raises(ValueError, match=message):
            call(index)  # type: ignore[operator]


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        BruteForceIndex(5)
    with pytest.raises(ValueError, match="key_bits"):
        MultiIndexHashIndex(32, key_bits=30)
