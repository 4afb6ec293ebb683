"""An example Vigil plugin: a platform's own classifier and a lookup in its database.

Vigil finds it through the `vigil` entry point in pyproject.toml and calls `register_functions`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import Any

from vigil.dsl.builtins import Functions

STANDING_DB_ENV = "VIGIL_EXAMPLE_STANDING_DB"


def shouting(text: str) -> float:
    """The share of the letters of `text` in upper case (0 with no letters)."""
    letters = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


def standing_lookup(_signals: Any) -> Callable[[str], str | None]:
    """A user's standing ("good", "warned", "suspended") in the platform's database, or unknown when the
    user is not in it. Made once per engine: the database is named by the environment then."""
    path = os.environ.get(STANDING_DB_ENV)

    def standing(user: str) -> str | None:
        if path is None:
            raise LookupError(f"set {STANDING_DB_ENV} to the standing database")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            row = db.execute("SELECT standing FROM users WHERE id = ?", (user,)).fetchone()
        return None if row is None else str(row[0])

    return standing


def register_functions(functions: Functions) -> None:
    functions.add("shouting", ["string"], "number", "share of the letters in upper case, 0–1", call=shouting)
    # Slow: a database round trip, so rules that use it run in the second stage, after the first decision.
    functions.add("standing", ["string"], "string", "the user's standing in the platform's database",
                  bind=standing_lookup, slow=True)
