"""Image and video bombs (built here, a few KB each) are refused from their headers, on every path:
the hashers, the decoder processes (time and memory budget), the CLI, HTTP and rules."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from vigil.hashing.cli import hash_command
from vigil.hashing.decoder import MediaDecoder
from vigil.hashing.errors import DecoderBusy, HashingError, MediaTooLarge
from vigil.hashing.hashers import pdq_media
from vigil.hashing.limits import MediaLimits

from .bombs import png_bomb, video
from .images import encode, photo

BOMB = png_bomb(12000, 12000)  # 144 Mpx in ~18 KB: Pillow refused it and FFmpeg decoded it with no limit
CLIP = video((64, 64), 40, fps=20)  # 2 s, 40 frames


def test_a_png_bomb_is_refused_from_its_header_and_never_reaches_the_video_decoder() -> None:
    assert len(BOMB) < 50_000
    with pytest.raises(MediaTooLarge, match=r"the image is 12000×12000 \(144.0 Mpx\), over the 40.0 Mpx limit"):
        pdq_media(BOMB)
    with pytest.raises(MediaTooLarge, match="max_image_pixels"):
        pdq_media(encode(photo(1, (400, 300))), limits=MediaLimits(max_image_pixels=100_000))
    assert len(pdq_media(encode(photo(1, (400, 300))), limits=MediaLimits(max_image_pixels=120_000))) == 1


@pytest.mark.parametrize(("limits", "message"), [
    (MediaLimits(max_video_seconds=1), "lasts 2.0 s, over the 1 s limit"),
    (MediaLimits(max_video_frames=10), "has 40 frames, over the 10 limit"),
    (MediaLimits(max_frame_pixels=1000), "64×64 .*over the 1,000 pixels limit"),
    (MediaLimits(max_decoded_bytes=64 * 64 * 3 * 10), "decoding the video gives .* over the"),
])
def test_video_limits_are_checked_from_the_stream_metadata(limits: MediaLimits, message: str) -> None:
    with pytest.raises(MediaTooLarge, match=message):
        pdq_media(CLIP, limits=limits)
    assert [f.timestamp for f in pdq_media(CLIP)] == [0.0, 1.0]


def test_limits_from_the_environment() -> None:
    limits = MediaLimits.from_env({"VIGIL_MEDIA_MAX_VIDEO_SECONDS": "30", "VIGIL_MEDIA_DECODERS": "4"})
    assert (limits.max_video_seconds, limits.decoders, limits.max_image_pixels) == (30.0, 4, 40_000_000)
    with pytest.raises(ValueError, match="VIGIL_MEDIA_MAX_IMAGE_PIXELS must be a number"):
        MediaLimits.from_env({"VIGIL_MEDIA_MAX_IMAGE_PIXELS": "lots"})


def test_decoder_processes_hash_refuse_and_stop_a_decode_over_its_time_budget() -> None:
    with MediaDecoder(MediaLimits(decoders=1)) as decoder:
        assert decoder.pdq(CLIP) == pdq_media(CLIP)
        with pytest.raises(MediaTooLarge, match="144.0 Mpx"):
            decoder.pdq(BOMB)
    long_clip = video((640, 480), 300, fps=25)  # seconds of decoding, against a budget of 0.05 s
    with MediaDecoder(MediaLimits(decoders=1, decode_seconds=0.05)) as decoder:
        with pytest.raises(MediaTooLarge, match=r"decoding took longer than 0.05 s \(decode_seconds"):
            decoder.pdq(long_clip, frames_per_second=25)
        with pytest.raises(MediaTooLarge, match="144.0 Mpx"):  # the killed process was replaced
            decoder.pdq(BOMB)


def test_a_decoder_process_out_of_memory_is_media_too_large() -> None:
    image = encode(photo(2, (6000, 4000)), "JPEG")  # 24 Mpx: about 1 GB to decode and hash
    limits = MediaLimits(decoders=1, decoder_memory_bytes=700 << 20, decode_seconds=60)
    with MediaDecoder(limits) as decoder, pytest.raises(MediaTooLarge, match="decoder_memory_bytes"):
        decoder.pdq(image)


def test_a_full_decoder_queue_refuses_at_once() -> None:
    long_clip = video((640, 480), 200, fps=25)
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def decode(decoder: MediaDecoder) -> None:
        start.wait()
        try:
            decoder.pdq(long_clip, frames_per_second=25)
        except HashingError as error:
            errors.append(error)

    with MediaDecoder(MediaLimits(decoders=1, queue=0, decode_seconds=60)) as decoder:
        threads = [threading.Thread(target=decode, args=(decoder,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors and all(isinstance(e, DecoderBusy) for e in errors)
    assert "media decoders are busy" in str(errors[0])


def test_vigil_hash_says_in_one_line_what_is_wrong(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(BOMB)
    result = CliRunner().invoke(hash_command, [str(bomb)])
    assert result.exit_code == 2
    assert result.output.strip() == (f"Error: {bomb}: media too large: the image is 12000×12000 (144.0 Mpx), over "
                                     "the 40.0 Mpx limit (max_image_pixels, VIGIL_MEDIA_MAX_IMAGE_PIXELS); send a "
                                     "smaller image")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello there")
    result = CliRunner().invoke(hash_command, [str(notes), "--signal", "pdq"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "BytesIO" not in result.output
    assert result.output.strip() == (f"Error: {notes}: neither an image nor a video: no format Pillow or FFmpeg "
                                     "reads (11 bytes); PDQ hashes images and videos (md5, sha256 and "
                                     "text_simhash hash any file: --signal)")
