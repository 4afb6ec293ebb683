"""The guard, after Wikimedia AbuseFilter's throttle: a rule that has just started to take effect (new in
an activated version, its text or a definition it uses changed, or moved to live or a rollout) and fires
on more than `max_share` of the events decided in its first `window` seconds, once at least `min_events`
were, is paused, with the figures recorded as the reason.

The guard counts what this process decided (the engine's totals): every instance watches its own share,
and the first to trip pauses the rule in the store for all of them. It only watches rules whose hits take
effect (live or in a rollout; shadow hits change nothing) and counts a rollout's hits in and out of it,
since the share it fires on is what shows a rule gone wrong. `check` takes the time, so tests drive it
with their own clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vigil.engine import Stats

WATCHED = ("live", "rollout")


@dataclass(frozen=True, slots=True)
class GuardSettings:
    enabled: bool = True
    max_share: float = 0.05  # of the events decided
    min_events: int = 200  # decided since the change, before the share counts
    window: float = 600.0  # seconds after the change that the rule is watched


@dataclass(frozen=True, slots=True)
class Watch:
    rule: str
    since: float  # when the watch began (the guard's clock)
    events: int  # the engine's event total then
    hits: int  # the rule's hit total then (live and shadow)
    why: str  # "new", "changed" or "stage"


@dataclass(frozen=True, slots=True)
class Trip:
    """A rule the guard pauses, and the figures why."""

    rule: str
    events: int
    hits: int
    share: float
    seconds: float
    why: str

    def reason(self, settings: GuardSettings) -> str:
        return (f"paused by the guard: fired on {self.hits} of {self.events} events ({self.share:.1%}) in the "
                f"{self.seconds:.0f} s after it was {self._what()}, above the {settings.max_share:.1%} allowed")

    def _what(self) -> str:
        return {"new": "activated", "changed": "changed", "stage": "promoted"}.get(self.why, "changed")

    def detail(self, settings: GuardSettings) -> dict[str, Any]:
        return {"guard": {"events": self.events, "hits": self.hits, "share": round(self.share, 6),
                          "seconds": round(self.seconds, 3), "why": self.why, "max_share": settings.max_share,
                          "min_events": settings.min_events, "window": settings.window}}


def _hits(stats: Stats, rule: str) -> int:
    return stats.rule_hits.get(rule, 0) + stats.shadow_hits.get(rule, 0)


class Guard:
    """Watches rules after they change; `check` says which to pause."""

    def __init__(self, settings: GuardSettings) -> None:
        self.settings = settings
        self.watches: dict[str, Watch] = {}
        self.tripped = 0

    def watch(self, rules: Mapping[str, str], stats: Stats, now: float) -> None:
        """Start watching `rules` (name → why) from `now`, counting from the engine's totals in `stats`."""
        if not self.settings.enabled:
            return
        for rule, why in rules.items():
            self.watches[rule] = Watch(rule, now, stats.events, _hits(stats, rule), why)

    def forget(self, rules: set[str] | frozenset[str]) -> None:
        for rule in rules:
            self.watches.pop(rule, None)

    def check(self, stats: Stats, now: float) -> list[Trip]:
        """The rules to pause now; watches past their window end."""
        settings, trips = self.settings, []
        for rule, w in list(self.watches.items()):
            events = stats.events - w.events
            hits = _hits(stats, rule) - w.hits
            if events >= settings.min_events and events > 0 and hits / events > settings.max_share:
                trips.append(Trip(rule, events, hits, hits / events, now - w.since, w.why))
                del self.watches[rule]
            elif now - w.since >= settings.window:
                del self.watches[rule]
        self.tripped += len(trips)
        return trips


def started(before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The rules that start to take effect between two views (rule → {"stage", "fingerprint"}): new ones,
    changed ones and ones moved into live or a rollout, each with why; only those now live or in a rollout."""
    out: dict[str, str] = {}
    for rule, now in after.items():
        if now["stage"] not in WATCHED:
            continue
        then = before.get(rule)
        if then is None:
            out[rule] = "new"
        elif then["fingerprint"] != now["fingerprint"]:
            out[rule] = "changed"
        elif then["stage"] != now["stage"] or then.get("percent") != now.get("percent"):
            out[rule] = "stage"
    return out
