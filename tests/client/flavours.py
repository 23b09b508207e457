"""One behaviour suite, two clients: the ``flavour`` fixture runs a test with the blocking
:class:`client.StreamClient` and again with :class:`client.AsyncStreamClient`.

The asyncio client runs on an event loop in a thread of its own, and a small adapter gives it the
blocking client's shape (``send`` returns the seq, ``receive`` waits, iteration ends with the
stream), so every test body is written once, against the public API of both.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, Protocol, TypeVar

from client import AsyncStream, AsyncStreamClient, ModelInfo, Prediction, StreamClient

T = TypeVar("T")
_CALL_LIMIT_S = 60.0  # no adapter call waits longer: a hang fails the test instead of stalling


class StreamLike(Protocol):
    """What the tests use of a stream: :class:`client.Stream`'s shape."""

    sent: int
    received: int
    dropped_frames: int

    def send(self, image: Any, **kwargs: Any) -> int: ...
    def close_send(self) -> None: ...
    def receive(self, timeout: float | None = None) -> Prediction | None: ...
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[Prediction]: ...
    def __enter__(self) -> StreamLike: ...
    def __exit__(self, *exc: object) -> None: ...


class ClientLike(Protocol):
    """What the tests use of a client: :class:`client.StreamClient`'s shape."""

    model_info: ModelInfo

    def open_stream(self, source: str = "", **kwargs: Any) -> StreamLike: ...
    def classify(self, images: Any, **kwargs: Any) -> list[Prediction]: ...
    def close(self) -> None: ...
    def __enter__(self) -> ClientLike: ...
    def __exit__(self, *exc: object) -> None: ...


class LoopThread:
    """An event loop running in a daemon thread; ``run`` waits for a coroutine's result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="test-client-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = _CALL_LIMIT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class _AsyncStreamAdapter:
    def __init__(self, loop: LoopThread, stream: AsyncStream) -> None:
        self._loop = loop
        self.stream = stream

    @property
    def sent(self) -> int:
        return self.stream.sent

    @property
    def received(self) -> int:
        return self.stream.received

    @property
    def dropped_frames(self) -> int:
        return self.stream.dropped_frames

    def send(self, image: Any, **kwargs: Any) -> int:
        return self._loop.run(self.stream.send(image, **kwargs))

    def close_send(self) -> None:
        self._loop.run(self.stream.close_send())

    def receive(self, timeout: float | None = None) -> Prediction | None:
        return self._loop.run(self.stream.receive(timeout))

    def close(self) -> None:
        self._loop.run(self.stream.close())

    def __iter__(self) -> Iterator[Prediction]:
        while (prediction := self.receive()) is not None:
            yield prediction

    def __enter__(self) -> _AsyncStreamAdapter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.run(self.stream.__aexit__(exc_type, exc, tb))


class _AsyncClientAdapter:
    def __init__(self, loop: LoopThread, client: AsyncStreamClient) -> None:
        self._loop = loop
        self.client = client

    @property
    def model_info(self) -> ModelInfo:
        return self.client.model_info

    def open_stream(self, source: str = "", **kwargs: Any) -> _AsyncStreamAdapter:
        async def open_on_the_loop() -> AsyncStream:  # the stream's reader task needs the loop
            return self.client.open_stream(source, **kwargs)

        return _AsyncStreamAdapter(self._loop, self._loop.run(open_on_the_loop()))

    def classify(self, images: Any, **kwargs: Any) -> list[Prediction]:
        return self._loop.run(self.client.classify(images, **kwargs))

    def close(self) -> None:
        self._loop.run(self.client.close())

    def __enter__(self) -> _AsyncClientAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Flavour:
    """Connects the client under test: ``flavour.connect(address, **StreamClient kwargs)``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: LoopThread | None = None
        self._clients: list[ClientLike] = []

    @property
    def is_async(self) -> bool:
        return self.name == "asyncio"

    def connect(self, address: str, **kwargs: Any) -> ClientLike:
        """A connected client; raises ``ClassifierClientError`` as the constructor/connect does."""
        client: ClientLike
        if self.is_async:
            if self._loop is None:
                self._loop = LoopThread()
            loop = self._loop

            async def connect_on_the_loop() -> AsyncStreamClient:
                connected = AsyncStreamClient(address, **kwargs)
                try:
                    await connected.connect()
                except BaseException:
                    await connected.close()
                    raise
                return connected

            client = _AsyncClientAdapter(loop, loop.run(connect_on_the_loop()))
        else:
            client = StreamClient(address, **kwargs)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        if self._loop is not None:
            self._loop.stop()
