"""The OpenAPI document, written by hand: it is short, and says what the routes promise."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import vigil


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def model_ref(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    """A reference to a typed model's schema, adding it (and the models it uses) to `schemas`: the routes
    whose OpenAPI part is generated from their request and response models share this one."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _json(_ref("Error"), "Malformed request (not JSON, bad parameter)."),
    "401": _json(_ref("Error"), "No token, or an unknown or revoked one."),
    "403": _json(_ref("Error"), "The token lacks the scope."),
    "413": _json(_ref("Error"), "Body or batch over the limit."),
    "422": _json(_ref("Error"), "Well-formed JSON of the wrong shape or types."),
    "429": _json(_ref("Error"), "Over the token's rate limit, or too many failed authentications."),
}


def _op(summary: str, scope: str | None, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, content: dict[str, Any] | None = None) -> dict[str, Any]:
    """One operation; `body` is a JSON request body's schema, `content` a body of several media types."""
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, **ERRORS}}
    if scope is not None:
        op["security"] = [{"token": []}]
        op["description"] = f"Needs the `{scope}` scope (admin implies every scope)."
    else:
        op["security"] = []
    if body is not None:
        content = {"application/json": {"schema": body}, **(content or {})}
    if content is not None:
        op["requestBody"] = {"required": True, "content": content}
    if params:
        op["parameters"] = params
    return op


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


MODE = _query("mode", "sync (default): decide now; async: accept (202) and decide in the background",
              {"type": "string", "enum": ["sync", "async"]})
