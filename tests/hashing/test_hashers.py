from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vigil.hashing.hashers import (
    HashingError,
    SignalType,
    decode_image,
    hamming_hex,
    hex_to_packed,
    md5_hex,
    normalize_hash,
    parse_signal_type,
    pdq_bytes,
    pdq_image,
    pdq_image_dihedral,
    pdq_video_frames,
    sha256_hex,
    simhash_text,
)

from .images import encode, flat, gradient, photo


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    images = [photo(seed, (480, 360)) for seed in range(8)]
    return [im for im in images if pdq_image(im).quality >= 80]


def test_pdq_hash_shape_and_quality(photos: list[Image.Image]) -> None:
    assert len(photos) >= 5  # the generator makes textured, high-quality images
    for image in photos:
        result = pdq_image(image)
        assert len(result.hash) == 64
        int(result.hash, 16)
        assert result.quality >= 80


def test_pdq_of_encoded_bytes_equals_pdq_of_decoded_image(photos: list[Image.Image]) -> None:
    assert pdq_bytes(encode(photos[0])) == pdq_image(photos[0])


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(
            lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), id="half"
        ),
        pytest.param(
            lambda im: im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC), id="double"
        ),
        pytest.param(lambda im: Image.open(io.BytesIO(encode(im, "JPEG", quality=70))), id="jpeg70"),
        pytest.param(lambda im: im.crop((4, 3, im.width - 4, im.height - 3)), id="crop3%"),
        pytest.param(lambda im: im.convert("L").convert("RGB"), id="grey"),
    ],
)
def test_pdq_is_robust_to_mild_edits(photos: list[Image.Image], transform: object) -> None:
    # PDQ's documented behaviour for good-quality images: near-identical copies land inside the default
    # match threshold (31), typically 10-20 bits away.
    distances = []
    for image in photos:
        original = pdq_image(image)
        edited = pdq_image(transform(image))  # type: ignore[operator]
        distances.append(hamming_hex(original.hash, edited.hash))
    assert max(distances) <= 31
    assert np.mean(distances) <= 20


def test_unrelated_images_are_far_apart(photos: list[Image.Image]) -> None:
    hashes = [pdq_image(im).hash for im in photos]
    distances = [hamming_hex(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(distances) > 70
    assert 100 < np.mean(distances) < 156  # around 128 for independent images


def test_flat_image_has_low_quality() -> None:
    assert pdq_image(flat()).quality < 50


def test_gradient_hashes() -> None:
    result = pdq_image(gradient())
    assert len(result.hash) == 64


def test_dihedral_variants_match_transformed_images(photos: list[Image.Image]) -> None:
    image = photos[1]
    variants = pdq_image_dihedral(image)
    assert len(variants) == 8
    assert variants[0].hash == pdq_image(image).hash
    # Each rotated/mirrored copy hashes within the match threshold of one of the original's variants
    # (exactly for quarter turns and mirrors; a 180 turn shifts PDQ's downsampling grid slightly).
    for op in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.FLIP_LEFT_RIGHT):
        rotated = pdq_image(image.transpose(op)).hash
        assert min(hamming_hex(rotated, v.hash) for v in variants) <= 31
    # …while the plain hash of a rotated copy is far from the original.
    assert hamming_hex(pdq_image(image.transpose(Image.Transpose.ROTATE_90)).hash, variants[0].hash) > 60


def test_rgba_and_palette_images_hash(photos: list[Image.Image]) -> None:
    rgba = photos[0].convert("RGBA")
    palette = photos[0].convert("P")
    assert hamming_hex(pdq_image(rgba).hash, pdq_image(photos[0]).hash) == 0
    assert hamming_hex(pdq_image(palette).hash, pdq_image(photos[0]).hash) <= 31


@pytest.mark.parametrize("data", [b"", b"not an image", encode(photo(0))[:200]])
def test_corrupt_images_raise_clear_errors(data: bytes) -> None:
    with pytest.raises(HashingError, match="cannot decode image|not an image Pillow can read"):
        pdq_bytes(data)


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(HashingError, match="too large"):
        decode_image(encode(photo(0)))


def test_exact_digests() -> None:
    assert md5_hex(b"abc") == "900150983cd24fb0d6963f7d28e17f72"
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_simhash_near_duplicates_are_close_and_unrelated_far() -> None:
    spam = (
        "Congratulations! You have been selected to receive a free gift card worth $500. "
        "Click the link below to claim your reward before it expires tonight."
    )
    edits = [
        spam.replace("$500", "$600"),
        spam.upper(),
        spam.replace("free", "fr\u200bee").replace("o", "0"),
        spam.replace("Click", "Tap"),
        "Hey! " + spam,
    ]
    base = simhash_text(spam)
    assert len(base) == 16
    for edit in edits:
        assert hamming_hex(base, simhash_text(edit)) <= 10, edit
    unrelated = simhash_text("The committee will meet on Thursday to review the quarterly budget figures.")
    assert hamming_hex(base, unrelated) > 16


def test_simhash_is_deterministic_and_rejects_empty_text() -> None:
    assert simhash_text("hello world") == simhash_text("hello world")
    assert len(simhash_text("a")) == 16
    with pytest.raises(HashingError, match="empty"):
        simhash_text(" \u200b ")


@pytest.mark.parametrize(
    ("signal", "value", "message"),
    [
        (SignalType.PDQ, "ab", "64 hex characters, got 2"),
        (SignalType.MD5, "z" * 32, "not hexadecimal"),
        (SignalType.SHA256, "", "64 hex characters, got 0"),
    ],
)
def test_malformed_hashes_are_rejected(signal: SignalType, value: str, message: str) -> None:
    with pytest.raises(HashingError, match=message):
        normalize_hash(signal, value)


def test_signal_type_aliases() -> None:
    assert parse_signal_type("video_md5") is SignalType.MD5
    with pytest.raises(HashingError, match="unknown signal type 'tmk'"):
        parse_signal_type("tmk")


def test_hex_packing_keeps_bit_order() -> None:
    packed = hex_to_packed(["8000000000000001"], 8)
    assert packed.tolist() == [[0x80, 0, 0, 0, 0, 0, 0, 1]]
    assert np.unpackbits(packed)[0] == 1


def _video(frames: list[Image.Image], fps: int = 4) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for image in frames:
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def test_video_frames_are_sampled_and_hashed(photos: list[Image.Image]) -> None:
    # 3 seconds at 4 fps: one second per photo, sampled once a second.
    frames = [photos[i] for i in range(3) for _ in range(4)]
    hashes = pdq_video_frames(_video(frames), frames_per_second=1.0)
    assert [round(f.timestamp) for f in hashes] == [0, 1, 2]
    for frame, image in zip(hashes, photos[:3], strict=True):
        assert hamming_hex(frame.pdq.hash, pdq_image(image).hash) <= 31


def test_video_garbage_is_an_error() -> None:
    with pytest.raises(HashingError):
        pdq_video_frames(b"definitely not a video")
