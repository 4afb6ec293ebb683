"""Tests for vigil.demo.generator: determinism, the event format, and the shape of each attack."""

from __future__ import annotations

import doctest
import itertools
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vigil.demo import generator
from vigil.demo.generator import (
    ATTACK_KINDS,
    KNOWN_BAD_DOMAINS,
    generate,
    generate_command,
    main,
    write_jsonl,
)
from vigil.demo.texts import THROWAWAY_TLDS

Event = dict[str, Any]
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
IPV4 = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
URL_HOST = re.compile(r"https?://([^/\s]+)")
EXTRA_FIELDS: dict[str, dict[str, type]] = {
    "signup": {"email": str, "country": str},
    "login": {"account": str, "success": bool},
    "post": {"text": str, "channel": str},
    "message": {"text": str, "target": dict},
    "report": {"target": dict, "reason": str},
}
COMMON = {"type", "id", "time", "actor", "ip", "device", "truth"}


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return list(generate(20_000, seed=42))


def when(event: Event) -> datetime:
    return datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%S.%f%z")


def of_kind(events: Iterable[Event], kind: str) -> list[Event]:
    return [e for e in events if e["truth"]["attack"] == kind]


def max_in_window(times: list[datetime], window: timedelta) -> int:
    """The most of ``times`` (sorted) that fall within any one ``window``."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] > window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# -- determinism and streaming -----------------------------------------------------------------------


def test_same_seed_gives_identical_events() -> None:
    assert list(generate(3000, seed=5)) == list(generate(3000, seed=5))


def test_different_seed_gives_different_events() -> None:
    assert list(generate(500, seed=5)) != list(generate(500, seed=6))


def test_write_jsonl_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, 2000, seed=9)
    write_jsonl(b, 2000, seed=9)
    assert a.read_bytes() == b.read_bytes()
    lines = a.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2000
    assert [json.loads(line) for line in lines] == list(generate(2000, seed=9))


def test_generate_streams_lazily() -> None:
    # A billion events would never finish if they were built up front.
    first = list(itertools.islice(generate(10**9, seed=1), 50))
    assert len(first) == 50


def test_start_sets_the_clock() -> None:
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    first = next(iter(generate(10, seed=1, start=start)))
    assert start <= when(first) < start + timedelta(minutes=1)
    naive = next(iter(generate(10, seed=1, start=start.replace(tzinfo=None))))
    assert naive == first


def test_rejects_negative_count() -> None:
    with pytest.raises(ValueError):
        generate(-1, seed=1)
    assert list(generate(0, seed=1)) == []


# -- event format ------------------------------------------------------------------------------------


def test_every_event_has_the_required_fields(events: list[Event]) -> None:
    assert len(events) == 20_000
    for e in events:
        assert set(e) == COMMON | set(EXTRA_FIELDS[e["type"]]), e
        for name, kind in EXTRA_FIELDS[e["type"]].items():
            assert isinstance(e[name], kind), (name, e)
        assert set(e["actor"]) == {"id", "created_at"}
        assert isinstance(e["actor"]["id"], str) and e["actor"]["id"]
        assert RFC3339.match(e["actor"]["created_at"]), e
        assert e["device"].startswith("d-")
        octets = IPV4.match(e["ip"])
        assert octets and all(0 <= int(o) <= 255 for o in octets.groups()), e
        assert e["truth"]["attack"] in (None, *ATTACK_KINDS)
        if "target" in e:
            assert isinstance(e["target"]["id"], str)
        if e["type"] == "signup":
            assert "@" in e["email"] and re.fullmatch(r"[A-Z]{2}", e["country"])
    assert len({e["id"] for e in events}) == len(events)


def test_times_are_rfc3339_and_non_decreasing(events: list[Event]) -> None:
    times = [e["time"] for e in events]
    assert all(RFC3339.match(t) for t in times)
    assert times == sorted(times)
    span = when(events[-1]) - when(events[0])
    assert timedelta(minutes=30) < span < timedelta(days=1)


def test_accounts_exist_before_they_act(events: list[Event]) -> None:
    for e in events:
        assert e["actor"]["created_at"] <= e["time"], e
        if e["type"] == "signup":
            assert e["actor"]["created_at"] == e["time"]


def test_account_ages_range_from_minutes_to_years(events: list[Event]) -> None:
    ages = {e["actor"]["id"]: when(e) - datetime.fromisoformat(e["actor"]["created_at"]) for e in events}
    assert max(ages.values()) > timedelta(days=365)
    assert min(ages.values()) < timedelta(hours=1)
    assert sum(a < timedelta(days=7) for a in ages.values()) < 0.3 * len(ages)


# -- normal traffic ------------------------------------------------------------------------------------


def test_normal_share_is_about_ninety_percent(events: list[Event]) -> None:
    normal = sum(e["truth"]["attack"] is None for e in events) / len(events)
    assert 0.85 <= normal <= 0.95


def test_normal_traffic_looks_ordinary(events: list[Event]) -> None:
    normal = [e for e in events if e["truth"]["attack"] is None]
    types = Counter(e["type"] for e in normal)
    assert set(types) == set(EXTRA_FIELDS)
    logins = [e for e in normal if e["type"] == "login"]
    assert all(e["account"] == e["actor"]["id"] for e in logins)
    assert 0.9 < sum(e["success"] for e in logins) / len(logins) < 1.0
    hosts = {h for e in normal if "text" in e for h in URL_HOST.findall(e["text"])}
    assert "en.wikipedia.org" in hosts
    assert not hosts & set(KNOWN_BAD_DOMAINS)
    # Power-law activity, but no ordinary user anywhere near a bot's volume.
    per_user = Counter(e["actor"]["id"] for e in normal)
    assert len(per_user) > 1500
    assert per_user.most_common(1)[0][1] < 0.01 * len(normal)


# -- attacks ---------------------------------------------------------------------------------------------


def test_every_attack_kind_appears(events: list[Event]) -> None:
    kinds = Counter(e["truth"]["attack"] for e in events if e["truth"]["attack"])
    assert set(kinds) == set(ATTACK_KINDS)


def test_attack_kinds_have_similar_shares() -> None:
    kinds = Counter(e["truth"]["attack"] for e in generate(100_000, seed=3) if e["truth"]["attack"])
    total = sum(kinds.values())
    for kind in ATTACK_KINDS:
        assert 0.08 < kinds[kind] / total < 0.30, kinds


def test_spam_burst_is_a_new_account_posting_fast(events: list[Event]) -> None:
    posts: dict[str, list[Event]] = defaultdict(list)
    for e in of_kind(events, "spam_burst"):
        if e["type"] == "post":
            posts[e["actor"]["id"]].append(e)
    bursts = [p for p in posts.values() if max_in_window([when(e) for e in p], timedelta(minutes=10)) >= 25]
    assert bursts
    for burst in bursts:
        first = burst[0]
        assert when(first) - datetime.fromisoformat(first["actor"]["created_at"]) < timedelta(minutes=15)
    texts = [e["text"] for p in posts.values() for e in p]
    assert any(not t.isascii() for t in texts)  # homoglyphs or zero-width spaces
    assert any(re.search(r"f[o0]ll[o0]w", t, re.IGNORECASE) for t in texts)


def test_link_spam_links_to_throwaway_domains(events: list[Event]) -> None:
    spam = of_kind(events, "link_spam")
    hosts = [h for e in spam if "text" in e for h in URL_HOST.findall(e["text"])]
    assert len(hosts) == sum("text" in e for e in spam)
    assert all(h in KNOWN_BAD_DOMAINS or h.rsplit(".", 1)[1] in THROWAWAY_TLDS for h in hosts)
    assert {e["type"] for e in spam} >= {"post", "message"}


def test_credential_stuffing_is_one_ip_many_accounts(events: list[Event]) -> None:
    by_ip: dict[str, list[Event]] = defaultdict(list)
    for e in of_kind(events, "credential_stuffing"):
        assert e["type"] == "login"
        by_ip[e["ip"]].append(e)
    found = False
    for attempts in by_ip.values():
        ten_minutes = [e for e in attempts if when(e) - when(attempts[0]) <= timedelta(minutes=10)]
        if len({e["account"] for e in ten_minutes}) >= 30:
            found = True
            assert sum(not e["success"] for e in attempts) > 0.8 * len(attempts)
            assert all(e["account"] != e["actor"]["id"] for e in attempts)
    assert found


def test_harassment_is_many_abusive_messages_then_reports(events: list[Event]) -> None:
    harassment = of_kind(events, "harassment")
    pairs: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for e in harassment:
        if e["type"] == "message":
            pairs[(e["actor"]["id"], e["target"]["id"])].append(when(e))
    assert any(max_in_window(ts, timedelta(hours=1)) >= 12 for ts in pairs.values())
    reports = [e for e in harassment if e["type"] == "report"]
    assert reports
    assert all((e["target"]["id"], e["actor"]["id"]) in pairs for e in reports)


def test_scam_comes_from_several_accounts_with_obfuscation(events: list[Event]) -> None:
    messages = [e for e in of_kind(events, "scam") if e["type"] == "message"]
    assert len({e["actor"]["id"] for e in messages}) >= 4
    assert len({e["target"]["id"] for e in messages}) > 0.8 * len(messages)
    texts = [e["text"] for e in messages]
    assert any(not t.isascii() for t in texts)
    assert any(re.search(r"\b(\w ){3,}\w\b", t) for t in texts)  # "s e n d  b i t c o i n"


def test_ban_evasion_returns_on_the_same_device(events: list[Event]) -> None:
    evasion = of_kind(events, "ban_evasion")
    reported = Counter(e["target"]["id"] for e in evasion if e["type"] == "report")
    device_of = {e["actor"]["id"]: e["device"] for e in evasion if e["type"] == "post"}
    returns = [
        e
        for e in evasion
        if e["type"] == "signup"
        and any(device_of.get(banned) == e["device"] for banned, n in reported.items() if n >= 5)
    ]
    assert returns
    new_ids = {e["actor"]["id"] for e in returns}
    assert any(e["type"] == "post" and e["actor"]["id"] in new_ids for e in evasion)


# -- command line and docs --------------------------------------------------------------------------


def test_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    result = CliRunner().invoke(generate_command, ["--events", "500", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").count("\n") == 500
    assert "500 events" in result.stderr


def test_command_writes_stdout_and_takes_a_start() -> None:
    result = CliRunner().invoke(generate_command, ["--events", "5", "--start", "2030-01-01T00:00:00Z"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["time"].startswith("2030-01-01T00:0")


def test_command_help_and_bad_input() -> None:
    help_text = CliRunner().invoke(generate_command, ["--help"]).output
    assert "--events" in help_text and "--seed" in help_text and "--out" in help_text
    assert CliRunner().invoke(generate_command, ["--events", "-1"]).exit_code == 2
    assert CliRunner().invoke(generate_command, ["--start", "yesterday"]).exit_code == 2


def test_main_is_the_module_entry_point(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    with pytest.raises(SystemExit) as exit_info:
        main(["--events", "10", "--out", str(out)])
    assert exit_info.value.code == 0
    assert out.read_text(encoding="utf-8").count("\n") == 10


def test_doctests() -> None:
    result = doctest.testmod(generator)
    assert result.attempted > 0 and result.failed == 0
