from __future__ import annotations

import pytest

from vigil.hashing.hashers import HashingError
from vigil.hashing.nsfw import NsfwScorer

from .images import encode, gradient, photo


@pytest.fixture(scope="module")
def scorer() -> NsfwScorer:
    return NsfwScorer()


def test_scores_are_probabilities_and_benign_images_score_low(scorer: NsfwScorer) -> None:
    images = [encode(photo(1)), encode(gradient(), "JPEG")]
    scores = scorer.score_many(images)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores) < 0.5
    assert scorer.score(images[0]) == pytest.approx(scores[0], abs=1e-5)


def test_corrupt_image(scorer: NsfwScorer) -> None:
    with pytest.raises(HashingError, match="not an image Pillow can read"):
        scorer.score(b"nope")
