"""Rules versions in a running service: check, store, activate atomically, roll back, hot reload.

Every new version goes through the same gate, whether it was uploaded, changed on disk or activated by
another instance: `load_ruleset` (the checker) and then the rules' own tests. A version that fails
either is rejected with the messages, and the running version keeps serving (at start-up, the service
does not start). Activation swaps the
engine's compiled rules under its lock, so each event is decided wholly by one version and none is
dropped. `poll` runs every second or two: it activates what another instance made active in the shared
store, and what changed in the watched rules directory.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from vigil.diagnostics import Diagnostic, DiagnosticError
from vigil.dsl.loader import RuleSet, load_ruleset
from vigil.dsl.testing import TEST_TIME_LIMIT
from vigil.engine import Engine
from vigil.service.compiler import DEFAULT_MIN_BYTES, LoadOffProcess
from vigil.signals.providers import Signals
from vigil.stores.base import RulesStore, RulesVersion

log = logging.getLogger("vigil.service.rules")

EMPTY_RULES = {"no-rules.vigil": ""}  # what runs before any version is active (readyz says not ready)
MAX_FILES = 1000
MAX_PATH = 300
DISK_SUFFIXES = (".vigil", ".txt", ".csv", ".tsv", ".list")  # rules files and the lists they read


def diagnostic_json(d: Diagnostic, sources: dict[str, str]) -> dict[str, Any]:
    s = d.span
    return {"file": s.file, "line": s.line, "column": s.column, "end_line": s.end_line,
            "end_column": s.end_column, "severity": d.severity.value, "code": d.code, "message": d.message,
            "hint": d.hint, "text": str(d), "rendered": d.render(sources.get(s.file))}


@dataclass(slots=True)
class RulesRejected(Exception):
    """A rules version that the checker or the rules' tests refused; nothing was activated."""

    message: str
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    test_failures: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [self.message]
        lines += [d["rendered"] for d in self.diagnostics if d["severity"] == "error"]
        lines += [f"test {t['name']!r} ({t['location']}): {'; '.join(t['failures'])}" for t in self.test_failures]
        return "\n".join(lines)


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


def read_rules_dir(root: Path) -> dict[str, str]:
    """The rules files under a directory, by path relative to it (hidden files skipped)."""
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and path.suffix in DISK_SUFFIXES and not any(p.startswith(".") for p in rel.split("/")):
            files[rel] = path.read_text("utf-8")
    return files


