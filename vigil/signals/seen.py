"""Which keys the store may hold that memory does not: a growing Bloom filter (rbloom), so that the
working set asks the store only about keys it may have, not about every new entity.

A Bloom filter never forgets a key it was given (no false negatives), and says "maybe" of a few it was
not (1%); past its capacity a new filter twice as large is added, so the rate stays near 1% at about
1.2 bytes per key.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from rbloom import Bloom

FALSE_POSITIVE_RATE = 0.01
FIRST_CAPACITY = 1 << 20


class MaybeStored:
    """Keys (any hashable: the process's own `hash` is used, so a filter lives and dies with its process)
    that may be in the store."""

    def __init__(self, keys: Iterable[Hashable] = (), *, capacity: int = FIRST_CAPACITY) -> None:
        self._filters = [Bloom(capacity, FALSE_POSITIVE_RATE)]
        self._capacity = self._room = capacity
        for key in keys:
            self.add(key)

    def add(self, key: Hashable) -> None:
        if self._room == 0:
            self._capacity *= 2
            self._filters.append(Bloom(self._capacity, FALSE_POSITIVE_RATE))
            self._room = self._capacity
        self._filters[-1].add(key)
        self._room -= 1

    def __contains__(self, key: Hashable) -> bool:
        for bloom in self._filters:  # a plain loop: asked once per entity new to memory
            if key in bloom:
                return True
        return False

    def size_in_bytes(self) -> int:
        return sum(bloom.size_in_bits for bloom in self._filters) // 8
