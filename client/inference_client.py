"""Drop-in replacement for the old ``inference_client`` module, over the streaming API.

Old code changes only its import line::

    from client.inference_client import *   # was: from inference_client import *
    target_server = sc_client('127.0.0.1:1234')
    labels, probabilities = target_server([Image.open(p) for p in paths])

Each position of the image list is one video source, as before: position ``i`` of every call
is averaged with position ``i`` of the previous calls (the server's default window). Here each
position is one LOSSLESS stream kept open between calls, so images of any size or mode work.
"""

from __future__ import annotations

import atexit
import logging
import random
import string
import threading
import weakref
from types import TracebackType

import grpc
import numpy as np
from PIL import Image

from client._channel import check_load_balancing
from client._errors import ClassifierClientError, status_from_code
from client._frames import ImageLike, encode_frame
from client._sync import Stream, StreamClient
from client._types import EncodedFrame, Prediction
from client.connection_args import token_from_environment

__all__ = ["Image", "np", "sc_client"]

logger = logging.getLogger(__name__)

_open_clients: weakref.WeakSet[sc_client] = weakref.WeakSet()
_ANSWER_TIMEOUT_S = 600.0  # the old unary call had no deadline; this only stops a silent hang


class sc_client:  # noqa: N801 - the old public name
    """A client of the classification server with the old ``sc_client`` interface.

    Args:
        server_ip: ``host:port`` of the server.
        id_len: length of the random lowercase ``client_name``.
        connect_timeout: seconds to wait for the server on the first call.
        resize: resize images to the model's input size in the client. Off by default so the
            server resizes exactly as the old API did (same scores); on saves bandwidth.
        credentials: TLS credentials (see :func:`client.channel_credentials`); ``None`` for a
            plaintext channel, as the old client had.
        token: sent as ``authorization: Bearer <token>``; ``None`` reads the
            ``STREAM_CLASSIFY_TOKEN`` environment variable (unset: no token).
        load_balancing: the channel's load-balancing policy, as in :class:`client.StreamClient`:
            ``"round_robin"`` with a multi-address target (``ipv4:10.0.0.1:1234,10.0.0.2:1234``,
            ``dns:///name:port``) spreads the positions' streams over the servers; ``None`` is
            gRPC's pick_first, which puts every position on one server.

    Raises:
        ValueError: ``load_balancing`` is not a policy name (checked here, not on the first call).

    Example:
        >>> target_server = sc_client("127.0.0.1:1234")  # doctest: +SKIP
        >>> labels, probabilities = target_server([Image.open("a.jpg"), Image.open("b.png")])  # doctest: +SKIP
        >>> probabilities.shape  # doctest: +SKIP
        (2, 1)
    """

    def __init__(
        self,
        server_ip: str,
        id_len: int = 10,
        *,
        connect_timeout: float = 5.0,
        resize: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        load_balancing: str | None = None,
    ) -> None:
        check_load_balancing(load_balancing)
        self.server_ip = server_ip
        self.client_name = "".join(random.choices(string.ascii_lowercase, k=id_len))
        self._connect_timeout = connect_timeout
        self._resize = resize
        self._credentials = credentials
        self._token = token or token_from_environment()
        self._load_balancing = load_balancing
        self._client: StreamClient | None = None
        self._streams: list[Stream] = []
        self._lock = threading.Lock()
        _open_clients.add(self)

    def __call__(self, list_of_images: list[ImageLike]) -> tuple[list[str], np.ndarray]:
        """Classify one image per position.

        Args:
            list_of_images: PIL images (any mode and size), uint8 RGB arrays or JPEG/PNG bytes.

        Returns:
            ``(labels, probabilities)``: one window-averaged label per image, and a float32 array
            of shape ``(batch, 1)`` with each label's window-averaged score.

        Raises:
            ClassifierClientError: the server is unreachable or could not classify an image.
        """
        with self._lock:
            client = self._connect()
            size = client.model_info.input_size if self._resize else None
            # Encode all first: a bad image must fail before any position is sent, or the
            # positions' windows would fall out of step.
            frames = [encode_frame(image, size=size) for image in list_of_images]
            try:
                predictions = self._classify(client, frames)
            except ClassifierClientError:
                self._reset()  # the next call reconnects (fresh windows) instead of failing forever
                raise
        labels: list[str] = []
        scores: list[float] = []
        for position, prediction in enumerate(predictions):
            if prediction.error is not None:
                raise ClassifierClientError(
                    status_from_code(prediction.error.code),
                    f"image {position}: {prediction.error.message}",
                )
            labels.append(prediction.label)
            scores.append(prediction.score)
        return labels, np.asarray(scores, dtype=np.float32).reshape(-1, 1)

    def _classify(self, client: StreamClient, frames: list[EncodedFrame]) -> list[Prediction]:
        while len(self._streams) < len(frames):
            source = f"sc_client:{len(self._streams)}"
            # Only the top-1 window score is returned: no probability vector on the wire.
            self._streams.append(
                client.open_stream(source, top_k=1, resize=False, probabilities=False)
            )
        streams = self._streams[: len(frames)]
        # Send every position first so the server batches them, then collect the answers.
        for stream, frame in zip(streams, frames, strict=True):
            stream.send(frame)
        # Read every answer before judging any, so no stream is left a result behind.
        try:
            predictions = [stream.receive(timeout=_ANSWER_TIMEOUT_S) for stream in streams]
        except TimeoutError as exc:
            raise ClassifierClientError(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)) from None
        answered = [p for p in predictions if p is not None]
        if len(answered) < len(predictions):
            raise ClassifierClientError(grpc.StatusCode.UNAVAILABLE, "the server ended the stream")
        return answered

    def _connect(self) -> StreamClient:
        # Connect on first use: the old constructor never touched the network.
        if self._client is None:
            self._client = StreamClient(
                self.server_ip,
                connect_timeout=self._connect_timeout,
                client_id=self.client_name,
                credentials=self._credentials,
                token=self._token,
                load_balancing=self._load_balancing,
            )
        return self._client

    def close(self) -> None:
        """Close the streams and the connection; the windows start afresh on the next call."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        streams, self._streams = self._streams, []
        client, self._client = self._client, None
        for stream in streams:
            stream.close()
        if client is not None:
            client.close()

    def __enter__(self) -> sc_client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@atexit.register
def _close_all() -> None:
    # Open gRPC streams at interpreter exit can delay it; old scripts never call close().
    for target in list(_open_clients):
        try:
            target.close()
        except Exception:  # noqa: BLE001 - nothing useful to do at exit
            logger.debug("closing %s at exit failed", target.client_name, exc_info=True)
