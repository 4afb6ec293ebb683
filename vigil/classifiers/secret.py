"""A secret value that does not leak through repr, str or logs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vigil.classifiers.base import ClassifierError


@dataclass(frozen=True, slots=True)
class Secret:
    """Holds an API key; ``repr`` and ``str`` show ``Secret('**********')``.

    >>> Secret("sk-123")
    Secret('**********')
    """

    _value: str = field(repr=False)

    def reveal(self) -> str:
        """The value itself; call only where it is sent."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    @classmethod
    def from_env(cls, variable: str, environ: dict[str, str] | None = None) -> Secret:
        """Read the secret from an environment variable (at call time, never at import)."""
        env = os.environ if environ is None else environ
        value = env.get(variable)
        if not value:
            raise ClassifierError(f"environment variable {variable} is not set")
        return cls(value)
