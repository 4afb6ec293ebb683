"""The OpenAPI document, written by hand: it is short, and says what the routes promise."""

from __future__ import annotations

from typing import Any

import vigil


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _json(_ref("Error"), "Malformed request (not JSON, bad parameter)."),
    "401": _json(_ref("Error"), "No token, or an unknown or revoked one."),
    "403": _json(_ref("Error"), "The token lacks the scope."),
    "413": _json(_ref("Error"), "Body or batch over the limit."),
    "422": _json(_ref("Error"), "Well-formed JSON of the wrong shape or types."),
    "429": _json(_ref("Error"), "Over the token's rate limit."),
}


def _op(summary: str, scope: str | None, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, **ERRORS}}
    if scope is not None:
        op["security"] = [{"token": []}]
        op["description"] = f"Needs the `{scope}` scope (admin implies every scope)."
    else:
        op["security"] = []
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


MODE = _query("mode", "sync (default): decide now; async: accept (202) and decide in the background",
              {"type": "string", "enum": ["sync", "async"]})
ENTITY = [_path("entity_type", "user, ip, pair, … as declared in the rules"),
          _path("key", "the entity's key (composite keys joined with |)")]


def openapi_document() -> dict[str, Any]:
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
                "503": _json(_ref("Error"), "The asynchronous queue is full.")}, body=_ref("Event"), params=[MODE])},
            "/v1/events/batch": {"post": _op("Decide a batch of events", "ingest", {
                "200": _json({"type": "object", "properties": {"results": {"type": "array"}, "accepted": {
                    "type": "integer"}, "rejected": {"type": "integer"}}}, "A decision or an error per event."),
                "202": _json(ok, "Accepted (mode=async).")},
                body={"oneOf": [{"type": "array", "items": _ref("Event")},
                                {"type": "object", "properties": {"events": {"type": "array",
                                                                             "items": _ref("Event")}}}]},
                params=[MODE])},
            "/v1/decisions/{event_id}": {"get": _op("A recent event's outcome", "ingest", {
                "200": _json(ok, "Decided (with the decision) or dead-lettered."),
                "202": _json(ok, "Still queued."), "404": _json(_ref("Error"), "Not among the recent ones.")},
                params=[_path("event_id", "the event's id")])},
            "/v1/entities/{entity_type}/{key}/labels": {
                "get": _op("An entity's labels", "read", {"200": _json(ok, "Active labels (all=true: every one).")},
                           params=[*ENTITY, _query("all", "include removed and expired labels", {"type": "boolean"})]),
                "post": _op("Add a manual label", "admin", {"201": _json(ok, "Added."), "200": _json(ok, "Unchanged.")},
                            body={"type": "object", "required": ["label", "reason"], "properties": {
                                "label": {"type": "string"}, "reason": {"type": "string"},
                                "expires_in": {"type": "number", "description": "seconds"}}}, params=ENTITY)},
            "/v1/entities/{entity_type}/{key}/labels/{label}": {
                "delete": _op("Remove a label by hand", "admin", {"200": _json(ok, "Removed (or already absent).")},
                              params=[*ENTITY, _path("label", "the label"),
                                      _query("reason", "why (required, or in a JSON body)", {"type": "string"})])},
            "/v1/entities/{entity_type}/{key}/history": {
                "get": _op("An entity's label history", "read", {"200": _json(ok, "Every change, oldest first.")},
                           params=ENTITY)},
            "/v1/rules": {
                "get": _op("The active rules version", "read", {"200": _json(ok, "Version, rules, warnings.")},
                           params=[_query("files", "include the files' text", {"type": "boolean"})]),
                "post": _op("Upload a rules version: checked, tested, then activated atomically", "admin", {
                    "201": _json(ok, "Stored and active."), "200": _json(ok, "dry_run: passed the checks.")},
                    body=_ref("RulesUpload"), params=[_query("dry_run", "check only", {"type": "boolean"})])},
            "/v1/rules/versions": {"get": _op("Stored rules versions, newest first", "read", {
                "200": _json(ok, "Versions.")}, params=[_query("limit", "at most this many", {"type": "integer"})])},
            "/v1/rules/versions/{seq}": {"get": _op("One stored version with its files", "read", {
                "200": _json(ok, "The version."), "404": _json(_ref("Error"), "No such version.")},
                params=[_path("seq", "the version's number")])},
            "/v1/rules/versions/{seq}/activate": {"post": _op("Activate a stored version", "admin", {
                "200": _json(ok, "Active."), "404": _json(_ref("Error"), "No such version.")},
                params=[_path("seq", "the version's number")])},
            "/v1/rules/rollback": {"post": _op("Activate the version stored before the active one", "admin", {
                "200": _json(ok, "Active."), "409": _json(_ref("Error"), "There is no earlier version.")})},
            "/healthz": {"get": _op("The process is up", None, {"200": _json(ok, "ok")})},
            "/readyz": {"get": _op("Ready to decide events", None, {
                "200": _json(ok, "Ready."), "503": _json(ok, "Not ready, with the problems.")})},
            "/metrics": {"get": _op("Prometheus metrics", None, {
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
                "RulesUpload": {"type": "object", "required": ["files"], "properties": {
                    "files": {"type": "object", "additionalProperties": {"type": "string"}},
                    "entry": {"type": "array", "items": {"type": "string"}},
                    "message": {"type": "string"}}},
            },
        },
    }
