"""Policy-as-prompt classification over an OpenAI-compatible chat-completions API.

Works with any server that speaks ``POST /v1/chat/completions`` (vLLM, Ollama, LM Studio serving
gpt-oss-safeguard, or a hosted API): the policy is the system message, the content is the user
message, and the answer is parsed strictly by :func:`~vigil.classifiers.answers.parse_answer`.

The engine must never wait long or crash because a model is slow: every failure mode (timeout,
connection refused, HTTP 5xx, 429, spend budget exhausted, deadline passed, malformed answer)
becomes a :class:`~vigil.classifiers.base.Classification` with status ``unknown`` or ``error``, and
the text goes to the durable :class:`~vigil.classifiers.retry_queue.RetryQueue` for a later pass.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from vigil.classifiers.answers import AnswerParseError, parse_answer
from vigil.classifiers.base import Classification, ClassifierError, Status
from vigil.classifiers.budget import TokenBudget
from vigil.classifiers.policy import Policy
from vigil.classifiers.retry_queue import RetryQueue

LABELS = ("safe", "violating")
_RATIONALE_LIMIT = 2000

# The answer a constrained model must write: what parse_answer reads from a JSON object.
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "violation": {"type": "integer", "enum": [0, 1]},
        "policy_category": {"type": "string"},
        "rationale": {"type": "string"},
    },
    "required": ["violation", "policy_category", "rationale"],
}
# How a request asks the server to constrain the answer to ANSWER_SCHEMA (structured outputs): "free" asks
# nothing (the policy text says how to answer); "json_schema" is OpenAI's form (vLLM, Ollama, hosted APIs);
# "json_object" is llama.cpp's and Anyscale's form (`{"type": "json_object", "schema": …}`).
ANSWER_FORMATS = ("free", "json_schema", "json_object")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to reach a chat-completions model.

    ``base_url`` includes the API prefix, e.g. ``http://127.0.0.1:8000/v1``. ``api_key`` is a
    pydantic ``SecretStr`` (read it with :func:`secret_from_env`), so it never shows in a repr or a log.
    """

    base_url: str
    model: str
    api_key: SecretStr | None = None
    timeout_s: float = 30.0
    max_concurrency: int = 8
    max_output_tokens: int = 512
    temperature: float = 0.0
    stream: bool = False
    reasoning_effort: str | None = None
    # Retries within one call for 429/5xx, only while the caller's deadline leaves room.
    max_retries: int = 1
    # Longest a batch may take when the caller gives no deadline (None: only timeout_s per request).
    deadline_s: float | None = None
    answer_format: str = "free"  # one of ANSWER_FORMATS

    def __post_init__(self) -> None:
        if self.answer_format not in ANSWER_FORMATS:
            raise ClassifierError(f"answer_format must be one of {', '.join(ANSWER_FORMATS)}, "
                                  f"got {self.answer_format!r}")
        if self.max_concurrency < 1:
            raise ClassifierError("max_concurrency must be at least 1")
        if self.timeout_s <= 0:
            raise ClassifierError("timeout_s must be positive")


def endpoint_from_options(url: str | None, model: str, *, api_key_env: str | None = None,
                          timeout_s: float = 30.0, max_concurrency: int = 8,
                          answer_format: str = "free") -> Endpoint | None:
    """The endpoint the command-line options describe (None without a URL); the key is read from the
    named environment variable, never taken from the command line."""
    if url is None:
        return None
    key = secret_from_env(api_key_env) if api_key_env else None
    return Endpoint(url, model, api_key=key, timeout_s=timeout_s, max_concurrency=max_concurrency,
                    answer_format=answer_format)


def secret_from_env(variable: str, environ: dict[str, str] | None = None) -> SecretStr:
    """An API key read from an environment variable (at call time, never at import)."""
    env = os.environ if environ is None else environ
    value = env.get(variable)
    if not value:
        raise ClassifierError(f"environment variable {variable} is not set")
    return SecretStr(value)


