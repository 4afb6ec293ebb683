"""MaybeStored: the Bloom filter of keys the store may hold never forgets one, past its capacity too."""

from __future__ import annotations

from vigil.signals.seen import MaybeStored


def test_no_key_given_is_ever_denied_and_few_others_pass() -> None:
    seen = MaybeStored((("c", f"k{i}") for i in range(50)), capacity=16)  # grows three times
    for i in range(50, 1000):
        seen.add(("c", f"k{i}"))
    assert all(("c", f"k{i}") in seen for i in range(1000))
    assert sum(("c", f"other{i}") in seen for i in range(10_000)) < 1000  # about 1% per filter, six filters
    assert seen.size_in_bytes() < 10_000
