"""How much decoding one piece of media may cost, checked from its header before any decoder runs.

A few kilobytes of PNG can declare 144 million pixels, and a few of H.264 thousands of 4K frames: the
file size says nothing about the cost of decoding it. So an image's size is read from its header, and a
video's frame size, duration and frame count from its stream metadata, and media over a limit is refused
with `MediaTooLarge` before a pixel is decoded. Headers can lie, so decoding counts again as it goes. The
limits that only a running decoder can hold (time and memory) are enforced by `vigil.hashing.decoder`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from vigil.hashing.errors import MediaTooLarge

__all__ = ["ENV", "MediaLimits", "MediaTooLarge", "check_frame", "check_frames", "check_image", "check_video"]


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """The most one image or video may cost to decode. Each has an environment variable (`ENV`)."""

    max_image_pixels: int = 40_000_000  # width × height of an image (a 48 Mpx phone photo at full size is over)
    max_frame_pixels: int = 3840 * 2160  # width × height of one video frame (4K UHD)
    max_video_seconds: float = 600.0  # a video's duration
    max_video_frames: int = 36_000  # frames decoded (10 minutes at 60 fps)
    max_decoded_bytes: int = 8 << 30  # bytes of decoded pixels (RGB, 3 a pixel) summed over every frame
    decode_seconds: float = 10.0  # wall time one decode may take in a decoder process
    decoder_memory_bytes: int = 3 << 30  # address space of one decoder process
    decoders: int = 2  # decoder processes
    queue: int = 8  # decodes that may wait for a decoder before new ones are refused (DecoderBusy)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MediaLimits:
        """Defaults, overridden by `VIGIL_MEDIA_*` variables (see `ENV`).

        >>> MediaLimits.from_env({"VIGIL_MEDIA_MAX_IMAGE_PIXELS": "1000000"}).max_image_pixels
        1000000
        """
        env = os.environ if env is None else env
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for variable, name in ENV.items():
            raw = env.get(variable, "").strip()
            if not raw:
                continue
            try:
                value = float(raw) if types[name] == "float" else int(raw.replace("_", ""))
            except ValueError:
                raise ValueError(f"{variable} must be a number, got {raw!r}") from None
            if value <= 0 and name != "queue":
                raise ValueError(f"{variable} must be positive, got {raw!r}")
            values[name] = value
        return replace(cls(), **values)


ENV = {
    "VIGIL_MEDIA_MAX_IMAGE_PIXELS": "max_image_pixels",
    "VIGIL_MEDIA_MAX_FRAME_PIXELS": "max_frame_pixels",
    "VIGIL_MEDIA_MAX_VIDEO_SECONDS": "max_video_seconds",
    "VIGIL_MEDIA_MAX_VIDEO_FRAMES": "max_video_frames",
    "VIGIL_MEDIA_MAX_DECODED_BYTES": "max_decoded_bytes",
    "VIGIL_MEDIA_DECODE_SECONDS": "decode_seconds",
    "VIGIL_MEDIA_DECODER_MEMORY": "decoder_memory_bytes",
    "VIGIL_MEDIA_DECODERS": "decoders",
    "VIGIL_MEDIA_QUEUE": "queue",
}


def _mpx(pixels: float) -> str:
    return f"{pixels / 1e6:.1f} Mpx" if pixels >= 100_000 else f"{pixels:,.0f} pixels"


def _size(size: float) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**29 else f"{size / 2**20:.1f} MiB"


def check_image(width: int, height: int, limits: MediaLimits) -> None:
    """Refuse an image whose header declares more pixels than `limits` allow."""
    pixels = width * height
    if pixels > limits.max_image_pixels:
        raise MediaTooLarge(f"media too large: the image is {width}×{height} ({_mpx(pixels)}), over the "
                            f"{_mpx(limits.max_image_pixels)} limit (max_image_pixels, "
                            "VIGIL_MEDIA_MAX_IMAGE_PIXELS); send a smaller image")


def check_video(width: int, height: int, seconds: float | None, frames: int | None, limits: MediaLimits) -> None:
    """Refuse a video whose stream metadata declares frames, a duration or a total decoded size over
    `limits` (`seconds` and `frames` are None where the container does not say)."""
    check_frame(width, height, limits)
    if seconds is not None and seconds > limits.max_video_seconds:
        raise MediaTooLarge(f"media too large: the video lasts {seconds:.1f} s, over the "
                            f"{limits.max_video_seconds:g} s limit (max_video_seconds, VIGIL_MEDIA_MAX_VIDEO_SECONDS)")
    if frames is not None:
        check_frames(frames, frames * width * height * 3, limits)


def check_frame(width: int, height: int, limits: MediaLimits) -> None:
    pixels = width * height
    if pixels > limits.max_frame_pixels:
        raise MediaTooLarge(f"media too large: video frames are {width}×{height} ({_mpx(pixels)}), over the "
                            f"{_mpx(limits.max_frame_pixels)} limit (max_frame_pixels, VIGIL_MEDIA_MAX_FRAME_PIXELS)")


def check_frames(frames: int, decoded_bytes: int, limits: MediaLimits) -> None:
    if frames > limits.max_video_frames:
        raise MediaTooLarge(f"media too large: the video has {frames} frames, over the {limits.max_video_frames}"
                            " limit (max_video_frames, VIGIL_MEDIA_MAX_VIDEO_FRAMES)")
    if decoded_bytes > limits.max_decoded_bytes:
        raise MediaTooLarge(f"media too large: decoding the video gives {_size(decoded_bytes)} of "
                            f"pixels, over the {_size(limits.max_decoded_bytes)} limit "
                            "(max_decoded_bytes, VIGIL_MEDIA_MAX_DECODED_BYTES)")
