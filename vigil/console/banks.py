"""The Banks pages: hash banks with their entries, CSV import with an error for each bad line (nothing
imported then), enabling and disabling a bank or an entry, and matching a file or text against a bank.
Each calls what the API's routes call (vigil.service.banks, vigil.hashing.csvio), audited the same way."""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from vigil.hashing.csvio import ImportFailed, parse_entries
from vigil.service.banks import _list, _match, _refresh, _run, bank_json, match_json
from vigil.service.errors import ApiError
from vigil.service.people import audited
from vigil.service.state import service

from .web import CONSOLE_PATH, action, in_thread, page, principal_of, render

SHOWN_ENTRIES = 200  # entries a bank's page lists (newest imports are exported with `vigil bank export`)


@page("banks.write")
async def banks_list(request: Request) -> Response:
    store, _ = service(request).banks
    return render(request, "banks/list.html", {"banks": await _run("", _list, store)})


async def _bank_page(request: Request, name: str, **extra: Any) -> Response:
    store, _ = service(request).banks
    bank = await _run(name, store.get_bank, name)
    count = await _run(name, store.count_entries, name)
    entries = await _run(name, lambda: list(itertools.islice(store.iter_entries(name, include_disabled=True),
                                                             SHOWN_ENTRIES)))
    context = {"bank": bank_json(bank, count), "entries": entries, "shown": SHOWN_ENTRIES, "errors": [],
               "total_errors": 0, "imported": None, "matches": None, "csv": "", **extra}
    return render(request, "banks/bank.html", context, status=extra.get("status", 200))


@page("banks.write")
async def bank_detail(request: Request) -> Response:
    return await _bank_page(request, request.query_params.get("name", ""))


def _to_bank(name: str) -> Response:
    return RedirectResponse(f"{CONSOLE_PATH}/banks/bank?name={urllib.parse.quote(name, safe='')}", status_code=303)


@action("banks.write")
async def import_csv(request: Request) -> Response:
    """CSV lines pasted or read from a file: all or nothing, every bad line named with how to fix it."""
    svc = service(request)
    store, matcher = svc.banks
    form: dict[str, str] = request.state.form
    name, text, source = form.get("name", ""), form.get("csv", ""), form.get("source", "")
    bank = await _run(name, store.get_bank, name)
    try:
        # Not through `_run`: its bank errors become an error page, and these belong on the bank's page.
        entries, _ = await in_thread(lambda: parse_entries(io.StringIO(text, newline=""), bank.signal_type,
                                                           default_source=source, path="import"))
    except ImportFailed as failed:
        return await _bank_page(request, name, errors=failed.errors, total_errors=failed.total, csv=text,
                                status=422)

    def add() -> list[int]:
        ids = store.add_entries(name, entries)
        if ids:
            _refresh(matcher, name)
        return ids

    ids = await _run(name, add)
    if ids:
        await audited(request, principal_of(request), "bank.entries.add", f"bank:{name}",
                      {"added": len(ids), "first_id": ids[0], "last_id": ids[-1]})
    return await _bank_page(request, name, imported={"added": len(ids), "duplicates": len(entries) - len(ids)})


@action("banks.write")
async def toggle(request: Request) -> Response:
    """Enable or disable a bank (no `entry`) or one of its entries."""
    store, matcher = service(request).banks
    form: dict[str, str] = request.state.form
    name, enabled, entry = form.get("name", ""), form.get("enabled") == "true", form.get("entry", "")

    def change() -> None:
        if entry:
            store.set_entries_enabled(name, [int(entry)], enabled)
        else:
            store.update_bank(name, enabled=enabled)
        _refresh(matcher, name)

    if entry and not entry.isdigit():
        raise ApiError(400, "bad_entry", "an entry is its number")
    await _run(name, change)
    await audited(request, principal_of(request), "bank.entries.enable" if entry else "bank.update", f"bank:{name}",
                  {"enabled": enabled, **({"entry": int(entry)} if entry else {})})
    return _to_bank(name)


@action("read")
async def match(request: Request) -> Response:
    """A file (read by the page's script as base64) or text, matched against the bank, nearest first."""
    _, matcher = service(request).banks
    form: dict[str, str] = request.state.form
    name = form.get("name", "")
    bank = await _run(name, matcher.bank, name)
    value: bytes | str
    kind = "media"
    if form.get("file"):
        try:
            value = base64.b64decode(form["file"].split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "bad_file", "the file could not be read", "choose the file again") from None
    elif form.get("hash"):
        kind, value = "hash", form["hash"].strip()
    else:
        kind, value = "text", form.get("text", "")
    found = await _run(name, _match, matcher, bank, kind, value, None)
    return await _bank_page(request, name, matches=[match_json(m) for m in found])
