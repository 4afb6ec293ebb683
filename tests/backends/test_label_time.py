"""Labels in every backend (memory, SQLite, PostgreSQL, Redis): one time model, extensions to the later
expiry, a person's removal that expires or is released, and the same answers after a restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.signals.labels import MANUAL, RULE, Labels
from vigil.stores.base import LabelBackend
from vigil.stores.memory import MemoryStore
from vigil.stores.open import open_store

from .servers import Server, fresh_database

T = 1_767_225_600.0
DAY = 86400.0
Backend = Callable[[], LabelBackend]


@pytest.fixture(params=["memory", "sqlite", "postgresql", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Label backends over one durable state: each call is a fresh process's view of it."""
    memory = MemoryStore()
    closers: list[Callable[[], None]] = []
    url = str(tmp_path / "v.sqlite")
    if request.param == "postgresql":
        server: Server = request.getfixturevalue("postgres")
        url = fresh_database(server, "l")

    def make() -> LabelBackend:
        if request.param == "memory":
            return Labels(memory)
        if request.param == "redis":
            from vigil.stores.redis_labels import RedisLabels

            client: Any = request.getfixturevalue("redis_client")
            return RedisLabels(client, "lt")
        store = open_store(url)
        closers.append(store.close)
        return Labels(store)

    yield make
    for close in closers:
        close()


def _rule(labels: LabelBackend, now: float, *, present: bool = True, expires_at: float | None = None) -> Any:
    return labels.set("user", "u", "x", present=present, now=now, source=RULE, actor="r", expires_at=expires_at)


def _person(labels: LabelBackend, now: float, *, present: bool, expires_at: float | None = None) -> Any:
    return labels.set("user", "u", "x", present=present, now=now, source=MANUAL, actor="mod", expires_at=expires_at,
                      reason="ticket")


def test_a_re_add_extends_to_the_later_expiry(backend: Backend) -> None:
    labels = backend()
    assert _rule(labels, T, expires_at=T + 30 * DAY) is not None
    later = _rule(labels, T + 3600, expires_at=T + 3600 + 30 * DAY)  # an hour later: 1% of 30 days was 7.2 h
    assert later is not None and later.expires_at == T + 3600 + 30 * DAY
    assert _rule(labels, T + 7200, expires_at=T + 29 * DAY) is None  # shorter: already present for longer
    for view in (labels, backend()):
        assert view.has("user", "u", "x", T + 30 * DAY + 1800)
        assert [r.expires_at for r in view.get("user", "u")] == [T + 3600 + 30 * DAY]


def test_a_persons_removal_of_an_absent_label_can_expire(backend: Backend) -> None:
    labels = backend()
    assert _person(labels, T, present=False, expires_at=T + 100) is not None  # the entity never had it
    assert _rule(labels, T + 50) is None  # held
    assert _rule(labels, T + 150) is not None  # the hold is over: rules may add it
    assert backend().has("user", "u", "x", T + 151)


def test_a_persons_change_can_be_released(backend: Backend) -> None:
    labels = backend()
    assert _person(labels, T, present=False) is not None
    assert _rule(labels, T + 5) is None
    released = _person(labels, T + 10, present=False, expires_at=T + 10)  # a release: the hold ends now
    assert released is not None and not released.held(T + 10)
    assert _rule(labels, T + 11) is not None
    assert backend().has("user", "u", "x", T + 12)
    # An expired manual label no longer outranks rules either.
    assert _person(labels, T + 20, present=True, expires_at=T + 30) is not None
    assert _rule(labels, T + 25, present=False) is None
    assert _rule(labels, T + 40) is not None


def test_labels_are_judged_as_they_were_at_the_time_asked(backend: Backend) -> None:
    labels = backend()
    _rule(labels, T, expires_at=T + 1000)
    _person(labels, T + 500, present=False)
    labels.set("user", "u", "vip", present=True, now=T + 10 * DAY, source=MANUAL, actor="mod", reason="today")
    for view in (labels, backend()):
        assert view.has("user", "u", "x", T + 100)  # before the person removed it
        assert not view.has("user", "u", "x", T + 600)
        assert not view.has("user", "u", "vip", T + 100)  # set later: a replay of that time does not see it
        assert not view.has_manual("user", "u", "vip", T + 100)
        assert view.has_manual("user", "u", "vip", T + 10 * DAY)
        assert [(r.label, r.source) for r in view.as_of("user", "u", T + 100)] == [("x", RULE)]
        assert [(r.label, r.present) for r in view.as_of("user", "u", T + 600)] == [("x", False)]
        assert [r.label for r in view.get("user", "u", T + 10 * DAY)] == ["vip"]


def test_a_change_of_the_past_does_not_replace_a_later_one(backend: Backend) -> None:
    labels = backend()
    _person(labels, T + 1000, present=False)
    # Replaying an event of an earlier time: no person had acted then, so the rule's label applies then.
    assert _rule(labels, T + 10, expires_at=T + 5000) is not None
    for view in (labels, backend()):
        assert view.has("user", "u", "x", T + 20)
        assert not view.has("user", "u", "x", T + 1001)  # the person's later removal still decides
        [latest] = view.get("user", "u")
        assert (latest.source, latest.present) == (MANUAL, False)
        assert len(view.history("user", "u")) == 2
