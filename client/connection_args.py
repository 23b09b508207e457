"""Command-line options for reaching a server (TLS, token, load balancing), for every client CLI.

``classify`` and ``watch`` add the same flags with :func:`add_connection_arguments` and turn them
into :class:`~client.StreamClient` keyword arguments with :func:`connection_from_args`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TypedDict

import grpc

from client._tls import channel_credentials

TOKEN_ENVIRONMENT_VARIABLE = "STREAM_CLASSIFY_TOKEN"
LB_POLICIES = ("pick_first", "round_robin")


class ConnectionArguments(TypedDict):
    """Keyword arguments for :class:`~client.StreamClient` / :class:`~client.AsyncStreamClient`."""

    credentials: grpc.ChannelCredentials | None
    token: str | None
    load_balancing: str | None


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--tls``, ``--tls-ca``, ``--tls-cert``, ``--tls-key``, ``--token``, ``--lb-policy``."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS, trusting the system's root certificates "
        "(implied by --tls-ca and --tls-cert)",
    )
    group.add_argument(
        "--tls-ca", type=Path, metavar="PEM", help="CA certificate that signed the server's"
    )
    group.add_argument(
        "--tls-cert", type=Path, metavar="PEM", help="client certificate, for mutual TLS"
    )
    group.add_argument(
        "--tls-key", type=Path, metavar="PEM", help="private key of --tls-cert, for mutual TLS"
    )
    group.add_argument(
        "--token",
        default=None,
        help="bearer token sent as 'authorization: Bearer ...' metadata (default: the "
        f"{TOKEN_ENVIRONMENT_VARIABLE} environment variable, which keeps it out of shell history)",
    )
    group.add_argument(
        "--lb-policy",
        choices=LB_POLICIES,
        default=None,
        help="how streams are spread over the servers of a target with several addresses, "
        "e.g. "
        "dns:///classifiers.example:1234 (default: gRPC's pick_first)",
    )


def connection_from_args(args: argparse.Namespace) -> ConnectionArguments:
    """The client keyword arguments for the options of :func:`add_connection_arguments`.

    Raises:
        ValueError: a TLS file is missing or unreadable, or a certificate comes without its key.
    """
    tls_files = (args.tls_ca, args.tls_cert, args.tls_key)
    credentials = None
    if args.tls or any(path is not None for path in tls_files):
        credentials = channel_credentials(*tls_files)
    return ConnectionArguments(
        credentials=credentials,
        token=args.token or token_from_environment(),
        load_balancing=args.lb_policy,
    )


def token_from_environment() -> str | None:
    """The token in ``STREAM_CLASSIFY_TOKEN``, or ``None`` when it is unset or empty."""
    return os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None