BANK = _path("name", "the bank's name")
FOLLOWS_DIRECTORY = "The service follows a rules directory (rules source: directory): change the files there."
BYTES = {"schema": {"type": "string", "format": "binary"}}
MEDIA = {"application/octet-stream": BYTES, "image/*": BYTES, "video/*": BYTES}
TEXT_OR_BASE64 = [{"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
                  {"type": "object", "required": ["base64"], "properties": {"base64": {
                      "type": "string", "description": "media bytes as base64, or a data: URL"}}}]
BANK_SETTINGS = {"max_distance": {"type": "integer", "description": "bits (0 for md5 and sha256)"},
                 "min_quality": {"type": "integer", "description": "PDQ quality below which images match nothing"}}
ENTITY = [_path("entity_type", "user, ip, pair, … as declared in the rules"),
          _path("key", "the entity's key (composite keys joined with |)")]


def openapi_document() -> dict[str, Any]:
    document = _hand_written()
    # The review, people and rules lifecycle routes' part is generated from their typed models.
    from vigil.service import lifecycle, people, review

    for part in (review.openapi_paths, people.openapi_paths, lifecycle.openapi_paths):
        paths, schemas = part()
        document["paths"].update(paths)
        document["components"]["schemas"].update(schemas)
    return document


def _hand_written() -> dict[str, Any]:
    ok = {"type": "object"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Vigil", "version": vigil.__version__,
                 "description": "Trust & safety decisions over events. Authenticate with `Authorization: "
                                "Bearer <token>` (tokens from `vigil token create`)."},
        "paths": {
            "/v1/events": {"post": _op("Decide one event", "ingest", {
                "200": _json(_ref("Decision"), "The decision."),
                "202": _json(ok, "Accepted (mode=async); poll /v1/decisions/{event_id}."),
                "503": _json(_ref("Error"), "Not decided, nothing applied (Retry-After): the asynchronous queue or "
                             "the second stage's queue is full, or no engine thread was free within the event "
                             "deadline."),
                "504": _json(_ref("Error"), "Still being decided at the event deadline; the decision follows at "
                             "the Location, /v1/decisions/{event_id}.")}, body=_ref("Event"), params=[MODE])},
            "/v1/events/batch": {"post": _op("Decide a batch of events", "ingest", {
                "200": _json({"type": "object", "properties": {"results": {"type": "array"}, "accepted": {
                    "type": "integer"}, "rejected": {"type": "integer"}}}, "A decision or an error per event."),
                "202": _json(ok, "Accepted (mode=async)."),
                "503": _json(_ref("Error"), "Not decided: no engine thread was free within the event deadline."),
                "504": _json(_ref("Error"), "Still being decided at the deadline (shared by the batch's events); "
                             "their decisions follow at /v1/decisions/{event_id}.")},
                body={"oneOf": [{"type": "array", "items": _ref("Event")},
                                {"type": "object", "properties": {"events": {"type": "array",
                                                                             "items": _ref("Event")}}}]},
                params=[MODE])},
            "/v1/decisions/{event_id}": {"get": _op("An event's outcome (recent, else from the record)", "ingest` or `read", {
                "200": _json(ok, "Decided (with the decision; recorded=true when read from the record) or "
                                 "dead-lettered."),
                "202": _json(ok, "Still queued, or still being decided (past the event deadline)."),
                "404": _json(_ref("Error"), "Neither recent nor in the record, for the sources this token may read."),
                "409": _json(_ref("Error"), "Several sources the token may read sent this id: add ?source=.")},
                params=[_path("event_id", "the event's id"),
                        _query("source", "the name of the token that sent it (ids are per source); a token reads "
                               "its own and those granted with `vigil token create --read-source`",
                               {"type": "string"})])},
            "/v1/entities/{entity_type}/{key}/labels": {
                "get": _op("An entity's labels as they were at a time", "read", {
                    "200": _json(ok, "Active labels at `at` (all=true: every label's record then)."),
                    "400": _json(_ref("Error"), "`at` is not a time.")},
                           params=[*ENTITY, _query("all", "include removed and expired labels", {"type": "boolean"}),
                                   _query("at", "RFC 3339 time or epoch seconds (default now)", {"type": "string"})]),
                "post": _op("Add a manual label", "admin", {"201": _json(ok, "Added."), "200": _json(ok, "Unchanged.")},
                            body={"type": "object", "required": ["label", "reason"], "properties": {
                                "label": {"type": "string"}, "reason": {"type": "string"},
                                "expires_in": {"type": "number", "description": "seconds"}}}, params=ENTITY)},
            "/v1/entities/{entity_type}/{key}/labels/{label}": {
                "delete": _op("Remove a label by hand; rules cannot add it back until `expires_in` (or a release)",
                              "admin", {"200": _json(ok, "Removed (or already so).")},
                              params=[*ENTITY, _path("label", "the label"),
                                      _query("reason", "why (required, or in a JSON body)", {"type": "string"}),
                                      _query("expires_in", "seconds the removal holds (optional, or in the body)",
                                             {"type": "number"})])},
            "/v1/entities/{entity_type}/{key}/labels/{label}/release": {
                "post": _op("End a person's change of a label now: absent, and rules may set it again", "admin",
                            {"200": _json(ok, "Released (changed=false: no change of a person was in force).")},
                            params=[*ENTITY, _path("label", "the label"),
                                    _query("reason", "why (required, or in a JSON body)", {"type": "string"})])},
            "/v1/entities/{entity_type}/{key}": {
                "get": _op("An entity's timeline from the record", "read", {
                    "200": _json(ok, "A page of its events with their decisions, newest first (next_cursor: the "
                                     "next page), every label's latest record and history, counters, and the "
                                     "entities seen with it."),
                    "400": _json(_ref("Error"), "`limit` is not 1 to 500, or `after` is not a cursor given."),
                    "404": _json(_ref("Error"), "This service keeps no record.")},
                           params=[*ENTITY, _query("limit", "events in the page, 1 to 500 (default 50)",
                                                   {"type": "integer"}),
                                   _query("after", "the previous page's next_cursor", {"type": "string"})])},
            "/v1/record/events/{event_id}": {
                "get": _op("A recorded event with its decisions as they were made", "ingest` or `read", {
                    "200": _json(ok, "The event as stored (redacted) and the decision of each stage."),
                    "404": _json(_ref("Error"), "Not in the record for the sources this token may read."),
                    "409": _json(_ref("Error"), "Several sources sent this id: add ?source=.")},
                           params=[_path("event_id", "the event's id"),
                                   _query("source", "the name of the token that sent it", {"type": "string"})])},
            "/v1/entities/{entity_type}/{key}/history": {
                "get": _op("An entity's label history", "read", {"200": _json(ok, "Every change, oldest first.")},
                           params=ENTITY)},
            "/v1/search": {"get": _op("Search the record with a condition of the rules language", "read", {
                "200": _json(ok, "A page of stored events newest first with its cursor; with `top EXPR`, the top "
                                 "values; with `by`, counts per hour or day."),
                "400": _json(_ref("Error"), "The query has errors: `diagnostics` give line and column."),
                "404": _json(_ref("Error"), "This service keeps no record."),
                "422": _json(_ref("Error"), "The search would read too much: add an indexed filter.")},
                params=[_query("q", 'the condition, e.g. rule "X" fired and verdict is block; or top EXPR where '
                                    "CONDITION (docs/record.md)", {"type": "string"}),
                        _query("since", "7d, 24h, 30m before now, RFC 3339 or epoch seconds (default 7d)",
                               {"type": "string"}),
                        _query("until", "as since (default now)", {"type": "string"}),
                        _query("limit", "events in the page, 1 to 1,000 (default 50)", {"type": "integer"}),
                        _query("after", "the previous page's cursor", {"type": "string"}),
                        _query("by", "count per hour or day", {"type": "string", "enum": ["hour", "day"]}),
                        _query("top", "values `top` lists (default 10)", {"type": "integer"})])},
            "/v1/backtests": {"post": _op("Replay stored events through candidate rules and compare", "admin", {
                "200": _json(ok, "The report: rules added, changed, removed; hits gained and lost per rule with "
                                 "examples; the verdict matrix; precision and recall against ground truth."),
                "400": _json(_ref("Error"), "The candidate has errors: `diagnostics`."),
                "404": _json(_ref("Error"), "This service keeps no record."),
                "422": _json(_ref("Error"), "No stored events in the range, or more than the API replays.")},
                body={"type": "object", "required": ["files"], "properties": {
                    "files": {"type": "object", "additionalProperties": {"type": "string"}},
                    "entry": {"type": "array", "items": {"type": "string"}},
                    "since": {"type": "string"}, "until": {"type": "string"},
                    "truth": {"type": "string", "description": "an event field holding ground truth"},
                    "positive_verdict": {"type": "string", "enum": ["flag", "review", "block"]},
                    "examples": {"type": "integer"},
                    "reviews": {"type": "boolean", "default": True,
                                "description": "also score against reviewers' decisions in the record"}}})},
            "/v1/rules": {
                "get": _op("The active rules version", "read", {"200": _json(ok, "Version, rules, warnings.")},
                           params=[_query("files", "include the files' text", {"type": "boolean"})]),
                "post": _op("Upload a rules version: checked, tested, then activated atomically", "admin", {
                    "201": _json(ok, "Stored and active."), "200": _json(ok, "dry_run: passed the checks."),
                    "409": _json(_ref("Error"), FOLLOWS_DIRECTORY)},
                    body=_ref("RulesUpload"), params=[_query("dry_run", "check only", {"type": "boolean"})])},
            "/v1/rules/versions": {"get": _op("Stored rules versions, newest first", "read", {
                "200": _json(ok, "Versions.")}, params=[_query("limit", "at most this many", {"type": "integer"})])},
            "/v1/rules/versions/{seq}": {"get": _op("One stored version with its files", "read", {
                "200": _json(ok, "The version."), "404": _json(_ref("Error"), "No such version.")},
                params=[_path("seq", "the version's number")])},
            "/v1/rules/versions/{seq}/activate": {"post": _op("Activate a stored version", "admin", {
                "200": _json(ok, "Active."), "404": _json(_ref("Error"), "No such version."),
                "409": _json(_ref("Error"), FOLLOWS_DIRECTORY)},
                params=[_path("seq", "the version's number")])},
            "/v1/rules/rollback": {"post": _op("Activate the version stored before the active one", "admin", {
                "200": _json(ok, "Active."),
                "409": _json(_ref("Error"), f"There is no earlier version, or {FOLLOWS_DIRECTORY[0].lower()}"
                                            f"{FOLLOWS_DIRECTORY[1:]}")})},
            "/v1/hash": {"post": _op("Hash content: pdq (with quality), md5 and sha256 of media; text_simhash of text",
                                     "read", {"200": _json(_ref("Hashes"), "The hashes."),
                                              "415": _json(_ref("Error"), "A body that is neither media nor JSON.")},
                                     body={"oneOf": TEXT_OR_BASE64}, content=MEDIA)},
            "/v1/banks/{name}/match": {"post": _op(
                "Match content or a hash against a bank, nearest first", "read", {
                    "200": _json({"type": "object", "properties": {"matches": {"type": "array",
                                                                               "items": _ref("Match")}}},
                                 "The matching entries (none when the bank is disabled)."),
                    "404": _json(_ref("Error"), "No such bank."),
                    "415": _json(_ref("Error"), "A body that is neither media nor JSON.")},
                body={"oneOf": [*TEXT_OR_BASE64, {"type": "object", "required": ["hash"], "properties": {
                    "hash": {"type": "string", "description": "hex of the bank's signal type"}}}]}, content=MEDIA,
                params=[BANK, _query("max_distance", "override the bank's maximum distance", {"type": "integer"})])},
            "/v1/banks": {
                "get": _op("Hash banks with their settings and entry counts", "admin", {
                    "200": _json({"type": "object", "properties": {"banks": {"type": "array",
                                                                             "items": _ref("Bank")}}}, "Banks.")}),
                "post": _op("Create a hash bank", "admin", {
                    "201": _json(_ref("Bank"), "Created."), "409": _json(_ref("Error"), "The name is taken.")},
                    body={"type": "object", "required": ["name", "signal_type"], "properties": {
                        "name": {"type": "string"},
                        "signal_type": {"type": "string", "enum": ["pdq", "md5", "sha256", "text_simhash"]},
                        **BANK_SETTINGS}})},
            "/v1/banks/{name}": {
                "get": _op("One bank", "admin", {"200": _json(_ref("Bank"), "The bank."),
                                                 "404": _json(_ref("Error"), "No such bank.")}, params=[BANK]),
                "patch": _op("Enable or disable a bank, or change its settings", "admin", {
                    "200": _json(_ref("Bank"), "Changed."), "404": _json(_ref("Error"), "No such bank.")},
                    body={"type": "object", "properties": {"enabled": {"type": "boolean"}, **BANK_SETTINGS}},
                    params=[BANK]),
                "delete": _op("Delete a bank and its entries", "admin", {
                    "200": _json(ok, "Deleted."), "404": _json(_ref("Error"), "No such bank.")}, params=[BANK])},
            "/v1/banks/{name}/entries": {"post": _op(
                "Add entries: JSON, or CSV (vigil or ThreatExchange columns); all or nothing", "admin", {
                    "201": _json(ok, "Added (ids, duplicates skipped)."), "200": _json(ok, "All were duplicates."),
                    "404": _json(_ref("Error"), "No such bank."),
                    "415": _json(_ref("Error"), "Neither CSV nor JSON.")},
                body={"type": "array", "items": {"type": "object", "required": ["hash"], "properties": {
                    "hash": {"type": "string"}, "source": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}}}}},
                content={"text/csv": {"schema": {"type": "string", "description": (
                    "a header row naming hash, signal_type, tags, source (any order), or "
                    "hash,signal_type,tags lines; a 422 lists every bad line by number")}}},
                params=[BANK, _query("source", "the source of entries that name none", {"type": "string"})])},
            "/v1/banks/{name}/entries/{entry_id}": {"delete": _op("Remove an entry", "admin", {
                "200": _json(ok, "Removed."), "404": _json(_ref("Error"), "No such bank or entry.")},
                params=[BANK, _path("entry_id", "the entry's id")])},
            "/v1/banks/{name}/export": {"get": _op("The bank's enabled entries as CSV", "admin", {
                "200": {"description": "CSV with a header row.", "content": {"text/csv": {}}},
                "404": _json(_ref("Error"), "No such bank.")},
                params=[BANK, _query("format", "vigil (default) or threatexchange",
                                     {"type": "string", "enum": ["vigil", "threatexchange"]})])},
            "/healthz": {"get": _op("The process is up", None, {"200": _json(ok, "ok")})},
            "/readyz": {"get": _op("Ready to decide events (details with a read token)", None, {
                "200": _json(ok, "Ready."), "503": _json(ok, "Not ready (the problems with a read token).")})},
            "/metrics": {"get": _op("Prometheus metrics (open with --public-metrics)", "read", {
                "200": {"description": "Text exposition format.", "content": {"text/plain": {}}}})},
            "/openapi.json": {"get": _op("This document", None, {"200": _json(ok, "OpenAPI 3.1.")})},
        },
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}, "hint": {"type": "string"}}}}},
                "Event": {"type": "object", "required": ["type", "id", "time"], "properties": {
                    "type": {"type": "string"}, "id": {"type": "string"},
                    "time": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}},
                    "additionalProperties": True},
                "Decision": {"type": "object", "properties": {
                    "event_id": {"type": "string"}, "type": {"type": "string"}, "time": {"type": "number"},
                    "verdict": {"type": "string", "enum": ["allow", "flag", "review", "block"]},
                    "effects": {"type": "array"}, "rules": {"type": "array", "items": {"type": "string"}},
                    "shadow_rules": {"type": "array", "items": {"type": "string"}},
                    "explanation": {"type": "array"}, "ruleset": {"type": "string"}}},
                "Hashes": {"type": "object", "properties": {
                    "pdq": {"type": "object", "properties": {"hash": {"type": "string"},
                                                             "quality": {"type": "integer"}}},
                    "md5": {"type": "string"}, "sha256": {"type": "string"}, "size": {"type": "integer"},
                    "frames": {"type": "array", "description": "a video's sampled frames"},
                    "text_simhash": {"type": "string"}}},
                "Match": {"type": "object", "properties": {
                    "entry": {"type": "integer"}, "hash": {"type": "string"}, "distance": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}}, "source": {"type": "string"}}},
                "Bank": {"type": "object", "properties": {
                    "name": {"type": "string"}, "signal_type": {"type": "string"}, "enabled": {"type": "boolean"},
                    "entries": {"type": "integer"}, "created_at": {"type": "string", "format": "date-time"},
                    **BANK_SETTINGS}},
                "RulesUpload": {"type": "object", "required": ["files"], "properties": {
                    "files": {"type": "object", "additionalProperties": {"type": "string"}},
                    "entry": {"type": "array", "items": {"type": "string"}},
                    "message": {"type": "string"}}},
            },
        },
    }
