"""Classifiers by name, built from a directory and passed to the engine (no global registry)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from vigil.classifiers import local
from vigil.classifiers.base import Classification, Classifier, ClassifierError
from vigil.classifiers.budget import TokenBudget
from vigil.classifiers.builtin import LanguageClassifier, ProfanityClassifier
from vigil.classifiers.features import EmbedderPool
from vigil.classifiers.llm import Endpoint, PolicyClassifier
from vigil.classifiers.policy import Policy, load_policies
from vigil.classifiers.retry_queue import RetryQueue

BUILTINS: Mapping[str, Callable[[], Classifier]] = {
    "language": LanguageClassifier,
    "profanity": ProfanityClassifier,
}

DEFAULT_DIR = Path("vigil-data/classifiers")


class ClassifierRegistry:
    """Named classifiers, loaded on first use.

    Rules name a classifier (``classifier "spam" on ...``) or a policy (``policy "harassment" finds
    ...``); both resolve here. Built from factories so a registry of twenty artifacts costs nothing
    until a rule calls one, and one :class:`EmbedderPool` shares the sentence model among them.
    """

    def __init__(
        self, factories: Mapping[str, Callable[[], Classifier]], *, policy_names: Iterable[str] = ()
    ) -> None:
        self._factories = dict(factories)
        self._loaded: dict[str, Classifier] = {}
        # Names whose factory builds a PolicyClassifier, so a retry pass need not load local models.
        self._policy_names = frozenset(policy_names)

    @classmethod
    def of(cls, classifiers: Iterable[Classifier]) -> ClassifierRegistry:
        """A registry of ready-made classifiers (handy in tests and for plugins)."""
        registry = cls({})
        for classifier in classifiers:
            registry._loaded[classifier.name] = classifier
        return registry

    @classmethod
    def from_directory(
        cls,
        classifiers_dir: Path = DEFAULT_DIR,
        *,
        policies_dir: Path | None = None,
        endpoint: Endpoint | None = None,
        retry_queue: RetryQueue | None = None,
        tokens_per_minute: int | None = None,
        builtins: bool = True,
        embedders: EmbedderPool | None = None,
    ) -> ClassifierRegistry:
        """Trained artifacts under ``classifiers_dir``, ``*.md`` policies, and the built-ins.

        Policies need an ``endpoint``; they share one token budget and one retry queue. A trained
        classifier with a built-in's name replaces the built-in.
        """
        factories: dict[str, Callable[[], Classifier]] = dict(BUILTINS) if builtins else {}
        policy_names: list[str] = []
        pool = embedders or EmbedderPool()
        if classifiers_dir.is_dir():
            for entry in sorted(classifiers_dir.iterdir()):
                if (entry / "LATEST").is_file():
                    factories[entry.name] = _local_factory(classifiers_dir, entry.name, pool)
        if policies_dir is not None:
            policies = load_policies(policies_dir)
            if policies and endpoint is None:
                raise ClassifierError(f"policies in {policies_dir} need a model endpoint (--endpoint)")
            budget = TokenBudget(tokens_per_minute) if tokens_per_minute else None
            for name, policy in policies.items():
                if name in factories:
                    raise ClassifierError(f"policy {name!r} has the same name as a classifier")
                if endpoint is not None:
                    factories[name] = _policy_factory(policy, endpoint, budget, retry_queue)
                    policy_names.append(name)
        return cls(factories, policy_names=policy_names)

    def names(self) -> list[str]:
        """Every name a rule may use."""
        return sorted(set(self._factories) | set(self._loaded))

    def __contains__(self, name: object) -> bool:
        return name in self._factories or name in self._loaded

    def get(self, name: str) -> Classifier:
        """The classifier called ``name``; raises :class:`ClassifierError` listing known names."""
        found = self._loaded.get(name)
        if found is None:
            factory = self._factories.get(name)
            if factory is None:
                raise ClassifierError(
                    f"no classifier named {name!r}; known: {', '.join(self.names()) or 'none'}"
                )
            found = self._loaded[name] = factory()
        return found

    def classify(self, name: str, texts: Sequence[str]) -> list[Classification]:
        """``get(name).classify(texts)``."""
        return self.get(name).classify(texts)

    async def aclassify(
        self, name: str, texts: Sequence[str], *, deadline_s: float | None = None
    ) -> list[Classification]:
        """``await get(name).aclassify(texts, deadline_s=...)``."""
        return await self.get(name).aclassify(texts, deadline_s=deadline_s)

    async def retry_pending(self, limit: int = 100) -> dict[str, list[tuple[str, Classification]]]:
        """Run one retry pass over every policy classifier's queued texts (for a periodic job).

        Returns, per policy name, ``(content_hash, answer)`` for each text attempted; answered
        texts leave the queue and enter the cache, so the next rule evaluation hits the cache.
        """
        results: dict[str, list[tuple[str, Classification]]] = {}
        for name in self.names():
            classifier = self.get(name) if name in self._loaded or self._is_policy(name) else None
            if isinstance(classifier, PolicyClassifier):
                results[name] = await classifier.retry_pending(limit)
        return results

    def _is_policy(self, name: str) -> bool:
        return name in self._policy_names


def _local_factory(root: Path, name: str, pool: EmbedderPool) -> Callable[[], Classifier]:
    def build() -> Classifier:
        return local.load(root, name, embedders=pool)

    return build


def _policy_factory(
    policy: Policy, endpoint: Endpoint, budget: TokenBudget | None, queue: RetryQueue | None
) -> Callable[[], Classifier]:
    def build() -> Classifier:
        return PolicyClassifier(policy, endpoint, budget=budget, retry_queue=queue)

    return build
