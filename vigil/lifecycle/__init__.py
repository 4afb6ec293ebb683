"""The rules lifecycle: a stored stage per rule (draft, shadow, rollout, live, paused) laid over the active
rules version's text, every change audited and undoable, and the guard that pauses a rule firing far too
often just after it changed (docs/operations.md, "The rules lifecycle")."""

from vigil.lifecycle.overlay import effective_modes, overlay
from vigil.lifecycle.states import STAGES, LifecycleError, RuleState, RuleStates

__all__ = ["STAGES", "LifecycleError", "RuleState", "RuleStates", "effective_modes", "overlay"]
