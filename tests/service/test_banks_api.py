"""Hashing, matching and bank administration over HTTP, on a real SQLite bank store and real images."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hashing.images import encode, photo

from vigil.hashing.hashers import pdq_bytes, simhash_text

from .helpers import Running, event, write_rules

KNOWN = encode(photo(1))  # the known-bad image, as PNG
COPY = encode(photo(1).resize((300, 225)), "JPEG", quality=70)  # resized and recompressed
OTHER = encode(photo(2))  # unrelated
OCTETS = {"Content-Type": "application/octet-stream"}
CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def banked(make_service: Callable[..., Running], tmp_path: Path) -> Running:
    return make_service(banks=str(tmp_path / "banks.sqlite"))


def _headers(svc: Running, scope: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**svc.headers(scope), **(extra or {})}


def _create(svc: Running, name: str, signal_type: str = "pdq", **settings: Any) -> Any:
    return svc.client.post("/v1/banks", json={"name": name, "signal_type": signal_type, **settings},
                           headers=svc.headers("admin"))


def _import_csv(svc: Running, name: str, text: str) -> Any:
    return svc.client.post(f"/v1/banks/{name}/entries", content=text.encode(), headers=_headers(svc, "admin", CSV))


def _match(svc: Running, name: str, body: bytes | dict[str, Any], scope: str = "read", query: str = "") -> Any:
    url = f"/v1/banks/{name}/match{query}"
    if isinstance(body, bytes):
        return svc.client.post(url, content=body, headers=_headers(svc, scope, OCTETS))
    return svc.client.post(url, json=body, headers=svc.headers(scope))


def _entries(svc: Running, name: str) -> int:
    count: int = svc.client.get(f"/v1/banks/{name}", headers=svc.headers("admin")).json()["entries"]
    return count


def _export(svc: Running, name: str, fmt: str) -> str:
    response = svc.client.get(f"/v1/banks/{name}/export?format={fmt}", headers=svc.headers("admin"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    return response.text


def test_hash_gives_pdq_with_quality_md5_and_sha256_or_the_text_simhash(banked: Running) -> None:
    hashed = banked.client.post("/v1/hash", content=KNOWN, headers=_headers(banked, "read", {"Content-Type": "image/png"}))
    assert hashed.status_code == 200
    body = hashed.json()
    expected = pdq_bytes(KNOWN)
    assert body["pdq"] == {"hash": expected.hash, "quality": expected.quality}
    assert body["md5"] == hashlib.md5(KNOWN).hexdigest() and body["sha256"] == hashlib.sha256(KNOWN).hexdigest()
    as_base64 = banked.client.post("/v1/hash", json={"base64": base64.b64encode(KNOWN).decode()},
                                   headers=banked.headers("read"))
    assert as_base64.json() == body
    text = banked.client.post("/v1/hash", json={"text": "Buy cheap followers"}, headers=banked.headers("read"))
    assert text.json() == {"text_simhash": simhash_text("Buy cheap followers")}
    bad = banked.client.post("/v1/hash", content=b"not an image", headers=_headers(banked, "read", OCTETS))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "undecodable_media"
    form = banked.client.post("/v1/hash", content=b"a=b", headers=_headers(
        banked, "read", {"Content-Type": "application/x-www-form-urlencoded"}))
    assert form.status_code == 415 and "octet-stream" in form.json()["error"]["hint"]
    too_big = banked.client.post("/v1/hash", content=b"x" * ((1 << 20) + 1), headers=_headers(banked, "read", OCTETS))
    assert too_big.status_code == 413


def test_a_bank_from_import_to_match_export_and_disable(banked: Running) -> None:
    created = _create(banked, "known")
    assert created.status_code == 201
    assert created.json() | {"created_at": None} == {"name": "known", "signal_type": "pdq", "max_distance": 31,
                                                     "min_quality": 50, "enabled": True, "entries": 0,
                                                     "created_at": None}
    assert _create(banked, "known").json()["error"]["code"] == "bank_exists"
    known = pdq_bytes(KNOWN).hash
    unrelated = pdq_bytes(encode(photo(3))).hash

    # One bad line: all of it refused, every bad line named, nothing imported.
    bad = _import_csv(banked, "known", f"hash,signal_type,tags,source\n{known},pdq,ncii,hotline\n"
                                       f"{'zz' * 32},pdq,,\n{unrelated[:-2]},pdq,,\n")
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["code"] == "invalid_csv" and [line["line"] for line in error["lines"]] == [3, 4]
    assert "hex" in error["lines"][0]["message"] and error["lines"][1]["hint"]
    assert _entries(banked, "known") == 0

    good = _import_csv(banked, "known", f"hash,signal_type,tags,source\n{known},pdq,ncii,hotline\n"
                                        f"{unrelated},pdq,spam;scam,\n")
    assert good.status_code == 201 and good.json()["added"] == 2 and good.json()["duplicates"] == 0
    known_id = good.json()["ids"][0]

    # A resized JPEG copy is found; an unrelated image is not.
    found = _match(banked, "known", COPY)
    assert found.status_code == 200
    [hit] = found.json()["matches"]
    assert (hit["entry"], hit["hash"], hit["tags"], hit["source"]) == (known_id, known, ["ncii"], "hotline")
    assert 0 <= hit["distance"] <= 31
    assert _match(banked, "known", OTHER).json()["matches"] == []
    as_base64 = _match(banked, "known", {"base64": base64.b64encode(COPY).decode()})
    assert as_base64.json()["matches"] == [hit]
    exact = _match(banked, "known", {"hash": known.upper()})
    assert exact.json()["matches"][0]["distance"] == 0
    one_bit_off = f"{int(known, 16) ^ 1:064x}"
    assert [m["distance"] for m in _match(banked, "known", {"hash": one_bit_off}).json()["matches"]] == [1]
    assert _match(banked, "known", {"hash": one_bit_off}, query="?max_distance=0").json()["matches"] == []

    # Both export formats import back into a new bank with the same entries.
    def rows(text: str) -> list[list[str]]:
        return sorted(row.split(",")[:4] for row in text.splitlines())  # all but the time added

    for fmt in ("vigil", "threatexchange"):
        exported = _export(banked, "known", fmt)
        assert exported.splitlines()[0] == "hash,signal_type,tags" + (",source,added_at" if fmt == "vigil" else "")
        assert _create(banked, f"copy-{fmt}").status_code == 201
        assert _import_csv(banked, f"copy-{fmt}", exported).json()["added"] == 2
        assert rows(_export(banked, f"copy-{fmt}", fmt)) == rows(exported)
    vigil_rows = _export(banked, "known", "vigil").splitlines()
    assert any(row.startswith(f"{known},pdq,ncii,hotline,") for row in vigil_rows)

    # Disabled, the bank matches nothing; the listing shows it with its count.
    patched = banked.client.patch("/v1/banks/known", json={"enabled": False}, headers=banked.headers("admin"))
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    disabled = _match(banked, "known", COPY).json()
    assert disabled["matches"] == [] and disabled["enabled"] is False
    listing = banked.client.get("/v1/banks", headers=banked.headers("admin")).json()["banks"]
    assert [(b["name"], b["entries"], b["enabled"]) for b in listing] == [
        ("copy-threatexchange", 2, True), ("copy-vigil", 2, True), ("known", 2, False)]
    banked.client.patch("/v1/banks/known", json={"enabled": True, "max_distance": 40}, headers=banked.headers("admin"))
    assert banked.client.get("/v1/banks/known", headers=banked.headers("admin")).json()["max_distance"] == 40

    # Entries and banks go away.
    removed = banked.client.delete(f"/v1/banks/known/entries/{known_id}", headers=banked.headers("admin"))
    assert removed.status_code == 200
    assert _match(banked, "known", COPY).json()["matches"] == []
    again = banked.client.delete(f"/v1/banks/known/entries/{known_id}", headers=banked.headers("admin"))
    assert again.status_code == 404 and again.json()["error"]["code"] == "unknown_entry"
    assert banked.client.delete("/v1/banks/known", headers=banked.headers("admin")).status_code == 200
    assert _match(banked, "known", COPY).status_code == 404


def test_clear_errors(banked: Running) -> None:
    assert _create(banked, "known").status_code == 201
    for response in (_match(banked, "nope", COPY),
                     banked.client.get("/v1/banks/nope", headers=banked.headers("admin")),
                     banked.client.patch("/v1/banks/nope", json={"enabled": False}, headers=banked.headers("admin")),
                     banked.client.delete("/v1/banks/nope", headers=banked.headers("admin")),
                     _import_csv(banked, "nope", "hash\n"),
                     banked.client.get("/v1/banks/nope/export", headers=banked.headers("admin"))):
        assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_bank", response.text
    bad_hash = _match(banked, "known", {"hash": "12ab"})
    assert bad_hash.status_code == 422 and bad_hash.json()["error"]["code"] == "bad_hash"
    assert "64 hex" in bad_hash.json()["error"]["hint"]
    undecodable = _match(banked, "known", b"\x89PNG but not really")
    assert undecodable.status_code == 422 and undecodable.json()["error"]["code"] == "undecodable_media"
    text = _match(banked, "known", {"text": "hello"})
    assert text.status_code == 422 and text.json()["error"]["code"] == "text_for_media_bank"
    assert _match(banked, "known", COPY, query="?max_distance=500").status_code == 400
    assert _match(banked, "known", {"text": "a", "hash": "b"}).status_code == 422
    assert _match(banked, "known", {"base64": "%%%"}).json()["error"]["code"] == "invalid_base64"
    items = banked.client.post("/v1/banks/known/entries", json=[{"hash": pdq_bytes(KNOWN).hash}, {"hash": "xyz"}, 7],
                               headers=banked.headers("admin"))
    assert items.status_code == 422
    assert [i["item"] for i in items.json()["error"]["items"]] == [2, 3] and _entries(banked, "known") == 0
    for body in ({"name": "x", "signal_type": "jpeg"}, {"name": "bad name!", "signal_type": "pdq"},
                 {"name": "x", "signal_type": "md5", "max_distance": 3}, {"name": "x"}):
        invalid = banked.client.post("/v1/banks", json=body, headers=banked.headers("admin"))
        assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_bank", body
    renamed = banked.client.patch("/v1/banks/known", json={"signal_type": "md5"}, headers=banked.headers("admin"))
    assert renamed.status_code == 422 and "create another bank" in renamed.json()["error"]["hint"]
    assert banked.client.get("/v1/banks/known/export?format=xml", headers=banked.headers("admin")).status_code == 400
    empty = _import_csv(banked, "known", "")
    assert empty.status_code == 200  # an empty file imports nothing, and is not an error
    latin1 = banked.client.post("/v1/banks/known/entries", content=b"hash\n\xff\xfe\n",
                                headers=_headers(banked, "admin", CSV))
    assert latin1.status_code == 422 and latin1.json()["error"]["lines"][0]["line"] == 2


def test_a_text_bank_matches_near_duplicates(banked: Running) -> None:
    assert _create(banked, "spam", "text_simhash").json()["max_distance"] == 10
    added = banked.client.post("/v1/banks/spam/entries", json=[{"hash": simhash_text("Buy cheap followers at example dot com"),
                                                                "source": "reports", "tags": ["spam"]}],
                               headers=banked.headers("admin"))
    assert added.status_code == 201 and added.json()["added"] == 1
    [hit] = _match(banked, "spam", {"text": "BUY CHEAP f0ll0wers at example dot com"}).json()["matches"]
    assert hit["tags"] == ["spam"] and hit["distance"] == 0
    assert _match(banked, "spam", {"text": "The weather is lovely today in the park"}).json()["matches"] == []
    duplicate = banked.client.post("/v1/banks/spam/entries", json={"entries": [{"hash": hit["hash"]}]},
                                   headers=banked.headers("admin"))
    assert duplicate.status_code == 200 and duplicate.json()["duplicates"] == 1


def test_scopes_are_enforced(banked: Running) -> None:
    assert _create(banked, "known").status_code == 201
    for scope in ("read", "ingest"):
        for method, url in (("GET", "/v1/banks"), ("POST", "/v1/banks"), ("GET", "/v1/banks/known"),
                            ("PATCH", "/v1/banks/known"), ("DELETE", "/v1/banks/known"),
                            ("POST", "/v1/banks/known/entries"), ("DELETE", "/v1/banks/known/entries/1"),
                            ("GET", "/v1/banks/known/export")):
            response = banked.client.request(method, url, json={}, headers=banked.headers(scope))
            assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden", (scope, url)
    assert _match(banked, "known", COPY, scope="read").status_code == 200
    assert _match(banked, "known", COPY, scope="ingest").status_code == 403
    hashed = banked.client.post("/v1/hash", content=KNOWN, headers=_headers(banked, "ingest", OCTETS))
    assert hashed.status_code == 403
    assert banked.client.post("/v1/hash", content=KNOWN, headers=OCTETS).status_code == 401
    assert _match(banked, "known", COPY, scope="admin").status_code == 200  # admin implies read


def test_without_banks_the_routes_say_how_to_get_them(svc: Running) -> None:
    response = svc.client.get("/v1/banks", headers=svc.headers("admin"))
    assert response.status_code == 503 and "--banks" in response.json()["error"]["hint"]


def test_a_rule_sees_an_entry_added_through_the_api(make_service: Callable[..., Running], rules_dir: Path,
                                                    tmp_path: Path) -> None:
    write_rules(rules_dir, 'rule "Known image"\n  when event is "post" and event.image matches bank "known" within 31\n'
                           "  then block\n")
    running = make_service(banks=str(tmp_path / "banks.sqlite"))
    image = base64.b64encode(COPY).decode()
    assert running.post_event(event("post", image=image)).json()["verdict"] == "allow"  # no such bank yet
    assert _create(running, "known").status_code == 201
    entry = {"hash": pdq_bytes(KNOWN).hash, "source": "hotline", "tags": ["ncii"]}
    added = running.client.post("/v1/banks/known/entries", json=[entry], headers=running.headers("admin"))
    assert added.status_code == 201

    decision = running.post_event(event("post", image=image)).json()
    assert decision["verdict"] == "block"
    [hit] = decision["explanation"]
    [match] = hit["features"]['event.image matches bank "known" within 31']
    assert (match["bank"], match["entry"], match["tags"], match["source"]) == ("known", added.json()["ids"][0],
                                                                                ["ncii"], "hotline")
    assert 0 <= match["distance"] <= 31
    unrelated = running.post_event(event("post", image=base64.b64encode(OTHER).decode())).json()
    assert unrelated["verdict"] == "allow"

    running.client.patch("/v1/banks/known", json={"enabled": False}, headers=running.headers("admin"))
    assert running.post_event(event("post", image=image)).json()["verdict"] == "allow"


def test_serve_keeps_the_banks_beside_the_state() -> None:
    from vigil.service.cli import default_banks

    assert default_banks("vigil-data/vigil.sqlite") == str(Path("vigil-data/banks.sqlite"))
    assert default_banks("sqlite:///srv/state.db") == str(Path("srv/banks.sqlite"))
    assert default_banks("postgresql://db/vigil") == "vigil-data/banks.sqlite"
    assert default_banks("memory") == ":memory:"


def test_a_png_bomb_is_413_media_too_large_not_a_500(banked: Running) -> None:
    from hashing.bombs import png_bomb

    bomb = png_bomb(12000, 12000)  # 144 Mpx: was decoded by the video fallback until MemoryError (500)
    for url in ("/v1/hash", "/v1/banks/known/match"):
        if url.endswith("match"):
            assert _create(banked, "known").status_code == 201
        response = banked.client.post(url, content=bomb, headers=_headers(banked, "read", {"Content-Type": "image/png"}))
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["code"] == "media_too_large" and "12000×12000" in error["message"]
        assert "VIGIL_MEDIA_" in error["hint"]
