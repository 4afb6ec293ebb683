"""Synthetic test images: photo-like textures, gradients and shapes, generated with numpy and Pillow."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A photo-like image: multi-scale smooth noise (1/f-ish spectrum) plus a few soft shapes."""
    rng = np.random.default_rng(seed)
    w, h = size
    canvas = np.zeros((h, w, 3), dtype=np.float64)
    for octave, weight in ((4, 1.0), (8, 0.6), (16, 0.35), (48, 0.15)):
        small = rng.random((octave * h // w + 1, octave, 3))
        layer = Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
        canvas += weight * np.asarray(layer, dtype=np.float64)
    canvas = canvas / canvas.max() * 255
    image = Image.fromarray(canvas.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    return image.filter(ImageFilter.GaussianBlur(1.2))


def gradient(size: tuple[int, int] = (256, 256)) -> Image.Image:
    """A smooth diagonal colour gradient."""
    w, h = size
    x = np.linspace(0, 1, w)[None, :]
    y = np.linspace(0, 1, h)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def flat(colour: tuple[int, int, int] = (128, 128, 128), size: tuple[int, int] = (200, 200)) -> Image.Image:
    """A single-colour image (PDQ quality 0)."""
    return Image.new("RGB", size, colour)


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    """Encode an image to bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()
