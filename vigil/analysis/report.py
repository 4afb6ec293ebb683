"""A backtest's report as text for a terminal and as one self-contained HTML page (no scripts, fonts or
styles from elsewhere: it opens offline and can be attached to a ticket)."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import orjson

from vigil.effects import VERDICTS


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def text_summary(doc: dict[str, Any]) -> str:
    """What a backtest found, in a few lines for a terminal."""
    w, ev, rules = doc["window"], doc["events"], doc["rules"]
    lines = [(f"backtest of rules {doc['candidate']['version']} over {_when(w['since'])} – {_when(w['until'])} "
             f"(warmed from {_when(w['warmup_from'])})"),
             (f"  {ev['replayed']:,} events replayed, {ev['warmup']:,} for warm-up, {ev['without_event']:,} "
             f"stored without their event, {ev['dead_letters']:,} the candidate could not decide")]
    for what in ("added", "changed", "removed", "not_replayed"):
        if rules[what]:
            lines.append(f"  rules {what.replace('_', ' ')}: " + ", ".join(f'"{r}"' for r in rules[what]))
    if not doc["per_rule"]:
        lines.append("  no rule gained or lost a hit")
    for change in doc["per_rule"]:
        lines.append(f"  \"{change['rule']}\": +{change['gained']:,} gained, -{change['lost']:,} lost "
                     f"({change['current_hits']:,} → {change['candidate_hits']:,} hits)")
        for kind in ("gained", "lost"):
            for example in change["examples"][kind][:2]:
                lines.append(f"      {kind}: {example['type']} {example['event_id']} at {_when(example['time'])} "
                             f"{example['current']} → {example['candidate']}  "
                             f"{orjson.dumps(example.get('features', {})).decode()[:120]}")
    v = doc["verdicts"]
    lines.append(f"  verdicts changed on {v['changed']:,} events (current ↓, candidate →):")
    lines.append("      " + "".join(f"{b:>9}" for b in VERDICTS))
    for a in VERDICTS:
        lines.append(f"    {a:>6}" + "".join(f"{v['matrix'][a][b]:>9,}" for b in VERDICTS))
    for truth in (doc["truth"], doc.get("reviews")):
        if truth is None:
            continue
        cur, cand = truth["current"], truth["candidate"]
        lines.append(f"  against {truth['source']} ({truth['events']:,} events; positive: {truth['positive_verdict']} "
                     "or stronger), current → candidate:")
        lines.append(f"      precision {_pct(cur['precision'])} → {_pct(cand['precision'])}, "
                     f"recall {_pct(cur['recall'])} → {_pct(cand['recall'])}")
    rate = doc["throughput"]["events_per_second"]
    if rate:
        lines.append(f"  {doc['throughput']['seconds']:.2f} s, {rate:,.0f} events/s")
    return "\n".join(lines)


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.gain{color:#0a6b1f}.loss{color:#a3161b}.same{color:#999}
code,pre{font:12px ui-monospace,monospace}pre{white-space:pre-wrap;margin:0}
details{margin:.3em 0}summary{cursor:pointer}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _examples_table(examples: list[dict[str, Any]]) -> str:
    if not examples:
        return "<p class=same>none</p>"
    rows = []
    for x in examples:
        shown = {k: x[k] for k in ("features", "rules", "logged_rules") if k in x}
        rows.append(f"<tr><td class=l>{_e(_when(x['time']))}</td><td class=l>{_e(x['type'])}</td>"
                    f"<td class=l><code>{_e(x['source'])} / {_e(x['event_id'])}</code></td>"
                    f"<td class=l>{_e(x['current'])} → {_e(x['candidate'])}</td>"
                    f"<td class=l><pre>{_e(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())}</pre></td></tr>")
    return ("<table><tr><th class=l>time</th><th class=l>type</th><th class=l>event</th><th class=l>verdict</th>"
            "<th class=l>values</th></tr>" + "".join(rows) + "</table>")


def render_html(doc: dict[str, Any]) -> str:
    """The whole report as one HTML page."""
    w, ev, rules, v = doc["window"], doc["events"], doc["rules"], doc["verdicts"]
    parts = [(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Backtest of rules "
             f"{_e(doc['candidate']['version'])}</title><style>{_STYLE}</style></head><body>"),
             f"<h1>Backtest of rules {_e(doc['candidate']['version'])}</h1>",
             (f"<p>{_e(_when(w['since']))} – {_e(_when(w['until']))}, warmed from {_e(_when(w['warmup_from']))}. "
             f"{ev['replayed']:,} events replayed ({ev['warmup']:,} for warm-up, {ev['without_event']:,} stored "
             f"without their event, {ev['dead_letters']:,} the candidate could not decide). "
             f"Compared with rules {_e(doc['current']['version'] or 'as the record saw them fire')}.</p>"),
             "<h2>Rules</h2><table>"]
    for what in ("added", "changed", "removed", "unchanged", "not_replayed"):
        names = ", ".join(_e(r) for r in rules[what]) or "<span class=same>none</span>"
        parts.append(f"<tr><th class=l>{_e(what.replace('_', ' '))}</th><td class=l>{names}</td></tr>")
    parts.append("</table><h2>Hits gained and lost, per rule</h2>")
    if doc["per_rule"]:
        parts.append("<table><tr><th class=l>rule</th><th>current hits</th><th>candidate hits</th><th>gained</th>"
                     "<th>lost</th></tr>")
        for c in doc["per_rule"]:
            parts.append(f"<tr><td class=l>{_e(c['rule'])}</td><td>{c['current_hits']:,}</td>"
                         f"<td>{c['candidate_hits']:,}</td><td class=gain>+{c['gained']:,}</td>"
                         f"<td class=loss>-{c['lost']:,}</td></tr>")
        parts.append("</table>")
        for c in doc["per_rule"]:
            for kind in ("gained", "lost"):
                if c["examples"][kind]:
                    parts.append(f"<details><summary>{_e(c['rule'])}: examples {kind}</summary>"
                                 f"{_examples_table(c['examples'][kind])}</details>")
    else:
        parts.append("<p class=same>No rule gained or lost a hit.</p>")
    parts.append(f"<h2>Verdicts</h2><p>{v['changed']:,} events change verdict. Rows: the record's verdict; "
                 "columns: the candidate's.</p><table><tr><th></th>"
                 + "".join(f"<th>{_e(b)}</th>" for b in VERDICTS) + "</tr>")
    for a in VERDICTS:
        cells = "".join(f"<td class={'same' if a == b else 'l'}>{v['matrix'][a][b]:,}</td>" for b in VERDICTS)
        parts.append(f"<tr><th>{_e(a)}</th>{cells}</tr>")
    parts.append("</table>")
    for change, examples in sorted(v["examples"].items()):
        parts.append(f"<details><summary>examples {_e(change)}</summary>{_examples_table(examples)}</details>")
    parts.append("<h2>Precision and recall</h2>")
    if doc["truth"] is None and doc.get("reviews") is None:
        parts.append("<p class=same>No ground truth: no --truth-field given, and no reviewer decided a subject "
                     "of these events.</p>")
    for truth in (doc["truth"], doc.get("reviews")):
        if truth is None:
            continue
        parts.append(f"<p>Against {_e(truth['source'])} on {truth['events']:,} events; a verdict of "
                     f"{_e(truth['positive_verdict'])} or stronger counts as positive.</p><table><tr><th></th>"
                     "<th>precision</th><th>recall</th><th>tp</th><th>fp</th><th>fn</th><th>tn</th></tr>")
        for side in ("current", "candidate"):
            s = truth[side]
            parts.append(f"<tr><th class=l>{side}</th><td>{_pct(s['precision'])}</td><td>{_pct(s['recall'])}</td>"
                         f"<td>{s['tp']:,}</td><td>{s['fp']:,}</td><td>{s['fn']:,}</td><td>{s['tn']:,}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)
