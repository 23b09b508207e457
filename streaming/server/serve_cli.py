"""``stream-classify serve``: parse the server's flags into a ServerConfig and run the server.

It keeps the old server's flags (-scw -ip -msg -wrk -ohe -la) with their defaults, so old
launch scripts work unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from streaming import __version__
from streaming.server.allocator import limit_malloc_arenas
from streaming.server.serve_config import ModelConfig, SecurityConfig, ServerConfig
from streaming.server.server_errors import ConfigError


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


_BYTE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _byte_size(text: str) -> int:
    """``512M``, ``2G``, ``1.5G`` or plain bytes (binary units; a trailing ``B``/``iB`` is fine)."""
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = cleaned[-1:] if cleaned[-1:] in _BYTE_UNITS else ""
    try:
        value = float(cleaned[: len(cleaned) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 512M or 2G, got {text!r}"
        ) from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"a size must be positive and finite, got {text!r}")
    return int(value * _BYTE_UNITS[unit])


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServerConfig()
    m = ModelConfig()
    old = parser.add_argument_group("flags of the original server (same names and defaults)")
    old.add_argument(
        "-scw",
        "--sc_window",
        type=int,
        default=d.window,
        help="frames averaged per prediction (default %(default)s)",
    )
    old.add_argument(
        "-ip", "--server_ip", default=d.address, help="address to listen on (default %(default)s)"
    )
    old.add_argument(
        "-msg",
        "--msg_len",
        type=int,
        default=None,
        help="largest gRPC message in bytes (default: what the largest allowed RAW frame needs, "
        "from --max-frame-side and --max-frame-pixels)",
    )
    old.add_argument(
        "-wrk",
        "--workers",
        type=int,
        default=d.workers,
        help="threads decoding frames (default %(default)s)",
    )
    old.add_argument(
        "-ohe",
        "--OHE",
        type=Path,
        default=None,
        help="labels: pickled {label: index} dict, .txt (one per line) or .json",
    )
    old.add_argument(
        "-la",
        "--laddr",
        type=Path,
        default=None,
        help="model: .keras, .h5 or SavedModel directory (default: the embedded broadcast monitor)",
    )

    batching = parser.add_argument_group("batching and delivery")
    batching.add_argument(
        "--max-batch",
        type=int,
        default=d.max_batch,
        help="most frames per model call (default %(default)s)",
    )
    batching.add_argument(
        "--max-delay-ms",
        type=float,
        default=d.max_delay_ms,
        help="longest a frame waits for its batch to fill (default %(default)s)",
    )
    batching.add_argument(
        "--top-k", type=int, default=d.top_k, help="default labels per answer (default %(default)s)"
    )
    batching.add_argument(
        "--live-depth",
        type=int,
        default=d.live_depth,
        help="pending frames a LIVE stream keeps (default %(default)s)",
    )
    batching.add_argument(
        "--frame-budget",
        type=int,
        default=d.frame_budget,
        help="frames all streams together hold before flow control (default 8 x max batch)",
    )
    batching.add_argument(
        "--memory-budget",
        type=_byte_size,
        default=d.memory_budget_bytes,
        metavar="SIZE",
        help="frame bytes all streams together hold, messages being received included, before "
        "flow control (LOSSLESS) or drops "
        "(LIVE), e.g. 512M or 2G (default 1G)",
    )
    batching.add_argument(
        "--stream-buffer",
        type=int,
        default=d.stream_buffer,
        help="frames per stream held before flow control (default 3 x max batch)",
    )

    limits = parser.add_argument_group("limits and shutdown")
    limits.add_argument(
        "--max-streams",
        type=int,
        default=d.max_streams,
        help="open streams accepted, each counted from the moment it opens (default %(default)s)",
    )
    limits.add_argument(
        "--max-frame-side",
        type=int,
        default=d.max_frame_side,
        help="largest frame width or height (default %(default)s)",
    )
    limits.add_argument(
        "--max-frame-pixels",
        type=int,
        default=d.max_frame_pixels,
        help="largest frame width x height, declared or decoded (default %(default)s, 8K UHD)",
    )
    limits.add_argument(
        "--max-window",
        type=int,
        default=d.max_window,
        help="largest window a stream may ask for (default %(default)s)",
    )
    limits.add_argument(
        "--max-top-k",
        type=int,
        default=d.max_top_k,
        help="largest top_k a stream may ask for (default %(default)s)",
    )
    limits.add_argument(
        "--config-timeout",
        type=float,
        default=d.config_timeout_s,
        help="seconds a new stream has to send its StreamConfig (default %(default)s)",
    )
    limits.add_argument(
        "--keepalive",
        type=float,
        default=d.keepalive_s,
        help="seconds of silence before the server pings a connection (default %(default)s)",
    )
    limits.add_argument(
        "--keepalive-timeout",
        type=float,
        default=d.keepalive_timeout_s,
        help="seconds an unanswered ping waits before the connection is closed (default %(default)s)",
    )
    limits.add_argument(
        "--max-calls-per-connection",
        type=int,
        default=d.max_calls_per_connection,
        help="concurrent calls one connection may open (default %(default)s)",
    )
    limits.add_argument(
        "--legacy-max-images",
        type=int,
        default=d.legacy_max_images,
        help="most images in one old-API call (default %(default)s)",
    )
    limits.add_argument(
        "--legacy-max-windows",
        type=int,
        default=d.legacy_max_windows,
        help="old-API windows (client x position) kept in all, apart from --max-streams "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--grace",
        type=float,
        default=d.grace_s,
        help="seconds to answer received frames on SIGTERM (default %(default)s)",
    )
    limits.add_argument(
        "--legacy-idle",
        type=float,
        default=d.legacy_idle_s,
        help="seconds before an idle old-API client's windows are freed (default %(default)s)",
    )

    ops = parser.add_argument_group("operations")
    ops.add_argument(
        "--metrics-address",
        default=d.metrics_address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: off, no second port)",
    )
    ops.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=argparse.SUPPRESS,  # the front door's option: given here, it overrides that one
        help="text, or json: one JSON object per line (same as stream-classify --log-format)",
    )

    security = parser.add_argument_group("security (see SECURITY.md); SIGHUP re-reads the files")
    security.add_argument("--tls-cert", type=Path, metavar="PEM", help="server certificate chain")
    security.add_argument("--tls-key", type=Path, metavar="PEM", help="private key of --tls-cert")
    security.add_argument(
        "--tls-client-ca",
        type=Path,
        metavar="PEM",
        help="require client certificates signed by this CA (mTLS)",
    )
    security.add_argument(
        "--auth-tokens",
        type=Path,
        metavar="FILE",
        help="accepted bearer tokens, one per line as TOKEN or NAME:TOKEN (# comments)",
    )
    security.add_argument(
        "--reflection",
        choices=("on", "off"),
        default="on",
        help="serve gRPC server reflection (default %(default)s)",
    )

    model = parser.add_argument_group("model runtime")
    model.add_argument(
        "--scaling",
        choices=("raw", "unit", "meanstd"),
        default=m.scaling,
        help="model input: raw 0-255 RGB, unit 0-1, or meanstd (default %(default)s)",
    )
    model.add_argument(
        "--mean",
        type=_floats,
        default=m.mean,
        help="per-channel mean on the 0-1 scale for --scaling meanstd",
    )
    model.add_argument(
        "--std",
        type=_floats,
        default=m.std,
        help="per-channel std on the 0-1 scale for --scaling meanstd",
    )
    model.add_argument(
        "--softmax",
        choices=("auto", "always", "never"),
        default=m.softmax,
        help="apply softmax to outputs; auto detects logits (default %(default)s)",
    )
    model.add_argument(
        "--device",
        default=m.device,
        help="auto, cpu, gpu or a TensorFlow device name (default %(default)s)",
    )
    model.add_argument(
        "--input-size",
        type=_size,
        default=None,
        help="WIDTHxHEIGHT for models without a fixed input size",
    )
    model.add_argument(
        "--null-model",
        type=int,
        default=0,
        metavar="CLASSES",
        help="benchmarks only: a no-op model with CLASSES outputs",
    )


def serve_config(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        address=args.server_ip,
        model=ModelConfig(
            model_path=args.laddr,
            labels_path=args.OHE,
            scaling=args.scaling,
            mean=args.mean,
            std=args.std,
            softmax=args.softmax,
            device=args.device,
            input_size=args.input_size,
            null_classes=args.null_model,
        ),
        window=args.sc_window,
        max_message_bytes=args.msg_len,
        workers=args.workers,
        max_batch=args.max_batch,
        max_delay_ms=args.max_delay_ms,
        top_k=args.top_k,
        live_depth=args.live_depth,
        stream_buffer=args.stream_buffer,
        frame_budget=args.frame_budget,
        memory_budget_bytes=args.memory_budget,
        max_streams=args.max_streams,
        max_frame_side=args.max_frame_side,
        max_frame_pixels=args.max_frame_pixels,
        grace_s=args.grace,
        legacy_idle_s=args.legacy_idle,
        metrics_address=args.metrics_address,
        legacy_max_images=args.legacy_max_images,
        legacy_max_windows=args.legacy_max_windows,
        max_window=args.max_window,
        max_top_k=args.max_top_k,
        config_timeout_s=args.config_timeout,
        keepalive_s=args.keepalive,
        keepalive_timeout_s=args.keepalive_timeout,
        max_calls_per_connection=args.max_calls_per_connection,
        security=SecurityConfig(
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            auth_tokens=args.auth_tokens,
            reflection=args.reflection == "on",
        ),
    )


def _banner(server: object) -> None:
    from streaming.server.grpc_server import StreamServer, exposure_warning

    assert isinstance(server, StreamServer)
    d = server.classifier.description
    c = server.config
    labels = ", ".join(d.labels[:8]) + (
        f", ... ({len(d.labels)} in all)" if len(d.labels) > 8 else ""
    )
    print(
        f"stream-classify {__version__} serving\n"
        f"  model:   {d.model_name} on {d.device}\n"
        f"  labels:  {labels}\n"
        f"  input:   {d.input_width}x{d.input_height}x{d.input_channels}\n"
        f"  batch:   up to {c.max_batch} frames, wait <= {c.max_delay_ms:g} ms; window {c.window}\n"
        f"  address: {c.address} (port {server.port}, {_transport(c)})",
        flush=True,
    )
    if server.metrics_port is not None:
        host = c.metrics_host_port[0] if c.metrics_host_port else ""
        host = f"[{host}]" if ":" in host else host
        print(f"  metrics: http://{host}:{server.metrics_port}/metrics", flush=True)
    for warning in (exposure_warning(c), c.memory_warning()):
        if warning:
            print(f"  WARNING: {warning}", flush=True)


def _transport(config: ServerConfig) -> str:
    security = config.security
    transport = "mTLS" if security.tls_client_ca else "TLS" if security.tls else "plaintext"
    return transport + (", tokens required" if security.auth_tokens else ", no tokens")


def run(args: argparse.Namespace) -> int:
    # Before TensorFlow and gRPC start their threads (see streaming/server/allocator.py).
    limit_malloc_arenas()
    from streaming.server.grpc_server import serve

    try:
        config = serve_config(args)
        asyncio.run(serve(config, on_started=_banner))
    except ConfigError as exc:
        logging.getLogger("streaming").error("%s", exc)
        return 2
    return 0
