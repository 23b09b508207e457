"""``stream-classify label``: a local web page to label the frames ``watch --collect`` kept.

A tool layer like :mod:`streaming.training` (whose label folders it writes) and nothing in the
server or the camera tools imports it. It needs no TensorFlow.

Modules: ``collected_frames`` (reading ``watch --collect``'s folder), ``label_decisions`` (the
decisions, their replay, undo, leases and the order frames are shown in: pure, no files),
``label_dataset`` (the output folder: copies, the decisions file, its lock), ``label_session``
(what the page asks for), ``label_server`` (HTTP), ``label_cli`` (the command).
"""

from __future__ import annotations
