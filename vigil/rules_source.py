"""Where the running rules come from: one source of truth per service or worker, chosen at start-up.

- `directory`: the rules directory (`--rules DIR`) is the truth. A change there is checked and
  activated within seconds; uploads, activations and rollbacks through the API are refused (409),
  since the next change on disk would silently undo them.
- `store`: the store's active version is the truth. Upload, activate and roll back through the API
  (or in another instance sharing the store); a directory only seeds a store that has no active
  version yet, and is not watched afterwards, so a restart with `--rules DIR` or an edit on disk
  never replaces what an admin uploaded.
- `auto` (the default): `directory` when a directory is given and the store's active version came
  from a directory too (or there is none), so `vigil serve --rules DIR` works as it always did on a
  laptop; `store` without a directory, and also when the store's active version was put there through
  the API (uploaded, or an older version activated): that version keeps running, and the log and
  /readyz say that the directory was not loaded.

The mode is resolved once, at start-up, and never changes while running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vigil.dsl.loader import RuleSet
from vigil.gate import Gate, RulesRejected
from vigil.stores.base import RulesStore, RulesVersion

RulesSource = Literal["directory", "store"]
SOURCES = ("auto", "directory", "store")
DISK_AUTHOR = "disk:"  # the author of a version read from a directory: "disk:" and the directory
DISK_SUFFIXES = (".vigil", ".txt", ".csv", ".tsv", ".list")  # rules files and the lists they read


@dataclass(frozen=True, slots=True)
class Resolved:
    """The mode chosen at start-up, and why (a sentence for the log and /readyz)."""

    source: RulesSource
    reason: str


def resolve_source(requested: str, rules_dir: str | Path | None, store: RulesStore | None) -> Resolved:
    """The mode to run in. `requested` is "auto", "directory" or "store" (ValueError otherwise);
    "directory" needs `rules_dir` (ValueError without)."""
    if requested not in SOURCES:
        raise ValueError(f"rules source {requested!r} is not one of {', '.join(SOURCES)}")
    if requested == "directory":
        if rules_dir is None:
            raise ValueError("rules source 'directory' needs a rules directory: give --rules DIR")
        return Resolved("directory", f"following the rules directory {rules_dir} (rules source: directory)")
    if requested == "store":
        return Resolved("store", "following the store's active version (rules source: store)")
    if rules_dir is None:
        return Resolved("store", "following the store's active version (no rules directory given)")
    placed = placed_through_api(store)
    if placed is not None:
        return Resolved("store", f"following the store: its active version {placed.seq} was put there through "
                                 f"the API ({placed.author!r}), so {rules_dir} is not loaded over it "
                                 "(--rules-source directory would replace it)")
    return Resolved("directory", f"following the rules directory {rules_dir} (rules source: auto)")


def placed_through_api(store: RulesStore | None) -> RulesVersion | None:
    """The store's active version when a person put it there through the API (uploaded it, or activated
    an older version, as a rollback does); None when there is none or a directory put it there."""
    if store is None:
        return None
    active = store.active_rules_version()
    if active is None:
        return None
    if not active.author.startswith(DISK_AUTHOR):
        return active
    newest = store.list_rules_versions(1)
    if newest and newest[0].seq != active.seq:  # a directory always activates the version it stores
        return active
    return None


def disk_author(root: Path) -> str:
    return f"{DISK_AUTHOR}{root}"


def read_directory(root: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    """A rules directory as a version: its files (path → text) and its entry files (every `.vigil`).
    Raises RulesRejected when it is missing, unreadable or has no rules file."""
    if not root.is_dir():
        raise RulesRejected(f"rules directory {root} does not exist")
    try:
        files = read_rules_dir(root)
    except (OSError, UnicodeDecodeError) as error:
        raise RulesRejected(f"rules directory {root} cannot be read: {error}") from None
    entry = tuple(sorted(p for p in files if p.endswith(".vigil")))
    if not entry:
        raise RulesRejected(f"rules directory {root} has no .vigil file")
    return files, entry


def seed_store(store: RulesStore, root: Path, gate: Gate) -> tuple[RulesVersion, RuleSet]:
    """Store the directory as the first version and activate it: how a directory starts a store that has
    no active version (rules source `store`). Raises RulesRejected when the gate refuses it."""
    files, entry = read_directory(root)
    ruleset = gate.admit(files, entry)
    stored = store.add_rules_version(ruleset.version, files, entry, author=disk_author(root),
                                     message=f"seeded from {root}: the store had no active version", now=time.time())
    store.activate_rules_version(stored.seq)
    return stored, ruleset


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
