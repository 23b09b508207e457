"""Stream Classification server: one batched TensorFlow model behind a bidirectional gRPC API.

Importing this package is cheap: TensorFlow is only imported by :mod:`streaming.server.model`.
"""

from __future__ import annotations

__version__ = "0.1.0"
