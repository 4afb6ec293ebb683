"""Routes: hashing content, matching it against a hash bank, and administering banks and their entries.

    POST   /v1/hash                          media bytes, {"text"} or {"base64"} → the hashes     (read)
    POST   /v1/banks/{name}/match            the same, or {"hash"} → matching entries, nearest first (read)
    GET    /v1/banks, POST /v1/banks         banks with their settings and entry counts; create one (admin)
    GET    PATCH DELETE /v1/banks/{name}     one bank; change its settings or enable it; delete it   (admin)
    POST   /v1/banks/{name}/entries          JSON entries, or CSV (vigil or ThreatExchange columns)   (admin)
    DELETE /v1/banks/{name}/entries/{id}     remove an entry                                         (admin)
    GET    /v1/banks/{name}/export           the entries as CSV (?format=vigil|threatexchange)       (admin)

The routes and the rules share the app's one `HashMatcher`: a write here refreshes it at once, so the
next event a rule matches against the bank sees the change. Store writes and hashing run in worker
threads; a bad CSV line or entry is reported with its line (or item) number and nothing is imported.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.hashing.banks import Bank, BankError, BankExists, BankNotFound, BankStore, NewEntry, parse_tags
from vigil.hashing.csvio import EXPORT_FORMATS, ImportFailed, LineError, export_csv, parse_entries
from vigil.hashing.decoder import MediaDecoder
from vigil.hashing.errors import DecoderBusy, HashingError, MediaTooLarge
from vigil.hashing.hashers import (
    SignalType,
    md5_hex,
    normalize_hash,
    parse_signal_type,
    sha256_hex,
    simhash_text,
)
from vigil.hashing.media import MediaError, MediaPolicy, load_media
from vigil.hashing.service import HashMatcher, Match
from vigil.service.access import permit
from vigil.service.auth import require
from vigil.service.errors import ApiError, JSONResponse
from vigil.service.limits import read_body
from vigil.service.people import audited
from vigil.service.state import service

T = TypeVar("T")
Kind = Literal["bytes", "text", "hash"]

MAX_SETTINGS_BODY = 64 << 10
MEDIA_HINT = ('send the bytes with Content-Type: application/octet-stream (or image/…), or JSON '
              '{"base64": "…"} or {"text": "…"}')
BANK_FIELDS = ("name", "signal_type", "max_distance", "min_quality")
PATCH_FIELDS = ("enabled", "max_distance", "min_quality")


# --- request bodies ---------------------------------------------------------------------------------


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _is_media(content_type: str) -> bool:
    return content_type == "application/octet-stream" or content_type.startswith(("image/", "video/"))


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {error}") from None


async def _json_object(request: Request) -> dict[str, Any]:
    data = _json(await read_body(request, MAX_SETTINGS_BODY))
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    return data


async def _content(request: Request, *, allow_hash: bool) -> tuple[Kind, bytes | str]:
    """What to hash or match, from the body: raw media bytes, or JSON with exactly one of "text",
    "base64" (media bytes, or a data: URL) and, where allowed, "hash" (hex, computed by the caller)."""
    content_type = _content_type(request)
    if not (_is_json(content_type) or _is_media(content_type)):
        raise ApiError(415, "unsupported_media_type",
                       f"cannot hash a body of type {content_type or '(none)'!r}", MEDIA_HINT)
    raw = await read_body(request, service(request).settings.max_body_bytes)
    if _is_media(content_type):
        if not raw:
            raise ApiError(422, "empty_body", "the body is empty: there is nothing to hash", MEDIA_HINT)
        return "bytes", raw
    data = _json(raw)
    keys = ("text", "base64", "hash") if allow_hash else ("text", "base64")
    given = [k for k in keys if isinstance(data, dict) and k in data]
    if len(given) != 1:
        choices = ", ".join(f'"{k}"' for k in keys)
        raise ApiError(422, "invalid_body", f"send a JSON object with exactly one of {choices}",
                       '{"text": "buy followers now"} or {"base64": "iVBORw0KGgo…"}')
    key = given[0]
    value = data[key]
    if not isinstance(value, str):
        raise ApiError(422, "invalid_body", f'"{key}" must be a string')
    if key == "base64":
        try:
            media = load_media(value, MediaPolicy(max_bytes=service(request).settings.max_body_bytes))
        except MediaError as error:
            raise ApiError(422, "invalid_base64", str(error), "encode the media bytes as standard base64") from None
        return "bytes", media
    return ("text" if key == "text" else "hash"), value


# --- stores and errors ------------------------------------------------------------------------------


def _bank_error(error: BankError, name: str) -> ApiError:
    if isinstance(error, BankNotFound):
        return ApiError(404, "unknown_bank", f"no bank called {name!r}",
                        "GET /v1/banks lists the banks; POST /v1/banks creates one")
    if isinstance(error, BankExists):
        return ApiError(409, "bank_exists", str(error), "choose another name, or PATCH the existing bank")
    if isinstance(error, ImportFailed):
        return _lines_error(error.errors, error.total)
    return ApiError(422, "invalid_bank", str(error))


def _lines_error(errors: list[LineError], total: int) -> ApiError:
    return ApiError(422, "invalid_csv", f"{total} bad line(s) in the CSV; nothing was imported",
                    "fix every line listed and send the whole file again",
                    extra={"lines": [{"line": e.line, "message": e.message, "hint": e.hint} for e in errors],
                           "total": total})


async def _run(name: str, function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a worker thread, with bank errors turned into API errors."""
    try:
        return await anyio.to_thread.run_sync(function, *args)
    except BankError as error:
        raise _bank_error(error, name) from None


