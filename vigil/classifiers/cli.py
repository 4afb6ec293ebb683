"""``vigil train`` and ``vigil classify``: click commands named in ``vigil.cli.SUBCOMMANDS``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from vigil.classifiers import local
from vigil.classifiers.base import ClassifierError
from vigil.classifiers.features import FEATURIZERS, default_featurizer
from vigil.classifiers.llm import endpoint_from_options
from vigil.classifiers.registry import DEFAULT_DIR, ClassifierRegistry
from vigil.classifiers.retry_queue import RetryQueue

F = TypeVar("F", bound=Callable[..., Any])


def endpoint_options(timeout: float) -> Callable[[F], F]:
    """--endpoint, --model, --api-key-env and --timeout: where a policy model is served."""

    def decorate(function: F) -> F:
        for option in reversed([
            click.option("--endpoint", default=None,
                         help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1."),
            click.option("--model", default="gpt-oss-safeguard-20b", show_default=True,
                         help="Model name at the endpoint."),
            click.option("--api-key-env", default=None, help="Environment variable holding the API key."),
            click.option("--timeout", type=float, default=timeout, show_default=True,
                         help="Seconds per model request."),
        ]):
            function = option(function)
        return function

    return decorate


_dir_option = click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Where trained classifiers are kept.",
)


@click.command("train")
@click.argument("name")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--text-column", default="text", show_default=True, help="Column holding the text.")
@click.option(
    "--label-column",
    "label_columns",
    multiple=True,
    help="Column holding the label (default: label). Several (repeat, or comma-separate) train one "
    "'positive if any' classifier, as vigil eval reads them (the moderation set's categories).",
)
@click.option(
    "--positive",
    "positive",
    multiple=True,
    help="The label whose probability is the score (binary data); with several label columns, the "
    "value(s) meaning positive (default: 1/true/yes).",
)
@click.option(
    "--missing-label",
    type=click.Choice(["unlabelled", "negative"]),
    default="unlabelled",
    show_default=True,
    help="A row lacking a label column: left out as unlabelled, or read as not in that category.",
)
@click.option(
    "--group-column",
    default=None,
    help="Column whose rows belong together (template, author, conversation): cross-validation keeps "
    "each of its values on one side of every split, so the estimate is for unseen groups.",
)
@click.option(
    "--featurizer",
    type=click.Choice(["auto", *FEATURIZERS]),
    default="auto",
    show_default=True,
    help="Sentence embeddings (bundled MiniLM) or character TF-IDF; auto picks embeddings when installed.",
)
@_dir_option
@click.option(
    "-C",
    "regularization_c",
    type=float,
    default=16.0,
    show_default=True,
    help="Inverse regularisation strength of the logistic-regression head.",
)
@click.option(
    "--threshold-for",
    "threshold_target",
    default=local.DEFAULT_THRESHOLD_TARGET,
    show_default=True,
    help="Choose the decision threshold from cross-validation: 'balanced' (recall minus false-positive "
    "rate), best 'f1', or the most recall under a false-positive bound 'fpr<=0.05'.",
)
def train_command(
    name: str, data: Path, text_column: str, label_columns: tuple[str, ...], positive: tuple[str, ...],
    missing_label: str, group_column: str | None, featurizer: str, root: Path, regularization_c: float,
    threshold_target: str,
) -> None:  # fmt: skip
    """Train classifier NAME from labelled examples in DATA (.jsonl or .csv).

    Twenty to fifty examples are enough to start; training takes seconds on a CPU. The artifact
    is saved as DIR/NAME/VERSION and becomes the one rules use. The printed estimate says how it was
    made (grouped or random folds) and warns when near-duplicate texts sit on both sides of a split.
    """
    from vigil.eval.datasets import DatasetError, load_training_data

    columns = tuple(c for spec in (label_columns or ("label",)) for c in spec.split(",") if c)
    try:
        examples = load_training_data(data, text_column=text_column, label_columns=columns, positive=positive,
                                      missing=missing_label, group_column=group_column)
        chosen = default_featurizer() if featurizer == "auto" else featurizer
        classifier = local.train(
            name,
            examples.texts,
            examples.labels,
            featurizer=chosen,
            positive_label=examples.positive,
            regularization_c=regularization_c,
            threshold_target=threshold_target,
            groups=examples.groups,
            group_column=group_column,
        )
        path = classifier.save(root)
    except (ClassifierError, DatasetError) as error:
        raise click.ClickException(str(error)) from error
    meta = classifier.metadata
    m = meta.metrics
    if examples.unlabelled:
        click.echo(f"left out {examples.unlabelled} rows without a label in {', '.join(columns)}", err=True)
    click.echo(
        f"trained {name} {meta.version} on {meta.n_examples} examples ({meta.featurizer}) in {m.seconds:.1f}s"
    )
    click.echo(f"labels: {meta.label_counts}, positive: {meta.positive_label}")
    click.echo(f"estimate: {m.describe()}")
    if m.optimistic:
        click.echo("warning: near-duplicate texts cross the folds; the estimate above is optimistic", err=True)
    if m.folds:
        line = f"cross-validated: accuracy {m.accuracy:.3f}, macro F1 {m.macro_f1:.3f}"
        if m.f1 is not None:
            line += f", precision {m.precision:.3f}, recall {m.recall:.3f}, F1 {m.f1:.3f}"
        click.echo(line)
        if m.threshold is not None:
            half = f"; F1 at 0.5 was {m.f1_at_half:.3f}" if m.f1_at_half is not None else ""
            click.echo(f"threshold {m.threshold:.4f}, chosen from the folds for {m.threshold_target} and stored "
                       f"in the artifact (figures above are at it, so they lean optimistic){half}")
    click.echo(f"saved to {path}")


@click.command("classify")
@click.argument("name")
@click.argument("texts", nargs=-1)
@click.option(
    "--input",
    "input_file",
    type=click.File("r", encoding="utf-8-sig"),
    default=None,
    help="Read texts from this JSONL file ('-' for stdin): a JSON string or an object with --text-column "
    "a line, so a text may hold newlines. With --one-per-line, each line is a text.",
)
@click.option("--one-per-line", is_flag=True, help="--input is plain text, one text a line.")
@click.option("--text-column", default="text", show_default=True, help="The text's key in --input objects.")
@_dir_option
@click.option(
    "--policies",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of policy .md files for policy-as-prompt classifiers.",
)
@endpoint_options(timeout=30.0)
@click.option(
    "--retry-queue",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file where unanswered texts wait for a later pass.",
)
def classify_command(
    name: str, texts: tuple[str, ...], input_file: TextIO | None, one_per_line: bool, text_column: str,
    root: Path, policies: Path | None, endpoint: str | None, model: str, api_key_env: str | None,
    timeout: float, retry_queue: Path | None,
) -> None:  # fmt: skip
    """Classify TEXTS (or those of --input) with classifier or policy NAME; prints JSON lines."""
    items = list(texts)
    if input_file is not None:
        items += _input_texts(input_file, one_per_line=one_per_line, text_column=text_column)
    elif one_per_line:
        raise click.UsageError("--one-per-line says how to read --input; give --input FILE")
    if not items:
        raise click.UsageError("give texts as arguments or with --input")
    try:
        ep = endpoint_from_options(endpoint, model, api_key_env=api_key_env, timeout_s=timeout)
        queue = RetryQueue(retry_queue) if retry_queue is not None else None
        registry = ClassifierRegistry.from_directory(
            root, policies_dir=policies, endpoint=ep, retry_queue=queue
        )
        answers = registry.classify(name, items)
    except ClassifierError as error:
        raise click.ClickException(str(error)) from error
    for text, answer in zip(items, answers, strict=True):
        record = {"text": text, "label": answer.label, "score": answer.score, "flagged": answer.flagged,
                  "status": answer.status, "version": answer.version}  # fmt: skip
        if answer.category:
            record["category"] = answer.category
        if answer.rationale:
            record["rationale"] = answer.rationale
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


def _input_texts(handle: TextIO, *, one_per_line: bool, text_column: str) -> list[str]:
    """Texts of ``--input``: JSONL (a text may span lines), or plain lines with ``--one-per-line``."""
    if one_per_line:
        return [line.rstrip("\r\n") for line in handle]
    out = []
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            raise click.UsageError(
                f"{handle.name}:{number}: not JSON. --input reads JSONL (a JSON string, or an object with "
                f"{text_column!r}, a line), so that a text can hold newlines; for plain text, one text a line, "
                f"pass --one-per-line"
            ) from None
        if isinstance(value, dict):
            value = value.get(text_column)
        if not isinstance(value, str):
            raise click.UsageError(
                f"{handle.name}:{number}: expected a JSON string or an object whose {text_column!r} is a string "
                f"(--text-column names the key)"
            )
        out.append(value)
    return out