def dir_fingerprint(root: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when any rules file under `root` is written, added or removed."""
    out = []
    for path in root.rglob("*"):
        if path.suffix in DISK_SUFFIXES:
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((path.as_posix(), st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


def check_rules(files: dict[str, str], entry: tuple[str, ...], run_tests: bool = True,
                signals: Signals | None = None, test_time_limit: float = TEST_TIME_LIMIT) -> RuleSet:
    """The gate every version passes: the checker, then the rules' own tests, run with `signals` (the
    engine's own classifiers and banks, so a test passes here exactly when it passes under `vigil test`
    with the same options), bounded in events by the checker and in time by `test_time_limit`. Raises
    RulesRejected; its message says what failed, not what happens next (callers add that: at start-up
    nothing is serving yet)."""
    try:
        ruleset = load_ruleset(list(entry), files=files)
    except DiagnosticError as error:
        diagnostics = [diagnostic_json(d, error.sources) for d in error.diagnostics]
        n = len(error.errors)
        raise RulesRejected(f"the rules have {n} error{'s' if n != 1 else ''}", diagnostics) from None
    if run_tests:
        test_rules(ruleset, signals, test_time_limit)
    return ruleset


def test_rules(ruleset: RuleSet, signals: Signals | None = None, time_limit: float = TEST_TIME_LIMIT) -> None:
    """The second half of the gate: the rules' own tests, with `signals`, within `time_limit` seconds in
    all. Raises RulesRejected."""
    from vigil.dsl.testing import run_tests as run

    failed = [r for r in run(ruleset, _beside(signals), time_limit=time_limit) if not r.passed]
    if failed:
        raise RulesRejected(
            f"{len(failed)} of the rules' {len(ruleset.program.tests)} tests failed",
            [diagnostic_json(d, ruleset.sources) for d in ruleset.warnings],
            [{"name": r.name, "location": r.location, "failures": list(r.failures)} for r in failed])


def _beside(signals: Signals | None) -> Signals | None:
    """The engine's signals for a gate that runs in another thread: the same classifiers, banks and media
    policy, with a cache of its own (the engine's is not shared across threads)."""
    if signals is None:
        return None
    return Signals(classifiers=signals.classifiers, matcher=signals.matcher, media_policy=signals.media_policy)


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


class RulesManager:
    """Owns which rules version the engine runs. Activations are serialised by an asyncio lock; the
    slow parts (loading, compiling, tests, store I/O) run in worker threads so traffic keeps flowing."""

    def __init__(self, store: RulesStore, rules_dir: str | Path | None = None, *, run_tests: bool = True,
                 test_time_limit: float = TEST_TIME_LIMIT,
                 on_reload: Callable[[str, str], None] | None = None, retry_interval: float = 30.0,
                 off_process_bytes: int = DEFAULT_MIN_BYTES) -> None:
        self.store = store
        self.rules_dir = Path(rules_dir) if rules_dir is not None else None
        self.run_tests = run_tests
        self.test_time_limit = test_time_limit
        self.on_reload = on_reload or (lambda source, result: None)
        self.engine: Engine | None = None
        self.active: RulesVersion | None = None
        self.ruleset: RuleSet | None = None
        self.last_rejection: RulesRejected | None = None
        self.retry_interval = retry_interval
        self.loader = LoadOffProcess(off_process_bytes)
        self.disk_problem: DiskProblem | None = None  # the watched directory's last load failed
        # What the rules' tests run with: the engine's signals, set before `initial` (app.py).
        self.signals: Signals | None = None
        self._fingerprint: tuple[tuple[str, int, int], ...] | None = None
        self._lock = asyncio.Lock()

    # ---- at startup (synchronous: before the engine exists) ----
    def initial(self) -> RuleSet:
        """The rules to start with: the watched directory if there is one (stored as a new version when
        it differs from the active one), else the store's active version, else an empty rules set.
        Raises RulesRejected when the directory's rules fail: a service never starts on broken rules."""
        if self.rules_dir is not None:
            if not self.rules_dir.is_dir():
                raise RulesRejected(f"rules directory {self.rules_dir} does not exist")
            self._fingerprint = dir_fingerprint(self.rules_dir)
            files = read_rules_dir(self.rules_dir)
            entry = tuple(p for p in files if p.endswith(".vigil"))
            ruleset = check_rules(*validate_files(files, list(entry) or None), run_tests=self.run_tests,
                                  signals=self.signals, test_time_limit=self.test_time_limit)
            current = self.store.active_rules_version()
            if current is None or current.version != ruleset.version:
                current = self.store.add_rules_version(ruleset.version, files, entry, author=f"disk:{self.rules_dir}",
                                                       message="loaded at startup", now=time.time())
                self.store.activate_rules_version(current.seq)
            self.active, self.ruleset = current, ruleset
            return ruleset
        current = self.store.active_rules_version()
        if current is not None:
            try:
                self.ruleset = check_rules(current.files, current.entry, run_tests=False)
                self.active = current
                return self.ruleset
            except RulesRejected as error:  # a version stored by an older Vigil that this one refuses
                log.error("stored rules version %s no longer loads:\n%s", current.seq, error)
        return load_ruleset(list(EMPTY_RULES), files=EMPTY_RULES)

    def bind(self, engine: Engine) -> None:
        self.engine = engine

    # ---- while serving ----
    async def upload(self, files: dict[str, str], entry: tuple[str, ...], *, author: str, message: str = "",
                     source: str = "api", dry_run: bool = False) -> tuple[RulesVersion | None, RuleSet]:
        """Check a new version and, unless `dry_run`, store and activate it. Raises RulesRejected."""
        try:
            ruleset = await self._check(files, entry, self.run_tests)
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

    async def _check(self, files: dict[str, str], entry: tuple[str, ...], run_tests: bool) -> RuleSet:
        """The gate, beside traffic: a large version is loaded in a worker process (compiler.py), a small
        one in a thread; the tests run in a thread with the engine's signals."""
        if not self.loader.wanted(files):
            return await anyio.to_thread.run_sync(check_rules, files, entry, run_tests, self.signals,
                                                  self.test_time_limit)
        ruleset = await self.loader.load(files, entry)
        if run_tests:
            await anyio.to_thread.run_sync(test_rules, ruleset, self.signals, self.test_time_limit)
        return ruleset

    def close(self) -> None:
        self.loader.close()

    def _add(self, version: str, files: dict[str, str], entry: tuple[str, ...], author: str,
             message: str) -> RulesVersion:
        return self.store.add_rules_version(version, files, entry, author=author, message=message, now=time.time())

    async def activate(self, seq: int, *, source: str = "api") -> RulesVersion:
        """Activate a stored version (a rollback, or a version another instance activated)."""
        stored = await anyio.to_thread.run_sync(self.store.get_rules_version, seq)
        if stored is None:
            raise KeyError(seq)
        try:
            ruleset = await self._check(stored.files, stored.entry, False)
        except RulesRejected as error:
            self.on_reload(source, "rejected")
            self.last_rejection = error
            raise
        async with self._lock:
            if source == "store" and self.active is not None and self.active.seq == stored.seq:
                return stored  # this instance activated it while the poll was looking
            await self._activate(stored, ruleset)
        self.on_reload(source, "activated")
        return stored

    async def _activate(self, stored: RulesVersion, ruleset: RuleSet) -> None:
        engine = self.engine
        if engine is None:
            raise RuntimeError("the service has no engine yet")
        previous = self.ruleset
        engine.activate(ruleset)  # in the event loop's thread: an event is decided by one version or the other
        try:
            await anyio.to_thread.run_sync(self.store.activate_rules_version, stored.seq)
        except BaseException:
            if previous is not None:
                engine.activate(previous)
            raise
        self.active, self.ruleset = stored, ruleset
        log.info("rules version %s (%s) active", stored.seq, stored.version)

    async def rollback(self) -> RulesVersion:
        """Activate the newest stored version older than the active one."""
        current = self.active.seq if self.active is not None else None
        versions = await anyio.to_thread.run_sync(self.store.list_rules_versions, 1000)
        older = [v for v in versions if current is None or v.seq < current]
        if not older:
            raise LookupError("no earlier rules version to roll back to")
        return await self.activate(older[0].seq, source="rollback")

    async def poll(self) -> None:
        """One round of hot reload: the shared store first (another instance's activation), then disk."""
        active = await anyio.to_thread.run_sync(self.store.active_rules_version)
        if active is not None and (self.active is None or active.seq != self.active.seq):
            try:
                await self.activate(active.seq, source="store")
            except (RulesRejected, KeyError) as error:
                log.error("rules version %s, active in the store, does not load here: %s", active.seq, error)
        if self.rules_dir is not None:
            await self._poll_disk(self.rules_dir)

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
            files = await anyio.to_thread.run_sync(read_rules_dir, root)
            files, entry = validate_files(files, None)
            if self.ruleset is not None and self._same_content(files):
                self.disk_problem = None
                return
            stored, _ = await self.upload(files, entry, author=f"disk:{root}", message="changed on disk",
                                          source="disk")
        except Exception as error:  # noqa: BLE001 - whatever failed, the running version serves on; say so
            if not isinstance(error, RulesRejected):
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
