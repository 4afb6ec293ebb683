"""External signals the compiled rules call: classifiers, policy models and hash banks.

Every method answers None ("unknown") rather than raising when a signal cannot answer: a missing
classifier, a model endpoint that is down, media that will not decode. A rule never fires on
unknown, and the event still gets its decision. Each distinct failure is logged once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vigil.dsl.builtins import Functions, builtin_functions

if TYPE_CHECKING:  # the optional extras: imported only by whoever builds a Signals with them
    from pydantic import SecretStr

    from vigil.classifiers.registry import ClassifierRegistry
    from vigil.hashing.decoder import MediaDecoder
    from vigil.hashing.media import MediaPolicy
    from vigil.hashing.service import HashMatcher

log = logging.getLogger("vigil.signals")

_CACHE_SIZE = 4096
DEFAULT_BANKS = "vigil-data/banks.sqlite"  # spam repeats itself: the same text is often classified many times in a burst


@dataclass(slots=True)
class Signals:
    classifiers: ClassifierRegistry | None = None
    matcher: HashMatcher | None = None
    media_policy: MediaPolicy | None = None
    # Decodes media for nsfw() (the matcher has its own for `matches bank`; build_signals gives both the
    # same decoder processes). None: in the calling thread, under the default limits.
    decoder: MediaDecoder | None = None
    # The functions rules may call: Vigil's, and the installed plugins' when build_signals made these.
    functions: Functions = field(default_factory=builtin_functions)
    _cache: OrderedDict[tuple[str, str], Any] = field(default_factory=OrderedDict)
    _warned: set[str] = field(default_factory=set)
    _nsfw: Any = None  # the NSFW model, loaded on first use
    # Engine threads ask signals at the same time (a slow one runs without the engine's lock).
    _cache_lock: threading.Lock = field(default_factory=threading.Lock)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def _classify(self, name: str, text: str) -> Any:
        """The Classification of one text by one classifier, or None; cached (LRU) by name and text."""
        key = (name, text)
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        if self.classifiers is None:
            self._warn_once("no-classifiers", f"rules use classifier {name!r} but no classifiers are configured")
            return None
        try:
            answer = self.classifiers.classify(name, [text])[0]
        except Exception as error:  # noqa: BLE001 - a classifier's failure must cost one signal, not the event
            self._warn_once(f"classifier:{name}", f"classifier {name!r} failed: {error}")
            return None
        if answer.known:
            with self._cache_lock:
                self._cache[key] = answer
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return answer

    def classifier_score(self, name: str, text: str) -> float | None:
        answer = self._classify(name, text)
        return answer.score if answer is not None and answer.known else None

    def classifier_label(self, name: str, text: str) -> str | None:
        answer = self._classify(name, text)
        return answer.label if answer is not None and answer.known else None

    def policies(self, requests: Iterable[tuple[str, str]]) -> dict[tuple[str, str], bool | None]:
        """Ask policy models about (policy, text) pairs, one batch per policy; None where unknown."""
        by_policy: dict[str, list[str]] = {}
        for name, text in requests:
            by_policy.setdefault(name, []).append(text)
        results: dict[tuple[str, str], bool | None] = {}
        for name, texts in by_policy.items():
            answers: list[Any] = [None] * len(texts)
            if self.classifiers is None:
                self._warn_once("no-policies", f"rules use policy {name!r} but no policy models are configured")
            else:
                try:
                    answers = list(self.classifiers.classify(name, texts))
                except Exception as error:  # noqa: BLE001 - a model that fails answers "unknown"
                    self._warn_once(f"policy:{name}", f"policy {name!r} failed: {error}")
            for text, answer in zip(texts, answers):
                results[(name, text)] = answer.flagged if answer is not None and answer.known else None
        return results

    def nsfw(self, value: Any) -> float | None:
        """Yahoo Open-NSFW's score for an image given as base64 or a file under the media roots; None
        when the image cannot be read, is over the decoder's limits, or the model is not installed."""
        from vigil.hashing.media import MediaPolicy, load_media
        from vigil.hashing.nsfw import NsfwScorer

        try:
            data = load_media(value, self.media_policy or MediaPolicy())
            if self._nsfw is None:
                self._nsfw = NsfwScorer(decoder=self.decoder)
            return float(self._nsfw.score(data))
        except Exception as error:  # noqa: BLE001 - undecodable or refused media: unknown
            self._warn_once(f"nsfw:{type(error).__name__}", f"NSFW scoring failed: {error}")
            return None

    def bank_match(self, bank: str, value: Any, within: int | None) -> list[dict[str, Any]] | None:
        """Entries of `bank` matching `value` (text, or media as base64 / a path / URL per the media
        policy), nearest first, as dicts for the explanation; None when it cannot be answered (media
        over the decoder's limits included)."""
        if self.matcher is None:
            self._warn_once("no-banks", f"rules match bank {bank!r} but no hash banks are configured")
            return None
        from vigil.hashing.hashers import SignalType
        from vigil.hashing.media import MediaPolicy, load_media

        try:
            content: bytes | str = value
            if self.matcher.bank(bank).signal_type is not SignalType.TEXT_SIMHASH and isinstance(value, str):
                content = load_media(value, self.media_policy or MediaPolicy())
            matches = self.matcher.match(bank, content, max_distance=within)
        except Exception as error:  # noqa: BLE001 - unknown bank, undecodable media, media refused: unknown
            self._warn_once(f"bank:{bank}:{type(error).__name__}", f"matching bank {bank!r} failed: {error}")
            return None
        return [{"bank": m.bank, "entry": m.entry_id, "hash": m.hash, "distance": m.distance,
                 "tags": list(m.tags), "source": m.source} for m in matches]