def _refresh(matcher: HashMatcher, name: str) -> None:
    """Make the matcher (and so the rules) see a change now, rather than within its refresh interval."""
    try:
        matcher.refresh(name)
    except BankNotFound:
        pass  # deleted: the matcher has forgotten it


def bank_json(bank: Bank, entries: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": bank.name, "signal_type": bank.signal_type.value,
                           "max_distance": bank.max_distance, "min_quality": bank.min_quality,
                           "enabled": bank.enabled, "created_at": bank.created_at.isoformat()}
    if entries is not None:
        out["entries"] = entries
    return out


def match_json(m: Match) -> dict[str, Any]:
    return {"entry": m.entry_id, "hash": m.hash, "distance": m.distance, "tags": list(m.tags),
            "source": m.source}


def _integer(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ApiError(422, "invalid_bank", f'"{key}" must be a whole number')
    return value


def _unknown_fields(data: dict[str, Any], allowed: tuple[str, ...], hint: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ApiError(422, "invalid_bank", f"unknown field(s) {', '.join(map(repr, unknown))}; "
                       f"expected {', '.join(allowed)}", hint)


# --- hashing and matching ---------------------------------------------------------------------------


def media_error(error: HashingError) -> ApiError:
    """The answer for media that could not be hashed: 413 over a decoding limit, 503 when every decoder
    is busy, 422 when it does not decode."""
    if isinstance(error, MediaTooLarge):
        return ApiError(413, "media_too_large", str(error),
                        "send smaller media, or raise the limit named (VIGIL_MEDIA_*, docs/operations.md)")
    if isinstance(error, DecoderBusy):
        return ApiError(503, "decoder_busy", str(error), "retry shortly")
    return ApiError(422, "undecodable_media", str(error), "send an image (JPEG, PNG, GIF, WebP…) or a video")


def _hash_media(decoder: MediaDecoder, data: bytes) -> dict[str, Any]:
    """PDQ (an image, or a video's frames sampled once a second), MD5 and SHA-256 of media bytes."""
    out: dict[str, Any] = {"size": len(data), "md5": md5_hex(data), "sha256": sha256_hex(data)}
    try:
        kind, frames = decoder.pdq_kind(data)
    except HashingError as error:
        raise media_error(error) from None
    out["pdq"] = {"hash": frames[0].pdq.hash, "quality": frames[0].pdq.quality}
    if kind == "video":
        out["frames"] = [{"timestamp": f.timestamp, "hash": f.pdq.hash, "quality": f.pdq.quality} for f in frames]
    return out


async def hash_content(request: Request) -> Response:
    """The hashes of the body: pdq (with quality), md5 and sha256 of media bytes; text_simhash of text."""
    require(request, "read")
    _, value = await _content(request, allow_hash=False)
    if isinstance(value, str):
        try:
            return JSONResponse({"text_simhash": simhash_text(value)})
        except HashingError as error:
            raise ApiError(422, "empty_text", str(error), "send text with letters or digits in it") from None
    _, matcher = service(request).banks
    return JSONResponse(await anyio.to_thread.run_sync(_hash_media, matcher.decoder, value))


def _max_distance(request: Request, bank: Bank) -> int | None:
    raw = request.query_params.get("max_distance")
    if raw is None:
        return None
    limit = bank.signal_type.hex_length * 2  # half the bits
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= limit:
        raise ApiError(400, "bad_max_distance", f"max_distance must be a whole number from 0 to {limit}",
                       f"leave it out to use the bank's own ({bank.max_distance})")
    return value


def _match(matcher: HashMatcher, bank: Bank, kind: Kind, value: bytes | str,
           max_distance: int | None) -> list[Match]:
    signal = bank.signal_type
    if kind == "hash":
        try:
            return matcher.match_hash(bank.name, str(value), max_distance=max_distance)
        except HashingError as error:
            raise ApiError(422, "bad_hash", str(error),
                           f"a {signal.value} hash is {signal.hex_length} hex digits (0-9, a-f)") from None
    if kind == "text" and signal is SignalType.PDQ:
        raise ApiError(422, "text_for_media_bank", f"bank {bank.name!r} holds PDQ hashes of images: text cannot "
                       "match it", 'send the image bytes, {"base64": "…"}, or {"hash": "<64 hex digits>"}')
    try:
        return matcher.match(bank.name, value, max_distance=max_distance)
    except HashingError as error:
        if signal is SignalType.PDQ:
            raise media_error(error) from None
        raise ApiError(422, "undecodable_text", str(error), 'send UTF-8 text, or {"text": "…"}') from None


async def match(request: Request) -> Response:
    """Entries of the bank matching the body (media, {"text"}, {"base64"} or {"hash"}), nearest first;
    ?max_distance= overrides the bank's. A disabled bank matches nothing."""
    require(request, "read")
    _, matcher = service(request).banks
    name = request.path_params["name"]
    bank = await _run(name, matcher.bank, name)
    max_distance = _max_distance(request, bank)
    kind, value = await _content(request, allow_hash=True)
    found = await _run(name, _match, matcher, bank, kind, value, max_distance)
    return JSONResponse({"bank": name, "signal_type": bank.signal_type.value, "enabled": bank.enabled,
                         "max_distance": bank.max_distance if max_distance is None else max_distance,
                         "matches": [match_json(m) for m in found]})


# --- banks ------------------------------------------------------------------------------------------


def _list(store: BankStore) -> list[dict[str, Any]]:
    out = []
    for bank in store.list_banks():
        try:
            out.append(bank_json(bank, store.count_entries(bank.name)))
        except BankNotFound:
            continue  # deleted since it was listed
    return out


async def list_banks(request: Request) -> Response:
    permit(request, "banks.write")
    store, _ = service(request).banks
    return JSONResponse({"banks": await _run("", _list, store)})


async def create_bank(request: Request) -> Response:
    """{"name", "signal_type" (pdq, md5, sha256, text_simhash), "max_distance"?, "min_quality"?}."""
    actor = permit(request, "banks.write")
    store, _ = service(request).banks
    data = await _json_object(request)
    example = '{"name": "known-bad", "signal_type": "pdq", "max_distance": 31}'
    _unknown_fields(data, BANK_FIELDS, example)
    name, signal = data.get("name"), data.get("signal_type")
    if not isinstance(name, str) or not isinstance(signal, str):
        raise ApiError(422, "invalid_bank", '"name" and "signal_type" are required strings', example)
    try:
        signal_type = parse_signal_type(signal)
    except HashingError as error:
        raise ApiError(422, "invalid_bank", str(error), example) from None
    max_distance, min_quality = _integer(data, "max_distance"), _integer(data, "min_quality")

    def create() -> dict[str, Any]:
        return bank_json(store.create_bank(name, signal_type, max_distance=max_distance, min_quality=min_quality), 0)

    body = await _run(name, create)
    await audited(request, actor, "bank.create", f"bank:{name}",
                  {"signal_type": signal_type.value, "max_distance": max_distance, "min_quality": min_quality})
    return JSONResponse(body, status_code=201, headers={"Location": f"/v1/banks/{name}"})


async def get_bank(request: Request) -> Response:
    permit(request, "banks.write")
    store, _ = service(request).banks
    name = request.path_params["name"]
    return JSONResponse(await _run(name, lambda: bank_json(store.get_bank(name), store.count_entries(name))))


async def update_bank(request: Request) -> Response:
    """{"enabled"?, "max_distance"?, "min_quality"?}; the name and signal type never change."""
    actor = permit(request, "banks.write")
    store, matcher = service(request).banks
    name = request.path_params["name"]
    data = await _json_object(request)
    _unknown_fields(data, PATCH_FIELDS, '{"enabled": false} or {"max_distance": 20}; to change the signal type, '
                    "create another bank")
    if not data:
        raise ApiError(422, "invalid_bank", "nothing to change", '{"enabled": false}')
    enabled = data.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise ApiError(422, "invalid_bank", '"enabled" must be true or false')
    max_distance, min_quality = _integer(data, "max_distance"), _integer(data, "min_quality")

    def update() -> dict[str, Any]:
        bank = store.update_bank(name, enabled=enabled, max_distance=max_distance, min_quality=min_quality)
        _refresh(matcher, name)
        return bank_json(bank, store.count_entries(name))

    body = await _run(name, update)
    await audited(request, actor, "bank.update", f"bank:{name}",
                  {"enabled": enabled, "max_distance": max_distance, "min_quality": min_quality})
    return JSONResponse(body)


async def delete_bank(request: Request) -> Response:
    actor = permit(request, "banks.write")
    store, matcher = service(request).banks
    name = request.path_params["name"]

    def delete() -> None:
        store.delete_bank(name)
        _refresh(matcher, name)

    await _run(name, delete)
    await audited(request, actor, "bank.delete", f"bank:{name}")
    return JSONResponse({"deleted": name})


# --- entries ----------------------------------------------------------------------------------------


def _json_entries(data: Any, signal_type: SignalType) -> list[NewEntry]:
    """[{"hash", "source"?, "tags"?}, …] (or {"entries": [...]}); every bad item is reported by number."""
    items = data.get("entries") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ApiError(422, "invalid_entries", 'send a JSON array of entries, or {"entries": [...]}',
                       '[{"hash": "…", "source": "ncmec", "tags": ["csam"]}]')
    entries: list[NewEntry] = []
    problems: list[dict[str, Any]] = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("hash"), str):
            problems.append({"item": number, "message": 'an entry is an object with a "hash" string'})
            continue
        source, tags = item.get("source", ""), item.get("tags", [])
        if not isinstance(source, str):
            problems.append({"item": number, "message": '"source" must be a string'})
            continue
        if isinstance(tags, str):
            tags = list(parse_tags(tags))
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            problems.append({"item": number, "message": '"tags" must be a list of non-empty strings'})
            continue
        try:
            digest = normalize_hash(signal_type, item["hash"])
        except HashingError as error:
            problems.append({"item": number, "message": str(error),
                             "hint": f"a {signal_type.value} hash is {signal_type.hex_length} hex digits"})
            continue
        entries.append(NewEntry(digest, source, tuple(dict.fromkeys(tags))))
    if problems:
        raise ApiError(422, "invalid_entries", f"{len(problems)} bad entr{'y' if len(problems) == 1 else 'ies'}; "
                       "nothing was imported", "fix every item listed (numbered from 1) and send them all again",
                       extra={"items": problems[:100], "total": len(problems)})
    return entries


def _csv_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise _lines_error([LineError(line, f"not UTF-8 text: {error.reason}", "save the file as UTF-8")], 1
                           ) from None


async def add_entries(request: Request) -> Response:
    """JSON entries, or a CSV body (Content-Type: text/csv): a header row naming hash, signal_type, tags,
    source in any order, or ThreatExchange-style hash,signal_type,tags lines. ?source= fills in the source
    of lines without one. All or nothing: any bad line or item is a 422 listing every one."""
    actor = permit(request, "banks.write")
    svc = service(request)
    store, matcher = svc.banks
    name = request.path_params["name"]
    content_type = _content_type(request)
    is_csv = content_type in ("text/csv", "application/csv")
    if not (is_csv or _is_json(content_type)):
        raise ApiError(415, "unsupported_media_type", f"cannot import entries from {content_type or '(none)'!r}",
                       "send Content-Type: text/csv with CSV lines, or application/json with a list of entries")
    bank = await _run(name, store.get_bank, name)
    raw = await read_body(request, svc.settings.max_batch_bytes)
    default_source = request.query_params.get("source", "")
    ignored: tuple[str, ...] = ()
    if is_csv:
        text = _csv_text(raw)
        entries, ignored = await _run(name, lambda: parse_entries(io.StringIO(text, newline=""), bank.signal_type,
                                                                  default_source=default_source))
    else:
        entries = _json_entries(_json(raw), bank.signal_type)

    def add() -> list[int]:
        ids = store.add_entries(name, entries)
        if ids:
            _refresh(matcher, name)
        return ids

    ids = await _run(name, add)
    if ids:
        await audited(request, actor, "bank.entries.add", f"bank:{name}",
                      {"added": len(ids), "first_id": ids[0], "last_id": ids[-1]})
    body = {"bank": name, "added": len(ids), "duplicates": len(entries) - len(ids), "ids": ids,
            "ignored_columns": list(ignored)}
    return JSONResponse(body, status_code=201 if ids else 200)


async def delete_entry(request: Request) -> Response:
    actor = permit(request, "banks.write")
    store, matcher = service(request).banks
    name = request.path_params["name"]
    try:
        entry_id = int(request.path_params["entry_id"])
    except ValueError:
        raise ApiError(400, "bad_entry", "an entry is its number (id), as the import and match answers give it"
                       ) from None

    def remove() -> int:
        removed = store.remove_entries(name, [entry_id])
        if removed:
            _refresh(matcher, name)
        return removed

    if not await _run(name, remove):
        raise ApiError(404, "unknown_entry", f"bank {name!r} has no entry {entry_id}",
                       f"GET /v1/banks/{name}/export lists the entries")
    await audited(request, actor, "bank.entry.remove", f"bank:{name}", {"entry": entry_id})
    return JSONResponse({"bank": name, "removed": entry_id})


async def export(request: Request) -> Response:
    """The bank's enabled entries as CSV with a header row; both formats import back."""
    permit(request, "banks.write")
    store, _ = service(request).banks
    name = request.path_params["name"]
    fmt = request.query_params.get("format", "vigil")
    if fmt not in EXPORT_FORMATS:
        raise ApiError(400, "bad_format", f"unknown export format {fmt!r}", f"use one of: {', '.join(EXPORT_FORMATS)}")

    def write() -> str:
        out = io.StringIO()
        export_csv(store, name, out, fmt="threatexchange" if fmt == "threatexchange" else "vigil")
        return out.getvalue()

    text = await _run(name, write)
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


routes = [
    Route("/v1/hash", hash_content, methods=["POST"]),
    Route("/v1/banks", list_banks, methods=["GET"]),
    Route("/v1/banks", create_bank, methods=["POST"]),
    Route("/v1/banks/{name}", get_bank, methods=["GET"]),
    Route("/v1/banks/{name}", update_bank, methods=["PATCH"]),
    Route("/v1/banks/{name}", delete_bank, methods=["DELETE"]),
    Route("/v1/banks/{name}/match", match, methods=["POST"]),
    Route("/v1/banks/{name}/entries", add_entries, methods=["POST"]),
    Route("/v1/banks/{name}/entries/{entry_id}", delete_entry, methods=["DELETE"]),
    Route("/v1/banks/{name}/export", export, methods=["GET"]),
]
