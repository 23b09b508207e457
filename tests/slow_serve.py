"""``python -m tests.slow_serve [flags]``: the server as its own process, on a slow model without
TensorFlow (a no-op model made slow), for tests that signal the process. Prints the port once it
listens. Flags: ``--delay S`` and ``--per-frame S`` (the model), and these serve flags:
``--grace``, ``--max-calls-per-connection``, ``--max-batch``."""

from __future__ import annotations

import argparse
import asyncio
import logging

from streaming.server.grpc_server import StreamServer, serve
from streaming.server.model import NullClassifier
from streaming.server.serve_config import ServerConfig
from tests.classifiers import SlowClassifier


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--per-frame", type=float, default=0.0)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--max-calls-per-connection", type=int, default=100)
    parser.add_argument("--max-batch", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = ServerConfig(
        address="127.0.0.1:0",
        grace_s=args.grace,
        max_calls_per_connection=args.max_calls_per_connection,
        max_batch=args.max_batch,
    )
    model = SlowClassifier(NullClassifier(3, (32, 24)), args.delay, per_frame_s=args.per_frame)

    def started(server: StreamServer) -> None:
        print(server.port, flush=True)

    asyncio.run(serve(config, model, started))


if __name__ == "__main__":
    main()