class AnswerCache:
    """A bounded LRU of answers keyed by (classifier version, content hash); one per classifier."""

    def __init__(self, max_items: int = 10_000) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, str], Classification] = OrderedDict()

    def get(self, version: str, content_hash: str) -> Classification | None:
        """The cached answer, refreshing its place in the LRU."""
        key = (version, content_hash)
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, version: str, content_hash: str, answer: Classification) -> None:
        """Store a known answer, evicting the least recently used past ``max_items``."""
        self._items[(version, content_hash)] = answer
        self._items.move_to_end((version, content_hash))
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why one request gave no answer, and how long to wait before retrying it."""

    reason: str
    status: Status = "unknown"
    retry_after_s: float = 0.0


def content_hash(text: str) -> str:
    """SHA-256 of the text, the cache and queue key."""
    return hashlib.sha256(text.encode()).hexdigest()


class PolicyClassifier:
    """Classifies texts against one :class:`Policy` with a chat model; never raises on I/O failures.

    Pass an ``httpx.AsyncClient`` to share connections (the engine owns and closes it); without
    one, each call opens and closes its own. ``retry_queue`` is where unanswered texts wait;
    without one they are still answered "unknown" but are not kept.
    """

    def __init__(
        self,
        policy: Policy,
        endpoint: Endpoint,
        *,
        cache: AnswerCache | None = None,
        budget: TokenBudget | None = None,
        retry_queue: RetryQueue | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.policy = policy
        self.endpoint = endpoint
        self.cache = cache if cache is not None else AnswerCache()
        self.budget = budget
        self.retry_queue = retry_queue
        self._client = client
        self._semaphore: asyncio.Semaphore | None = None
        self._semaphore_loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        """The policy's name."""
        return self.policy.name

    @property
    def version(self) -> str:
        """``MODEL@POLICYHASH``: changes when either the model or the policy text changes."""
        return f"{self.endpoint.model}@{self.policy.version}"

    @property
    def labels(self) -> tuple[str, ...]:
        """``safe`` and ``violating``."""
        return LABELS

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        """Blocking form of :meth:`aclassify`, bounded by the endpoint's ``deadline_s``.

        Safe to call from synchronous code running inside an event loop (compiled rules called
        from an ASGI handler): the requests then run on their own loop in a worker thread, with
        their own connections, while the caller waits at most the deadline.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.aclassify(texts, _own_client=True))
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-llm") as pool:
            return pool.submit(asyncio.run, self.aclassify(texts, _own_client=True)).result()

    async def aclassify(
        self, texts: Sequence[str], *, deadline_s: float | None = None, _own_client: bool = False
    ) -> list[Classification]:
        """Answer each text, concurrently up to the endpoint's limit, within ``deadline_s`` seconds.

        Without ``deadline_s`` the endpoint's ``deadline_s`` applies (if set). Items not answered by
        the deadline come back ``unknown`` and are queued for later.
        """
        loop = asyncio.get_running_loop()
        deadline_s = deadline_s if deadline_s is not None else self.endpoint.deadline_s
        end = loop.time() + deadline_s if deadline_s is not None else None
        # Identical texts in one batch cost one request.
        unique = list(dict.fromkeys(texts))
        async with self._client_scope(own=_own_client) as client:
            answers = await asyncio.gather(*(self._classify_one(client, text, end) for text in unique))
        by_text = dict(zip(unique, answers, strict=True))
        return [by_text[text] for text in texts]

    async def retry_pending(self, limit: int = 100) -> list[tuple[str, Classification]]:
        """Answer queued texts for this policy; returns ``(content_hash, answer)`` for each attempted.

        Answered items leave the queue (and enter the cache); failed ones stay, with a later retry
        time. Run it from a periodic job once the endpoint is back.
        """
        if self.retry_queue is None:
            return []
        queue = self.retry_queue
        items = queue.due(self.name, limit)

        async with self._client_scope() as client:

            async def one(item_id: int, text: str, digest: str, attempts: int) -> tuple[str, Classification]:
                answer = await self._answer(client, text, digest, None)
                if isinstance(answer, _Failure):
                    # Exponential backoff, capped at an hour, unless the server said when.
                    delay = max(answer.retry_after_s, min(3600.0, 2.0 ** (attempts + 1)))
                    queue.defer(item_id, answer.reason, delay_s=delay)
                    return digest, Classification.unknown(self.version, answer.reason, status=answer.status)
                queue.done(item_id)
                return digest, answer

            return list(await asyncio.gather(*(one(i.id, i.text, i.content_hash, i.attempts) for i in items)))

    @asynccontextmanager
    async def _client_scope(self, *, own: bool = False) -> AsyncIterator[httpx.AsyncClient]:
        # A shared client belongs to the caller's loop; the blocking path runs on another loop.
        if self._client is not None and not own:
            yield self._client
            return
        # Timeouts are enforced per request with asyncio.wait_for; httpx's own is a backstop.
        async with httpx.AsyncClient(timeout=self.endpoint.timeout_s) as client:
            yield client

    def _limiter(self) -> asyncio.Semaphore:
        # A semaphore belongs to one event loop; make a new one if we are called from another.
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._semaphore_loop is not loop:
            self._semaphore = asyncio.Semaphore(self.endpoint.max_concurrency)
            self._semaphore_loop = loop
        return self._semaphore

    async def _classify_one(self, client: httpx.AsyncClient, text: str, end: float | None) -> Classification:
        digest = content_hash(text)
        answer = await self._answer(client, text, digest, end)
        if isinstance(answer, _Failure):
            if self.retry_queue is not None:
                self.retry_queue.put(self.name, digest, text, answer.reason, delay_s=answer.retry_after_s)
            return Classification.unknown(self.version, answer.reason, status=answer.status)
        return answer

    async def _answer(
        self, client: httpx.AsyncClient, text: str, digest: str, end: float | None
    ) -> Classification | _Failure:
        cached = self.cache.get(self.version, digest)
        if cached is not None:
            return replace(cached, cached=True, latency_s=0.0, tokens=0)
        estimate = self._estimate_tokens(text)
        if self.budget is not None and not self.budget.reserve(estimate):
            return _Failure(f"token budget of {self.budget.limit}/min spent", retry_after_s=60.0)
        loop = asyncio.get_running_loop()
        async with self._limiter():
            attempt = 0
            while True:
                remaining = None if end is None else end - loop.time()
                if remaining is not None and remaining <= 0:
                    return _Failure("deadline passed before the model answered")
                timeout = (
                    self.endpoint.timeout_s if remaining is None else min(self.endpoint.timeout_s, remaining)
                )
                started = time.perf_counter()
                try:
                    content, reasoning, tokens = await asyncio.wait_for(self._request(client, text), timeout)
                except TimeoutError:
                    return _Failure(f"no answer within {timeout:.2f}s")
                except httpx.HTTPStatusError as error:
                    failure = _http_failure(error.response)
                    remaining = None if end is None else end - loop.time()
                    if attempt < self.endpoint.max_retries and (
                        remaining is None or failure.retry_after_s < remaining
                    ):
                        attempt += 1
                        await asyncio.sleep(failure.retry_after_s)
                        continue
                    return failure
                except httpx.TransportError as error:
                    return _Failure(f"endpoint unreachable: {type(error).__name__}: {error}")
                except _MalformedResponse as error:
                    return _Failure(f"malformed response: {error}", status="error")
                break
        latency = time.perf_counter() - started
        if self.budget is not None and tokens is not None:
            self.budget.settle(estimate, tokens)
        try:
            parsed = parse_answer(content)
        except AnswerParseError as error:
            return _Failure(f"unparseable answer: {error}", status="error")
        if parsed.confidence is not None and 0.0 <= parsed.confidence <= 1.0:
            score = parsed.confidence if parsed.violating else 1.0 - parsed.confidence
        else:
            score = 1.0 if parsed.violating else 0.0
        result = Classification(
            label=LABELS[parsed.violating],
            score=score,
            flagged=parsed.violating,
            version=self.version,
            rationale=(parsed.rationale or reasoning)[:_RATIONALE_LIMIT],
            category=parsed.category,
            tokens=tokens if tokens is not None else estimate,
            latency_s=latency,
        )
        self.cache.put(self.version, digest, result)
        return result

    def _estimate_tokens(self, text: str) -> int:
        # About four characters a token, plus the most the model may write back.
        return (len(self.policy.text) + len(text)) // 4 + 16 + self.endpoint.max_output_tokens

    async def _request(self, client: httpx.AsyncClient, text: str) -> tuple[str, str, int | None]:
        endpoint = self.endpoint
        body: dict[str, Any] = {
            "model": endpoint.model,
            "messages": [
                {"role": "system", "content": self.policy.text},
                {"role": "user", "content": text},
            ],
            "temperature": endpoint.temperature,
            "max_tokens": endpoint.max_output_tokens,
        }
        if endpoint.reasoning_effort is not None:
            body["reasoning_effort"] = endpoint.reasoning_effort
        if endpoint.answer_format == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "policy_answer", "strict": True, "schema": ANSWER_SCHEMA}}
        elif endpoint.answer_format == "json_object":
            body["response_format"] = {"type": "json_object", "schema": ANSWER_SCHEMA}
        if endpoint.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        headers = {"Authorization": f"Bearer {endpoint.api_key.get_secret_value()}"} if endpoint.api_key else {}
        url = endpoint.base_url.rstrip("/") + "/chat/completions"
        async with client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code >= 400:
                await response.aread()
                response.raise_for_status()
            # Read the form the server chose, whatever was asked: some servers always stream.
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                return await _read_sse(response)
            raw = await response.aread()
        return _read_json(raw)


class _MalformedResponse(Exception):
    """The server's reply is not a chat-completions response."""


