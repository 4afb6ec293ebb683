"""A rules set as an evaluation candidate: `vigil eval DATA -c rules:RULES_DIR`.

Each text becomes one event (by default a "post" whose `text` field holds it, from its own user, a
second apart) decided by a fresh engine; the prediction is positive when the verdict is at least
`flag`. Options go after the path: `rules:examples/rules?type=message&field=text&verdict=review`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from vigil.dsl.builtins import Functions
from vigil.dsl.loader import RuleSet, load_ruleset
from vigil.effects import VERDICT_RANK, Decision
from vigil.eval.candidates import Prediction
from vigil.signals.providers import Signals

EVAL_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the dataset's events are replayed from here


class RulesCandidate:
    def __init__(self, ruleset: RuleSet, *, name: str, event_type: str = "post", field: str = "text",
                 min_verdict: str = "flag", signals: Any = None) -> None:
        if min_verdict not in VERDICT_RANK or min_verdict == "allow":
            raise ValueError(f"verdict must be flag, review or block, not {min_verdict!r}")
        self.ruleset = ruleset
        self._name = name
        self.event_type = event_type
        self.field = field
        self.min_rank = VERDICT_RANK[min_verdict]
        self.signals = signals

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self.ruleset.version

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        from vigil.events import parse_event
        from vigil.runtime import build_engine
        from vigil.stages import SlowStage

        # A fresh in-memory engine per run, with the signals of the settings (vigil.runtime); rules that
        # wait for a policy model get their second stage at once, as `vigil test` gives them.
        engine = build_engine(self.ruleset, signals=self.signals)
        slow = SlowStage(engine, lambda decision: None)
        out: list[Prediction] = []
        try:
            for i, text in enumerate(texts):
                event = {"type": self.event_type, "id": f"eval-{i}", "time": EVAL_EPOCH + i,
                         "actor": {"id": f"eval-user-{i}"}, self.field: text}
                started = time.perf_counter()
                result = engine.process(event)
                if isinstance(result, Decision) and result.pending:
                    result = slow.run_batch([(parse_event(event), result)])[0]
                latency = time.perf_counter() - started
                if not isinstance(result, Decision):
                    out.append(Prediction(None, None, latency, rationale=result.reason))
                    continue
                rank = VERDICT_RANK[result.verdict]
                rules = ", ".join(h.rule for h in result.live_hits)
                out.append(Prediction(rank >= self.min_rank, rank / 3, latency, rationale=rules))
        finally:
            engine.close()
        return out


def rules_candidate(spec: str, ctx: Any = None, functions: Functions | None = None,
                    signals: Signals | None = None) -> RulesCandidate:
    """Build a candidate from `PATH[?type=…&field=…&verdict=…]` (several paths joined with `,`), deciding
    with `signals` (vigil.runtime.open_signals of the settings) and its rules calling their functions, or
    `functions` (Vigil's built-ins when both are None)."""
    path, _, query = spec.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    unknown = set(options) - {"type", "field", "verdict"}
    if unknown:
        raise ValueError(f"unknown rules candidate option(s) {sorted(unknown)}; use type, field, verdict")
    if signals is None and functions is not None:
        signals = Signals(functions=functions)
    ruleset = load_ruleset(path.split(","), functions=signals.functions if signals is not None else None)
    digest = hashlib.sha256(spec.encode()).hexdigest()[:6]
    return RulesCandidate(ruleset, name=f"rules:{path}#{digest}" if query else f"rules:{path}",
                          event_type=options.get("type", "post"), field=options.get("field", "text"),
                          min_verdict=options.get("verdict", "flag"), signals=signals)
