"""Import TensorFlow once, with its C++ start-up lines in our log at DEBUG instead of on the terminal.

A plain ``import tensorflow`` on a CPU machine writes, before any line of ours, absl's "All log
messages before absl::InitializeLog() ..." notice, "Could not find cuda drivers" and, at device
discovery, ``E0000 ... failed call to cuInit: UNKNOWN ERROR (303)``: an error line on every
normal start. absl writes what comes before its initialisation whatever ``TF_CPP_MIN_LOG_LEVEL``
says, so the only way to keep them off the terminal is to catch file descriptor 2 while TensorFlow
starts; the lines caught are logged at DEBUG (``--log-level DEBUG`` shows them, as JSON under
``--log-format json``), any other line caught in that window is written back unchanged.

The notices came twice, seconds apart: TensorFlow's wheel links a second copy of its platform
layer (absl, the CUDA stub) into ``_pywrap_profiler_plugin.so`` (90 MB), which ``import tensorflow``
loads only for ``tf.profiler.experimental.client``, and whose start-up runs that copy's CUDA probe
again. The server never uses that client, so the plugin is loaded when first used instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import sys
import tempfile
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# The profiler client's extension, with its own copy of TensorFlow's platform layer.
DEFERRED_EXTENSION = "tensorflow.python.profiler.internal._pywrap_profiler_plugin"
# absl/TensorFlow C++ log lines: severity, MMDD, time, thread, file:line] (and absl's notice).
NATIVE_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions:)"
)

_lock = threading.Lock()


class DeferredExtension(types.ModuleType):
    """Stands in for an extension module in ``sys.modules`` until one of its names is used.

    The first use imports the real module (the stand-in steps aside first, so the normal import
    machinery loads it) and every later one is forwarded to it.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name, f"deferred import of {name}")
        self._real: types.ModuleType | None = None
        self._loading = threading.Lock()

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)  # introspection (pickle, inspect, doctest) loads nothing
        real = self._real
        if real is None:
            with self._loading:
                real = self._real
                if real is None:
                    if sys.modules.get(self.__name__) is self:
                        del sys.modules[self.__name__]
                    real = self._real = importlib.import_module(self.__name__)
        return getattr(real, attr)


def defer_extension(name: str) -> bool:
    """Put a :class:`DeferredExtension` for ``name`` in ``sys.modules``, if not imported yet."""
    if name in sys.modules:
        return False
    sys.modules[name] = DeferredExtension(name)
    return True


def _profiler_plugin_present() -> bool:
    # Where this TensorFlow keeps the plugin, found without importing TensorFlow; a release
    # that moved or dropped it is left alone.
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.origin is None:
        return False
    folder = Path(spec.origin).parent / "python" / "profiler" / "internal"
    return any(folder.glob("_pywrap_profiler_plugin*.so"))


@contextmanager
def native_stderr_to_log(source: str) -> Iterator[None]:
    """Catch what native code writes to file descriptor 2 and log its log lines at DEBUG.

    Lines that are not absl/TensorFlow log lines (Python warnings, another thread's log records)
    are written back to the real stderr afterwards, so nothing else is lost.
    """
    sys.stderr.flush()
    text = b""
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile(mode="w+b") as caught:
            os.dup2(caught.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                caught.seek(0)
                text = caught.read()
    finally:
        os.close(saved)
        _replay(text, source)


def _replay(text: bytes, source: str) -> None:
    passed_on: list[bytes] = []
    for raw in text.splitlines(keepends=True):
        line = raw.decode("utf-8", "replace").rstrip()
        if NATIVE_LINE.match(line):
            logger.debug("%s: %s", source, line)
        elif line:
            passed_on.append(raw)
    if passed_on:
        os.write(2, b"".join(passed_on))


def import_tensorflow() -> Any:
    """TensorFlow, imported (and its devices discovered) once, its start-up lines at DEBUG.

    ``TF_CPP_MIN_LOG_LEVEL`` is set before the import unless the user set it: 0 (everything)
    when this module logs at DEBUG, else 2 (errors only) for the rest of the run.

    Raises:
        ImportError: TensorFlow is not installed (callers name the extra to install).
    """
    with _lock:
        if "tensorflow" not in sys.modules:  # else imported (or being imported) elsewhere
            debug = logger.isEnabledFor(logging.DEBUG)
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "2")
            if _profiler_plugin_present():
                defer_extension(DEFERRED_EXTENSION)
            with native_stderr_to_log("tensorflow"):
                import tensorflow as tf

                # Device discovery probes CUDA (the cuInit error line): part of start-up.
                tf.config.list_physical_devices()
    import tensorflow as tf  # waits if another thread is still importing it

    return tf
