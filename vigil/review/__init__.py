"""Review: queues, items, claims with leases, decisions (issue 14). docs/review.md says how to run it."""

from vigil.review.core import DECISION_EVENT, EVENT_SUBJECT, Decided, Review, ReviewError
from vigil.review.settings import (
           ActionSettings,
           QueueSettings,
           ReviewConfigError,
           ReviewSettings,
           settings_of,
           validate,
)
from vigil.review.store import DecisionRow, Item, ReviewStore, ReviewStoreError

__all__ = ["DECISION_EVENT", "EVENT_SUBJECT", "ActionSettings", "Decided", "DecisionRow", "Item", "QueueSettings",
           "Review", "ReviewConfigError", "ReviewError", "ReviewSettings", "ReviewStore", "ReviewStoreError",
           "settings_of", "validate"]
