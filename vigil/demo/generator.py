"""A seeded generator of realistic platform traffic with attack episodes mixed in.

``generate(n, seed)`` streams ``n`` events as dicts, the same ones for the same seed; ``write_jsonl``
writes them one JSON object per line, and ``python -m vigil.demo.generator --events N --seed S --out F``
(or ``vigil generate``) does so from the shell. Every event has::

    {"type": "post", "id": "e0000123", "time": "2026-11-02T14:03:05.120Z",
     "actor": {"id": "u123", "created_at": "2024-05-01T09:12:44.000Z"},
     "ip": "10.4.0.17", "device": "d-9f3a0c11b2e4", ..., "truth": {"attack": null}}

with ``time`` non-decreasing through the stream, and per type:

- ``signup``: ``email``, ``country`` (ISO 3166 alpha-2)
- ``login``: ``account`` (the account logged into; the actor's own for normal logins), ``success`` (bool)
- ``post``: ``text`` (URLs appear inside the text), ``channel`` ("c12")
- ``message``: ``text``, ``target`` ({"id": ...})
- ``report``: ``target`` ({"id": ...}), ``reason``

``truth.attack`` is ``None`` for normal traffic and one of ``ATTACK_KINDS`` for events of an attack
episode. It is ground truth for evaluation; rules must never read it.

About 90% of events are normal: a few thousand users with power-law activity and a daily rhythm,
posting and messaging SpamAssassin ham and chat lines (some with links to well-known sites), logging in
(occasionally mistyping a password and retrying), reporting now and then, and new users signing up.
Attack episodes start at random moments; the kind is weighted so that each kind contributes about the
same number of events.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import click

from vigil.demo.texts import (
    ABUSIVE_LINES,
    BENIGN_URLS,
    CHAT_LINES,
    COMMON_EMAIL_DOMAINS,
    KNOWN_BAD_DOMAINS,
    REPORT_REASONS,
    SCAM_LINES,
    SPAM_PHRASES,
    THROWAWAY_EMAIL_DOMAINS,
    first_sentence,
    leetspeak,
    load_sample,
    obfuscate,
    random_domain,
    spaced,
)

__all__ = [
    "ATTACK_KINDS",
    "DEFAULT_START",
    "KNOWN_BAD_DOMAINS",
    "generate",
    "generate_command",
    "main",
    "write_jsonl",
]

Event = dict[str, Any]

ATTACK_KINDS: tuple[str, ...] = (
    "spam_burst",
    "link_spam",
    "credential_stuffing",
    "harassment",
    "scam",
    "ban_evasion",
)
DEFAULT_START = datetime(2026, 11, 2, tzinfo=UTC)

N_USERS = 4000
N_CHANNELS = 60
EVENTS_PER_SECOND = 2.5  # mean rate of normal traffic; 1M events span about four and a half days
ATTACK_SHARE = 0.10
# Expected events per episode of each kind (from the ranges in the episode methods below). Kinds are
# drawn with weight 1/size so each contributes about the same number of events; test_generator checks it.
_EPISODE_SIZE = {
    "spam_burst": 43.5,
    "link_spam": 17.0,
    "credential_stuffing": 65.0,
    "harassment": 22.8,
    "scam": 21.4,
    "ban_evasion": 26.5,
}
_EPISODE_WEIGHTS = [1.0 / _EPISODE_SIZE[k] for k in ATTACK_KINDS]
# One episode per this many normal events gives ATTACK_SHARE overall.
_EPISODE_PROBABILITY = (ATTACK_SHARE / (1 - ATTACK_SHARE)) / (len(ATTACK_KINDS) / sum(_EPISODE_WEIGHTS))

# Normal traffic mix, as cumulative thresholds for one random draw.
_P_POST, _P_MESSAGE, _P_LOGIN, _P_REPORT = 0.40, 0.76, 0.97, 0.98  # the rest (2%) are signups
_LOGIN_FAILURE = 0.04  # mistyped passwords; most are retried successfully within a minute

_COUNTRIES = ("US",) * 8 + ("GB",) * 3 + ("DE",) * 3 + ("IN",) * 3 + ("BR",) * 2 + (
    "FR", "CA", "NL", "ES", "PL", "JP", "AU", "NG", "PH", "MX", "SE", "IT", "KR", "ZA", "TR",
)  # fmt: skip
_ATTACKER_COUNTRIES = ("US", "US", "NL", "DE", "VN", "ID", "BR", "IN", "RU", "CN", "NG", "UA", "RO", "PK")
_FIRST_NAMES = (
    "alex", "sam", "maria", "li", "fatima", "jonas", "priya", "tom", "ana", "kenji", "olu", "emma",
    "lucas", "noor", "david", "sofia", "ivan", "mei", "omar", "julia", "ravi", "chloe", "ben", "aisha",
)  # fmt: skip
_LAST_NAMES = (
    "smith", "garcia", "chen", "muller", "khan", "silva", "novak", "okafor", "tanaka", "rossi", "brown",
    "martin", "singh", "kowalski", "nguyen", "haddad", "jensen", "lopez", "ivanova", "walker",
)  # fmt: skip
_LINK_LEADS = (
    "check this out",
    "you need to see this",
    "omg is this you?",
    "free gift for you",
    "limited offer, hurry",
    "I found your photos here",
    "claim your reward",
    "best deal today",
    "verify your account",
)
_SCAM_KEYWORDS = ("gift card", "bitcoin", "send", "password", "prize", "bank", "fee", "giveaway")


def format_time(epoch: float) -> str:
    """RFC 3339 UTC with milliseconds: ``format_time(0)`` gives ``"1970-01-01T00:00:00.000Z"``.

    >>> format_time(1793023385.12)
    '2026-10-26T14:03:05.120Z'
    """
    ms = round(epoch * 1000)
    return _format_second(ms // 1000) + f".{ms % 1000:03d}Z"


def _format_second(second: int) -> str:
    tm = time.gmtime(second)
    return (
        f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
    )


class _World:
    """The population, pools of texts and addresses, and the episode planners for one seed."""

    def __init__(self, rng: random.Random, start: float) -> None:
        self.rng = rng
        self.start = start  # epoch seconds of the first possible event
        self.base_ms = round(start * 1000)
        self.next_uid = 1
        # Per-user columns, indexed by position; ids are "u<n>" with n starting at 1.
        self.uid: list[str] = []
        self.created: list[str] = []
        self.ip: list[str] = []
        self.device: list[str] = []
        self.friends: list[tuple[int, ...]] = []
        self.recent: list[int] = []  # users who signed up during the run, active right away
        self.shared_ips = [self._random_ip() for _ in range(30)]  # carrier NAT: many users, one address
        self._build_population()
        self._build_texts()
        self.channels = [f"c{i}" for i in range(1, N_CHANNELS + 1)]
        self.channel_pool = rng.choices(
            self.channels, weights=[1 / (i + 1) ** 0.8 for i in range(N_CHANNELS)], k=4096
        )

    # -- population -------------------------------------------------------------------------------

    def _random_ip(self) -> str:
        """An address from private or documentation ranges (never a real host)."""
        r, rr = self.rng.random(), self.rng.randrange
        if r < 0.45:
            return f"10.{rr(256)}.{rr(256)}.{rr(1, 255)}"
        if r < 0.65:
            return f"172.{rr(16, 32)}.{rr(256)}.{rr(1, 255)}"
        if r < 0.85:
            return f"100.{rr(64, 128)}.{rr(256)}.{rr(1, 255)}"
        return f"{self.rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rr(1, 255)}"

    def stamp(self, offset: float) -> str:
        """The time string of an event ``offset`` seconds after start, exactly as the emitter writes it."""
        ms = self.base_ms + int(offset * 1000)
        return _format_second(ms // 1000) + f".{ms % 1000:03d}Z"

    def _random_device(self) -> str:
        return f"d-{self.rng.getrandbits(48):012x}"

    def _email(self, throwaway: bool) -> str:
        rng = self.rng
        if throwaway:
            local = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=rng.randint(6, 12)))
            return f"{local}@{rng.choice(THROWAWAY_EMAIL_DOMAINS)}"
        sep = rng.choice((".", "_", ""))
        digits = str(rng.randrange(100)) if rng.random() < 0.6 else ""
        return f"{rng.choice(_FIRST_NAMES)}{sep}{rng.choice(_LAST_NAMES)}{digits}@{rng.choice(COMMON_EMAIL_DOMAINS)}"

    def _add_user(self, created: str, ip: str, device: str) -> int:
        index = len(self.uid)
        self.uid.append(f"u{self.next_uid}")
        self.next_uid += 1
        self.created.append(created)
        self.ip.append(ip)
        self.device.append(device)
        self.friends.append(())
        return index

    def _new_account_id(self) -> str:
        """An id from the same sequence as users', for accounts outside the normal population."""
        uid = f"u{self.next_uid}"
        self.next_uid += 1
        return uid

    def _build_population(self) -> None:
        rng = self.rng
        for _ in range(N_USERS):
            if rng.random() < 0.06:
                age_days = rng.uniform(0.05, 3.0)  # joined in the last few days
            else:
                age_days = 10 ** rng.uniform(0.5, math.log10(2200))  # a few days to six years, log-uniform
            ip = rng.choice(self.shared_ips) if rng.random() < 0.06 else self._random_ip()
            self._add_user(format_time(self.start - age_days * 86400), ip, self._random_device())
        # Power-law activity, capped so that no ordinary user looks like a bot.
        weights = [min(rng.paretovariate(1.3), 60.0) for _ in range(N_USERS)]
        self.active = rng.choices(range(N_USERS), weights=weights, k=1 << 17)
        for i in range(N_USERS):
            self.friends[i] = tuple(rng.choice(self.active) for _ in range(rng.randint(3, 8)))

    def pick_user(self) -> int:
        """A user index, by activity; recent signups get a share of the traffic too."""
        rng = self.rng
        if self.recent and rng.random() < 0.03:
            return self.recent[int(rng.random() * len(self.recent))]
        return self.active[int(rng.random() * len(self.active))]

    def _aged_account(self) -> tuple[str, str]:
        """An attacker account registered before the stream starts (so no signup event is due)."""
        return self._new_account_id(), format_time(self.start - self.rng.uniform(1, 30) * 86400)

    # -- texts ------------------------------------------------------------------------------------

    def _build_texts(self) -> None:
        rng = self.rng
        sample = load_sample()
        ham = [s.text for s in sample if s.label == "ham"]
        spam = [s.text for s in sample if s.label == "spam"]

        def with_benign_link(text: str) -> str:
            r = rng.random()
            if r < 0.08:
                return f"{text} {rng.choice(BENIGN_URLS)}"
            if r < 0.11:
                return f"{rng.choice(CHAT_LINES)} {rng.choice(BENIGN_URLS)}"
            return text

        self.post_texts = [
            with_benign_link(
                rng.choice(CHAT_LINES)
                if rng.random() < 0.45
                else (rng.choice(ham) if rng.random() < 0.5 else first_sentence(rng.choice(ham)))
            )
            for _ in range(4000)
        ]
        self.message_texts = [
            with_benign_link(
                rng.choice(CHAT_LINES) if rng.random() < 0.6 else first_sentence(rng.choice(ham))
            )
            for _ in range(3000)
        ]
        self.spam_texts = [self._spam_text(spam) for _ in range(2000)]
        self.scam_texts = [self._scam_text() for _ in range(800)]
        self.abuse_texts = [
            obfuscate(line, rng) if rng.random() < 0.35 else line
            for line in rng.choices(ABUSIVE_LINES, k=600)
        ]

    def _spam_text(self, spam: Sequence[str]) -> str:
        rng = self.rng
        phrase = rng.choice(SPAM_PHRASES)
        if rng.random() < 0.7:
            phrase = obfuscate(phrase, rng)
        body = rng.choice(spam)
        body = first_sentence(body) if rng.random() < 0.6 else body
        if rng.random() < 0.25:
            body = obfuscate(body, rng)
        text = f"{phrase.upper() if rng.random() < 0.3 else phrase}! {body}"
        if rng.random() < 0.3:
            domain = rng.choice(KNOWN_BAD_DOMAINS) if rng.random() < 0.5 else random_domain(rng)
            text += f" http://{domain}/{rng.getrandbits(24):x}"
        return text

    def _scam_text(self) -> str:
        rng = self.rng
        text = rng.choice(SCAM_LINES)
        r = rng.random()
        if r < 0.45:  # spell out or leet the words a keyword rule would look for
            for word in _SCAM_KEYWORDS:
                if word in text and rng.random() < 0.7:
                    text = text.replace(word, spaced(word) if rng.random() < 0.5 else leetspeak(word))
        elif r < 0.8:
            text = obfuscate(text, rng)
        if rng.random() < 0.25:
            text += f" https://{rng.choice(KNOWN_BAD_DOMAINS)}/claim?id={rng.getrandbits(20)}"
        return text

    # -- events -----------------------------------------------------------------------------------

    @staticmethod
    def event(
        kind: str | None, type_: str, actor: tuple[str, str], ip: str, device: str, **fields: Any
    ) -> Event:
        """One event in the canonical key order; id and time are filled in when it is emitted."""
        ev: Event = {
            "type": type_,
            "id": None,
            "time": None,
            "actor": {"id": actor[0], "created_at": actor[1]},
            "ip": ip,
            "device": device,
        }
        ev.update(fields)
        ev["truth"] = {"attack": kind}
        return ev

    def signup(
        self, kind: str | None, actor: tuple[str, str], ip: str, device: str, throwaway: bool
    ) -> Event:
        country = self.rng.choice(_ATTACKER_COUNTRIES if kind else _COUNTRIES)
        return self.event(kind, "signup", actor, ip, device, email=self._email(throwaway), country=country)

    def user(self, index: int) -> tuple[str, str]:
        return self.uid[index], self.created[index]

    # -- attack episodes: each returns (seconds after t, event) pairs, in any order ----------------

    def spam_burst(self, t: float) -> list[tuple[float, Event]]:
        """A brand-new account floods channels with 25-60 spam posts within 5-10 minutes."""
        rng, kind = self.rng, "spam_burst"
        actor = (self._new_account_id(), self.stamp(t))
        ip, device = self._random_ip(), self._random_device()
        out = [(0.0, self.signup(kind, actor, ip, device, throwaway=rng.random() < 0.85))]
        begin, span = rng.uniform(60, 600), rng.uniform(300, 600)
        channels = rng.sample(self.channels, rng.randint(1, 3))
        for _ in range(rng.randint(25, 60)):
            text = rng.choice(self.spam_texts)
            ev = self.event(kind, "post", actor, ip, device, text=text, channel=rng.choice(channels))
            out.append((begin + rng.random() * span, ev))
        return out

    def _attacker(self, kind: str, out: list[tuple[float, Event]], at: float, t: float) -> tuple[str, str]:
        """A fresh account (its signup appended to ``out`` at ``at``) or one registered before the run."""
        if self.rng.random() < 0.6:
            actor = (self._new_account_id(), self.stamp(t + at))
            ip, device = self._random_ip(), self._random_device()
            out.append((at, self.signup(kind, actor, ip, device, throwaway=self.rng.random() < 0.7)))
            return actor
        return self._aged_account()

    def link_spam(self, t: float) -> list[tuple[float, Event]]:
        """8-25 posts and messages linking to throwaway or known-bad domains, over 10-40 minutes."""
        rng, kind = self.rng, "link_spam"
        out: list[tuple[float, Event]] = []
        r = rng.random()
        if r < 0.5:
            actor = self._attacker(kind, out, 0.0, t) if rng.random() < 0.84 else self._aged_account()
        else:  # a compromised account of a real user, now driven from elsewhere
            actor = self.user(self.pick_user())
        ip, device = self._random_ip(), self._random_device()
        # A campaign promotes one or two domains, sometimes one of the well-known bad ones.
        domains = [random_domain(rng) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.5:
            domains.append(rng.choice(KNOWN_BAD_DOMAINS))
        begin, span = rng.uniform(30, 600), rng.uniform(600, 2400)
        for _ in range(rng.randint(8, 25)):
            lead = rng.choice(_LINK_LEADS) if rng.random() < 0.7 else rng.choice(CHAT_LINES)
            text = f"{lead} https://{rng.choice(domains)}/{rng.getrandbits(32):x}"
            if rng.random() < 0.6:
                channel = rng.choice(self.channel_pool)
                ev = self.event(kind, "post", actor, ip, device, text=text, channel=channel)
            else:
                target = {"id": self.uid[self.pick_user()]}
                ev = self.event(kind, "message", actor, ip, device, text=text, target=target)
            out.append((begin + rng.random() * span, ev))
        return out

    def credential_stuffing(self, t: float) -> list[tuple[float, Event]]:
        """One IP tries 30-100 distinct accounts within 3-10 minutes; a few guesses succeed."""
        rng, kind = self.rng, "credential_stuffing"
        actor = self._aged_account()
        ip = self._random_ip()
        one_device = self._random_device() if rng.random() < 0.5 else None
        n = rng.randint(30, 100)
        accounts: dict[str, bool] = {}  # account id -> exists
        while len(accounts) < n:
            if rng.random() < 0.15:  # leaked credentials for accounts this platform never had
                accounts.setdefault(f"u{rng.randrange(100_000, 999_999)}", False)
            else:
                accounts.setdefault(self.uid[rng.randrange(len(self.uid))], True)
        span = rng.uniform(180, 600)
        out = []
        for account, exists in accounts.items():
            success = exists and rng.random() < 0.05
            device = one_device or self._random_device()
            ev = self.event(kind, "login", actor, ip, device, account=account, success=success)
            out.append((rng.random() * span, ev))
        return out

    def harassment(self, t: float) -> list[tuple[float, Event]]:
        """12-30 abusive messages to one target within an hour; the target often reports."""
        rng, kind = self.rng, "harassment"
        out: list[tuple[float, Event]] = []
        if rng.random() < 0.3:
            actor = (self._new_account_id(), self.stamp(t))
            ip, device = self._random_ip(), self._random_device()
            out.append((0.0, self.signup(kind, actor, ip, device, throwaway=rng.random() < 0.5)))
            begin = rng.uniform(60, 600)
        else:
            index = self.pick_user()
            actor, ip, device, begin = self.user(index), self.ip[index], self.device[index], 0.0
        victim = self.pick_user()
        while self.uid[victim] == actor[0]:
            victim = self.pick_user()
        span = rng.uniform(900, 3600)
        times = sorted(begin + rng.random() * span for _ in range(rng.randint(12, 30)))
        for dt in times:
            text = rng.choice(self.abuse_texts)
            target = {"id": self.uid[victim]}
            out.append((dt, self.event(kind, "message", actor, ip, device, text=text, target=target)))
        if rng.random() < 0.75:
            reporter = self.user(victim)
            for _ in range(rng.randint(1, 3)):
                dt = rng.uniform(times[min(3, len(times) - 1)], times[-1] + 600)
                reason = "harassment" if rng.random() < 0.8 else "hate"
                ev = self.event(
                    kind, "report", reporter, self.ip[victim], self.device[victim],
                    target={"id": actor[0]}, reason=reason,
                )  # fmt: skip
                out.append((dt, ev))
        return out

    def scam(self, t: float) -> list[tuple[float, Event]]:
        """2-5 accounts each send 3-8 obfuscated scam messages to different users within an hour."""
        rng, kind = self.rng, "scam"
        out: list[tuple[float, Event]] = []
        for _ in range(rng.randint(2, 5)):
            at = rng.uniform(0, 600)
            actor = self._attacker(kind, out, at, t)
            ip, device = self._random_ip(), self._random_device()
            begin, span = at + rng.uniform(30, 300), rng.uniform(600, 3000)
            for _ in range(rng.randint(3, 8)):
                text = rng.choice(self.scam_texts)
                target = {"id": self.uid[self.pick_user()]}
                ev = self.event(kind, "message", actor, ip, device, text=text, target=target)
                out.append((begin + rng.random() * span, ev))
        return out

    def ban_evasion(self, t: float) -> list[tuple[float, Event]]:
        """A user posts abuse, draws 6-12 reports, then signs up again from the same device and goes on."""
        rng, kind = self.rng, "ban_evasion"
        index = self.pick_user()
        banned, ip, device = self.user(index), self.ip[index], self.device[index]
        pool = self.abuse_texts if rng.random() < 0.5 else self.spam_texts
        out: list[tuple[float, Event]] = []
        for _ in range(rng.randint(3, 6)):
            text, channel = rng.choice(pool), rng.choice(self.channel_pool)
            out.append(
                (
                    rng.uniform(0, 900),
                    self.event(kind, "post", banned, ip, device, text=text, channel=channel),
                )
            )
        reporters: set[int] = set()
        n_reports = rng.randint(6, 12)
        while len(reporters) < n_reports:
            candidate = self.pick_user()
            if candidate != index:
                reporters.add(candidate)
        for r in sorted(reporters):
            reason = rng.choice(("harassment", "hate", "spam"))
            target = {"id": banned[0]}
            ev = self.event(
                kind, "report", self.user(r), self.ip[r], self.device[r], target=target, reason=reason
            )
            out.append((rng.uniform(120, 1800), ev))
        # Banned at about 30 minutes; comes back on the same device with new accounts.
        at = 1800 + rng.uniform(600, 2400)
        for _ in range(rng.randint(1, 3)):
            actor = (self._new_account_id(), self.stamp(t + at))
            new_ip = ip if rng.random() < 0.5 else self._random_ip()
            out.append((at, self.signup(kind, actor, new_ip, device, throwaway=rng.random() < 0.6)))
            for _ in range(rng.randint(3, 8)):
                text, channel = rng.choice(pool), rng.choice(self.channel_pool)
                ev = self.event(kind, "post", actor, new_ip, device, text=text, channel=channel)
                out.append((at + rng.uniform(60, 1800), ev))
            at += rng.uniform(300, 900)
        return out


def generate(n_events: int, seed: int, start: datetime | None = None) -> Iterator[Event]:
    """Yield ``n_events`` events, identical for the same ``seed`` and ``start``.

    ``start`` (default ``DEFAULT_START``; naive means UTC) is the time traffic begins. Events stream: memory
    stays flat however many are asked for.

    >>> events = list(generate(3, seed=1))
    >>> [e["id"] for e in events]
    ['e0000000', 'e0000001', 'e0000002']
    """
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    begin = start or DEFAULT_START
    if begin.tzinfo is None:
        begin = begin.replace(tzinfo=UTC)
    rng = random.Random(seed)
    world = _World(rng, begin.timestamp())
    return _run(world, n_events)


def _run(world: _World, n: int) -> Iterator[Event]:
    # Hot loop: normal events are built inline from precomputed pools; attack episodes are planned whole
    # when they start and wait in a heap until their times come up.
    rng = world.rng
    rand, log = rng.random, math.log
    episodes = {kind: getattr(world, kind) for kind in ATTACK_KINDS}
    pending: list[tuple[float, int, Event]] = []  # (seconds after start, tie-breaker, event)
    seq = 0
    base_ms = world.base_ms
    last_second, prefix = -1, ""
    start_hour = world.start / 3600
    # Daily rhythm: busiest around 19:00 UTC, quietest around 07:00, mean 1.
    rhythm = [1 + 0.55 * math.cos(2 * math.pi * (h - 19) / 24) for h in range(24)]
    mean_gap = 1.0 / EVENTS_PER_SECOND
    uid, created, ips, devices, friends = world.uid, world.created, world.ip, world.device, world.friends
    post_texts, message_texts, channel_pool = world.post_texts, world.message_texts, world.channel_pool
    n_post, n_msg, n_chan = len(post_texts), len(message_texts), len(channel_pool)
    pick_user = world.pick_user
    t = 0.0
    emitted = 0

    while emitted < n:
        t -= log(1.0 - rand()) * mean_gap / rhythm[int(start_hour + t / 3600) % 24]
        while pending and pending[0][0] <= t:
            at, _, due = heapq.heappop(pending)
            ms = base_ms + int(at * 1000)
            second = ms // 1000
            if second != last_second:
                last_second, prefix = second, _format_second(second)
            due["id"] = f"e{emitted:07d}"
            due["time"] = f"{prefix}.{ms - second * 1000:03d}Z"
            yield due
            emitted += 1
            if emitted >= n:
                return

        u = pick_user()
        r = rand()
        ip = ips[u] if rand() < 0.93 else world._random_ip()  # mostly home, sometimes mobile or travelling
        ev: Event
        if r < _P_POST:
            ev = {
                "type": "post", "id": None, "time": None,
                "actor": {"id": uid[u], "created_at": created[u]}, "ip": ip, "device": devices[u],
                "text": post_texts[int(rand() * n_post)], "channel": channel_pool[int(rand() * n_chan)],
                "truth": {"attack": None},
            }  # fmt: skip
        elif r < _P_MESSAGE:
            fr = friends[u]
            target = fr[int(rand() * len(fr))] if fr and rand() < 0.8 else pick_user()
            ev = {
                "type": "message", "id": None, "time": None,
                "actor": {"id": uid[u], "created_at": created[u]}, "ip": ip, "device": devices[u],
                "text": message_texts[int(rand() * n_msg)], "target": {"id": uid[target]},
                "truth": {"attack": None},
            }  # fmt: skip
        elif r < _P_LOGIN:
            success = rand() >= _LOGIN_FAILURE
            ev = {
                "type": "login", "id": None, "time": None,
                "actor": {"id": uid[u], "created_at": created[u]}, "ip": ip, "device": devices[u],
                "account": uid[u], "success": success, "truth": {"attack": None},
            }  # fmt: skip
            if not success and rand() < 0.85:
                retry = dict(ev, actor=dict(ev["actor"]), success=True, truth={"attack": None})
                seq += 1
                heapq.heappush(pending, (t + 5 + rand() * 55, seq, retry))
        elif r < _P_REPORT:
            target = pick_user()
            ev = {
                "type": "report", "id": None, "time": None,
                "actor": {"id": uid[u], "created_at": created[u]}, "ip": ip, "device": devices[u],
                "target": {"id": uid[target]}, "reason": REPORT_REASONS[int(rand() * len(REPORT_REASONS))],
                "truth": {"attack": None},
            }  # fmt: skip
        else:
            new = world._add_user(world.stamp(t), world._random_ip(), world._random_device())
            world.friends[new] = tuple(pick_user() for _ in range(3))
            world.recent.append(new)
            ev = world.signup(None, world.user(new), ips[new], devices[new], throwaway=rand() < 0.02)

        ms = base_ms + int(t * 1000)
        second = ms // 1000
        if second != last_second:
            last_second, prefix = second, _format_second(second)
        ev["id"] = f"e{emitted:07d}"
        ev["time"] = f"{prefix}.{ms - second * 1000:03d}Z"
        yield ev
        emitted += 1

        if rand() < _EPISODE_PROBABILITY:
            kind = rng.choices(ATTACK_KINDS, weights=_EPISODE_WEIGHTS)[0]
            for dt, attack in episodes[kind](t):
                seq += 1
                heapq.heappush(pending, (t + dt, seq, attack))


def write_jsonl(path: str | Path | TextIO, n: int, seed: int, start: datetime | None = None) -> int:
    """Write ``generate(n, seed, start)`` to ``path`` (a file name or an open text file), one event a line.

    Returns the number of attack events written.
    """
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    attacks = 0

    def dump(fh: TextIO) -> None:
        nonlocal attacks
        batch: list[str] = []
        for ev in generate(n, seed, start):
            if ev["truth"]["attack"] is not None:
                attacks += 1
            batch.append(encode(ev))
            if len(batch) >= 4096:
                batch.append("")
                fh.write("\n".join(batch))
                batch = []
        if batch:
            batch.append("")
            fh.write("\n".join(batch))

    if isinstance(path, (str, Path)):
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            dump(fh)
    else:
        dump(path)
    return attacks


def _parse_start(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2026-11-02T00:00:00Z") from None


@click.command("generate")
@click.option(
    "--events",
    "n_events",
    type=click.IntRange(min=0),
    default=100_000,
    show_default=True,
    help="How many events to write.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed; the same seed gives the same file."
)
@click.option("--out", default="-", show_default=True, help="Output file, '-' for stdout.")
@click.option(
    "--start",
    callback=_parse_start,
    default=None,
    help=f"When traffic begins, ISO 8601, UTC if no offset. [default: {DEFAULT_START:%Y-%m-%dT%H:%MZ}]",
)
def generate_command(n_events: int, seed: int, out: str, start: datetime | None) -> None:
    """Write seeded demo traffic, one JSON event a line, with labelled attack episodes mixed in."""
    began = time.perf_counter()
    target: str | TextIO = sys.stdout if out == "-" else out
    attacks = write_jsonl(target, n_events, seed, start)
    elapsed = time.perf_counter() - began
    share = attacks / n_events if n_events else 0.0
    click.echo(
        f"{n_events} events ({share:.1%} attack) in {elapsed:.1f}s ({n_events / max(elapsed, 1e-9):,.0f}/s)",
        err=True,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m vigil.demo.generator --events N --seed S --out FILE`` (exits when done)."""
    generate_command.main(
        args=list(argv) if argv is not None else None, prog_name="python -m vigil.demo.generator"
    )


if __name__ == "__main__":
    main()
