"""Built-in language and profanity signals (models shipped in packages)."""

from __future__ import annotations

import asyncio

from vigil.classifiers.base import Classifier
from vigil.classifiers.builtin import LanguageClassifier, ProfanityClassifier


def test_language_identifies_common_languages() -> None:
    classifier = LanguageClassifier()
    assert isinstance(classifier, Classifier)
    answers = classifier.classify(
        ["The weather is lovely today and we are going to the park.",
         "Das Wetter ist heute schön und wir gehen in den Park.",
         "El tiempo es muy bueno hoy y vamos al parque."]
    )  # fmt: skip
    assert [a.label for a in answers] == ["en", "de", "es"]
    assert all(a.score is not None and 0.5 < a.score <= 1.0 for a in answers)
    assert "en" in classifier.labels


def test_profanity_scores_offensive_text_higher() -> None:
    classifier = ProfanityClassifier()
    rude, polite = asyncio.run(classifier.aclassify(["you are a fucking idiot", "thank you for your help"]))
    assert rude.flagged is True and polite.flagged is False
    assert rude.score is not None and polite.score is not None and rude.score > polite.score
    assert classifier.classify([]) == []
