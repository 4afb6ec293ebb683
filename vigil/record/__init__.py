"""The record: every event as received and every decision made (both stages), kept, searchable and
replayable (issue 13).

    base.py      what is stored (RecordEntry in, StoredEvent out) and the `Record` protocol
    sqlite.py    the embedded default: its own SQLite file beside the state store
    postgres.py  PostgreSQL: time-partitioned tables, several writers
    redact.py    what never reaches the log: dropped fields, keyed hashes, media as hashes and sizes
    writer.py    the engine's hook: decisions queued, written in batches off the hot path, retention
    timeline.py  an entity's events, decisions, labels, counters and neighbours
    open.py      a record from the settings' `record` table
"""
