"""Errors as values with locations: what went wrong, where, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Span:
    """A range of source text; lines and columns start at 1."""

    file: str
    line: int
    column: int
    end_line: int = 0
    end_column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NO_SPAN = Span("<unknown>", 0, 0)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    message: str
    span: Span
    severity: Severity = Severity.ERROR
    hint: str | None = None
    code: str = "error"

    def __str__(self) -> str:
        text = f"{self.span}: {self.severity.value}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def render(self, source: str | None) -> str:
        """The message, then the offending source line with a caret under the column (as Jinja, Lark)."""
        lines = [str(self)]
        if source is not None and 0 < self.span.line <= len(source.splitlines()):
            text = source.splitlines()[self.span.line - 1]
            lines.append(f"    {text}")
            width = 1
            if self.span.end_line == self.span.line and self.span.end_column > self.span.column:
                width = self.span.end_column - self.span.column
            lines.append("    " + " " * (self.span.column - 1) + "^" * width)
        return "\n".join(lines)


@dataclass(slots=True)
class DiagnosticError(Exception):
    """Raised at a boundary (loading a rules set) carrying every diagnostic found."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        return "\n".join(d.render(self.sources.get(d.span.file)) for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]
