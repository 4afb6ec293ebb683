"""The activation gate: what every rules version passes before it runs, whoever activates it.

`vigil serve` at start-up and on a change on disk, an upload, activation or rollback through the API, a
version another instance made active, `vigil worker` at start-up and on reload: each asks one `Gate`.
It runs the checker (`load_ruleset`: parse, names, types, Python's own compiler), then the rules' own
tests (vigil/dsl/testing.py) with the signals of the runtime that will run the version (classifiers,
policy models, hash banks, media policy), so a test passes here exactly when it passes under
`vigil test` with the same options. A version that fails is refused with `RulesRejected`, carrying
the diagnostics and the failed tests; the caller keeps the version it runs.

The gate builds nothing: the front door (the service's lifespan, the worker's main, the runtime) hands
it the signals it built for its engine, and the stored rule stages (vigil/lifecycle) when it has a store:
`running` lays them over a version that passed, so every front door runs each rule in the stage a
rules manager gave it (draft, shadow, rollout, live, paused) without its text changing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from vigil.diagnostics import Diagnostic, DiagnosticError
from vigil.dsl.builtins import Functions
from vigil.dsl.loader import RuleSet, load_ruleset
from vigil.dsl.testing import TEST_TIME_LIMIT
from vigil.lifecycle.overlay import overlay
from vigil.lifecycle.states import RuleStates
from vigil.signals.providers import Signals


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


def load_checked(files: dict[str, str], entry: tuple[str, ...], functions: Functions | None = None) -> RuleSet:
    """The checker's half of the gate, on files given as path → text: pure, so a large version can run
    it in a worker process (service/compiler.py). `functions`: what the rules may call (Vigil's built-ins
    when None). Raises RulesRejected."""
    return _checked(lambda: load_ruleset(list(entry), files=files, functions=functions))


def load_checked_paths(paths: list[str], functions: Functions | None = None) -> RuleSet:
    """The checker's half of the gate, on rules files or directories on disk. Raises RulesRejected
    (a file that cannot be read is a diagnostic like any other)."""
    return _checked(lambda: load_ruleset(paths, functions=functions))


def _checked(load: Any) -> RuleSet:
    try:
        ruleset: RuleSet = load()
    except DiagnosticError as error:
        diagnostics = [diagnostic_json(d, error.sources) for d in error.diagnostics]
        n = len(error.errors)
        raise RulesRejected(f"the rules have {n} error{'s' if n != 1 else ''}", diagnostics) from None
    return ruleset


@dataclass(frozen=True, slots=True)
class Gate:
    """The gate with what it runs the rules' tests with: `signals` (the engine's own, or None for a
    runtime without any), whether to run the tests at all (`vigil serve --no-rule-tests` is not offered;
    tests of the service turn it off), and `time_limit`, the seconds all the tests of one version may
    run (the checker bounds their events). Raises RulesRejected; its message says what failed, not what
    happens next (callers add that: at start-up nothing is serving yet)."""

    signals: Signals | None = None
    run_tests: bool = True
    time_limit: float = TEST_TIME_LIMIT
    states: RuleStates | None = None  # the stored rule stages laid over what passes (None: as written)

    def with_signals(self, signals: Signals | None) -> Gate:
        return replace(self, signals=signals)

    def with_states(self, states: RuleStates | None) -> Gate:
        return replace(self, states=states)

    def running(self, written: RuleSet) -> RuleSet:
        """What runs for a version that passed: `written` with the stored rule stages applied (it
        itself without a store of stages, or when none applies). Reads the store."""
        return written if self.states is None else overlay(written, self.states.current())

    @property
    def functions(self) -> Functions | None:
        """The functions the rules are checked against: the engine's (its signals carry them, plugins'
        included), or Vigil's built-ins without signals."""
        return self.signals.functions if self.signals is not None else None

    def admit(self, files: dict[str, str], entry: tuple[str, ...]) -> RuleSet:
        """Check and test a version given as files (an upload, a stored version, a directory read)."""
        return self.test(load_checked(files, entry, self.functions))

    def admit_paths(self, paths: list[str]) -> RuleSet:
        """Check and test the rules files or directories at `paths`."""
        return self.test(load_checked_paths(paths, self.functions))

    def test(self, ruleset: RuleSet) -> RuleSet:
        """The second half, for a version the checker passed (perhaps in another process): its own
        tests, with this gate's signals, within `time_limit` seconds in all."""
        if not self.run_tests:
            return ruleset
        from vigil.dsl.testing import run_tests  # testing builds engines; the engine imports the DSL

        failed = [r for r in run_tests(ruleset, _beside(self.signals), time_limit=self.time_limit) if not r.passed]
        if failed:
            raise RulesRejected(
                f"{len(failed)} of the rules' {len(ruleset.program.tests)} tests failed",
                [diagnostic_json(d, ruleset.sources) for d in ruleset.warnings],
                [{"name": r.name, "location": r.location, "failures": list(r.failures)} for r in failed])
        return ruleset


def _beside(signals: Signals | None) -> Signals | None:
    """The engine's signals for tests that may run in another thread: the same classifiers, banks, media
    policy and decoder, with a cache of its own (the engine's is not shared across threads)."""
    if signals is None:
        return None
    return Signals(classifiers=signals.classifiers, matcher=signals.matcher, media_policy=signals.media_policy,
                   decoder=signals.decoder, functions=signals.functions)