def _read_json(raw: bytes) -> tuple[str, str, int | None]:
    try:
        data = json.loads(raw)
        message = data["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise _MalformedResponse(f"not a chat completion ({type(error).__name__}): {raw[:80]!r}") from error
    content = message.get("content")
    if not isinstance(content, str):
        raise _MalformedResponse("the message has no text content")
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    return content, str(reasoning), _total_tokens(data)


async def _read_sse(response: httpx.Response) -> tuple[str, str, int | None]:
    content: list[str] = []
    reasoning: list[str] = []
    tokens = None
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        try:
            chunk = json.loads(payload)
        except ValueError as error:
            raise _MalformedResponse(f"bad stream chunk: {payload[:80]!r}") from error
        tokens = _total_tokens(chunk) or tokens
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            content.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
    return "".join(content), "".join(reasoning), tokens


def _total_tokens(data: dict[str, Any]) -> int | None:
    usage = data.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int):
        return int(usage["total_tokens"])
    return None


def _http_failure(response: httpx.Response) -> _Failure:
    code = response.status_code
    if code == 429:
        return _Failure(
            "rate limited (HTTP 429)", retry_after_s=_retry_after(response.headers.get("retry-after"))
        )
    if code >= 500:
        return _Failure(f"endpoint error (HTTP {code})", retry_after_s=0.5)
    # 4xx other than 429 is our mistake (bad model name, bad key): retrying will not help soon.
    return _Failure(
        f"request rejected (HTTP {code}): {response.text[:200]}", status="error", retry_after_s=300.0
    )


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); 1 s when absent or odd."""
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
