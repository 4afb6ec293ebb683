"""``vigil eval``: run one candidate (or two, A/B) over a labelled dataset and write a report."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click

from vigil.classifiers import local
from vigil.classifiers.base import ClassifierError
from vigil.classifiers.cli import endpoint_options
from vigil.classifiers.llm import Endpoint, PolicyClassifier, endpoint_from_options
from vigil.classifiers.policy import load_policy
from vigil.classifiers.registry import DEFAULT_DIR, ClassifierRegistry
from vigil.eval.candidates import Candidate, ClassifierCandidate
from vigil.eval.datasets import Dataset, DatasetError, load_dataset
from vigil.eval.metrics import fmt
from vigil.eval.report import interval, render_html
from vigil.eval.runner import EvalResult, EvaluationFailed, compare, evaluate, save_json


@dataclass(frozen=True, slots=True)
class CandidateContext:
    """What a candidate factory may need: where classifiers live, the endpoint, the threshold."""

    classifiers_dir: Path
    endpoint: Endpoint | None
    threshold: float | None


CandidateFactory = Callable[[str, CandidateContext], Candidate]


def _classifier(spec: str, ctx: CandidateContext) -> Candidate:
    registry = ClassifierRegistry.from_directory(ctx.classifiers_dir)
    return ClassifierCandidate(registry.get(spec), threshold=ctx.threshold)


def _artifact(spec: str, ctx: CandidateContext) -> Candidate:
    return ClassifierCandidate(local.load_path(Path(spec)), threshold=ctx.threshold)


def _policy(spec: str, ctx: CandidateContext) -> Candidate:
    if ctx.endpoint is None:
        raise click.UsageError("a policy candidate needs --endpoint")
    return ClassifierCandidate(
        PolicyClassifier(load_policy(Path(spec)), ctx.endpoint), threshold=ctx.threshold
    )


BUILTIN_KINDS: Mapping[str, CandidateFactory] = {
    "classifier": _classifier,
    "artifact": _artifact,
    "policy": _policy,
}


def make_eval_command(extra_kinds: Mapping[str, CandidateFactory] | None = None) -> click.Command:
    """Build the ``eval`` command; ``extra_kinds`` adds candidate kinds such as ``rules:FILE``."""
    kinds = {**BUILTIN_KINDS, **(extra_kinds or {})}

    @click.command("eval")
    @click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option(
        "-c",
        "--candidate",
        "specs",
        multiple=True,
        required=True,
        help=f"KIND:VALUE with KIND one of {', '.join(kinds)} (a bare name means classifier:NAME). "
        "Give two for an A/B comparison.",
    )
    @click.option("--text-column", default="text", show_default=True, help="Column holding the text.")
    @click.option(
        "--label-column",
        "label_columns",
        multiple=True,
        help="Label column (repeat, or comma-separate, for 'positive if any'). Default: label.",
    )
    @click.option("--positive", multiple=True, help="Label value(s) meaning positive (default: 1/true/yes).")
    @click.option(
        "--missing-label",
        type=click.Choice(["unlabelled", "negative"]),
        default="unlabelled",
        show_default=True,
        help="A row lacking a label column: left out as unlabelled, or read as not in that category.",
    )
    @click.option(
        "--all-positive",
        is_flag=True,
        help="Every row is positive by construction (a set of jailbreak or harmful prompts): no label "
        "column is read, and recall is the figure that means something.",
    )
    @click.option(
        "--slice", "slices", multiple=True, help="Metadata column to break results down by (repeatable)."
    )
    @click.option(
        "--threshold", type=float, default=None, help="Flag when score >= this, instead of the label."
    )
    @click.option(
        "--limit", type=int, default=None, help="Evaluate a seeded random sample of this many rows."
    )
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed for --limit.")
    @click.option(
        "--dir",
        "classifiers_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DIR,
        show_default=True,
        help="Where trained classifiers are kept.",
    )
    @endpoint_options(timeout=60.0)
    @click.option("--concurrency", type=int, default=8, show_default=True, help="Concurrent model requests.")
    @click.option(
        "--max-unanswered",
        type=click.FloatRange(0.0, 1.0),
        default=0.1,
        show_default=True,
        help="Fail when more than this share of examples gets no answer (time-outs, errors, dead letters).",
    )
    @click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Output directory for result.json and report.html (default vigil-data/eval/TIMESTAMP).",
    )
    def eval_command(
        dataset: Path, specs: tuple[str, ...], text_column: str, label_columns: tuple[str, ...],
        positive: tuple[str, ...], missing_label: str, all_positive: bool, slices: tuple[str, ...],
        threshold: float | None,
        limit: int | None,
        seed: int, classifiers_dir: Path, endpoint: str | None, model: str, api_key_env: str | None,
        timeout: float, concurrency: int, max_unanswered: float, out: Path | None,
    ) -> None:  # fmt: skip
        """Evaluate candidates on a labelled DATASET (.jsonl or .csv).

        Reports precision, recall, F1, false-positive rate, per-slice figures, latency and tokens,
        with 95% bootstrap intervals, lists misclassified examples, and with two candidates gives the
        difference of each metric with a paired-bootstrap interval (and McNemar's test of accuracy).
        Rows missing a label column are unlabelled and left out, not counted as negatives (see
        --missing-label).
        """
        if len(specs) > 2:
            raise click.UsageError("give one candidate, or two for A/B")
        if all_positive and (label_columns or positive):
            raise click.UsageError("--all-positive reads no label column: drop --label-column and --positive")
        columns = tuple(c for spec in (label_columns or ("label",)) for c in spec.split(",") if c)
        try:
            data = load_dataset(dataset, text_column=text_column, label_columns=columns, positive=positive,
                                missing=missing_label, all_positive=all_positive)
            data.require_columns(slices, role="slice")
            if limit is not None:
                data = data.sample(limit, seed)
            ep = endpoint_from_options(endpoint, model, api_key_env=api_key_env, timeout_s=timeout,
                                       max_concurrency=concurrency)
            ctx = CandidateContext(classifiers_dir, ep, threshold)
            if data.unlabelled:
                click.echo(f"left out {data.unlabelled} unlabelled rows (a label column missing)", err=True)
            results = [_run(_build(spec, kinds, ctx), data, slices, max_unanswered) for spec in specs]
        except (ClassifierError, DatasetError, EvaluationFailed) as error:
            raise click.ClickException(str(error)) from error
        comparison = compare(results[0], results[1]) if len(results) == 2 else None
        target = out or Path("vigil-data/eval") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target.mkdir(parents=True, exist_ok=True)
        save_json(comparison.as_dict() if comparison else results[0].as_dict(), target / "result.json")
        (target / "report.html").write_text(
            render_html(results, comparison, title=f"Vigil eval: {dataset.name}")
        )
        for r in results:
            o = r.overall
            click.echo(
                f"{r.candidate} ({r.version}): precision {fmt(o.precision)} recall {fmt(o.recall)} "
                f"F1 {fmt(o.f1)} {interval(r.ci.intervals['f1'])} FPR {fmt(o.fpr)} coverage {fmt(o.coverage)} "
                f"p50 {r.latency_p50_s * 1000:.1f}ms p99 {r.latency_p99_s * 1000:.1f}ms tokens {r.tokens}"
            )
            if r.overall.unknown:
                top = next(iter(r.unanswered_reasons))
                click.echo(f"  {r.overall.unknown} examples got no answer (most often: {top})", err=True)
        if comparison is not None:
            deltas, cis = comparison.deltas(), comparison.delta_ci.intervals
            click.echo(
                "B-A with 95% paired-bootstrap intervals: "
                + ", ".join(f"{k} {fmt(deltas[k], '+.3f')} {interval(cis[k], '+.3f')}" for k in ("precision", "recall", "f1"))
            )
            m = comparison.mcnemar
            click.echo(f"accuracy: McNemar exact p = {m.p_value:.4g} ({m.a_only_correct} only A right, "
                       f"{m.b_only_correct} only B)")
        click.echo(f"wrote {target / 'result.json'} and {target / 'report.html'}")

    return eval_command


def _run(candidate: Candidate, data: Dataset, slices: tuple[str, ...], max_unanswered: float) -> EvalResult:
    """Evaluate with a progress bar on a terminal (stderr, so the figures on stdout stay clean)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"{candidate.name}", total=len(data))
        return evaluate(candidate, data, slice_by=slices, max_unanswered=max_unanswered,
                        progress=lambda n: bar.advance(task, n))


def _build(spec: str, kinds: Mapping[str, CandidateFactory], ctx: CandidateContext) -> Candidate:
    kind, sep, value = spec.partition(":")
    if not sep:
        kind, value = "classifier", spec
    factory = kinds.get(kind)
    if factory is None:
        raise click.UsageError(f"unknown candidate kind {kind!r}; use one of {', '.join(kinds)}")
    return factory(value, ctx)


eval_command = make_eval_command()
