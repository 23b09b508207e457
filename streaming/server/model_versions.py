"""The model being served, and a versioned model directory swapped in under running streams.

``serve --model-dir DIR`` serves ``DIR/<N>/`` (N a positive integer): the highest version that
loads. The directory is checked every ``--model-poll-s`` seconds and on SIGHUP; a new version is
loaded and warmed up on a background thread while the old one serves, then put in the
``ModelSlot``, which the pipeline's model thread reads once per batch. So the swap falls between
two batches: every frame is answered by exactly one model, never by one half loaded.

The ready rule (docs/models.md): a version is ready when its labels file exists. Write the model
first and the labels last (or write the directory under another name and rename it into place):
a version without its labels file is not looked at, however much of its model is written.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from streaming.server.allocator import release_free_memory
from streaming.server.model import Classifier, load_classifier
from streaming.server.serve_config import ModelConfig
from streaming.server.server_errors import ModelLoadError
from streaming.server.server_metrics import RefusedReason, ServerMetrics
from streaming.server.server_values import ModelDescription

logger = logging.getLogger(__name__)

# What a version directory may hold, in the order they are looked for. ``saved_model.pb`` in
# the version directory itself is TensorFlow Serving's layout.
MODEL_NAMES = ("model.keras", "model.h5", "model.onnx", "model")
LABELS_NAMES = ("labels.txt", "labels.json", "labels.pkl")
SINGLE_VERSION = "1"  # the version of a model given with -la/-ohe

# (relative path, size, mtime in ns) of every file of a version: it changes when a file does.
Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class ServingModel:
    """One loaded version. ``labels_epoch`` changes only when the labels do: streams keep
    their windows across a swap to a model with the same labels in the same order."""

    version: str
    classifier: Classifier
    labels_epoch: int = 0

    @property
    def description(self) -> ModelDescription:
        return self.classifier.description

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.description.labels


class ModelSlot:
    """The model every new batch uses: read once per batch, replaced between two batches.

    Replacing is one attribute assignment (atomic under the GIL); a batch keeps the
    ``ServingModel`` it read until its answers are built, so the old model lives exactly as
    long as its last batch.
    """

    def __init__(self, first: ServingModel, available: tuple[str, ...] = ()) -> None:
        self.current = first
        self.available = available or (first.version,)
        self.swaps = 0  # changes with every swap: a cache key that holds no model
        self._listeners: list[Callable[[ServingModel], None]] = []

    @classmethod
    def single(cls, classifier: Classifier, version: str = SINGLE_VERSION) -> ModelSlot:
        """A slot for one unversioned model (``-la``/``-ohe``, or a model given in code)."""
        return cls(ServingModel(version, classifier))

    def on_swap(self, listener: Callable[[ServingModel], None]) -> None:
        """Call ``listener(new)`` after each swap (on the thread that swapped)."""
        self._listeners.append(listener)

    def swap(self, version: str, classifier: Classifier) -> ServingModel:
        """Serve ``classifier`` from the next batch on; returns the new ``ServingModel``."""
        old = self.current
        epoch = (
            old.labels_epoch
            if classifier.description.labels == old.labels
            else old.labels_epoch + 1
        )
        new = ServingModel(version, classifier, epoch)
        self.current = new
        self.swaps += 1
        for listener in self._listeners:
            listener(new)
        return new


@dataclass(frozen=True)
class VersionFiles:
    """What one version directory holds. ``labels_path`` is ``None`` until it is ready."""

    number: int
    directory: Path
    model_path: Path | None
    labels_path: Path | None
    signature: Signature

    @property
    def ready(self) -> bool:
        return self.labels_path is not None


def scan(directory: Path) -> dict[int, VersionFiles]:
    """The version directories under ``directory`` (names that are positive integers)."""
    found: dict[int, VersionFiles] = {}
    for entry in directory.iterdir():
        name = entry.name
        if not (name.isdigit() and str(int(name)) == name and int(name) > 0 and entry.is_dir()):
            continue
        found[int(name)] = _version_files(int(name), entry)
    return found


def _version_files(number: int, directory: Path) -> VersionFiles:
    labels = next((directory / n for n in LABELS_NAMES if (directory / n).is_file()), None)
    model: Path | None = next(
        (directory / n for n in MODEL_NAMES if (directory / n).exists()), None
    )
    if model is None and (directory / "saved_model.pb").is_file():
        model = directory
    return VersionFiles(number, directory, model, labels, _signature(directory))


def _signature(directory: Path) -> Signature:
    entries: list[tuple[str, int, int]] = []
    for root, _, files in os.walk(directory):
        for name in files:
            path = Path(root, name)
            try:
                stat = path.stat()
            except OSError:  # removed while we looked: the next check sees the new state
                continue
            entries.append((str(path.relative_to(directory)), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


class VersionRefused(Exception):
    """A version that cannot be served; the old one keeps serving."""

    def __init__(self, reason: RefusedReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ModelVersions:
    """Watches a model directory and swaps the served version in its ``ModelSlot``.

    ``check`` does one look at the directory (and any loading) on the calling thread; the
    server runs it on a background thread every ``--model-poll-s`` and on SIGHUP.
    """

    def __init__(
        self,
        config: ModelConfig,
        max_batch: int,
        metrics: ServerMetrics | None = None,
        load: Callable[[ModelConfig], Classifier] = load_classifier,
    ) -> None:
        if config.model_dir is None:
            raise ValueError("ModelVersions needs config.model_dir")
        self._config = config
        self._directory = config.model_dir
        self._max_batch = max_batch
        self._metrics = metrics
        self._load_classifier = load
        self._lock = threading.Lock()
        self._slot: ModelSlot | None = None
        self._serving_signature: Signature = ()
        self._refused: dict[int, Signature] = {}  # retried only when the signature changes
        self._logged_waiting: dict[int, Signature] = {}
        self._seen: dict[int, Signature] = {}  # each version's files at the last look
        self._logged_problem = ""
        self._retired: weakref.ref[Classifier] | None = None

    @property
    def slot(self) -> ModelSlot:
        if self._slot is None:
            raise RuntimeError("no version loaded yet: call load_first()")
        return self._slot

    def load_first(self) -> ModelSlot:
        """Load the version to serve at start (warm-up is the pipeline's, on its model thread).

        Raises:
            ModelLoadError: no version of the directory loads (every reason is in the message).
        """
        with self._lock:
            ready = self._ready(self._scan())
            reasons: list[str] = []
            for files in self._candidates(ready):
                try:
                    classifier = self._load(files, warm_up=False)
                except VersionRefused as exc:
                    reasons.append(f"version {files.number}: {exc}")
                    continue
                self._serving_signature = files.signature
                self._slot = ModelSlot(ServingModel(str(files.number), classifier))
                self._slot.available = self._available(ready)
                self._metrics_serving(str(files.number))
                return self._slot
        detail = (
            "; ".join(reasons)
            if reasons
            else "no ready version (a directory N/ with a labels file)"
        )
        pin = (
            f" (--model-version {self._config.model_version})" if self._config.model_version else ""
        )
        raise ModelLoadError(f"no version of {self._directory}{pin} can be served: {detail}")

    def check(self) -> bool:
        """Look at the directory once; load, warm up and swap in a better version if there is one.

        Returns:
            Whether the served version changed.
        """
        with self._lock:
            self._collect_retired()
            slot = self.slot
            try:
                found = self._scan()
            except OSError as exc:
                self._problem(f"cannot read the model directory {self._directory}: {exc}")
                return False
            ready = self._ready(found)
            shrinking = self._shrinking(found)
            serving = int(slot.current.version)
            swapped = False
            for files in self._candidates(ready):
                if files.number in shrinking:
                    continue  # being removed: judged at the next look, once it is gone or settled
                if files.number == serving and files.signature == self._serving_signature:
                    break  # nothing newer loads: keep serving
                if self._refused.get(files.number) == files.signature:
                    if files.number == serving:
                        break
                    continue
                try:
                    classifier = self._load(files, warm_up=True)
                except VersionRefused:
                    if files.number == serving:
                        break  # its files changed into something unusable: keep what is loaded
                    continue
                self._swap(slot, files, classifier)
                swapped = True
                break
            else:
                if serving not in ready:
                    self._problem(
                        f"version {serving} is gone from {self._directory} and no other "
                        "version can be served: still serving it"
                    )
            slot.available = self._available(ready)
            return swapped

    # -- steps ------------------------------------------------------------------------------

    def _scan(self) -> dict[int, VersionFiles]:
        found = scan(self._directory)
        for number, files in found.items():
            if not files.ready and self._logged_waiting.get(number) != files.signature:
                self._logged_waiting[number] = files.signature
                logger.info(
                    "model version %d is not ready (no %s yet): waiting; a version is ready "
                    "when its labels file exists",
                    number,
                    " or ".join(LABELS_NAMES),
                )
        return found

    def _shrinking(self, found: dict[int, VersionFiles]) -> set[int]:
        """Versions that only lost files since the last look: a removal (``rm -r``) in progress.

        Loading one mid-removal would refuse it (a labels file left, its model gone) with a
        misleading error; one more look settles it: gone, or kept as it is and judged then.
        """
        seen, self._seen = self._seen, {n: files.signature for n, files in found.items()}
        return {
            number
            for number, files in found.items()
            if number in seen and set(files.signature) < set(seen[number])
        }

    @staticmethod
    def _ready(found: dict[int, VersionFiles]) -> dict[int, VersionFiles]:
        return {number: files for number, files in found.items() if files.ready}

    def _candidates(self, ready: dict[int, VersionFiles]) -> list[VersionFiles]:
        """Versions worth serving, best first: the pinned one, else all from the highest down."""
        pin = self._config.model_version
        if pin is not None:
            return [ready[pin]] if pin in ready else []
        return [ready[number] for number in sorted(ready, reverse=True)]

    def _available(self, ready: dict[int, VersionFiles]) -> tuple[str, ...]:
        return tuple(
            str(number)
            for number in sorted(ready)
            if self._refused.get(number) != ready[number].signature
        )

    def _load(self, files: VersionFiles, *, warm_up: bool) -> Classifier:
        """Load (and warm up) one version; a refusal is logged once and counted.

        Raises:
            VersionRefused: it cannot be served.
        """
        start = time.perf_counter()
        try:
            classifier = self._try_load(files, warm_up)
        except VersionRefused as exc:
            self._refused[files.number] = files.signature
            logger.error(
                "model version %d refused (%s): %s; the served version stays",
                files.number,
                exc.reason.value,
                exc,
            )
            if self._metrics is not None:
                self._metrics.version_refused(exc.reason)
            raise
        self._refused.pop(files.number, None)
        seconds = time.perf_counter() - start
        if self._metrics is not None:
            self._metrics.model_loaded(seconds)
        logger.info("model version %d loaded in %.1f s", files.number, seconds)
        return classifier

    def _try_load(self, files: VersionFiles, warm_up: bool) -> Classifier:
        if files.model_path is None:
            raise VersionRefused(
                RefusedReason.LOAD,
                f"{files.directory} has a labels file but no model "
                f"({', '.join(MODEL_NAMES[:3])} or a SavedModel)",
            )
        config = replace(
            self._config,
            model_dir=None,
            model_version=None,
            model_path=files.model_path,
            labels_path=files.labels_path,
        )
        try:
            classifier = self._load_classifier(config)
        except Exception as exc:  # Keras, TensorFlow and the labels raise many types
            raise VersionRefused(RefusedReason.LOAD, str(exc)) from exc
        if self._slot is not None:
            feeds = self._slot.current.description.input_channels
            takes = classifier.description.input_channels
            if takes != feeds:
                raise VersionRefused(
                    RefusedReason.INPUT,
                    f"it takes {takes}-channel images; the server feeds {feeds}-channel ones",
                )
        if warm_up:
            try:
                classifier.warm_up(self._max_batch)
            except Exception as exc:
                raise VersionRefused(RefusedReason.WARM_UP, f"warm-up call failed: {exc}") from exc
        return classifier

    def _swap(self, slot: ModelSlot, files: VersionFiles, classifier: Classifier) -> None:
        old = slot.current
        new = slot.swap(str(files.number), classifier)
        self._serving_signature = files.signature
        self._logged_problem = ""
        # Collected at the next check if the last batch left it in a reference cycle.
        try:
            self._retired = weakref.ref(old.classifier)
            weakref.finalize(old.classifier, logger.info, "model version %s released", old.version)
        except TypeError:  # a classifier without weak references (test doubles)
            self._retired = None
        logger.info(
            "now serving model version %s (was %s)%s",
            new.version,
            old.version,
            "" if new.labels_epoch == old.labels_epoch else ": new labels, windows restart",
        )
        self._metrics_serving(new.version, swapped=True)

    def _collect_retired(self) -> None:
        """Free the replaced model once its last batch let go of it, and return its memory."""
        retired = self._retired
        if retired is None:
            return
        # Even once the classifier is gone, its Keras model and graphs (the weights) sit in
        # reference cycles until a full collection.
        gc.collect()
        if retired() is None:  # else a batch still holds it: the next check tries again
            self._retired = None
            release_free_memory()

    def _metrics_serving(self, version: str, swapped: bool = False) -> None:
        if self._metrics is not None:
            self._metrics.serving_version(version, swapped=swapped)

    def _problem(self, message: str) -> None:
        if message != self._logged_problem:
            self._logged_problem = message
            logger.warning("%s", message)
