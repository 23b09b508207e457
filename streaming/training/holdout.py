"""The frames a ``train`` run validated on, recorded so ``promote`` can load them again.

``train`` writes ``RUN_DIR/validation.json``: the inputs as absolute paths, how videos were
sampled, and either the separate ``--val`` inputs or the groups (whole videos/blocks, folders
of frames, single images) the split held out. Loading the same inputs the same way gives the
same groups, so ``promote`` scores the old and the new model on exactly the frames the new one
never trained on, each at its own input size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from streaming.training.loading import LoadOptions, load_inputs
from streaming.training.sampling import SamplingPolicy
from streaming.training.training_errors import DataError
from streaming.training.training_values import FrameSet, Problem

VALIDATION_FILE = "validation.json"


def _absolute(path: Path | str) -> str:
    # abspath, not resolve(): the loaders build group names from the paths as given.
    return os.path.abspath(path)


@dataclass(frozen=True)
class ValidationRecord:
    """How to load a run's validation frames again.

    Attributes:
        inputs: The training inputs (absolute).
        val_inputs: Separate validation inputs (absolute); when given, they are the frames.
        groups: Otherwise the held-out groups of ``inputs`` (absolute group names).
        sampling: How videos were sampled.
        videos_dir: Where segment files' videos were looked up.
    """

    inputs: tuple[str, ...]
    val_inputs: tuple[str, ...]
    groups: tuple[str, ...]
    sampling: SamplingPolicy
    videos_dir: str | None

    @classmethod
    def of_run(
        cls,
        inputs: Sequence[Path],
        val_inputs: Sequence[Path],
        val: FrameSet,
        sampling: SamplingPolicy,
        videos_dir: Path | None,
    ) -> ValidationRecord:
        return cls(
            tuple(_absolute(p) for p in inputs),
            tuple(_absolute(p) for p in val_inputs),
            () if val_inputs else tuple(sorted({_absolute(g) for g in val.groups})),
            sampling,
            None if videos_dir is None else _absolute(videos_dir),
        )

    def save(self, path: Path) -> Path:
        data = {**asdict(self), "sampling": asdict(self.sampling)}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> ValidationRecord:
        """Raises DataError: missing or unreadable (a run by an older ``train``)."""
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                tuple(data["inputs"]),
                tuple(data["val_inputs"]),
                tuple(data["groups"]),
                SamplingPolicy(**data["sampling"]),
                data["videos_dir"],
            )
        except FileNotFoundError as exc:
            raise DataError(
                f"{path} not found (a run of an older train?): pass --holdout DATA"
            ) from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from exc

    def load_frames(
        self, height: int, width: int, workers: int = 2
    ) -> tuple[FrameSet, tuple[Problem, ...]]:
        """The validation frames at ``height`` x ``width``.

        Raises:
            DataError: None of them can be loaded any more.
        """
        videos = None if self.videos_dir is None else Path(self.videos_dir)
        options = LoadOptions(height, width, self.sampling, videos, workers)
        if self.val_inputs:
            loaded = load_inputs([Path(p) for p in self.val_inputs], options)
            return loaded.frames, loaded.problems
        loaded = load_inputs([Path(p) for p in self.inputs], options)
        held = set(self.groups)
        frames = loaded.frames
        kept = frames.subset([i for i, g in enumerate(frames.groups) if _absolute(g) in held])
        if not len(kept):
            raise DataError("none of the run's validation frames can be loaded any more")
        return kept, loaded.problems
