"""Child safety: which review items are child-safety material, so that nobody without the
`child_safety_reviewer` role sees them (Coop #1154: child-safety jobs visible to ordinary moderators
after a queue change).

An item is restricted when its queue is a child-safety queue (`[queues.NAME] child_safety = true`),
and also when its content went to one: decided with an escalation into one, moved or merged into one
at a deadline breach. So an item an ordinary reviewer escalates to the child-safety queue disappears
from their queue's history too, not only from its open items.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import orjson

from vigil.people.roles import Principal, QueueRef, can
from vigil.review.core import Review
from vigil.review.store import Item


def child_safety_queues(review: Review) -> frozenset[str]:
    return frozenset(name for name, queue in review.settings.queues.items() if queue.child_safety)


def restricted_ids(review: Review, items: Sequence[Item]) -> set[str]:
    """The ids of `items` that are child-safety material (see the module's docstring)."""
    queues = child_safety_queues(review)
    if not queues or not items:
        return set()
    found = {i.id for i in items if i.queue in queues}
    rest = [i.id for i in items if i.id not in found]
    if not rest:
        return found
    marks = ", ".join("?" for _ in rest)
    with review.store.tx() as tx:
        decisions = tx.execute(f"SELECT item_id, effects FROM review_decisions WHERE item_id IN ({marks})",
                               rest).fetchall()
        moves = tx.execute(f"SELECT item_id, detail FROM review_log WHERE kind = 'breached' AND item_id IN ({marks})",
                           rest).fetchall()
    for item_id, effects in decisions:
        if any(e.get("kind") == "escalate" and e.get("queue") in queues for e in orjson.loads(effects)):
            found.add(str(item_id))
    for item_id, detail in moves:
        moved: dict[str, Any] = orjson.loads(detail)
        if moved.get("moved_to") in queues or moved.get("queue") in queues:
            found.add(str(item_id))
    return found


def item_queue(review: Review, item: Item, restricted: Collection[str] | None = None) -> QueueRef:
    """The item's queue as a permission check sees it: a child-safety queue when the item is restricted
    (`restricted`: the restricted ids among a page of items, when already known; else looked up)."""
    ref = review.queue_ref(item.queue)
    if ref.child_safety:
        return ref
    if restricted is None:
        restricted = restricted_ids(review, [item])
    return QueueRef(item.queue, child_safety=item.id in restricted)


def may_see(principal: Principal, queue: QueueRef) -> bool:
    return can(principal, "review.view", queue)


# ---- reports ----
# A package in the structure of NCMEC's CyberTipline report (reporter, incident, the reported person,
# files with their hashes and matched bank entries, the events' metadata with IP and time).
REPORT_SCHEMA = "vigil.child_safety_report/1"
_PG_LOCK = 0x63736170  # advisory lock for the report table's migrations ("csap")
_TABLE = """
CREATE TABLE child_safety_reports (
    id TEXT PRIMARY KEY, decision_id TEXT NOT NULL UNIQUE, item_id TEXT NOT NULL, queue TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, text_only INTEGER NOT NULL, body TEXT NOT NULL
);
CREATE INDEX child_safety_reports_created ON child_safety_reports (created_at);
"""
REPORT_MIGRATIONS = {"sqlite": [_TABLE], "postgres": [_TABLE]}
IP_FIELDS = ("ip", "ip_address", "client_ip", "remote_addr")
MAX_EVENTS = 200  # events put in one report at most


def _matches(value: Any) -> list[dict[str, Any]]:
    """Bank matches in a decision's feature values (`VALUE matches bank "B"` explains with these)."""
    if isinstance(value, list):
        return [m for m in value if isinstance(m, dict) and {"bank", "entry", "hash"} <= m.keys()]
    return []


def _ips(event: dict[str, Any]) -> list[str]:
    found = []
    actor = event.get("actor")
    holders: list[dict[str, Any]] = [event, actor if isinstance(actor, dict) else {}]
    for holder in holders:
        for name in IP_FIELDS:
            if isinstance(holder.get(name), str):
                found.append(holder[name])
    return list(dict.fromkeys(found))


def build_report(*, report_id: str, decision: dict[str, Any], item: dict[str, Any], evidence: list[dict[str, Any]],
                 recorded: list[dict[str, Any]], reporter: dict[str, str], now: float) -> dict[str, Any]:
    """The report package of one decision: `evidence` as the item holds it, `recorded` the record's
    entries of its events (StoredEvent.to_json(); absent ones are listed by reference only). A case
    without media hashes is still a report, flagged `text_only`, never skipped (Coop #661)."""
    by_key = {(r["source"], r["event_id"]): r for r in recorded}
    events, files = [], []
    for e in evidence[:MAX_EVENTS]:
        ref = e.get("event") or {}
        stored = by_key.get((ref.get("source", ""), ref.get("id", "")))
        body = (stored or {}).get("event") or {}
        events.append({"source": ref.get("source"), "id": ref.get("id"), "type": ref.get("type") or body.get("type"),
                       "time": ref.get("time") or body.get("time"), "ip": _ips(body), "rules": e.get("rules", []),
                       "in_record": stored is not None, "metadata": body})
        for d in (stored or {}).get("decisions", []):
            for hit in d.get("explanation", []):
                for feature, value in (hit.get("features") or {}).items():
                    for m in _matches(value):
                        files.append({"event": {"source": ref.get("source"), "id": ref.get("id")}, "feature": feature,
                                      "hash": m["hash"], "bank": m["bank"], "entry": m["entry"],
                                      "distance": m.get("distance"), "tags": m.get("tags", [])})
    times = [float(e["time"]) for e in events if isinstance(e["time"], (int, float))]
    return {
        "schema": REPORT_SCHEMA, "id": report_id, "created_at": now,
        "reporter": {"reportingPerson": reporter, "reviewer": decision["actor"]},
        "incidentSummary": {"incidentType": "child sexual abuse material", "incidentDateTime": min(times) if times else None,
                            "decision": decision["id"], "action": decision["action"], "reason": decision["reason"],
                            "policy": decision["policy"], "decided_at": decision["created_at"]},
        "reportedPerson": {"entity": item["subject"]["entity"], "key": item["subject"]["key"],
                           "ips": list(dict.fromkeys(ip for e in events for ip in e["ip"]))},
        "files": files,
        "text_only": not files,
        "note": "no media hashes: a text-only case, reported for escalation" if not files else "",
        "events": events,
        "item": {"id": item["id"], "queue": item["queue"]},
    }


class Reports:
    """The restricted table of report packages, in the state store's database."""

    def __init__(self, store: Any) -> None:
        from vigil.stores.tables import Tables

        self.tables = Tables.over(store, REPORT_MIGRATIONS, "child_safety_schema_version", _PG_LOCK)

    def add(self, report: dict[str, Any], *, decision_id: str, actor: str) -> dict[str, Any]:
        """Store a report once per decision; the one stored already if there is one."""
        with self.tables.tx() as tx:
            tx.execute("INSERT INTO child_safety_reports (id, decision_id, item_id, queue, created_at, actor, text_only, "
                       "body) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (decision_id) DO NOTHING",
                       (report["id"], decision_id, report["item"]["id"], report["item"]["queue"], report["created_at"],
                        actor, int(report["text_only"]), orjson.dumps(report).decode()))
            row = tx.execute("SELECT body FROM child_safety_reports WHERE decision_id = ?", (decision_id,)).fetchone()
        stored: dict[str, Any] = orjson.loads(row[0])
        return stored

    def get(self, report_id: str) -> dict[str, Any] | None:
        with self.tables.tx() as tx:
            row = tx.execute("SELECT body FROM child_safety_reports WHERE id = ?", (report_id,)).fetchone()
        return orjson.loads(row[0]) if row is not None else None

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """Summaries, newest first: id, when, item, queue, decision, who decided, text_only."""
        with self.tables.tx() as tx:
            rows = tx.execute("SELECT id, created_at, item_id, queue, decision_id, actor, text_only FROM "
                              "child_safety_reports ORDER BY created_at DESC, id LIMIT ?", (limit,)).fetchall()
        return [{"id": r[0], "created_at": r[1], "item": r[2], "queue": r[3], "decision": r[4], "actor": r[5],
                 "text_only": bool(r[6])} for r in rows]

    def close(self) -> None:
        self.tables.close()
