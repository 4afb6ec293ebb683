"""Labels: expiry against event time, manual labels outranking rules, durability through the store."""

from __future__ import annotations

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