def build_signals(*, classifiers_dir: str | None = None, policies_dir: str | None = None,
                  endpoint: str | None = None, model: str = "gpt-oss-safeguard-20b",
                  api_key_env: str | None = None, api_key: SecretStr | None = None, timeout_s: float = 10.0,
                  answer_format: str = "free",
                  tokens_per_minute: int | None = None, retry_queue: str | None = None,
                  banks_db: str | None = None, media_roots: tuple[str, ...] = (), default_banks: bool = True,
                  functions: Functions | None = None) -> Signals:
    """Signals from the settings' `signals` section (vigil.runtime.open_signals). Each part needs its extra
    (`vigil[ml]`, `vigil[hashing]`) only when asked for; the built-in classifiers (language, profanity)
    come whenever `vigil[ml]` is there. Without `banks_db`, vigil-data/banks.sqlite is opened if present
    (unless `default_banks` is False). `api_key` is the endpoint's key; else `api_key_env` names it.
    `functions`: those rules may call; by default Vigil's and every installed plugin's, loaded here
    (vigil.plugins.load_functions raises PluginError naming a plugin that cannot be used)."""
    from pathlib import Path

    from vigil.plugins import load_functions

    functions = load_functions() if functions is None else functions

    registry = None
    try:
        from vigil.classifiers.registry import DEFAULT_DIR, ClassifierRegistry
    except ImportError:
        if classifiers_dir or policies_dir:
            raise
    else:
        from vigil.classifiers.llm import endpoint_from_options

        queue = None
        endpoint_obj = endpoint_from_options(endpoint, model, api_key_env=api_key_env, timeout_s=timeout_s,
                                             answer_format=answer_format)
        if endpoint_obj is not None and api_key is not None:
            endpoint_obj = dataclasses.replace(endpoint_obj, api_key=api_key)
        if retry_queue is not None:
            from vigil.classifiers.retry_queue import RetryQueue

            Path(retry_queue).parent.mkdir(parents=True, exist_ok=True)
            queue = RetryQueue(retry_queue)
        registry = ClassifierRegistry.from_directory(
            Path(classifiers_dir) if classifiers_dir else DEFAULT_DIR,
            policies_dir=Path(policies_dir) if policies_dir else None, endpoint=endpoint_obj,
            retry_queue=queue, tokens_per_minute=tokens_per_minute)
    decoder = None
    try:
        from vigil.hashing.decoder import MediaDecoder
        from vigil.hashing.limits import MediaLimits
    except ImportError:
        if banks_db is not None:
            raise
    else:
        decoder = MediaDecoder(MediaLimits.from_env())  # its processes start on the first image
    matcher = policy = None
    if banks_db is None and default_banks and Path(DEFAULT_BANKS).exists():
        banks_db = DEFAULT_BANKS  # where `vigil bank` keeps them by default
    if banks_db is not None:
        from vigil.hashing.media import MediaPolicy
        from vigil.hashing.open import open_bank_store
        from vigil.hashing.service import HashMatcher

        matcher = HashMatcher(open_bank_store(banks_db), decoder=decoder)
        policy = MediaPolicy(file_roots=tuple(Path(r).resolve() for r in media_roots))
    return Signals(classifiers=registry, matcher=matcher, media_policy=policy, decoder=decoder, functions=functions)
