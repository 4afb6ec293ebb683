"""Decompression bombs, built in the test itself: tiny files that declare huge images or long videos."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int, height: int) -> bytes:
    """A valid black 1-bit PNG of width × height pixels, written row by row so building it costs
    almost nothing (12000 × 12000 is 144 Mpx in about 20 KB)."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter type 0, then the packed bits
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def video(size: tuple[int, int], frames: int, fps: int = 25, codec: str = "libx264") -> bytes:
    """An MP4 of `frames` frames of a moving gradient (encoded fast, decoded like any upload)."""
    import av
    import numpy as np

    width, height = size
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"} if codec == "libx264" else {}
        x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
        y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
        for index in range(frames):
            grey = ((x + y + index * 8) % 256).astype(np.uint8)
            rgb = np.stack([grey, grey[::-1], np.full_like(grey, index % 256)], axis=-1)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def flat_png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, 0).save(buffer, format="PNG")
    return buffer.getvalue()
