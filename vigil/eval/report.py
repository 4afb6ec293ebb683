"""A self-contained HTML report: tables plus plots embedded as base64 PNG.

Plots use matplotlib's object API on an Agg canvas (no pyplot, so no global figure state and no
display needed).
"""

from __future__ import annotations

import base64
import io
from html import escape
from typing import Any

from vigil.eval.metrics import Interval, fmt
from vigil.eval.runner import Comparison, EvalResult

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.t{text-align:left;max-width:600px;white-space:pre-wrap}
img{max-width:100%;border:1px solid #eee}.plots{display:flex;flex-wrap:wrap;gap:1rem}
"""


def render_html(
    results: list[EvalResult], comparison: Comparison | None = None, *, title: str = "Vigil eval"
) -> str:
    """The whole report as one HTML string."""
    parts = [f"<!doctype html><meta charset=utf-8><title>{escape(title)}</title><style>{_STYLE}</style>"]
    parts.append(f"<h1>{escape(title)}</h1>")
    if results:
        parts.append(
            f"<p>Dataset: <code>{escape(results[0].dataset)}</code>, {results[0].overall.n} examples.</p>"
        )
    parts.append(_summary_table(results))
    if comparison is not None:
        parts.append(_comparison_section(comparison))
    plots = [_img(_pr_plot(results), "precision-recall curve")]
    for result in results:
        plots.append(_img(_confusion_plot(result), f"confusion matrix of {result.candidate}"))
        for column in result.slices:
            plots.append(
                _img(_slice_plot(result, column), f"accuracy and F1 by {column} for {result.candidate}")
            )
    parts.append("<h2>Plots</h2><div class=plots>" + "".join(plots) + "</div>")
    for result in results:
        parts.append(_slices_section(result))
        parts.append(_errors_section(result))
    return "\n".join(parts)


def _summary_table(results: list[EvalResult]) -> str:
    head = "<tr><th>candidate</th><th>version</th><th>precision</th><th>recall</th><th>F1</th><th>FPR</th>"
    head += "<th>F1 95% interval</th><th>coverage</th><th>AP</th><th>p50 ms</th><th>p99 ms</th><th>tokens</th></tr>"
    rows = []
    for r in results:
        o = r.overall
        ap = f"{r.average_precision:.3f}" if r.average_precision is not None else "–"
        rows.append(
            f"<tr><td class=t>{escape(r.candidate)}</td><td class=t><code>{escape(r.version)}</code></td>"
            f"<td>{fmt(o.precision)}</td><td>{fmt(o.recall)}</td><td>{fmt(o.f1)}</td><td>{fmt(o.fpr)}</td>"
            f"<td>{interval(r.ci.intervals.get('f1'))}</td><td>{fmt(o.coverage)}</td><td>{ap}</td><td>{r.latency_p50_s * 1000:.1f}</td>"
            f"<td>{r.latency_p99_s * 1000:.1f}</td><td>{r.tokens}</td></tr>"
        )
    return "<h2>Summary</h2><table>" + head + "".join(rows) + "</table>"


def _comparison_section(c: Comparison) -> str:
    level = f"{c.delta_ci.level:.0%}"
    deltas = "".join(
        f"<tr><td class=t>{k}</td><td>{fmt(v, '+.3f')}</td><td>{interval(c.delta_ci.intervals.get(k), '+.3f')}</td>"
        f"</tr>"
        for k, v in c.deltas().items()
    )
    m = c.mcnemar
    verdict = "significant at 5%" if m.p_value < 0.05 else "not significant at 5%"
    return (
        f"<h2>A/B: {escape(c.b.candidate)} minus {escape(c.a.candidate)}</h2>"
        f"<table><tr><th>metric</th><th>B − A</th><th>{level} interval (paired bootstrap, "
        f"{c.delta_ci.resamples} resamples)</th></tr>{deltas}</table>"
        f"<p>An interval that excludes 0 is a difference unlikely to be chance. McNemar's exact test compares "
        f"accuracy only: {m.a_only_correct} examples only A got right, {m.b_only_correct} only B; "
        f"p = {m.p_value:.4g} ({verdict}).</p>"
    )


def interval(value: Interval, spec: str = ".3f") -> str:
    """``[low, high]`` or ``n/a``."""
    return "n/a" if value is None else f"[{value[0]:{spec}}, {value[1]:{spec}}]"


def _slices_section(r: EvalResult) -> str:
    out = []
    for column, values in r.slices.items():
        rows = "".join(
            f"<tr><td class=t>{escape(v) or '(empty)'}</td><td>{c.n}</td><td>{fmt(c.precision)}</td>"
            f"<td>{fmt(c.recall)}</td><td>{fmt(c.f1)}</td><td>{fmt(c.fpr)}</td><td>{fmt(c.accuracy)}</td></tr>"
            for v, c in values.items()
        )
        out.append(
            f"<h3>{escape(r.candidate)} by {escape(column)}</h3><table><tr><th>{escape(column)}</th><th>n</th>"
            f"<th>precision</th><th>recall</th><th>F1</th><th>FPR</th><th>accuracy</th></tr>{rows}</table>"
        )
    return "".join(out)


def _errors_section(r: EvalResult) -> str:
    rows = "".join(
        f"<tr><td>{m.index}</td><td>{_yes(m.expected)}</td><td>{_yes(m.predicted)}</td>"
        f"<td>{'' if m.score is None else f'{m.score:.3f}'}</td><td class=t>{escape(m.text[:500])}</td>"
        f"<td class=t>{escape(m.rationale[:300])}</td></tr>"
        for m in r.misclassified
    )
    return (
        f"<h3>{escape(r.candidate)}: misclassified (first {len(r.misclassified)})</h3><table><tr><th>#</th>"
        f"<th>expected</th><th>predicted</th><th>score</th><th>text</th><th>rationale</th></tr>{rows}</table>"
    )


def _yes(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _figure(width: float = 5.0, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=90)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(data: str, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _pr_plot(results: list[EvalResult]) -> str:
    figure = _figure()
    ax = figure.add_subplot()
    for r in results:
        if r.pr_recall:
            ax.plot(r.pr_recall, r.pr_precision, label=f"{r.candidate} (AP {r.average_precision:.3f})")
        o = r.overall
        if o.recall is not None and o.precision is not None:
            ax.scatter([o.recall], [o.precision], marker="o", label=f"{r.candidate} operating point")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title="Precision–recall")
    ax.legend(fontsize=7, loc="lower left")
    return _png(figure)


def _confusion_plot(r: EvalResult) -> str:
    figure = _figure(3.6, 3.2)
    ax = figure.add_subplot()
    o = r.overall
    cells = [[o.tn, o.fp], [o.fn, o.tp]]
    ax.imshow(cells, cmap="Blues")
    for i in range(2):
        for j in range(2):
            dark = cells[i][j] > max(max(row) for row in cells) / 2
            ax.text(
                j,
                i,
                str(cells[i][j]),
                ha="center",
                va="center",
                fontsize=12,
                color="white" if dark else "black",
            )
    ax.set_xticks([0, 1], ["predicted no", "predicted yes"])
    ax.set_yticks([0, 1], ["actual no", "actual yes"])
    ax.set_title(f"{r.candidate} (unknown: {o.unknown})", fontsize=9)
    return _png(figure)


def _slice_plot(r: EvalResult, column: str) -> str:
    # Accuracy beside F1: a slice with only negative examples (e.g. HateCheck's "_nh" tests) has
    # F1 0 by definition, and its accuracy is what tells how the candidate did there.
    values = r.slices[column]
    figure = _figure(max(4.0, 0.4 * len(values) + 2), 3.6)
    ax = figure.add_subplot()
    names = list(values)
    xs = range(len(names))
    ax.bar(
        [x - 0.2 for x in xs],
        [_nan(values[n].accuracy) for n in names],
        width=0.4,
        label="accuracy",
        color="#4c72b0",
    )
    ax.bar([x + 0.2 for x in xs], [_nan(values[n].f1) for n in names], width=0.4, label="F1", color="#dd8452")
    ax.set_xticks(list(xs), [n[:24] or "(empty)" for n in names], rotation=60, ha="right", fontsize=7)
    ax.set(ylim=(0, 1), title=f"{r.candidate}: by {column}")
    ax.legend(fontsize=7)
    return _png(figure)


def _nan(value: float | None) -> float:
    # matplotlib draws no bar for NaN, which is what an undefined rate should look like.
    return float("nan") if value is None else value
