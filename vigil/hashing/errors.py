"""The errors of hashing: one base class, so a front door can catch them all and say what was wrong."""

from __future__ import annotations


class HashingError(ValueError):
    """Content could not be hashed (undecodable image, empty text, missing video decoder…)."""


class MediaTooLarge(HashingError):
    """Media over a decoding limit, refused before (or while) decoding; the message names the limit.
    Rules read it as unknown, the HTTP routes answer 413."""


class DecoderBusy(HashingError):
    """Every decoder process is busy and the queue is full: try again shortly (HTTP 503)."""
