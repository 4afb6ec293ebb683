"""Classifiers behind one Protocol: trained local heads, policy-as-prompt models, built-in signals.

Heavy dependencies (torch, scikit-learn, httpx) come with the ``ml`` extra and are imported by the
modules that need them, not here.
"""

from vigil.classifiers.base import Classification, Classifier, ClassifierError

__all__ = ["Classification", "Classifier", "ClassifierError"]
