"""The commands are registered without loading training-only or heavy packages."""

from __future__ import annotations

import subprocess
import sys


def test_parser_with_train_and_evaluate_loads_neither_tensorflow_nor_matplotlib() -> None:
    code = (
        "import sys\n"
        "from streaming.cli import build_parser\n"
        "help_text = build_parser().format_help()\n"
        "assert 'train' in help_text and 'evaluate' in help_text, help_text\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
