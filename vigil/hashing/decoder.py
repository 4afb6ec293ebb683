"""`MediaDecoder`: image and video decoding in a small pool of processes, each decode under a time budget.

Decoding is where untrusted bytes meet C code (Pillow, FFmpeg), and its cost is set by the bytes: a
header check (`vigil.hashing.limits`) refuses what declares itself too large, but only a separate process
can be stopped mid-decode. So decodes run in `limits.decoders` worker processes (started on first use,
by forkserver, never forked from a threaded server), each with its address space capped at
`limits.decoder_memory_bytes`; a decode that runs past `limits.decode_seconds` has its process killed
and replaced. At most `limits.queue` decodes wait for a process; beyond that `DecoderBusy` is raised at
once, so callers never pile up behind a flood of media. What comes back is small: hashes, or the NSFW
model's 224×224 input.

`MediaDecoder(limits, processes=0)` decodes in the calling thread instead (header and frame limits
still apply, not time or memory): for tests and library use. Every front door uses processes.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any, Literal, Self, TypeVar

import numpy as np
from numpy.typing import NDArray

from vigil.hashing.errors import DecoderBusy, HashingError, MediaTooLarge
from vigil.hashing.hashers import FrameHash, nsfw_input, pdq_media, pdq_media_kind
from vigil.hashing.limits import MediaLimits

T = TypeVar("T")


def _start_worker(memory_bytes: int) -> None:
    """In each decoder process: cap its address space, so a runaway decoder gets MemoryError."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


class MediaDecoder:
    """Decodes media under `limits`, in worker processes (or inline with `processes=0`). Thread-safe;
    `close()` stops the processes."""

    def __init__(self, limits: MediaLimits | None = None, *, processes: int | None = None) -> None:
        self.limits = limits or MediaLimits()
        self.processes = self.limits.decoders if processes is None else processes
        self._slots = threading.BoundedSemaphore(self.processes + self.limits.queue) if self.processes else None
        self._lock = threading.Lock()
        self._pool: Any = None
        self._closed = False

    def pdq(self, data: bytes, frames_per_second: float = 1.0) -> list[FrameHash]:
        """PDQ of an image, or of a video's frames sampled `frames_per_second` times a second."""
        return self._run(pdq_media, data, frames_per_second=frames_per_second, limits=self.limits)

    def pdq_kind(self, data: bytes, frames_per_second: float = 1.0) -> tuple[Literal["image", "video"],
                                                                             list[FrameHash]]:
        """`pdq`, saying whether the bytes were an image or a video."""
        return self._run(pdq_media_kind, data, frames_per_second=frames_per_second, limits=self.limits)

    def nsfw_input(self, data: bytes) -> NDArray[np.float32]:
        """The Open-NSFW model's input for an image (see `hashers.nsfw_input`)."""
        return self._run(nsfw_input, data, limits=self.limits)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------------

    def _run(self, function: Callable[..., T], data: bytes, **kwargs: Any) -> T:
        if self._slots is None:
            return function(data, **kwargs)
        if not self._slots.acquire(blocking=False):
            raise DecoderBusy(f"all {self.processes} media decoders are busy and {self.limits.queue} decodes "
                              "are waiting; try again shortly (VIGIL_MEDIA_DECODERS, VIGIL_MEDIA_QUEUE)")
        try:
            future = self._worker_pool().schedule(function, (data,), kwargs, timeout=self.limits.decode_seconds)
            try:
                result: T = future.result()
            except concurrent.futures.TimeoutError:
                raise MediaTooLarge(f"media too large: decoding took longer than {self.limits.decode_seconds:g} s "
                                    "(decode_seconds, VIGIL_MEDIA_DECODE_SECONDS)") from None
            except MemoryError:
                raise MediaTooLarge(f"media too large: decoding needed more than "
                                    f"{self.limits.decoder_memory_bytes / 2**30:.1f} GiB "
                                    "(decoder_memory_bytes, VIGIL_MEDIA_DECODER_MEMORY)") from None
            except HashingError:
                raise
            except Exception as error:  # noqa: BLE001 - the process died (a crash in C code): one failed decode
                raise HashingError(f"the media decoder failed: {type(error).__name__}: {error}") from None
            return result
        finally:
            self._slots.release()

    def _worker_pool(self) -> Any:
        with self._lock:
            if self._closed:
                raise HashingError("the media decoder is closed")
            if self._pool is None:
                import pebble

                self._pool = pebble.ProcessPool(
                    max_workers=self.processes, initializer=_start_worker,
                    initargs=(self.limits.decoder_memory_bytes,),
                    context=multiprocessing.get_context("forkserver"))
            return self._pool
