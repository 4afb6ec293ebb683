"""`vigil review …`: the review queues of a running `vigil serve`, over its HTTP API (docs/review.md).

Decisions go through the service, never straight to the store, so that their labels are made on the
engine's serialised path and their events are decided by the running rules. The service's address is
`--url` (env VIGIL_URL), the reviewer's token `--token` (env VIGIL_TOKEN).
"""

from __future__ import annotations

from typing import Any

import click
import orjson

DEFAULT_URL = "http://127.0.0.1:8470"


class Client:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        try:
            response = self.http.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise click.ClickException(f"cannot reach the service at {self.http.base_url}: {error} "
                                       "(start it with `vigil serve`, or give --url / VIGIL_URL)") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            problem = (data or {}).get("error", {}) if isinstance(data, dict) else {}
            hint = f" ({problem['hint']})" if problem.get("hint") else ""
            raise click.ClickException(f"{response.status_code} {problem.get('code', '')}: "
                                       f"{problem.get('message', response.text)}{hint}")
        return data


pass_client = click.make_pass_decorator(Client)


def _show(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _line(item: dict[str, Any]) -> str:
    subject = f"{item['subject']['entity']}:{item['subject']['key']}"
    held = f"  held by {item['claimed_by']}" if item.get("claimed_by") else ""
    late = "  BREACHED" if item.get("breached") else ""
    return f"{item['id']}  {item['queue']}  {subject}  priority {item['priority']:g}  hits {item['hits']}{held}{late}"


@click.group("review")
@click.option("--url", envvar="VIGIL_URL", default=DEFAULT_URL, show_default=True, help="The service (env VIGIL_URL).")
@click.option("--token", envvar="VIGIL_TOKEN", default=None, help="Your API token (env VIGIL_TOKEN).")
@click.pass_context
def review_group(ctx: click.Context, url: str, token: str | None) -> None:
    """Review queues: list, claim, decide (through a running `vigil serve`)."""
    ctx.obj = Client(url, token)
    ctx.call_on_close(ctx.obj.http.close)


@review_group.command("queues")
@click.option("--json", "as_json", is_flag=True)
@pass_client
def queues_command(client: Client, as_json: bool) -> None:
    """Each queue: pending, oldest age, handled in the last hour, median handling time, breaches."""
    data = client.call("GET", "/v1/review/queues")
    if as_json:
        _show(data)
        return
    for q in data["queues"]:
        median = f"{q['median_handling_time']:.0f} s" if q["median_handling_time"] is not None else "-"
        click.echo(f"{q['queue']}: {q['pending']} pending, oldest {q['oldest_age']:.0f} s, "
                   f"{q['handled_per_hour']} handled in the last hour, median {median}, {q['breaches']} breaches")


@review_group.command("items")
@click.argument("queue")
@click.option("--state", type=click.Choice(["open", "decided", "merged"]), default="open", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_client
def items_command(client: Client, queue: str, state: str, as_json: bool) -> None:
    """A queue's items, in the order they are handed out."""
    data = client.call("GET", f"/v1/review/queues/{queue}/items?state={state}")
    if as_json:
        _show(data)
        return
    for item in data["items"]:
        click.echo(_line(item))
    if not data["items"]:
        click.echo(f"no {state} items in {queue}")


@review_group.command("show")
@click.argument("item_id")
@pass_client
def show_command(client: Client, item_id: str) -> None:
    """An item with its evidence, its log and its decision (JSON)."""
    _show(client.call("GET", f"/v1/review/items/{item_id}"))


@review_group.command("claim")
@click.argument("queue_or_item")
@click.option("--item", "is_item", is_flag=True, help="QUEUE_OR_ITEM is an item's id: claim (or renew) that one.")
@pass_client
def claim_command(client: Client, queue_or_item: str, is_item: bool) -> None:
    """Claim a queue's next free item (or, with --item, one item)."""
    path = f"/v1/review/items/{queue_or_item}/claim" if is_item else f"/v1/review/queues/{queue_or_item}/claim"
    item = client.call("POST", path)["item"]
    click.echo(_line(item) if item is not None else f"no free item in {queue_or_item}")


@review_group.command("release")
@click.argument("item_id")
@click.option("--skip", is_flag=True, help="And never offer it to me again.")
@pass_client
def release_command(client: Client, item_id: str, skip: bool) -> None:
    """Hand a held item back to its queue."""
    client.call("POST", f"/v1/review/items/{item_id}/{'skip' if skip else 'release'}")
    click.echo(f"{item_id} {'skipped' if skip else 'released'}")


@review_group.command("assign")
@click.argument("item_id")
@click.argument("reviewer")
@pass_client
def assign_command(client: Client, item_id: str, reviewer: str) -> None:
    """Give an item to a reviewer (a review lead; the reviewer must be able to claim in its queue)."""
    click.echo(_line(client.call("POST", f"/v1/review/items/{item_id}/assign", {"to": reviewer})["item"]))


@review_group.command("decide")
@click.argument("item_id")
@click.argument("action")
@click.option("--reason", default="", help="Why (required where the queue or action says).")
@click.option("--policy", default="", help="The policy applied, e.g. spam/2.1.")
@click.option("--json", "as_json", is_flag=True)
@pass_client
def decide_command(client: Client, item_id: str, action: str, reason: str, policy: str, as_json: bool) -> None:
    """Decide an item you hold with one of its queue's actions."""
    data = client.call("POST", f"/v1/review/items/{item_id}/decide",
                       {"action": action, "reason": reason, "policy": policy})
    if as_json:
        _show(data)
        return
    decision = data["decision"]
    effects = ", ".join(e["kind"] for e in decision["effects"]) or "no effects"
    event = data.get("event") or {}
    # The rules' verdict; or why there is none (a quality check, an event the rules could not read).
    outcome = (f"the rules said {event['verdict']}" if "verdict" in event
               else event.get("skipped") or f"its event: {event.get('error', {}).get('message', 'not decided')}")
    click.echo(f"{decision['id']}: {item_id} decided {action} ({effects}); {outcome}")


@review_group.command("sweep")
@pass_client
def sweep_command(client: Client) -> None:
    """Escalate the items past their queue's target now (a review lead)."""
    late = client.call("POST", "/v1/review/sweep")["breached"]
    click.echo(f"{len(late)} items escalated")
    for item in late:
        click.echo(_line(item))


@review_group.command("reports")
@click.option("--json", "as_json", is_flag=True)
@pass_client
def reports_command(client: Client, as_json: bool) -> None:
    """Child-safety reports, newest first (the child-safety role only; the view is audited)."""
    data = client.call("GET", "/v1/review/reports")
    if as_json:
        _show(data)
        return
    for r in data["reports"]:
        flag = "  TEXT ONLY (no media hashes)" if r["text_only"] else ""
        click.echo(f"{r['id']}  {r['queue']}  item {r['item']}  decision {r['decision']} by {r['actor']}{flag}")
    if not data["reports"]:
        click.echo("no reports you may see")


@review_group.command("report")
@click.argument("report_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the package to this file (created with mode 0600) instead of stdout.")
@pass_client
def report_command(client: Client, report_id: str, output: str | None) -> None:
    """Export one child-safety report package as JSON (the child-safety role only; audited)."""
    data = client.call("GET", f"/v1/review/reports/{report_id}")
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
    if output is None:
        click.echo(text)
        return
    import os

    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    click.echo(f"{report_id} written to {output}")


@review_group.command("golden")
@click.argument("queue")
@click.argument("item_id")
@click.argument("answer")
@pass_client
def golden_command(client: Client, queue: str, item_id: str, answer: str) -> None:
    """Make an item's evidence a golden item of QUEUE whose right action is ANSWER (a review lead)."""
    golden = client.call("POST", f"/v1/review/queues/{queue}/golden", {"item": item_id, "answer": answer})
    click.echo(f"{golden['id']}: golden item of {queue} from {item_id}, answer {answer}")


@review_group.command("quality")
@click.option("--json", "as_json", is_flag=True)
@pass_client
def quality_command(client: Client, as_json: bool) -> None:
    """Golden accuracy and second-review agreement per queue and per reviewer (a review lead)."""
    data = client.call("GET", "/v1/review/quality")
    if as_json:
        _show(data)
        return

    def rate(value: float | None) -> str:
        return f"{value:.0%}" if value is not None else "-"

    for kind, key in (("queue", "queue"), ("reviewer", "reviewer")):
        for row in data[f"{kind}s"]:
            click.echo(f"{kind} {row[key]}: golden {row['golden_correct']}/{row['golden_answered']} "
                       f"({rate(row['golden_accuracy'])}), agreement {row['agreed']}/{row['second_reviews']} "
                       f"({rate(row['agreement_rate'])})")
