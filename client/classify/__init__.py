"""Classify image files and folders through one LOSSLESS stream, as library code.

:mod:`~client.classify.discover` expands paths, :mod:`~client.classify.image_files` reads images into
frames, :mod:`~client.classify.output` writes results, :mod:`~client.classify.progress` draws the
bar and :mod:`~client.classify.run` overlaps them; :mod:`~client.classify.classify_cli` is the
``stream-classify classify`` command, which only parses its arguments and calls them.
"""

from __future__ import annotations

from client.classify.discover import IMAGE_EXTENSIONS, Discovery, discover_images
from client.classify.image_files import describe_failure, load_image
from client.classify.output import OUTPUT_FORMATS, ResultWriter, make_writer
from client.classify.progress import Progress
from client.classify.run import ClassifyOutcome, ClassifySettings, classify_files

__all__ = [
    "IMAGE_EXTENSIONS",
    "OUTPUT_FORMATS",
    "ClassifyOutcome",
    "ClassifySettings",
    "Discovery",
    "Progress",
    "ResultWriter",
    "classify_files",
    "describe_failure",
    "discover_images",
    "load_image",
    "make_writer",
]
