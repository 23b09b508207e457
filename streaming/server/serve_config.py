"""Typed server configuration, built by the CLI (or by code embedding the server)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from streaming.server.config_flags import (
    byte_size,
    flag,
    floats,
    host_port,
    labels_or_none,
    on_off,
    size_wxh,
)
from streaming.server.server_errors import ConfigError

# 8K UHD (7680 x 4320): the largest frame a camera sends; a declared size beyond it is an attack.
DEFAULT_MAX_FRAME_PIXELS = 7680 * 4320
# Room for a Frame's other fields and protobuf framing beside the pixels.
MESSAGE_OVERHEAD_BYTES = 64 * 1024
# HTTP/2's own initial window (65,535 bytes): a smaller receive window would slow every stream.
MIN_RECEIVE_WINDOW = 64 * 1024
DEFAULT_RECEIVE_WINDOW = MIN_RECEIVE_WINDOW

Scaling = Literal["raw", "unit", "meanstd"]
SoftmaxMode = Literal["auto", "always", "never"]
OnnxLayout = Literal["auto", "nhwc", "nchw"]

# The `serve --help` sections and docs/serve-flags.md tables, in this order.
ORIGINAL = "flags of the original server (same names and defaults)"
BATCHING = "batching and delivery"
LIMITS = "limits and shutdown"
OPERATIONS = "operations"
SECURITY = "security (see SECURITY.md); SIGHUP re-reads the files"
MODEL = "model runtime"
FLAG_GROUPS = (ORIGINAL, BATCHING, LIMITS, OPERATIONS, SECURITY, MODEL)


@dataclass(frozen=True)
class ModelConfig:
    """How to load the model and turn uint8 frames into its input.

    Attributes:
        model_path: a ``.keras``/``.h5`` file, a SavedModel directory or an ``.onnx`` file
            (served by ONNX Runtime, the ``onnx`` extra); ``None`` serves the embedded
            broadcast-monitor model.
        labels_path: a pickled ``{label: index}`` dict (the old ``-ohe`` file), ``.txt`` (one per
            line) or ``.json``; ``None`` uses the embedded model's labels or ``class_<i>``.
        scaling: ``raw`` feeds float 0–255 RGB (Keras application models rescale themselves),
            ``unit`` feeds 0–1, ``meanstd`` feeds ``(x/255 - mean) / std``.
        softmax: ``auto`` applies softmax only when the model's outputs are not probabilities.
        device: ``auto`` (first GPU, else CPU), ``cpu``, ``gpu`` or a TensorFlow device name
            (ONNX: ``cuda:N``).
        input_size: (width, height) for models whose input size is not fixed.
        onnx_layout: an ONNX model's input layout; ``auto`` reads it from where its 1 or 3
            channels are (see streaming/server/onnx_model.py).
        null_classes: > 0 serves a no-op model with that many classes (benchmarks of the server).
        model_dir: a directory of numbered versions (``DIR/<N>/``), see
            ``streaming.server.model_versions``; excludes ``model_path`` and ``labels_path``.
        model_poll_s: seconds between checks of ``model_dir``; 0 checks only on SIGHUP.
        model_version: serve only this version of ``model_dir``.
        intra_op_threads: threads one model call may use; 0 leaves it to the runtime (one per
            core), and ``serve --processes N`` gives each process cores ÷ N.
        gpu_memory_mb: the GPU memory TensorFlow may take in this process (a logical device
            with this ``memory_limit``); ``None`` turns on memory growth instead.
        temporal_cue: the labels the temporal cue judges per stream (taken from a frame that
            repeats or moves its stream's previous frame, raised for one that changed like
            snow: ``streaming/server/temporal_cue.py``); ``None`` is ``static`` for the
            embedded model and none for a user's (see ``still_labels``).
    """

    model_path: Path | None = field(
        default=None,
        metadata=flag(
            "-la",
            "--laddr",
            parse=Path,
            help="model: `.keras`, `.h5`, a SavedModel directory, or `.onnx` (ONNX Runtime, "
            "see docs/onnx.md)",
            group=ORIGINAL,
            default_text="the embedded broadcast monitor",
        ),
    )
    labels_path: Path | None = field(
        default=None,
        metadata=flag(
            "-ohe",
            "--OHE",
            parse=Path,
            help="labels: the old pickled `{label: index}` dict, `.txt` (one per line) or `.json`",
            group=ORIGINAL,
            default_text="the embedded model's labels",
        ),
    )
    scaling: Scaling = field(
        default="raw",
        metadata=flag(
            "--scaling",
            choices=("raw", "unit", "meanstd"),
            help="model input (also of float ONNX models): raw 0-255 RGB (Keras application "
            "models rescale themselves), unit 0-1, or meanstd `(x/255 - mean)/std` (torchvision)",
            group=MODEL,
        ),
    )
    mean: tuple[float, ...] = field(
        default=(0.485, 0.456, 0.406),
        metadata=flag(
            "--mean",
            parse=floats,
            help="per-channel mean on the 0-1 scale for `--scaling meanstd`",
            group=MODEL,
        ),
    )
    std: tuple[float, ...] = field(
        default=(0.229, 0.224, 0.225),
        metadata=flag(
            "--std",
            parse=floats,
            help="per-channel std on the 0-1 scale for `--scaling meanstd`",
            group=MODEL,
        ),
    )
    softmax: SoftmaxMode = field(
        default="auto",
        metadata=flag(
            "--softmax",
            choices=("auto", "always", "never"),
            help="apply softmax to the outputs; auto applies it when they are not "
            "probabilities (logged)",
            group=MODEL,
        ),
    )
    device: str = field(
        default="auto",
        metadata=flag(
            "--device",
            metavar="auto|cpu|gpu|NAME",
            help="TensorFlow device (GPUs get memory growth); for ONNX models the CUDA or CPU "
            "provider (NAME `cuda:N`)",
            group=MODEL,
        ),
    )
    input_size: tuple[int, int] | None = field(
        default=None,
        metadata=flag(
            "--input-size",
            parse=size_wxh,
            metavar="WxH",
            help="for models whose input size is not fixed",
            group=MODEL,
            default_text="from the model",
        ),
    )
    onnx_layout: OnnxLayout = field(
        default="auto",
        metadata=flag(
            "--onnx-layout",
            choices=("auto", "nhwc", "nchw"),
            help="ONNX models: input layout; auto reads it from the input shape (NCHW when "
            "dimension 1 is 1 or 3 and the last is not)",
            group=MODEL,
        ),
    )
    model_dir: Path | None = field(
        default=None,
        metadata=flag(
            "--model-dir",
            parse=Path,
            metavar="DIR",
            help="versioned models: `DIR/<N>/` holds a model and its labels file; the highest "
            "N that loads is served and new versions are swapped in under running streams "
            "(docs/models.md); not with -la/-ohe",
            group=MODEL,
            default_text="off: -la/-ohe, version 1",
        ),
    )
    model_poll_s: float = field(
        default=10.0,
        metadata=flag(
            "--model-poll-s",
            parse=float,
            metavar="SECONDS",
            help="how often --model-dir is checked for new or removed versions; 0 turns "
            "polling off (SIGHUP checks at once)",
            group=MODEL,
        ),
    )
    model_version: int | None = field(
        default=None,
        metadata=flag(
            "--model-version",
            parse=int,
            metavar="N",
            help="serve version N of --model-dir only (pin, or roll back)",
            group=MODEL,
            default_text="the highest that loads",
        ),
    )
    intra_op_threads: int = field(
        default=0,
        metadata=flag(
            "--intra-op-threads",
            parse=int,
            metavar="N",
            help="threads one model call may use (TensorFlow intra-op, ONNX Runtime "
            "intra-op), per process; 0 is one per core with one process and cores ÷ N "
            "with `--processes N`",
            group=MODEL,
            default_text="0: the runtime's choice, or cores ÷ N",
        ),
    )
    gpu_memory_mb: int | None = field(
        default=None,
        metadata=flag(
            "--gpu-memory-mb",
            parse=int,
            metavar="MIB",
            help="most GPU memory TensorFlow may take, per process (a logical device with "
            "this memory limit); without it GPUs get memory growth",
            group=MODEL,
            default_text="off: memory growth",
        ),
    )
    temporal_cue: tuple[str, ...] | None = field(
        default=None,
        metadata=flag(
            "--temporal-cue",
            parse=labels_or_none,
            metavar="LABELS|none",
            help="labels the temporal cue judges per stream: taken from a frame that repeats or "
            "slightly moves the stream's previous frame (a picture is not snow), raised for one "
            "that changed like snow; comma-separated; none turns it off",
            group=MODEL,
            default_text="static for the embedded model, none for yours",
        ),
    )
    null_classes: int = field(
        default=0,
        metadata=flag(
            "--null-model",
            parse=int,
            metavar="CLASSES",
            help="benchmarks only: a no-op model with CLASSES outputs",
            group=MODEL,
            default_text="off",
        ),
    )

    @property
    def still_labels(self) -> tuple[str, ...]:
        """The temporal cue's labels: as given, else ``static`` for the embedded model only
        (a user's model may use the name for something a still picture can be)."""
        if self.temporal_cue is not None:
            return self.temporal_cue
        embedded = self.model_path is None and self.model_dir is None and not self.null_classes
        return ("static",) if embedded else ()

    def __post_init__(self) -> None:
        if self.scaling not in ("raw", "unit", "meanstd"):
            raise ConfigError(f"scaling must be raw, unit or meanstd, got {self.scaling!r}")
        if self.softmax not in ("auto", "always", "never"):
            raise ConfigError(f"softmax must be auto, always or never, got {self.softmax!r}")
        if self.onnx_layout not in ("auto", "nhwc", "nchw"):
            raise ConfigError(f"onnx_layout must be auto, nhwc or nchw, got {self.onnx_layout!r}")
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ConfigError("mean and std need the same length and std must be positive")
        if self.input_size is not None and min(self.input_size) < 1:
            raise ConfigError(f"input size must be positive, got {self.input_size}")
        if self.null_classes < 0:
            raise ConfigError("null_classes must be >= 0")
        if self.model_dir is not None and (
            self.model_path is not None or self.labels_path is not None
        ):
            raise ConfigError(
                "--model-dir serves the versions in its directory, each with its own labels: "
                "give either --model-dir or -la/-ohe, not both"
            )
        if self.model_dir is not None and self.null_classes:
            raise ConfigError("--model-dir and --null-model exclude each other")
        if self.model_version is not None and self.model_dir is None:
            raise ConfigError("--model-version picks a version of --model-dir: give --model-dir")
        if self.model_version is not None and self.model_version < 1:
            raise ConfigError(f"--model-version must be >= 1, got {self.model_version}")
        if self.model_poll_s < 0:
            raise ConfigError(f"--model-poll-s must be >= 0, got {self.model_poll_s}")
        if self.intra_op_threads < 0:
            raise ConfigError(f"--intra-op-threads must be >= 0, got {self.intra_op_threads}")
        if self.gpu_memory_mb is not None and self.gpu_memory_mb < 1:
            raise ConfigError(f"--gpu-memory-mb must be >= 1, got {self.gpu_memory_mb}")


@dataclass(frozen=True)
class SecurityConfig:
    """Transport security and authentication; everything off by default (see SECURITY.md).

    Attributes:
        tls_cert: PEM certificate chain of the server; with ``tls_key`` turns TLS on.
        tls_key: PEM private key of ``tls_cert``.
        tls_client_ca: PEM CA bundle; clients must present a certificate it signed (mTLS).
        auth_tokens: a file of tokens (``token`` or ``name:token`` per line, ``#`` comments);
            every RPC but health checks must send ``authorization: Bearer <token>``.
        reflection: serve gRPC server reflection (lists the services and their messages).
    """

    tls_cert: Path | None = field(
        default=None,
        metadata=flag(
            "--tls-cert",
            parse=Path,
            metavar="PEM",
            help="serve TLS with this certificate chain (see SECURITY.md)",
            group=SECURITY,
            default_text="plaintext",
        ),
    )
    tls_key: Path | None = field(
        default=None,
        metadata=flag(
            "--tls-key", parse=Path, metavar="PEM", help="private key of --tls-cert", group=SECURITY
        ),
    )
    tls_client_ca: Path | None = field(
        default=None,
        metadata=flag(
            "--tls-client-ca",
            parse=Path,
            metavar="PEM",
            help="require client certificates signed by this CA (mTLS)",
            group=SECURITY,
        ),
    )
    auth_tokens: Path | None = field(
        default=None,
        metadata=flag(
            "--auth-tokens",
            parse=Path,
            metavar="FILE",
            help="require `authorization: Bearer <token>` on every call but health; "
            "TOKEN or NAME:TOKEN per line (# comments)",
            group=SECURITY,
        ),
    )
    reflection: bool = field(
        default=True,
        metadata=flag(
            "--reflection",
            parse=on_off,
            metavar="on|off",
            help="serve gRPC server reflection",
            group=SECURITY,
        ),
    )

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key (mTLS is TLS)")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs; defaults match the old server's flags where they exist.

    A field's ``flag(...)`` metadata declares its ``serve`` flag (see streaming/server/config_flags.py):
    the parser and docs/serve-flags.md are derived from it.

    Attributes:
        address: where to listen (old ``-ip``).
        window: default frames per window-averaged prediction (old ``-scw``).
        workers: threads that decode and resize frames as they arrive (old ``-wrk``).
        decode_priority: ``idle`` (the default) runs those threads at the OS's idle priority
            (Linux ``SCHED_IDLE``): on the CPU a decoder that preempts one of the model's threads
            stalls the whole operation the model is in, so decoding takes the cycles the model
            leaves (BENCHMARKS.md session 7: JPEG row 1.26×). Payloads of 1 MiB or more decode
            at normal priority all the same: an idle decoder waits as long as anything else
            runs, and a large payload waiting is memory held (BENCHMARKS.md session 10); and
            a frame not decoded within 1 s at idle priority is decoded at normal priority, as
            is every frame for the next 10 s.
            ``normal`` gives every decoder the model's priority: for a host shared with other
            busy programs, where idle decoders get only what those leave.
        max_message_bytes: largest gRPC message in either direction (old ``-msg``); ``None``
            follows ``max_frame_side`` and ``max_frame_pixels``.
        max_batch: most frames in one model call.
        max_delay_ms: longest the first frame of a batch waits for the batch to fill.
        top_k: default number of labels in a response's ``top_k``.
        live_depth: pending frames a LIVE stream keeps; older ones are dropped.
        stream_buffer: frames of one stream in the server (queued, in a batch or unsent) before
            the server stops reading it, so gRPC flow control slows the client; 0 = 3 × max_batch.
        frame_budget: frames all streams together may hold before readers of streams holding two
            or more wait (bounds memory with many streams); 0 = 8 × max_batch.
        memory_budget_bytes: frame bytes all streams together may hold (messages being
            received, payloads waiting to be decoded, decoded images, batches); a stream's
            next message is read only when there is room for its largest so far (before its
            first, for the largest message accepted: ``effective_max_message_bytes``), and past
            the budget streams holding two or more frames wait (LOSSLESS) or drop (LIVE,
            counted). 1 GiB by default: frames are
            resized to the model input on arrival (224x224 RGB is 150 KB, so eight batches of
            32 take ~40 MB), so the budget binds only when large RAW or encoded payloads pile
            up, and 1 GiB beside the server's own footprint (915 MiB at 64 streams, BENCHMARKS.md
            row 8) fits a 4 GiB container.
        max_streams: open streams (bidi streams and old-API windows) the server accepts.
        max_frame_side: largest width or height accepted, before or after decoding.
        metrics_address: ``HOST:PORT`` serving Prometheus metrics at ``/metrics`` (``:PORT`` is
            loopback); ``None`` (the default) opens no second port.
        max_frame_pixels: largest width × height accepted, declared (RAW, or a JPEG/PNG header)
            or decoded; a small PNG can declare a huge image, so the header is read first.
        grace_s: how long shutdown waits for received frames to be answered; past it every
            stream still waiting ends with UNAVAILABLE naming the first ``seq`` to resend.
        legacy_idle_s: old-API windows unused this long are forgotten (checked on a timer).
        legacy_max_images: most images in one old-API call.
        legacy_max_windows: old-API windows (client id × position) kept in all; they do not
            count against ``max_streams``, so old clients cannot lock out streaming ones.
        max_window: largest ``window`` a stream may ask for (memory: 4 bytes × labels each).
        max_top_k: largest ``top_k`` a stream may ask for (clamped to the label count).
        max_name_chars: longest ``client_id``/``source`` accepted.
        config_timeout_s: a stream that has not sent its StreamConfig this long (counted from
            when the byte budget has room to read it) is ended.
        room_timeout_s: a stream whose read holds room beyond its fair share of the byte budget
            (a first frame, whose size is unknown, or a large frame's) this long without its
            message arriving is ended when another stream's reader waits for that room (a
            call's first message, sent with the call, gets at most 0.5 s).
        keepalive_s: idle seconds before the server pings a connection to find dead peers.
        keepalive_timeout_s: how long a ping may go unanswered before the connection is closed.
        max_calls_per_connection: concurrent calls (HTTP/2 streams) one connection may open.
        receive_window_bytes: what gRPC receives of a stream ahead of the server's reads (the
            HTTP/2 stream window, fixed: gRPC's bandwidth probing, which grows windows to tens
            of MiB a stream, is off). Bytes in a window are outside the memory budget: a stream
            whose reader waits (for room, or for its frame to be decoded) adds at most this.
            A message larger than the window is received once the server asks for it, one round
            trip later; raise it for clients far away that send large frames.
        processes: server processes sharing the port (``serve --processes``, run by
            streaming/server/process_supervisor.py); a ``StreamServer`` embedded in code is
            always one.
        shared_port: bind with SO_REUSEPORT (the children of ``processes`` > 1 only).
        security: TLS, client certificates, tokens and reflection.
    """

    address: str = field(
        default="[::]:1234",
        metadata=flag("-ip", "--server_ip", help="address to listen on", group=ORIGINAL),
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    window: int = field(
        default=5,
        metadata=flag(
            "-scw",
            "--sc_window",
            parse=int,
            help="frames averaged per prediction (per stream)",
            group=ORIGINAL,
        ),
    )
    max_message_bytes: int | None = field(
        default=None,
        metadata=flag(
            "-msg",
            "--msg_len",
            parse=int,
            help="largest gRPC message in bytes",
            group=ORIGINAL,
            default_text="what the largest allowed RAW frame needs, from --max-frame-side and "
            "--max-frame-pixels: min(side², pixels) × 3 + 64 KiB, about 100 MB",
        ),
    )
    workers: int = field(
        default=10,
        metadata=flag(
            "-wrk",
            "--workers",
            parse=int,
            help="threads decoding and resizing frames as they arrive",
            group=ORIGINAL,
        ),
    )
    decode_priority: str = field(
        default="idle",
        metadata=flag(
            "--decode-priority",
            choices=("idle", "normal"),
            help="OS priority of the decoding threads: idle never preempts the model's threads "
            "(payloads of 1 MiB or more decode at normal priority); normal for a host shared "
            "with other busy programs",
            group=BATCHING,
        ),
    )
    max_batch: int = field(
        default=32,
        metadata=flag(
            "--max-batch", parse=int, help="most frames in one model call", group=BATCHING
        ),
    )
    max_delay_ms: float = field(
        default=5.0,
        metadata=flag(
            "--max-delay-ms",
            parse=float,
            help="longest the first frame of a batch waits for the batch to fill",
            group=BATCHING,
        ),
    )
    top_k: int = field(
        default=5,
        metadata=flag("--top-k", parse=int, help="default labels per answer", group=BATCHING),
    )
    live_depth: int = field(
        default=1,
        metadata=flag(
            "--live-depth",
            parse=int,
            help="pending frames a LIVE stream keeps; older ones are dropped",
            group=BATCHING,
        ),
    )
    stream_buffer: int = field(
        default=0,
        metadata=flag(
            "--stream-buffer",
            parse=int,
            help="frames of one stream held before flow control slows its sender",
            group=BATCHING,
            default_text="3 × max batch",
        ),
    )
    frame_budget: int = field(
        default=0,
        metadata=flag(
            "--frame-budget",
            parse=int,
            help="frames all streams together hold; past it, streams holding two or more wait "
            "(bounds memory with many streams)",
            group=BATCHING,
            default_text="8 × max batch",
        ),
    )
    memory_budget_bytes: int = field(
        default=1 << 30,
        metadata=flag(
            "--memory-budget",
            parse=byte_size,
            metavar="SIZE",
            help="frame bytes all streams together hold (messages being received, payloads "
            "being decoded, decoded images, batches), e.g. 512M or 2G; past it LOSSLESS "
            "streams holding two or more frames wait and LIVE ones drop (counted)",
            group=BATCHING,
            default_text="1G",
        ),
    )
    max_streams: int = field(
        default=4096,
        metadata=flag(
            "--max-streams",
            parse=int,
            help="open streams accepted, each counted from the moment it opens",
            group=LIMITS,
        ),
    )
    max_frame_side: int = field(
        default=8192,
        metadata=flag(
            "--max-frame-side", parse=int, help="largest frame width or height", group=LIMITS
        ),
    )
    max_frame_pixels: int = field(
        default=DEFAULT_MAX_FRAME_PIXELS,
        metadata=flag(
            "--max-frame-pixels",
            parse=int,
            help="largest frame width × height, declared (RAW, JPEG/PNG header) or decoded",
            group=LIMITS,
            default_text=f"{DEFAULT_MAX_FRAME_PIXELS} (8K UHD)",
        ),
    )
    grace_s: float = field(
        default=10.0,
        metadata=flag(
            "--grace",
            parse=float,
            help="seconds to answer received frames on SIGTERM/SIGINT; then streams end "
            "UNAVAILABLE with the seq to resend",
            group=LIMITS,
        ),
    )
    legacy_idle_s: float = field(
        default=600.0,
        metadata=flag(
            "--legacy-idle",
            parse=float,
            help="seconds before an idle old-API client's windows are freed (on a timer)",
            group=LIMITS,
        ),
    )
    processes: int = field(
        default=1,
        metadata=flag(
            "--processes",
            parse=int,
            metavar="N",
            help="server processes sharing the port (SO_REUSEPORT), each with its own model "
            "instance; a stream stays on its process; --memory-budget, --max-streams, "
            "--legacy-max-windows and a given --frame-budget are divided among them "
            "(docs/serving.md)",
            group=OPERATIONS,
        ),
    )
    metrics_address: str | None = field(
        default=None,
        metadata=flag(
            "--metrics-address",
            parse=host_port,
            metavar="HOST:PORT",
            help="serve Prometheus metrics at http://HOST:PORT/metrics; :PORT is loopback, "
            "0.0.0.0:PORT every interface; port 0 takes a free port",
            group=OPERATIONS,
            default_text="off, no second port",
        ),
    )
    legacy_max_images: int = field(
        default=64,
        metadata=flag(
            "--legacy-max-images", parse=int, help="most images in one old-API call", group=LIMITS
        ),
    )
    legacy_max_windows: int = field(
        default=1024,
        metadata=flag(
            "--legacy-max-windows",
            parse=int,
            help="old-API windows (client × position) kept in all, apart from --max-streams",
            group=LIMITS,
        ),
    )
    max_window: int = field(
        default=300,
        metadata=flag(
            "--max-window", parse=int, help="largest window a stream may ask for", group=LIMITS
        ),
    )
    max_top_k: int = field(
        default=100,
        metadata=flag(
            "--max-top-k", parse=int, help="largest top_k a stream may ask for", group=LIMITS
        ),
    )
    max_name_chars: int = 1024  # no flag: a protocol limit, not a deployment choice
    # No flag: set by `serve --processes N` for its children, which bind the port with
    # SO_REUSEPORT (a lone server must fail on a taken port, not silently share it).
    shared_port: bool = False
    config_timeout_s: float = field(
        default=5.0,
        metadata=flag(
            "--config-timeout",
            parse=float,
            help="seconds a new stream has to send its StreamConfig",
            group=LIMITS,
        ),
    )
    room_timeout_s: float = field(
        default=5.0,
        metadata=flag(
            "--room-timeout",
            parse=float,
            help="seconds a stream may keep memory reserved for a frame it does not send (its "
            "first, or one as large as its largest) while another stream waits for that memory; "
            "then it is ended with RESOURCE_EXHAUSTED and its resend-from-seq (a StreamConfig "
            "or old-API request, sent with the call, gets at most 0.5 s)",
            group=LIMITS,
        ),
    )
    keepalive_s: float = field(
        default=30.0,
        metadata=flag(
            "--keepalive",
            parse=float,
            help="seconds of silence before the server pings a connection",
            group=LIMITS,
        ),
    )
    keepalive_timeout_s: float = field(
        default=10.0,
        metadata=flag(
            "--keepalive-timeout",
            parse=float,
            help="seconds an unanswered ping waits before the connection is closed",
            group=LIMITS,
        ),
    )
    max_calls_per_connection: int = field(
        default=100,
        metadata=flag(
            "--max-calls-per-connection",
            parse=int,
            help="concurrent calls (HTTP/2 streams) one connection may open",
            group=LIMITS,
        ),
    )
    receive_window_bytes: int = field(
        default=DEFAULT_RECEIVE_WINDOW,
        metadata=flag(
            "--receive-window",
            parse=byte_size,
            metavar="SIZE",
            help="bytes gRPC receives ahead on a stream before the server reads its next "
            "message (HTTP/2 flow-control window); outside --memory-budget, so it bounds what "
            "a stream the server is not reading can add; raise it (e.g. 1M) for clients "
            "sending frames larger than it over long round trips",
            group=LIMITS,
            default_text="64K",
        ),
    )
    security: SecurityConfig = field(default_factory=SecurityConfig)

    def __post_init__(self) -> None:
        checks = {
            "window": self.window >= 1,
            "max_message_bytes": self.max_message_bytes is None or self.max_message_bytes >= 1024,
            "workers": self.workers >= 1,
            "decode_priority": self.decode_priority in ("idle", "normal"),
            "max_batch": self.max_batch >= 1,
            "max_delay_ms": self.max_delay_ms >= 0,
            "top_k": self.top_k >= 1,
            "live_depth": self.live_depth >= 1,
            "stream_buffer": self.stream_buffer >= 0,
            "frame_budget": self.frame_budget >= 0,
            "memory_budget_bytes": self.memory_budget_bytes >= 1,
            "max_streams": self.max_streams >= 1,
            "max_frame_side": self.max_frame_side >= 1,
            "max_frame_pixels": self.max_frame_pixels >= 1,
            "grace_s": self.grace_s >= 0,
            "legacy_idle_s": self.legacy_idle_s > 0,
            "legacy_max_images": self.legacy_max_images >= 1,
            "legacy_max_windows": self.legacy_max_windows >= 1,
            "max_window": self.max_window >= 1,
            "max_top_k": self.max_top_k >= 1,
            "max_name_chars": self.max_name_chars >= 1,
            "config_timeout_s": self.config_timeout_s > 0,
            "room_timeout_s": self.room_timeout_s > 0,
            "keepalive_s": self.keepalive_s > 0,
            "keepalive_timeout_s": self.keepalive_timeout_s > 0,
            "max_calls_per_connection": self.max_calls_per_connection >= 1,
            "receive_window_bytes": MIN_RECEIVE_WINDOW <= self.receive_window_bytes < 1 << 31,
            "processes": self.processes >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if not bad and self.window > self.max_window:
            raise ConfigError(
                f"the default window {self.window} is over --max-window {self.max_window}"
            )
        if bad:
            raise ConfigError(
                f"invalid server settings: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}"
            )
        if self.metrics_address is not None:
            parse_host_port(self.metrics_address)

    @property
    def metrics_host_port(self) -> tuple[str, int] | None:
        return None if self.metrics_address is None else parse_host_port(self.metrics_address)

    @property
    def effective_max_message_bytes(self) -> int:
        """The gRPC message limit: given, or what the largest allowed RAW frame needs.

        A client cannot make the server buffer a message bigger than any frame it may send.
        """
        if self.max_message_bytes is not None:
            return self.max_message_bytes
        return self.largest_frame_bytes + MESSAGE_OVERHEAD_BYTES

    @property
    def largest_frame_bytes(self) -> int:
        """The payload of the largest RAW RGB frame the limits allow."""
        side = self.max_frame_side
        return min(side * side, self.max_frame_pixels) * 3

    def memory_warning(self) -> str | None:
        """Why the memory budget is small for the frames allowed, or ``None``."""
        largest, budget = self.largest_frame_bytes, self.memory_budget_bytes
        if 2 * largest <= budget:
            return None
        return (
            f"--memory-budget ({budget / 2**20:.0f} MiB) holds fewer than two of the largest "
            f"frames allowed ({largest / 2**20:.0f} MiB RAW, from --max-frame-side and "
            "--max-frame-pixels): such frames are read one at a time and can take the server "
            "past its budget; lower the limits or raise the budget"
        )

    @property
    def effective_stream_buffer(self) -> int:
        # Three batches' worth lets one stream keep the pipeline full: one batch running,
        # one prepared, one filling.
        return self.stream_buffer or 3 * self.max_batch

    @property
    def effective_frame_budget(self) -> int:
        # Eight batches in the server keep the model busy at any stream count while bounding
        # memory: 64 LOSSLESS streams cannot each park three batches of frames.
        return self.frame_budget or 8 * self.max_batch


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` into (host, port) as :func:`client.host_port.parse_host_port` reads it
    (``:PORT`` is loopback); raises ConfigError when malformed.

    >>> parse_host_port("0.0.0.0:9100")
    ('0.0.0.0', 9100)
    >>> parse_host_port("[::]:0")
    ('::', 0)
    """
    # Here, not at the top: `import client` loads grpc and numpy, and this module stays light.
    from client.host_port import parse_host_port as parse

    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
