"""Rules versions in a running service: one source of truth, one gate, atomic activation, hot reload.

The service follows either its rules directory or the store (vigil/rules_source.py), never both:
following a directory, a change there is activated and the API refuses uploads, activations and
rollbacks (`FollowsDirectory`, 409); following the store, the API manages versions and a directory only
seeds an empty store. Every new version passes the one gate (vigil/gate.py: the checker, then the
rules' own tests with the engine's signals), whether it was uploaded, changed on disk, rolled back to
or activated by another instance. A version that fails is rejected with the messages, and the running
version keeps serving (at start-up, the service does not start). Activation swaps the engine's compiled
rules under its lock, so each event is decided wholly by one version and none is dropped. `poll` runs
every second or two: following the store, it activates what another instance made active there;
following a directory, what changed in it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from vigil.dsl.loader import RuleSet, load_ruleset
from vigil.dsl.testing import TEST_TIME_LIMIT
from vigil.engine import Engine
from vigil.gate import Gate, RulesRejected, diagnostic_json
from vigil.lifecycle.guard import WATCHED, Guard, GuardSettings, Trip, started
from vigil.lifecycle.overlay import effective_modes
from vigil.rules_source import (
    DISK_AUTHOR,
    SOURCES,
    RulesSource,
    dir_fingerprint,
    disk_author,
    read_directory,
    read_rules_dir,
    resolve_source,
    seed_store,
)
from vigil.service.compiler import DEFAULT_MIN_BYTES, LoadOffProcess
from vigil.stores.base import RulesStore, RulesVersion

log = logging.getLogger("vigil.service.rules")

__all__ = ["FollowsDirectory", "RulesManager", "RulesRejected", "diagnostic_json", "validate_files"]

GUARD_ACTOR = "guard"  # who the audit log names for the guard's pauses
EMPTY_RULES = {"no-rules.vigil": ""}  # what runs before any version is active (readyz says not ready)
MAX_FILES = 1000
MAX_PATH = 300


class FollowsDirectory(Exception):
    """An upload, activation or rollback through the API, refused because the service follows a rules
    directory: the next change on disk would silently replace what the API activated."""

    def __init__(self, action: str, rules_dir: Path | None) -> None:
        self.action = action
        self.rules_dir = rules_dir
        super().__init__(f"this service follows the rules directory {rules_dir} (rules source: directory), "
                         f"so it does not {action} rules versions through the API")

    hint = ("change the files in the directory (they are checked and activated within seconds), or restart "
            "with --rules-source store (env VIGIL_RULES_SOURCE=store) to manage versions through the API; "
            "the directory then only seeds a store that has no active version")


def validate_files(files: object, entry: object) -> tuple[dict[str, str], tuple[str, ...]]:
    """Check the shape of an upload: relative paths to text, entry files among them. ValueError if not."""
    if not isinstance(files, dict):
        raise TypeError('"files" must be an object of path → text')
    if not files:
        raise ValueError('"files" is empty: give at least one ".vigil" file')
    if len(files) > MAX_FILES:
        raise ValueError(f'"files" has {len(files)} entries, more than {MAX_FILES}')
    for path, text in files.items():
        if not isinstance(text, str):
            raise TypeError(f'"files"["{path}"] must be a string of rules text')
        parts = path.split("/")
        if (not path or len(path) > MAX_PATH or path.startswith("/") or "\\" in path or ".." in parts
                or posixpath.normpath(path) != path):
            raise ValueError(f'"files" path {path!r} must be relative, without "..", like "lists/words.txt"')
    if entry is None:
        entries = tuple(sorted(p for p in files if p.endswith(".vigil")))
    elif isinstance(entry, list) and all(isinstance(e, str) for e in entry):
        entries = tuple(entry)
    else:
        raise TypeError('"entry" must be a list of file paths')
    if not entries:
        raise ValueError('no entry file: add a ".vigil" file to "files" or name one in "entry"')
    missing = [e for e in entries if e not in files]
    if missing:
        raise ValueError(f'"entry" names {missing[0]!r}, which is not in "files"')
    return dict(files), entries


@dataclass(frozen=True, slots=True)
class DiskProblem:
    """Why the watched rules directory is not what runs: the error, since when (wall clock), when it was
    last tried (monotonic) and how many times."""

    error: str
    since: float
    tried_at: float
    attempts: int

    def json(self) -> dict[str, Any]:
        return {"error": self.error, "since": self.since, "attempts": self.attempts}


@dataclass(frozen=True, slots=True)
class StoreProblem:
    """The store's active version `seq` did not pass the gate here (this instance's signals, or a
    version stored by an older Vigil): the error, since when, when last tried (monotonic)."""

    seq: int
    error: str
    since: float
    tried_at: float

    def json(self) -> dict[str, Any]:
        return {"seq": self.seq, "error": self.error, "since": self.since}


class RulesManager:
    """Owns which rules version the engine runs, and where versions come from (`source`, resolved by
    `initial`). Activations are serialised by an asyncio lock; the slow parts (loading, compiling,
    tests, store I/O) run in worker threads so traffic keeps flowing."""

    def __init__(self, store: RulesStore, rules_dir: str | Path | None = None, *, source: str = "auto",
                 run_tests: bool = True, test_time_limit: float = TEST_TIME_LIMIT,
                 on_reload: Callable[[str, str], None] | None = None, retry_interval: float = 30.0,
                 off_process_bytes: int = DEFAULT_MIN_BYTES) -> None:
        if source not in SOURCES:
            raise ValueError(f"rules source {source!r} is not one of {', '.join(SOURCES)}")
        if source == "directory" and rules_dir is None:
            raise ValueError("rules source 'directory' needs a rules directory (--rules DIR)")
        self.store = store
        self.rules_dir = Path(rules_dir) if rules_dir is not None else None
        self.requested_source = source
        self.source: RulesSource | None = None  # "directory" or "store", once `initial` has resolved it
        self.source_reason = ""
        # The gate every version passes; `app.prepare` gives it the engine's signals before `initial`.
        self.gate = Gate(None, run_tests, test_time_limit)
        self.on_reload = on_reload or (lambda source, result: None)
        self.engine: Engine | None = None
        self.active: RulesVersion | None = None
        self.ruleset: RuleSet | None = None
        self.last_rejection: RulesRejected | None = None
        self.retry_interval = retry_interval
        self.loader = LoadOffProcess(off_process_bytes)
        self.disk_problem: DiskProblem | None = None  # the watched directory's last load failed
        self.store_problem: StoreProblem | None = None  # the store's active version fails the gate here
        self.notice: str | None = None  # a directory given but not loaded (following the store)
        self._fingerprint: tuple[tuple[str, int, int], ...] | None = None
        self._lock = asyncio.Lock()
        # The rule stages (vigil/lifecycle): the store's generation of them that runs here, and the guard
        # that pauses a rule firing on too many events just after it changed (`enable_lifecycle`).
        self.guard = Guard(GuardSettings(enabled=False))
        self.running: RuleSet | None = None  # what the engine runs: `ruleset` with the stages applied
        self.on_trip: Callable[[Trip], None] = lambda trip: None
        self.clock: Callable[[], float] = time.time
        self._generation = 0
        self._view: dict[str, dict[str, Any]] = {}

    def enable_lifecycle(self, states: Any, guard: GuardSettings, *, on_trip: Callable[[Trip], None] | None = None,
                         clock: Callable[[], float] | None = None) -> None:
        """Run each rule in its stored stage (`states`: vigil.lifecycle.RuleStates) and guard changes."""
        self.gate = self.gate.with_states(states)
        self.guard = Guard(guard)
        self.on_trip = on_trip or self.on_trip
        self.clock = clock or self.clock

    # ---- at startup (synchronous: before the engine exists) ----
    def initial(self) -> RuleSet:
        """Resolve the source, then the rules to start with. Following a directory: the directory
        (stored as a new version when it differs from the store's active one). Following the store: its
        active version; with none, the directory seeds it, if one is given; else an empty rules set.
        Raises RulesRejected when the directory's rules fail: a service never starts on broken rules."""
        resolved = resolve_source(self.requested_source, self.rules_dir, self.store)
        self.source, self.source_reason = resolved.source, resolved.reason
        log.info("rules: %s", resolved.reason)
        if resolved.source == "directory":
            assert self.rules_dir is not None
            written = self._initial_from_directory(self.rules_dir)
        else:
            written = self._initial_from_store()
        states = self.gate.states
        self._generation = states.generation() if states is not None else 0
        self.running = self.gate.running(written)
        self._view = self.view(written)
        return self.running

    def _initial_from_directory(self, root: Path) -> RuleSet:
        self._fingerprint = dir_fingerprint(root)
        files, entry = read_directory(root)
        ruleset = self.gate.admit(files, entry)
        current = self.store.active_rules_version()
        if current is None or current.version != ruleset.version:
            if current is not None and not current.author.startswith(DISK_AUTHOR):
                log.warning("rules in %s replace the store's active version %s (by %r): this service follows the "
                            "directory (rules source: directory)", root, current.seq, current.author)
            current = self.store.add_rules_version(ruleset.version, files, entry, author=disk_author(root),
                                                   message="loaded at startup", now=time.time())
            self.store.activate_rules_version(current.seq)
        self.active, self.ruleset = current, ruleset
        return ruleset

    def _initial_from_store(self) -> RuleSet:
        current = self.store.active_rules_version()
        if current is None and self.rules_dir is not None:
            self.active, self.ruleset = seed_store(self.store, self.rules_dir, self.gate)
            log.info("the store had no active rules version: seeded version %s from %s", self.active.seq,
                     self.rules_dir)
            return self.ruleset
        if current is None:
            return load_ruleset(list(EMPTY_RULES), files=EMPTY_RULES)
        if self.rules_dir is not None:
            self._note_directory_not_loaded(self.rules_dir, current)
        try:
            self.ruleset = self.gate.admit(current.files, current.entry)
            self.active = current
            return self.ruleset
        except RulesRejected as error:  # this instance's signals, or a version stored by an older Vigil
            self._store_refused(current.seq, error)
        return load_ruleset(list(EMPTY_RULES), files=EMPTY_RULES)

    def _note_directory_not_loaded(self, root: Path, current: RulesVersion) -> None:
        """Say (log, /readyz) that the directory given differs from the version that runs, and why."""
        try:
            files = read_rules_dir(root)
        except (OSError, UnicodeDecodeError):
            files = {}
        if files == current.files:
            return
        self.notice = (f"rules in {root} differ from the store's active version {current.seq} (by "
                       f"{current.author!r}) and were not loaded: this service follows the store, where a "
                       "directory only seeds an empty store; upload them (POST /v1/rules) to serve them")
        log.warning("%s", self.notice)

    def _store_refused(self, seq: int, error: RulesRejected) -> None:
        problem = self.store_problem
        since = problem.since if problem is not None and problem.seq == seq else time.time()
        self.store_problem = StoreProblem(seq, str(error), since, time.monotonic())
        self.last_rejection = error
        serving = f"version {self.active.seq} keeps serving" if self.active else "no version is active"
        log.error("the store's active rules version %s does not pass the gate here (%s; upload or activate "
                  "another):\n%s", seq, serving, error)

    def bind(self, engine: Engine) -> None:
        self.engine = engine

    # ---- while serving ----
    def require_store(self, action: str) -> None:
        """Raise FollowsDirectory unless versions may be changed through the API (following the store)."""
        if self.source == "directory":
            raise FollowsDirectory(action, self.rules_dir)

    async def upload(self, files: dict[str, str], entry: tuple[str, ...], *, author: str, message: str = "",
                     dry_run: bool = False) -> tuple[RulesVersion | None, RuleSet]:
        """Pass a new version through the gate and, unless `dry_run`, store and activate it. Raises
        FollowsDirectory (a dry run is allowed whatever the source) or RulesRejected."""
        if not dry_run:
            self.require_store("upload")
        return await self._admit_and_store(files, entry, author=author, message=message, source="api",
                                           dry_run=dry_run)

    async def _admit_and_store(self, files: dict[str, str], entry: tuple[str, ...], *, author: str, message: str,
                               source: str, dry_run: bool = False) -> tuple[RulesVersion | None, RuleSet]:
        try:
            ruleset = await self._admit(files, entry)
        except RulesRejected as error:
            self.last_rejection = error
            self.on_reload(source, "rejected")
            raise
        if dry_run:
            return None, ruleset
        async with self._lock:
            stored = await anyio.to_thread.run_sync(self._add, ruleset.version, files, entry, author, message)
            await self._activate(stored, ruleset)
        self.on_reload(source, "activated")
        return stored, ruleset

    async def _admit(self, files: dict[str, str], entry: tuple[str, ...]) -> RuleSet:
        """The gate, beside traffic: a large version is checked in a worker process (compiler.py), a
        small one in a thread; the tests run in a thread with the engine's signals."""
        gate = self.gate
        if not self.loader.wanted(files):
            return await anyio.to_thread.run_sync(gate.admit, files, entry)
        ruleset = await self.loader.load(files, entry, gate.functions)
        return await anyio.to_thread.run_sync(gate.test, ruleset)

    def close(self) -> None:
        self.loader.close()

    def _add(self, version: str, files: dict[str, str], entry: tuple[str, ...], author: str,
             message: str) -> RulesVersion:
        return self.store.add_rules_version(version, files, entry, author=author, message=message, now=time.time())

    async def activate(self, seq: int) -> RulesVersion:
        """Activate a stored version through the API (back or forward to it), after the gate. Raises
        FollowsDirectory, KeyError (no such version) or RulesRejected."""
        self.require_store("activate")
        return await self._activate_stored(seq, "api")

    async def _activate_stored(self, seq: int, source: str) -> RulesVersion:
        stored = await anyio.to_thread.run_sync(self.store.get_rules_version, seq)
        if stored is None:
            raise KeyError(seq)
        try:
            ruleset = await self._admit(stored.files, stored.entry)
        except RulesRejected as error:
            self.on_reload(source, "rejected")
            self.last_rejection = error
            raise
        async with self._lock:
            if source == "store" and self.active is not None and self.active.seq == stored.seq:
                return stored  # this instance activated it while the poll was looking
            # Following another instance's activation: the store says so already, and writing it again
            # could undo a newer activation made meanwhile.
            await self._activate(stored, ruleset, record=source != "store")
        self.on_reload(source, "activated")
        return stored

    async def _activate(self, stored: RulesVersion, ruleset: RuleSet, *, record: bool = True) -> None:
        engine = self.engine
        if engine is None:
            raise RuntimeError("the service has no engine yet")
        # Off the event loop (running a large version's code and loading its counters take a while), and
        # not behind events in the engine threads; the engine swaps versions under its lock, so an event is
        # decided by one version or the other.
        previous_running = self.running
        generation, running = await anyio.to_thread.run_sync(self._staged, ruleset)
        await anyio.to_thread.run_sync(engine.activate, running)
        if record:
            try:
                await anyio.to_thread.run_sync(self.store.activate_rules_version, stored.seq)
            except BaseException:
                if previous_running is not None:
                    await anyio.to_thread.run_sync(engine.activate, previous_running)
                raise
        self.active, self.ruleset, self.running, self._generation = stored, ruleset, running, generation
        self.store_problem = None  # what the store holds active is what runs here now
        await anyio.to_thread.run_sync(self._watch_started, ruleset)
        log.info("rules version %s (%s) active", stored.seq, stored.version)

    # ---- rule stages (vigil/lifecycle) ----
    def _staged(self, written: RuleSet) -> tuple[int, RuleSet]:
        """The stages' generation and `written` with them applied (the generation first: a change made
        meanwhile is seen by the next poll)."""
        states = self.gate.states
        generation = states.generation() if states is not None else 0
        return generation, self.gate.running(written)

    def view(self, written: RuleSet) -> dict[str, dict[str, Any]]:
        """Each rule's stage and meaning (rule → {"stage", "percent", "fingerprint"}), for the guard."""
        from vigil.analysis.backtest import rule_fingerprints  # the backtest's own notion of a changed rule

        states = self.gate.states.current() if self.gate.states is not None else {}
        prints = rule_fingerprints(written)
        return {m["rule"]: {"stage": m["stage"], "percent": m["percent"], "fingerprint": prints[m["rule"]]}
                for m in effective_modes(written, states)}

    def _watch_started(self, written: RuleSet) -> None:
        """Start the guard on the rules that began to take effect since the last view."""
        if self.gate.states is None:
            return
        view = self.view(written)
        begun = started(self._view, view)
        self._view = view
        # A rule moved back to shadow, draft or paused changes nothing any more: no longer watched.
        self.guard.forget({rule for rule, now in view.items() if now["stage"] not in WATCHED})
        if begun and self.engine is not None:
            self.guard.watch(begun, self.engine.stats, self.clock())
            log.info("the guard watches %s for %g s", ", ".join(sorted(begun)), self.guard.settings.window)

    async def apply_states(self) -> bool:
        """Run the stored stages when they changed since they were last applied here (a change through
        this service, another instance, the CLI or the guard); True when the engine changed."""
        states, engine, written = self.gate.states, self.engine, self.ruleset
        if states is None or engine is None or written is None:
            return False
        async with self._lock:
            generation = await anyio.to_thread.run_sync(states.generation)
            if generation == self._generation:
                return False
            generation, running = await anyio.to_thread.run_sync(self._staged, written)
            if self.running is None or running.version != self.running.version:
                await anyio.to_thread.run_sync(engine.activate, running)
            self.running, self._generation = running, generation
            await anyio.to_thread.run_sync(self._watch_started, written)
        log.info("rule stages changed (generation %s): running %s", generation, running.version)
        return True

    async def check_guard(self) -> list[Trip]:
        """Pause the rules the guard trips on, in the store (audited as the guard), then run that."""
        states, engine = self.gate.states, self.engine
        if states is None or engine is None or not self.guard.watches:
            return []
        settings = self.guard.settings
        trips = self.guard.check(engine.stats, self.clock())
        for trip in trips:
            await anyio.to_thread.run_sync(functools.partial(
                states.change, trip.rule, "paused", actor=GUARD_ACTOR, reason=trip.reason(settings),
                detail=trip.detail(settings), action="rules.guard_pause"))
            log.warning("rule %r %s", trip.rule, trip.reason(settings))
            self.on_trip(trip)
        if trips:
            await self.apply_states()
        return trips

    async def rollback(self) -> RulesVersion:
        """Activate the newest stored version older than the active one (after the gate)."""
        self.require_store("roll back")
        current = self.active.seq if self.active is not None else None
        versions = await anyio.to_thread.run_sync(self.store.list_rules_versions, 1000)
        older = [v for v in versions if current is None or v.seq < current]
        if not older:
            raise LookupError("no earlier rules version to roll back to")
        return await self._activate_stored(older[0].seq, "rollback")

    async def poll(self) -> None:
        """One round of hot reload from the one source: the store (another instance's activation), or
        the watched directory; then the rule stages, and the guard."""
        if self.source == "store":
            await self._poll_store()
        elif self.source == "directory" and self.rules_dir is not None:
            await self._poll_disk(self.rules_dir)
        await self.apply_states()
        await self.check_guard()

    async def _poll_store(self) -> None:
        """Activate the store's active version when another instance changed it. One that fails the gate
        here is tried again after `retry_interval` (a classifier or bank may answer by then), and kept
        in `store_problem` (shown by /readyz) meanwhile."""
        active = await anyio.to_thread.run_sync(self.store.active_rules_version)
        if active is None or (self.active is not None and active.seq == self.active.seq):
            self.store_problem = None
            return
        problem = self.store_problem
        if (problem is not None and problem.seq == active.seq
                and time.monotonic() - problem.tried_at < self.retry_interval):
            return
        try:
            await self._activate_stored(active.seq, "store")
        except RulesRejected as error:
            self._store_refused(active.seq, error)
            return
        except KeyError:  # activated and then deleted, or a store mid-change: the next round sees
            return
        self.store_problem = None

    async def _poll_disk(self, root: Path) -> None:
        """Load the watched directory when it changed, or when its last load failed and `retry_interval`
        has passed (a list file that was missing or a store that was briefly down may be fine now). A
        failure of any kind is kept in `disk_problem` (shown by /readyz) until a load succeeds."""
        fingerprint = await anyio.to_thread.run_sync(dir_fingerprint, root)
        problem = self.disk_problem
        retry = problem is not None and time.monotonic() - problem.tried_at >= self.retry_interval
        if fingerprint == self._fingerprint and not retry:
            return
        self._fingerprint = fingerprint
        try:
            files, entry = await anyio.to_thread.run_sync(read_directory, root)
            files, entry = validate_files(files, list(entry))
            if self.ruleset is not None and self._same_content(files):
                self.disk_problem = None
                return
            await self._warn_if_replacing_another(root)
            stored, _ = await self._admit_and_store(files, entry, author=disk_author(root),
                                                    message="changed on disk", source="disk")
        except Exception as error:  # noqa: BLE001 - whatever failed, the running version serves on; say so
            if error is not self.last_rejection:  # the gate's own refusals were counted as they happened
                self.on_reload("disk", "rejected")
            message = str(error) if isinstance(error, (RulesRejected, OSError, ValueError, TypeError)) else (
                f"{type(error).__name__}: {error}")
            serving = f"version {self.active.seq} keeps serving" if self.active else "no version is active"
            log.error("rules in %s not loaded (%s; retried every %g s and on any change):\n%s", root, serving,
                      self.retry_interval, message)
            first = problem.since if problem is not None else time.time()
            self.disk_problem = DiskProblem(message, first, time.monotonic(), (problem.attempts if problem else 0) + 1)
            return
        self.disk_problem = None
        log.info("rules reloaded from %s as version %s", root, stored.seq if stored else "-")

    async def _warn_if_replacing_another(self, root: Path) -> None:
        """Say so when a change on disk is about to replace a version that another instance (following
        the store) activated through the API: instances sharing a store should follow one source."""
        current = await anyio.to_thread.run_sync(self.store.active_rules_version)
        if (current is not None and (self.active is None or current.seq != self.active.seq)
                and not current.author.startswith(DISK_AUTHOR)):
            log.warning("rules in %s replace the store's active version %s (by %r), activated elsewhere: this "
                        "service follows the directory; instances sharing a store should all follow the store",
                        root, current.seq, current.author)

    def _same_content(self, files: dict[str, str]) -> bool:
        return self.active is not None and self.active.files == files

    async def run(self, interval: float) -> None:
        """Poll forever (cancelled at shutdown); a failing round is logged and the next one tried."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.poll()
            except Exception:  # the store may be briefly unreachable: keep serving, try again
                log.exception("rules reload round failed")
