"""Benchmark the local classifier: throughput, training time, and quality on public data.

Measures, on the CPU:
- classification throughput (texts/s) for the sentence-embedding and TF-IDF featurizers;
- training time (features, head and 5-fold cross-validation) for 50, 500 and 5,000 examples;
- F1 of a classifier trained on 50 and 500 HateCheck examples per language and tested on the rest,
  beside the F1 of flagging everything (HateCheck is about 70 % hateful, so that floor is high);
- F1 on the OpenAI moderation dev half ("any category"), trained on part and tested on the rest,
  beside the published figures of large safety models on the full set.

Prints a readable table and ends with one JSON line of figures. ``--quick`` runs a smaller version.
Data: ../shared/data beside the repository (override with --data). Run from the repository root:
``.venv/bin/python bench/classifier_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vigil.classifiers import local
from vigil.classifiers.features import (
    MINILM,
    TFIDF,
    EmbedderPool,
    FloatMatrix,
    SentenceEmbedder,
    embeddings_available,
)
from vigil.eval.candidates import ClassifierCandidate
from vigil.eval.datasets import Dataset, load_dataset
from vigil.eval.metrics import confusion
from vigil.eval.runner import evaluate

HATECHECK = {"en": "hatecheck_en.csv", "de": "mhc_german.csv", "es": "mhc_spanish.csv", "hi": "mhc_hindi.csv"}
MODERATION_LABELS = ["S", "H", "V", "HR", "SH", "S3", "H2", "V2"]
PUBLISHED = "gpt-oss-safeguard 20b/120b 82.9; ShieldGemma 80.5-82.1; Llama-3.1-NemoGuard-8B 81.0 (full set)"


class CachedEmbedder(SentenceEmbedder):
    """Remembers embeddings by text, so the quality runs embed each text once (bench only)."""

    def __init__(self, inner: SentenceEmbedder) -> None:
        self._inner = inner
        self._memo: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if todo:
            self._memo.update(zip(todo, self._inner.encode(todo), strict=True))
        return np.array([self._memo[t] for t in texts]).reshape(len(texts), -1)


class CachedPool(EmbedderPool):
    """An embedder pool whose sentence embedder is a :class:`CachedEmbedder`."""

    def __init__(self, inner: SentenceEmbedder) -> None:
        super().__init__()
        self._cached = CachedEmbedder(inner)

    def sentence(self) -> SentenceEmbedder:
        return self._cached


def hatecheck(data: Path, lang: str) -> Dataset:
    return load_dataset(
        data / "hatecheck" / HATECHECK[lang],
        text_column="test_case",
        label_columns=["label_gold"],
        positive=["hateful"],
    )


def train_on(ds: Dataset, featurizer: str, pool: EmbedderPool) -> local.LocalClassifier:
    return local.train(
        "bench",
        ds.texts,
        ["positive" if label else "negative" for label in ds.labels],
        featurizer=featurizer,
        positive_label="positive",
        embedders=pool,
    )


def f1_fpr(clf: local.LocalClassifier, test: Dataset) -> tuple[float, float]:
    overall = evaluate(ClassifierCandidate(clf, batch_size=256), test).overall
    return round(overall.f1, 3), round(overall.fpr, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and languages, for a smoke run")
    parser.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "data", help="labelled data folder"
    )
    args = parser.parse_args()
    featurizers = [MINILM, TFIDF] if embeddings_available() else [TFIDF]
    pool = EmbedderPool()
    figures: dict[str, object] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "quick": args.quick,
    }

    # Everything pooled, shuffled once: the source for throughput and training-size runs.
    langs = ["en"] if args.quick else list(HATECHECK)
    pooled = [ex for lang in HATECHECK for ex in hatecheck(args.data, lang).examples]
    random.Random(0).shuffle(pooled)
    everything = Dataset("hatecheck-all", tuple(pooled), "test_case", ("label_gold",))

    if MINILM in featurizers:
        started = time.perf_counter()
        pool.sentence().encode(["warm up"])
        figures["embedder_load_s"] = round(time.perf_counter() - started, 2)

    print(f"\n{'featurizer':<22}{'train n':>8}{'train s':>9}{'classify texts/s':>18}")
    sizes = [50, 500] if args.quick else [50, 500, 5000]
    n_throughput = 500 if args.quick else 2000
    throughput_texts = everything.texts[-n_throughput:]
    training: dict[str, dict[str, float]] = {}
    throughput: dict[str, float] = {}
    for featurizer in featurizers:
        training[featurizer] = {}
        clf = None
        for n in sizes:
            train_set = Dataset("x", everything.examples[:n], "t", ("l",))
            started = time.perf_counter()
            clf = train_on(train_set, featurizer, pool)
            training[featurizer][str(n)] = round(time.perf_counter() - started, 2)
        if clf is None:
            continue
        clf.classify(throughput_texts[:64])  # warm caches
        started = time.perf_counter()
        for i in range(0, len(throughput_texts), 256):
            clf.classify(throughput_texts[i : i + 256])
        throughput[featurizer] = round(len(throughput_texts) / (time.perf_counter() - started), 1)
        for n in sizes:
            t = training[featurizer][str(n)]
            rate = f"{throughput[featurizer]:,.0f}" if n == sizes[-1] else ""
            print(f"{featurizer:<22}{n:>8}{t:>9.2f}{rate:>18}")
    figures["train_seconds"] = training
    figures["classify_texts_per_s"] = throughput
    # Quality runs below re-embed the same texts many times; the timing runs above did not cache.
    pool = CachedPool(pool.sentence())

    print(
        "\nHateCheck F1 and FPR (hateful = positive), trained on n examples per language, tested on the rest;"
    )
    print("flag-all is the F1 of flagging everything (FPR 1.0): HateCheck is about 70 % hateful")
    print(
        f"{'lang':<6}{'featurizer':<22}{'F1@50':>7}{'FPR@50':>8}{'F1@500':>8}{'FPR@500':>9}{'flag-all':>10}{'test n':>8}"
    )
    quality: dict[str, dict[str, dict[str, float]]] = {}
    for lang in langs:
        ds = hatecheck(args.data, lang)
        quality[lang] = {}
        floor = None
        for featurizer in featurizers:
            scores = {}
            for n in (50, 500):
                train, test = ds.split(n, seed=0)
                scores[str(n)], scores[f"fpr_{n}"] = f1_fpr(train_on(train, featurizer, pool), test)
                if n == 500:
                    floor = confusion(test.labels, [True] * len(test)).f1
                    test_n = len(test)
            quality[lang][featurizer] = scores
            print(
                f"{lang:<6}{featurizer:<22}{scores['50']:>7.3f}{scores['fpr_50']:>8.3f}{scores['500']:>8.3f}"
                f"{scores['fpr_500']:>9.3f}{floor:>10.3f}{test_n:>8}"
            )
        quality[lang]["flag_all"] = {"500": round(floor if floor is not None else 0.0, 3)}
    figures["hatecheck_f1"] = quality

    moderation_path = args.data / "moderation" / "dev.jsonl"
    mod = load_dataset(moderation_path, text_column="prompt", label_columns=MODERATION_LABELS)
    print(
        f"\nOpenAI moderation dev half, any category ({sum(mod.labels)}/{len(mod)} positive); published: {PUBLISHED}"
    )
    print(f"{'featurizer':<22}{'F1@50':>7}{'FPR@50':>8}{'F1@420':>8}{'FPR@420':>9}{'flag-all':>10}")
    moderation: dict[str, dict[str, float]] = {}
    mod_floor = confusion(mod.split(420, seed=0)[1].labels, [True] * (len(mod) - 420)).f1
    for featurizer in featurizers:
        scores = {}
        for n in (50, 420):
            train, test = mod.split(n, seed=0)
            scores[str(n)], scores[f"fpr_{n}"] = f1_fpr(train_on(train, featurizer, pool), test)
        moderation[featurizer] = scores
        print(
            f"{featurizer:<22}{scores['50']:>7.3f}{scores['fpr_50']:>8.3f}{scores['420']:>8.3f}"
            f"{scores['fpr_420']:>9.3f}{mod_floor:>10.3f}"
        )
    moderation["flag_all"] = {"420": round(mod_floor, 3)}
    figures["moderation_f1"] = moderation
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
