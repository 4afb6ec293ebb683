"""Quality checks (Coop #208): golden items and second reviews, scored per reviewer and per queue.

- **Golden items**: a lead marks an item's evidence with its known answer (`add_golden`). At
  `[queues.NAME] golden_rate` (0 to 1) of the claims of a queue's next item, the reviewer is handed a
  fresh copy of a golden item they have not been given before instead: an item like any other (its own
  id, the evidence, the subject), scored when decided (the action against the answer), never producing
  effects.
- **Second reviews**: `second_review_rate` (0 to 1) of a queue's real decisions open a copy of the item
  for a second, different person (never handed to, claimable or decidable by the first), blind to the
  first decision; its decision has no effects and records whether the two agree.

Both live in the review tables' database (`review_golden`, `review_checks`) and are written in the same
transaction as the items they make. `numbers` gives golden accuracy and agreement per queue and per
reviewer.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from vigil.review.store import _ITEM_COLUMNS, Item, ReviewStore, Tx, _item, new_id
from vigil.stores.tables import Tables

_PG_LOCK = 0x7175616c  # advisory lock for these migrations ("qual")
_TABLES = """
CREATE TABLE review_golden (
    id TEXT PRIMARY KEY, queue TEXT NOT NULL, subject_type TEXT NOT NULL, subject_key TEXT NOT NULL,
    answer TEXT NOT NULL, evidence TEXT NOT NULL, created_by TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX review_golden_queue ON review_golden (queue);
CREATE TABLE review_checks (
    item_id TEXT PRIMARY KEY, kind TEXT NOT NULL, queue TEXT NOT NULL, reference TEXT NOT NULL,
    first_actor TEXT, expected TEXT NOT NULL, served_to TEXT, actor TEXT, given TEXT, agreed INTEGER,
    created_at DOUBLE PRECISION NOT NULL, scored_at DOUBLE PRECISION
);
CREATE INDEX review_checks_queue ON review_checks (queue, kind);
"""
MIGRATIONS = {"sqlite": [_TABLES], "postgres": [_TABLES]}
MAX_GOLDEN_EVIDENCE = 100


class Quality:
    """Golden items and second reviews over one review store."""

    def __init__(self, store: ReviewStore, tables: Tables, *, chance: Callable[[], float] | None = None) -> None:
        self.store = store
        self.tables = tables  # only for its migrations; the work runs in the review store's transactions
        self.chance = chance or random.SystemRandom().random

    @classmethod
    def over(cls, state_store: Any, store: ReviewStore, **kwargs: Any) -> Quality:
        return cls(store, Tables.over(state_store, MIGRATIONS, "review_quality_schema_version", _PG_LOCK), **kwargs)

    def close(self) -> None:
        self.tables.close()

    # ---- golden items ----
    def add_golden(self, item: Item, answer: str, actor: str, now: float) -> dict[str, Any]:
        evidence = self.store.evidence(item.id, limit=MAX_GOLDEN_EVIDENCE)
        golden = {"id": new_id("golden"), "queue": item.queue, "subject": {"entity": item.subject_type,
                                                                           "key": item.subject_key},
                  "answer": answer, "created_by": actor, "created_at": now, "evidence": len(evidence)}
        with self.store.tx() as tx:
            tx.execute("INSERT INTO review_golden (id, queue, subject_type, subject_key, answer, evidence, created_by, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (golden["id"], item.queue, item.subject_type, item.subject_key, answer,
                        orjson.dumps(evidence).decode(), actor, now))
        return golden

    def serve_golden(self, queue: str, actor: str, now: float, lease: float, rate: float) -> Item | None:
        """At `rate`, a fresh copy of a golden item of `queue` that `actor` was never given, claimed by them."""
        if rate <= 0 or self.chance() >= rate:
            return None
        with self.store.tx() as tx:
            row = tx.execute("SELECT id, subject_type, subject_key, answer, evidence FROM review_golden WHERE queue = ? "
                             "AND id NOT IN (SELECT reference FROM review_checks WHERE kind = 'golden' AND served_to = ?) "
                             "ORDER BY created_at, id LIMIT 1", (queue, actor)).fetchone()
            if row is None:
                return None
            item_id = self._copy(tx, queue, str(row[1]), str(row[2]), orjson.loads(row[4]), now)
            tx.execute("UPDATE review_items SET claimed_by = ?, lease_until = ? WHERE id = ?", (actor, now + lease, item_id))
            tx.log(item_id, "claimed", actor, now, lease_until=now + lease)
            tx.execute("INSERT INTO review_checks (item_id, kind, queue, reference, expected, served_to, created_at) "
                       "VALUES (?, 'golden', ?, ?, ?, ?, ?)", (item_id, queue, row[0], row[3], actor, now))
            return _item(tx.execute(f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE id = ?", (item_id,)).fetchone())

    @staticmethod
    def _copy(tx: Tx, queue: str, subject_type: str, subject_key: str, evidence: Iterable[dict[str, Any]],
              now: float) -> str:
        """A new open item with this evidence, outside the one-open-item-per-subject rule (no open key),
        so that later hits of the subject never land in it. Its log starts as any item's does."""
        item_id = new_id("item")
        rows = [dict(e) for e in evidence]
        tx.execute("INSERT INTO review_items (id, queue, subject_type, subject_key, state, priority, created_at, "
                   "updated_at, hits) VALUES (?, ?, ?, ?, 'open', 0, ?, ?, ?)",
                   (item_id, queue, subject_type, subject_key, now, now, len(rows)))
        for e in rows:
            key = str(e.pop("key", new_id("ev")))
            e.pop("added_at", None)
            tx.execute("INSERT INTO review_evidence (item_id, key, added_at, body) VALUES (?, ?, ?, ?)",
                       (item_id, key, now, orjson.dumps(e).decode()))
        tx.log(item_id, "opened", "rules", now, queue=queue)
        return item_id

    # ---- second reviews ----
    def maybe_second(self, item: Item, decision_id: str, action: str, first: str, now: float, rate: float) -> str | None:
        """At `rate`, a copy of the decided item for a second, different person; its id."""
        if rate <= 0 or self.chance() >= rate:
            return None
        evidence = self.store.evidence(item.id)
        with self.store.tx() as tx:
            item_id = self._copy(tx, item.queue, item.subject_type, item.subject_key, evidence, now)
            tx.execute("INSERT INTO review_skips (item_id, actor) VALUES (?, ?)", (item_id, first))  # never offered
            tx.execute("INSERT INTO review_checks (item_id, kind, queue, reference, first_actor, expected, created_at) "
                       "VALUES (?, 'second', ?, ?, ?, ?, ?)", (item_id, item.queue, decision_id, first, action, now))
        return item_id

    # ---- checks ----
    def check(self, item_id: str) -> dict[str, Any] | None:
        """The quality check an item is (kind, expected, first_actor, …), or None for a real item."""
        with self.store.tx() as tx:
            row = tx.execute("SELECT kind, queue, reference, first_actor, expected, actor, given, agreed FROM "
                             "review_checks WHERE item_id = ?", (item_id,)).fetchone()
        if row is None:
            return None
        return {"kind": row[0], "queue": row[1], "reference": row[2], "first_actor": row[3], "expected": row[4],
                "actor": row[5], "given": row[6], "agreed": None if row[7] is None else bool(row[7])}

    def score(self, item_id: str, actor: str, given: str, now: float) -> dict[str, Any] | None:
        check = self.check(item_id)
        if check is None:
            return None
        agreed = given == check["expected"]
        with self.store.tx() as tx:
            tx.execute("UPDATE review_checks SET actor = ?, given = ?, agreed = ?, scored_at = ? WHERE item_id = ?",
                       (actor, given, int(agreed), now, item_id))
        return {**check, "actor": actor, "given": given, "agreed": agreed}

    def numbers(self, queues: Iterable[str]) -> dict[str, Any]:
        """Golden accuracy and second-review agreement per queue and per reviewer, over `queues`."""
        names = sorted(set(queues))
        if not names:
            return {"queues": [], "reviewers": []}
        marks = ", ".join("?" for _ in names)
        with self.store.tx() as tx:
            rows = tx.execute(f"SELECT kind, queue, first_actor, actor, agreed FROM review_checks WHERE queue IN ({marks}) "
                              "AND agreed IS NOT NULL", names).fetchall()
        per_queue: dict[str, dict[str, int]] = {q: _zero() for q in names}
        per_person: dict[str, dict[str, int]] = {}
        for kind, queue, first, actor, agreed in rows:
            people = [actor] if kind == "golden" else [actor, first]
            for counts in [per_queue[queue]] + [per_person.setdefault(p, _zero()) for p in people if p]:
                counts[f"{kind}_scored"] += 1
                counts[f"{kind}_agreed"] += int(agreed)
        return {"queues": [{"queue": q, **_rates(c)} for q, c in per_queue.items()],
                "reviewers": [{"reviewer": p, **_rates(c)} for p, c in sorted(per_person.items())]}


def _zero() -> dict[str, int]:
    return {"golden_scored": 0, "golden_agreed": 0, "second_scored": 0, "second_agreed": 0}


def _rates(c: dict[str, int]) -> dict[str, Any]:
    return {"golden_answered": c["golden_scored"], "golden_correct": c["golden_agreed"],
            "golden_accuracy": c["golden_agreed"] / c["golden_scored"] if c["golden_scored"] else None,
            "second_reviews": c["second_scored"], "agreed": c["second_agreed"],
            "agreement_rate": c["second_agreed"] / c["second_scored"] if c["second_scored"] else None}
