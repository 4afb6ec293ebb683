"""Policies as Markdown files, for policy-as-prompt models.

A policy file is the system message, sent verbatim. Its version is a hash of its content, so a
cached answer is never reused once the wording changes, and eval results name the exact text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from vigil.classifiers.base import ClassifierError

# Sections a good policy has (after gpt-oss-safeguard's prompting guide); missing ones are hints.
RECOMMENDED_SECTIONS = ("instructions", "definitions", "violat", "safe", "examples")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Policy:
    """A named policy text and its content hash."""

    name: str
    text: str
    path: Path | None = None

    @property
    def version(self) -> str:
        """The first 12 hex digits of the SHA-256 of the text."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    def headings(self) -> list[str]:
        """The Markdown headings, in order."""
        return _HEADING.findall(self.text)

    def missing_sections(self) -> list[str]:
        """Recommended sections with no heading mentioning them (for ``vigil check`` hints)."""
        lowered = [h.lower() for h in self.headings()]
        return [s for s in RECOMMENDED_SECTIONS if not any(s in h for h in lowered)]


def load_policy(path: Path) -> Policy:
    """Read a policy file; its name is the file name without ``.md``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ClassifierError(f"cannot read policy {path}: {error.strerror}") from error
    if not text.strip():
        raise ClassifierError(f"policy {path} is empty")
    return Policy(name=path.stem, text=text, path=path)


def load_policies(directory: Path) -> dict[str, Policy]:
    """All ``*.md`` policies in ``directory``, by name."""
    return {p.stem: load_policy(p) for p in sorted(directory.glob("*.md"))}
