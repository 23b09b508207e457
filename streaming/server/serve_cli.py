"""``stream-classify serve``: parse the server's flags into a ServerConfig and run the server.

It keeps the old server's flags (-scw -ip -msg -wrk -ohe -la) with their defaults, so old
launch scripts work unchanged. The flags are declared once, on the config's fields
(streaming/server/serve_config.py); ``make docs`` (``python -m streaming.server.serve_cli
--markdown docs/serve-flags.md``) rewrites the generated tables of the flag reference.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from streaming import __version__
from streaming.server.allocator import limit_malloc_arenas
from streaming.server.config_flags import add_flags, config_from_args, markdown_table
from streaming.server.serve_config import FLAG_GROUPS, OPERATIONS, ServerConfig
from streaming.server.server_errors import ConfigError
from streaming.server.server_values import ModelDescription

if TYPE_CHECKING:
    from streaming.server.process_supervisor import SupervisorResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags declared on :class:`ServerConfig`'s fields, and the front door's --log-format."""
    groups = add_flags(parser, ServerConfig, order=FLAG_GROUPS)
    groups[OPERATIONS].add_argument(
        "--log-format",
        choices=("text", "json"),
        default=argparse.SUPPRESS,  # the front door's option: given here, it overrides that one
        help="text, or json: one JSON object per line (same as stream-classify --log-format)",
    )


def serve_config(args: argparse.Namespace) -> ServerConfig:
    """The config the parsed flags ask for; raises ConfigError on a bad combination."""
    return config_from_args(ServerConfig, args)


def flags_markdown() -> str:
    """The flag reference of docs/serve-flags.md, from the declarations."""
    return markdown_table(ServerConfig, order=FLAG_GROUPS)


def _banner(server: object) -> None:
    from streaming.server.grpc_server import StreamServer

    assert isinstance(server, StreamServer)
    print(
        banner_text(
            server.classifier.description,
            server.models.current.version,
            server.config,
            server.port,
            server.metrics_port,
        ),
        flush=True,
    )


def _processes_banner(result: SupervisorResult) -> None:
    print(
        banner_text(
            result.report.description,
            result.report.version,
            result.process_config,
            result.port,
            result.metrics_port,
            whole=result.config,
            pids=result.pids,
        ),
        flush=True,
    )


def banner_text(
    d: ModelDescription,
    version: str,
    c: ServerConfig,
    port: int,
    metrics_port: int | None,
    *,
    whole: ServerConfig | None = None,
    pids: tuple[int, ...] = (),
) -> str:
    """The banner ``serve`` prints once it listens. For ``serve --processes N``, ``c`` is one
    process's settings, ``whole`` the server's and ``pids`` its processes: the banner prints
    each process's limits and their totals."""
    from streaming.server.grpc_server import exposure_warning

    server = whole or c
    labels = ", ".join(d.labels[:8]) + (
        f", ... ({len(d.labels)} in all)" if len(d.labels) > 8 else ""
    )
    lines = [
        f"stream-classify {__version__} serving",
        f"  model:   {d.model_name} on {d.device}, version {version}{_versions_text(c)}",
        f"  labels:  {labels}",
        f"  input:   {d.input_width}x{d.input_height}x{d.input_channels}",
        f"  batch:   up to {c.max_batch} frames, wait <= {c.max_delay_ms:g} ms; window {c.window}",
    ]
    if pids:
        n = len(pids)
        lines.append(
            f"  processes: {n} (pids {', '.join(map(str, pids))}); each: "
            f"{c.model.intra_op_threads} intra-op threads, {_mib(c.memory_budget_bytes)} memory "
            f"budget, {c.effective_frame_budget} frames, {c.max_streams} streams; in all: "
            f"{_mib(n * c.memory_budget_bytes)}, {n * c.effective_frame_budget} frames, "
            f"{n * c.max_streams} streams"
        )
    lines.append(f"  address: {server.address} (port {port}, {_transport(c)})")
    metrics_at = server.metrics_host_port
    if metrics_port is not None and metrics_at is not None:
        from client.host_port import format_host_port

        address = format_host_port(metrics_at[0], metrics_port)
        lines.append(f"  metrics: http://{address}/metrics")
    for warning in (exposure_warning(server), c.memory_warning()):
        if warning:
            lines.append(f"  WARNING: {warning}")
    return "\n".join(lines)


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def _versions_text(config: ServerConfig) -> str:
    model = config.model
    if model.model_dir is None:
        return ""
    poll = f"polled every {model.model_poll_s:g} s" if model.model_poll_s > 0 else "not polled"
    pin = f", pinned to {model.model_version}" if model.model_version is not None else ""
    return f" of {model.model_dir} ({poll}, SIGHUP checks{pin})"


def _transport(config: ServerConfig) -> str:
    security = config.security
    transport = "mTLS" if security.tls_client_ca else "TLS" if security.tls else "plaintext"
    return transport + (", tokens required" if security.auth_tokens else ", no tokens")


def run(args: argparse.Namespace) -> int:
    # Before TensorFlow and gRPC start their threads (see streaming/server/allocator.py); the
    # processes of --processes N do the same for themselves.
    limit_malloc_arenas()
    try:
        config = serve_config(args)
    except ConfigError as exc:
        logging.getLogger("streaming").error("%s", exc)
        return 2
    if config.processes > 1:
        # A supervisor that imports neither TensorFlow nor gRPC's server: see the module.
        from streaming.server.process_supervisor import Supervisor

        supervisor = Supervisor(
            config,
            log_level=getattr(args, "log_level", "INFO"),
            log_format=getattr(args, "log_format", "text"),
        )
        return supervisor.run(on_ready=_processes_banner)
    from streaming.server.grpc_server import serve

    try:
        asyncio.run(serve(config, on_started=_banner))
    except ConfigError as exc:
        logging.getLogger("streaming").error("%s", exc)
        return 2
    return 0


MARK_BEGIN = "<!-- BEGIN generated by `make docs` from the declarations: do not edit -->"
MARK_END = "<!-- END generated -->"


def with_flags_table(document: str) -> str:
    """``document`` with the text between its markers replaced by :func:`flags_markdown`.

    Raises:
        ValueError: The markers are missing.
    """
    head, begin, rest = document.partition(MARK_BEGIN)
    _, end, tail = rest.partition(MARK_END)
    if not begin or not end:
        raise ValueError(f"the document needs the markers {MARK_BEGIN!r} and {MARK_END!r}")
    return f"{head}{begin}\n\n{flags_markdown()}\n{end}{tail}"


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streaming.server.serve_cli", description="Rewrite the serve flag reference."
    )
    parser.add_argument(
        "--markdown", type=Path, required=True, metavar="PATH", help="e.g. docs/serve-flags.md"
    )
    path = parser.parse_args(argv).markdown
    path.write_text(with_flags_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
