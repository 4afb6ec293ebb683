"""The guard, on a controlled clock: a rule that started to take effect and fires on more than its share of
the events decided in its window, once enough were, trips; one within its share, or past its window, or
with too few events, does not."""

from __future__ import annotations

from vigil.engine import Stats
from vigil.lifecycle.guard import Guard, GuardSettings, started

SETTINGS = GuardSettings(max_share=0.05, min_events=100, window=60.0)


def _stats(events: int, hits: int = 0, shadow: int = 0) -> Stats:
    return Stats(events=events, rule_hits={"R": hits}, shadow_hits={"R": shadow})


def test_a_rule_over_its_share_trips_once_enough_events_were_decided() -> None:
    guard = Guard(SETTINGS)
    guard.watch({"R": "new"}, _stats(1000, hits=500), now=0.0)  # totals before the change do not count
    assert guard.check(_stats(1050, hits=540), now=10.0) == []  # 50 events: too few to judge
    [trip] = guard.check(_stats(1100, hits=520, shadow=10), now=20.0)
    assert (trip.rule, trip.events, trip.hits, trip.seconds) == ("R", 100, 30, 20.0)
    assert "fired on 30 of 100 events (30.0%) in the 20 s after it was activated" in trip.reason(SETTINGS)
    assert trip.detail(SETTINGS)["guard"]["share"] == 0.3
    assert guard.watches == {} and guard.tripped == 1


def test_a_rule_within_its_share_is_not_paused_and_the_watch_ends_with_its_window() -> None:
    guard = Guard(SETTINGS)
    guard.watch({"R": "changed"}, _stats(0), now=0.0)
    assert guard.check(_stats(1000, hits=50), now=30.0) == []  # exactly 5%: allowed
    assert "R" in guard.watches
    assert guard.check(_stats(1000, hits=50), now=60.0) == []
    assert guard.watches == {}  # past its window: no longer watched
    assert guard.check(_stats(2000, hits=2000), now=61.0) == []


def test_a_disabled_guard_watches_nothing() -> None:
    guard = Guard(GuardSettings(enabled=False))
    guard.watch({"R": "new"}, _stats(0), now=0.0)
    assert guard.watches == {}


def test_started_names_new_changed_and_promoted_rules_that_take_effect() -> None:
    before = {"A": {"stage": "live", "fingerprint": "a", "percent": None},
              "B": {"stage": "live", "fingerprint": "b", "percent": None},
              "C": {"stage": "shadow", "fingerprint": "c", "percent": None},
              "D": {"stage": "live", "fingerprint": "d", "percent": None}}
    after = {"A": {"stage": "live", "fingerprint": "a", "percent": None},
             "B": {"stage": "live", "fingerprint": "b2", "percent": None},
             "C": {"stage": "live", "fingerprint": "c", "percent": None},
             "D": {"stage": "shadow", "fingerprint": "d2", "percent": None},
             "E": {"stage": "rollout", "fingerprint": "e", "percent": 5.0}}
    assert started(before, after) == {"B": "changed", "C": "stage", "E": "new"}
