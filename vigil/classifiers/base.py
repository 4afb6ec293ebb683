"""The one interface every classifier speaks: texts in, :class:`Classification` out.

Classifiers are called by name from rules (``classifier "spam" on event.text > 0.9``,
``policy "harassment" finds event.text violating``). Local models answer synchronously;
remote ones (policy-as-prompt over HTTP) are async at heart. Both expose the same two
methods so the engine can call either form without knowing which kind it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Status = Literal["ok", "unknown", "error"]


class ClassifierError(Exception):
    """A classifier could not be built, loaded or trained (bad artifact, bad data, missing package)."""


@dataclass(frozen=True, slots=True)
class Classification:
    """One classifier's answer for one text.

    ``flagged`` is the boolean the rules language tests (``finds ... violating``); ``score`` is the
    probability of the flagged/positive class (``classifier "spam" on text > 0.9``). When the
    classifier could not answer in time (``status="unknown"``) or its answer could not be parsed
    (``status="error"``), ``flagged``, ``label`` and ``score`` are all ``None``: never a guess.
    """

    label: str | None
    score: float | None
    flagged: bool | None
    version: str
    status: Status = "ok"
    rationale: str = ""
    category: str | None = None
    tokens: int = 0
    latency_s: float | None = None
    cached: bool = False

    @property
    def known(self) -> bool:
        """True when the classifier gave a usable answer."""
        return self.status == "ok"

    @classmethod
    def unknown(cls, version: str, reason: str, *, status: Status = "unknown") -> Classification:
        """An answer that says "no answer": the reason goes in ``rationale``."""
        return cls(label=None, score=None, flagged=None, version=version, status=status, rationale=reason)


@runtime_checkable
class Classifier(Protocol):
    """Anything that labels or scores texts in batches.

    ``classify`` is for callers without an event loop (CLI, eval, batch jobs). ``aclassify`` is for
    the engine's async path; ``deadline_s`` bounds how long the caller will wait, after which slow
    items come back as ``status="unknown"`` rather than raising.
    """

    @property
    def name(self) -> str:
        """The name rules use to call this classifier."""
        ...

    @property
    def version(self) -> str:
        """A short string that changes whenever answers could change (artifact or policy hash)."""
        ...

    @property
    def labels(self) -> tuple[str, ...]:
        """The label names this classifier can answer with."""
        ...

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        """Classify a batch, blocking; one answer per text, in order."""
        ...

    async def aclassify(
        self, texts: Sequence[str], *, deadline_s: float | None = None
    ) -> list[Classification]:
        """Classify a batch without blocking the event loop; one answer per text, in order."""
        ...
