"""Labels: expiry against event time, manual labels outranking rules, durability through the store."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.signals.labels import MANUAL, RULE, Labels
from vigil.stores.memory import MemoryStore

T = 1_000_000.0


def test_set_has_and_expiry() -> None:
    labels = Labels()
    labels.set("user", "u", "x", present=True, now=T, source=RULE, actor="r", expires_at=T + 10)
    assert labels.has("user", "u", "x", T + 9.999)
    assert not labels.has("user", "u", "x", T + 10)
    assert not labels.has("user", "other", "x", T)
    assert not labels.has("user", "u", "y", T)


def test_get_lists_active_labels() -> None:
    labels = Labels()
    labels.set("user", "u", "b", present=True, now=T, source=RULE, actor="r")
    labels.set("user", "u", "a", present=True, now=T, source=RULE, actor="r", expires_at=T + 1)
    assert [r.label for r in labels.get("user", "u", T)] == ["a", "b"]
    assert [r.label for r in labels.get("user", "u", T + 5)] == ["b"]
    assert [r.label for r in labels.get("user", "u")] == ["a", "b"]


def test_no_change_when_already_so() -> None:
    labels = Labels()
    assert labels.change("user", "u", "x", present=False, now=T, source=RULE, actor="r") is None
    labels.set("user", "u", "x", present=True, now=T, source=RULE, actor="r", expires_at=T + 100)
    assert labels.change("user", "u", "x", present=True, now=T + 1, source=RULE, actor="r",
                         expires_at=T + 50) is None
    longer = labels.change("user", "u", "x", present=True, now=T + 1, source=RULE, actor="r", expires_at=T + 200)
    assert longer is not None and longer.expires_at == T + 200
    forever = labels.change("user", "u", "x", present=True, now=T + 1, source=RULE, actor="r")
    assert forever is not None and forever.expires_at is None


def test_rules_cannot_override_a_person() -> None:
    labels = Labels()
    labels.set("user", "u", "added", present=True, now=T, source=MANUAL, actor="mod")
    labels.set("user", "u", "removed", present=False, now=T, source=MANUAL, actor="mod")
    assert labels.set("user", "u", "added", present=False, now=T + 1, source=RULE, actor="r") is None
    assert labels.set("user", "u", "removed", present=True, now=T + 1, source=RULE, actor="r") is None
    assert labels.has("user", "u", "added", T + 2)
    assert not labels.has("user", "u", "removed", T + 2)


def test_a_person_can_override_a_rule_and_a_person() -> None:
    labels = Labels()
    labels.set("user", "u", "x", present=True, now=T, source=RULE, actor="r")
    assert labels.set("user", "u", "x", present=False, now=T + 1, source=MANUAL, actor="mod") is not None
    assert not labels.has("user", "u", "x", T + 2)
    assert labels.set("user", "u", "x", present=True, now=T + 3, source=MANUAL, actor="mod2") is not None
    assert labels.has("user", "u", "x", T + 4)


def test_store_keeps_labels_and_history() -> None:
    store = MemoryStore()
    labels = Labels(store)
    labels.set("user", "u", "x", present=True, now=T, source=RULE, actor="r", expires_at=T + 10)
    labels.set("user", "u", "x", present=False, now=T + 1, source=MANUAL, actor="mod", reason="appeal")
    reloaded = Labels(store)
    assert not reloaded.has("user", "u", "x", T + 2)
    assert reloaded.set("user", "u", "x", present=True, now=T + 3, source=RULE, actor="r") is None
    assert [(r.present, r.source, r.actor, r.reason) for r in reloaded.history("user", "u")] == [
        (True, RULE, "r", ""), (False, MANUAL, "mod", "appeal")]


class _NoFullLoad(MemoryStore):
    """A store that fails the test if anything loads every label at once."""

    def load_labels(self) -> list[Any]:  # type: ignore[override]
        raise AssertionError("labels were loaded whole")


def test_start_up_reads_no_labels_and_lookups_read_one_entity() -> None:
    store = _NoFullLoad()
    Labels(store).set("user", "u", "x", present=True, now=T, source=RULE, actor="r")
    restarted = Labels(store)
    assert restarted.cached_entities() == 0
    assert restarted.has("user", "u", "x", T + 1) and not restarted.has("user", "v", "x", T + 1)
    assert restarted.cached_entities() == 2


def test_a_bounded_working_set_answers_as_an_unbounded_one() -> None:
    store = MemoryStore()
    small, unbounded = Labels(store, max_entities=3), Labels(MemoryStore(), max_entities=None)
    for labels in (small, unbounded):
        for i in range(20):
            labels.set("user", f"u{i}", "x", present=True, now=T + i, source=RULE, actor="r", expires_at=T + i + 5)
            if i % 3 == 0:
                labels.set("user", f"u{i}", "y", present=False, now=T + i, source=MANUAL, actor="mod")
    assert small.cached_entities() <= 3
    for i in range(20):
        for at in (T + i - 1, T + i, T + i + 4.5, T + i + 5):
            for label in ("x", "y"):
                assert small.has("user", f"u{i}", label, at) == unbounded.has("user", f"u{i}", label, at)
                assert small.as_of("user", f"u{i}", at) == unbounded.as_of("user", f"u{i}", at)
        # A rule cannot undo the person's removal, whether or not the entity was still held.
        assert (small.change("user", f"u{i}", "y", present=True, now=T + 30, source=RULE, actor="r") is None) == (i % 3 == 0)
        assert small.cached_entities() <= 3


def test_the_working_set_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entities"):
        Labels(max_entities=0)
