"""Labels over HTTP: read, history, manual add and remove with a reason; people outrank rules."""

from __future__ import annotations

from .helpers import Running, post


def _labels(svc: Running, key: str, everything: bool = False) -> list[dict[str, object]]:
    url = f"/v1/entities/user/{key}/labels" + ("?all=true" if everything else "")
    labels: list[dict[str, object]] = svc.get(url).json()["labels"]
    return labels


def test_manual_label_needs_a_reason_and_records_the_token(svc: Running) -> None:
    url = "/v1/entities/user/u5/labels"
    no_reason = svc.client.post(url, json={"label": "suspended"}, headers=svc.headers("admin"))
    assert no_reason.status_code == 422
    assert no_reason.json()["error"]["code"] == "reason_required"
    added = svc.client.post(url, json={"label": "suspended", "reason": "ticket 42"}, headers=svc.headers("admin"))
    assert added.status_code == 201
    assert added.json()["label"]["source"] == "manual"
    [label] = _labels(svc, "u5")
    assert (label["label"], label["actor"], label["reason"], label["active"]) == ("suspended", "token:admin", "ticket 42",
                                                                                       True)
    # Rules see it at once.
    assert svc.post_event(post("hi", user="u5")).json()["verdict"] == "block"
    again = svc.client.post(url, json={"label": "suspended", "reason": "again"}, headers=svc.headers("admin"))
    assert again.status_code == 200 and again.json()["changed"] is False


def test_manual_removal_outranks_rules_and_shows_in_history(svc: Running) -> None:
    assert svc.post_event(post("a badword", user="u6")).json()["verdict"] == "review"
    assert [x["label"] for x in _labels(svc, "u6")] == ["potty-mouth"]
    missing_reason = svc.client.delete("/v1/entities/user/u6/labels/potty-mouth", headers=svc.headers("admin"))
    assert missing_reason.status_code == 422
    removed = svc.client.delete("/v1/entities/user/u6/labels/potty-mouth?reason=false+positive",
                                headers=svc.headers("admin"))
    assert removed.status_code == 200 and removed.json()["changed"] is True
    assert _labels(svc, "u6") == []
    # A rule that would add it again is overruled by the person's removal.
    svc.post_event(post("another badword", user="u6"))
    assert _labels(svc, "u6") == []
    history = svc.get("/v1/entities/user/u6/history").json()["history"]
    assert [(h["source"], h["present"]) for h in history] == [("rule", True), ("manual", False)]
    assert history[1]["reason"] == "false positive"
    assert [x["present"] for x in _labels(svc, "u6", everything=True)] == [False]


def test_label_input_is_checked(svc: Running) -> None:
    headers = svc.headers("admin")
    url = "/v1/entities/user/u7/labels"
    assert svc.client.post(url, content=b"{", headers=headers).status_code == 400
    assert svc.client.post(url, json=["x"], headers=headers).status_code == 422
    assert svc.client.post(url, json={"label": 3, "reason": "r"}, headers=headers).status_code == 422
    bad_expiry = svc.client.post(url, json={"label": "x", "reason": "r", "expires_in": -1}, headers=headers)
    assert bad_expiry.json()["error"]["code"] == "invalid_expiry"
    bad_type = svc.client.get("/v1/entities/9bad/u7/labels", headers=headers)
    assert bad_type.status_code == 400


def test_expiring_manual_label_and_keys_with_slashes(svc: Running) -> None:
    url = "/v1/entities/url/https:/x.test/a/labels"
    added = svc.client.post(url, json={"label": "phish", "reason": "r", "expires_in": 3600},
                            headers=svc.headers("admin"))
    assert added.status_code == 201
    body = svc.get(url).json()
    assert body["key"] == "https:/x.test/a"
    assert body["labels"][0]["expires_at"] is not None


def test_a_manual_removal_expires_or_is_released(svc: Running) -> None:
    admin = svc.headers("admin")
    base = "/v1/entities/user/u8/labels/potty-mouth"
    held = svc.client.request("DELETE", base, json={"reason": "never had it", "expires_in": 3600}, headers=admin)
    assert held.status_code == 200 and held.json()["state"]["held"] is True
    assert held.json()["state"]["expires_at"] is not None
    svc.post_event(post("a badword", user="u8"))
    assert _labels(svc, "u8") == []  # held for the hour
    released = svc.client.post(base + "/release", json={"reason": "mistake"}, headers=admin)
    assert released.status_code == 200 and released.json()["changed"] is True
    assert released.json()["state"]["held"] is False
    svc.post_event(post("a badword", user="u8"))
    assert [x["label"] for x in _labels(svc, "u8")] == ["potty-mouth"]  # rules label again
    nothing = svc.client.post(base + "/release", json={"reason": "again"}, headers=admin)
    assert nothing.json()["changed"] is False


def test_labels_as_of_a_time(svc: Running) -> None:
    admin = svc.headers("admin")
    url = "/v1/entities/user/u9/labels"
    assert svc.client.post(url, json={"label": "vip", "reason": "r"}, headers=admin).status_code == 201
    assert [x["label"] for x in svc.get(url).json()["labels"]] == ["vip"]
    assert svc.get(url + "?at=2020-01-01T00:00:00Z").json()["labels"] == []  # before the person set it
    assert svc.get(url + "?at=1577836800&all=true").json()["labels"] == []
    bad = svc.client.get(url + "?at=yesterday", headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_time"
