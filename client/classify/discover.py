"""Expand the PATH arguments of ``classify`` into image files, in a stable order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".bmp",
        ".gif",
        ".webp",
        ".tif",
        ".tiff",
        ".ppm",
        ".pgm",
        ".pbm",
    }
)
STDIN_ARGUMENT = "-"


@dataclass(frozen=True)
class MissingPath:
    """A PATH argument that names nothing."""

    name: str
    reason: str


@dataclass(frozen=True)
class Discovery:
    """The files to classify, in order, and the arguments that named nothing."""

    paths: tuple[Path, ...]
    missing: tuple[MissingPath, ...]


def discover_images(arguments: Iterable[str], stdin: TextIO) -> Discovery:
    """Expand PATH arguments in order: folders recursively (image extensions, sorted), ``-`` reads
    one path a line from ``stdin``. Files named explicitly are kept whatever their extension.

    Example:
        >>> import io
        >>> found = discover_images(["no/such/file.png"], io.StringIO())
        >>> (found.paths, found.missing[0].reason)
        ((), 'no such file or folder')
    """
    paths: list[Path] = []
    missing: list[MissingPath] = []
    for argument in arguments:
        names = (
            [line.strip() for line in stdin if line.strip()]
            if argument == STDIN_ARGUMENT
            else [argument]
        )
        for name in names:
            path = Path(name)
            if path.is_dir():
                paths.extend(_images_under(path))
            elif path.exists():
                paths.append(path)
            else:
                missing.append(MissingPath(name, "no such file or folder"))
    return Discovery(tuple(paths), tuple(missing))


def _images_under(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
