"""The evaluation harness: labelled datasets in, metrics, comparisons and reports out."""

from vigil.eval.candidates import Candidate, ClassifierCandidate, Prediction

__all__ = ["Candidate", "ClassifierCandidate", "Prediction"]
