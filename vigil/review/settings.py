"""The `[review]` and `[queues.NAME]` tables of the settings, validated.

```toml
[review]
default_queue = "default"   # a queue sink without `queue =` fills this one
lease = 600                 # seconds a claim lasts unless the queue says otherwise
sweep_interval = 30         # seconds between looks for items past their queue's target

[queues.spam]
target = 3600               # target handling time, seconds: older open items are breaches
breach_raise = 10           # added to a breached item's priority
escalate_to = "spam-senior" # a breached item moves there (optional)
require_reason = true       # every decision here needs a reason
require_policy = false      # … and a policy reference
golden_rate = 0.05          # a twentieth of next-item claims get a golden item (known answer)
second_review_rate = 0.1    # a tenth of decisions go to a second reviewer
child_safety = false        # a child-safety queue: invisible without the child_safety_reviewer role

[queues.spam.actions.spammer]
kind = "label"              # label | unlabel | dismiss | escalate | output
label = "spammer"
expires_in = 7776000        # seconds (optional)

[queues.spam.actions.takedown]
kind = "output"
sink = "takedown"           # the decision is delivered to this sink through the outbox
```

A queue named by a sink but not declared has the defaults, with one action, `dismiss`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_LEASE = 600.0  # Coop's lock: ten minutes
DEFAULT_TARGET = 86400.0


class ReviewConfigError(ValueError):
    """Settings of review queues that cannot be used; the message names the key and what to write."""


class ActionSettings(BaseModel):
    """One action a reviewer may take in a queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["label", "unlabel", "dismiss", "escalate", "output"]
    label: str | None = Field(default=None, min_length=1, max_length=200)
    expires_in: float | None = Field(default=None, gt=0)
    queue: str | None = Field(default=None, min_length=1, description="escalate: the queue the item moves to")
    sink: str | None = Field(default=None, min_length=1, description="output: the sink the decision is delivered to")
    require_reason: bool | None = None  # None: as the queue says
    require_policy: bool | None = None

    @model_validator(mode="after")
    def _complete(self) -> ActionSettings:
        if self.kind in ("label", "unlabel") and self.label is None:
            raise ValueError(f'a {self.kind} action needs `label = "NAME"`')
        if self.kind == "escalate" and self.queue is None:
            raise ValueError('an escalate action needs `queue = "QUEUE"`')
        if self.kind == "output" and self.sink is None:
            raise ValueError('an output action needs `sink = "SINK"`')
        return self


DISMISS = ActionSettings(kind="dismiss")


class QueueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: float = Field(default=DEFAULT_TARGET, gt=0, description="target handling time, seconds")
    lease: float | None = Field(default=None, gt=0, description="seconds a claim lasts (default: [review] lease)")
    breach_raise: float = Field(default=10.0, ge=0)
    escalate_to: str | None = None
    require_reason: bool = False
    require_policy: bool = False
    golden_rate: float = Field(default=0.0, ge=0, le=1, description="share of next-item claims handed a golden "
                               "item (known answer) instead (vigil.review.quality)")
    second_review_rate: float = Field(default=0.0, ge=0, le=1, description="share of decisions sent to a second "
                                      "reviewer, their agreement recorded")
    child_safety: bool = Field(default=False, description="a child-safety queue: it and its items are invisible "
                               "to everyone without the child_safety_reviewer role (Coop #1154)")
    actions: dict[str, ActionSettings] = Field(default_factory=lambda: {"dismiss": DISMISS})


class ReportSettings(BaseModel):
    """`[review.reports]`: child-safety reports (CyberTipline-like packages, vigil.review.child_safety)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: list[str] = Field(default_factory=list, description="decisions with these action names make a report")
    sink: str | None = Field(default=None, min_length=1, description="the sink that delivers reports (NCMEC's "
                             "endpoint, through the outbox)")
    reporter: dict[str, str] = Field(default_factory=dict, description="who reports: company, contact, email, phone")


class ReviewSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_queue: str = "default"
    reports: ReportSettings = Field(default_factory=ReportSettings)
    lease: float = Field(default=DEFAULT_LEASE, gt=0)
    sweep_interval: float = Field(default=30.0, gt=0)
    queues: dict[str, QueueSettings] = Field(default_factory=dict)

    def queue(self, name: str) -> QueueSettings:
        """A declared queue's settings, or the defaults for one that rules or sinks name."""
        return self.queues.get(name) or QueueSettings()

    def lease_of(self, name: str) -> float:
        return self.queue(name).lease or self.lease


def validate(review: Mapping[str, Any] | None, queues: Mapping[str, Any] | None) -> ReviewSettings:
    """The raw `[review]` and `[queues.*]` tables checked; raises ReviewConfigError naming the first bad key.

    >>> validate({}, {"spam": {"actions": {"ban": {"kind": "label", "label": "spammer"}}}}).queue("spam").target
    86400.0
    >>> validate({}, {"spam": {"actions": {"ban": {"kind": "label"}}}})
    Traceback (most recent call last):
    ...
    vigil.review.settings.ReviewConfigError: queues.spam.actions.ban: a label action needs `label = "NAME"`
    """
    try:
        settings = ReviewSettings.model_validate({**(review or {}), "queues": dict(queues or {})})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if not where.startswith("queues"):
            where = f"review.{where}"
        message = "unknown setting" if first["type"] == "extra_forbidden" else first["msg"]
        raise ReviewConfigError(f"{where}: {message.removeprefix('Value error, ')}") from None
    for name, queue in settings.queues.items():
        reporting = sorted(set(queue.actions) & set(settings.reports.actions))
        if reporting and not queue.child_safety:
            # A report is child-safety material: the item it is made of must be hidden like one.
            raise ReviewConfigError(f"queues.{name}.actions.{reporting[0]}: a child-safety report action belongs in a "
                                    f"child-safety queue; set child_safety = true in [queues.{name}], or escalate "
                                    "there and report from it")
        for target in [queue.escalate_to] + [a.queue for a in queue.actions.values()]:
            if target is not None and target == name:
                raise ReviewConfigError(f"queues.{name}: escalates to itself; name another queue")
            if target is not None and queue.child_safety and not settings.queue(target).child_safety:
                # An item leaving a child-safety queue would show its evidence to everyone (Coop #1154).
                raise ReviewConfigError(f"queues.{name}: a child-safety queue escalates to {target!r}, which is not "
                                        f"one; set child_safety = true in [queues.{target}] or name another queue")
    return settings


def settings_of(config: Any) -> ReviewSettings | None:
    """The review settings of a runtime's `Settings` (its `review`, `queues` and `sinks` tables): None
    when it has no review queues at all (no `[queues.*]`, no `[review]`, no sink of kind queue)."""
    sinks = getattr(config, "sinks", {}) or {}
    has_queue_sink = any(isinstance(t, Mapping) and t.get("kind") == "queue" for t in sinks.values())
    if not (config.review or config.queues or has_queue_sink):
        return None
    return validate(config.review, config.queues)
