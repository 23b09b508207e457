"""Classify files through one LOSSLESS stream: decode in a pool, send from a thread, read here.

All three overlap, so the model, the decoder threads and the network stay busy together.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from client._sync import Stream, StreamClient
from client._types import EncodedFrame, WireFormat
from client.classify.image_files import describe_failure, load_image
from client.classify.output import ResultWriter
from client.classify.progress import Progress

STREAM_SOURCE = "stream-classify classify"


@dataclass(frozen=True)
class ClassifySettings:
    """How files are classified.

    Attributes:
        window: images averaged per prediction, in order (1: each image on its own).
        top_k: labels listed per image.
        wire_format, jpeg_quality: how frames travel (see :func:`client.encode_frame`).
        workers: threads decoding and resizing images.
    """

    window: int = 1
    top_k: int = 3
    wire_format: WireFormat = "raw"
    jpeg_quality: int = 90
    workers: int = min(4, os.cpu_count() or 1)

    def __post_init__(self) -> None:
        for name in ("window", "top_k", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def lookahead(self) -> int:
        """Images decoding ahead of the sender: enough to keep the pool busy, bounded memory."""
        return 4 * self.workers


@dataclass(frozen=True)
class ClassifyOutcome:
    classified: int
    failed: int  # unreadable files and frames the server could not classify


def classify_files(
    client: StreamClient,
    paths: Sequence[Path],
    settings: ClassifySettings,
    writer: ResultWriter,
    progress: Progress,
) -> ClassifyOutcome:
    """Classify ``paths`` in order; results go to ``writer``, problems to ``progress`` messages.

    Raises:
        ClassifierClientError: the stream failed (the server went away); per-file problems are
            counted in the outcome instead.
    """
    return _Job(client, paths, settings, progress).run(writer)


class _Job:
    def __init__(
        self,
        client: StreamClient,
        paths: Sequence[Path],
        settings: ClassifySettings,
        progress: Progress,
    ) -> None:
        self._client = client
        self._paths = paths
        self._settings = settings
        self._progress = progress
        self._sent_paths: list[Path] = []
        self._load_failures = 0
        self._send_error: BaseException | None = None

    def run(self, writer: ResultWriter) -> ClassifyOutcome:
        settings = self._settings
        self._progress.start(len(self._paths))
        with self._client.open_stream(
            STREAM_SOURCE,
            window=settings.window,
            top_k=settings.top_k,
            wire_format=settings.wire_format,
            jpeg_quality=settings.jpeg_quality,
            probabilities=False,  # the outputs show labels and scores, never the vector
        ) as stream:
            sender = threading.Thread(
                target=self._send, args=(stream,), name="classify-sender", daemon=True
            )
            sender.start()
            classified = failed = 0
            for prediction in stream:
                path = self._sent_paths[prediction.seq]
                if prediction.error is None:
                    writer.write(path, prediction)
                    classified += 1
                else:
                    self._progress.message(f"{path}: {prediction.error.message}")
                    failed += 1
                self._progress.update()
            sender.join()
        if self._send_error is not None:
            raise self._send_error
        return ClassifyOutcome(classified, failed + self._load_failures)

    def _send(self, stream: Stream) -> None:
        settings = self._settings
        size = self._client.model_info.input_size
        try:
            with ThreadPoolExecutor(settings.workers, thread_name_prefix="classify-decode") as pool:
                for path, future in _decoded_in_order(pool, self._paths, size, settings):
                    try:
                        frame = future.result()
                    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported and skipped
                        self._load_failures += 1
                        self._progress.message(f"{path}: {describe_failure(exc)}")
                        self._progress.update()
                        continue
                    # Only this thread sends, so the next seq is the list's length.
                    self._sent_paths.append(path)
                    stream.send(frame)
            stream.close_send()
        except BaseException as exc:
            self._send_error = exc
            stream.close()


def _decoded_in_order(
    pool: ThreadPoolExecutor,
    paths: Sequence[Path],
    size: tuple[int, int],
    settings: ClassifySettings,
) -> Iterator[tuple[Path, Future[EncodedFrame]]]:
    # Keep `lookahead` images decoding ahead of the sender, in order, with bounded memory.
    pending: deque[tuple[Path, Future[EncodedFrame]]] = deque()
    for path in paths:
        future = pool.submit(load_image, path, size, settings.wire_format, settings.jpeg_quality)
        pending.append((path, future))
        if len(pending) >= settings.lookahead:
            yield pending.popleft()
    while pending:
        yield pending.popleft()
