"""Raw JSON of any shape sent to the JSON routes, and schemathesis over /openapi.json, never get a 5xx (11.6)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import Running

SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=20)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)
EVENTISH = st.fixed_dictionaries({"type": st.sampled_from(["post", "purchase", ""]) | VALUES,
                                  "id": st.text(min_size=1, max_size=8) | VALUES,
                                  "time": st.integers(0, 2**40) | VALUES},
                                 optional={"actor": st.fixed_dictionaries({"id": VALUES}), "text": VALUES,
                                           "amount": VALUES, "meta": VALUES})
ROUTES = ["/v1/events", "/v1/events?mode=async", "/v1/events/batch", "/v1/rules?dry_run=true",
          "/v1/entities/user/u1/labels"]


def test_any_json_body_gets_an_answer_below_500(make_service: Callable[..., Running]) -> None:
    svc = make_service()

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(route=st.sampled_from(ROUTES), body=EVENTISH | st.lists(EVENTISH, max_size=3) | VALUES)
    def post(route: str, body: Any) -> None:
        raw = orjson.dumps(body)
        response = svc.client.post(route, content=raw, headers=svc.headers("admin"))
        assert response.status_code < 500, (route, raw, response.text)

    post()


def test_every_documented_operation_answers_below_500(make_service: Callable[..., Running]) -> None:
    """Schemathesis generates requests for each operation in /openapi.json (bodies, paths, queries)."""
    import schemathesis

    svc = make_service()
    schema = schemathesis.openapi.from_dict(svc.client.get("/openapi.json", headers=svc.headers("admin")).json())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10
    for operation in operations:

        @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            headers = {**svc.headers("admin"), **{k: str(v) for k, v in (case.headers or {}).items()
                                                   if k.lower() not in ("host", "authorization")}}
            kwargs: dict[str, Any] = {"headers": headers, "params": case.query or None}
            body = getattr(case.body, "data", case.body)  # schemathesis wraps binary bodies
            if case.media_type and isinstance(body, bytes | str | dict | list | int | float | bool):
                headers["content-type"] = case.media_type
                # The standard library writes what orjson refuses (integers past 64 bits, lone surrogates).
                kwargs["content"] = body if isinstance(body, bytes | str) else json.dumps(body)
            response = svc.client.request(case.method, case.formatted_path, **kwargs)
            # 503 is a service saying plainly that it lacks something (banks, a queue slot), never a crash.
            refused = response.status_code == 503 and "error" in response.json()
            assert response.status_code < 500 or refused, (case.method, case.formatted_path, response.text)

        call()
