"""The client package stands alone: it imports nothing of the server or the camera tools."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import client

pytestmark = pytest.mark.timeout(60)

PACKAGE = Path(client.__file__).parent
FORBIDDEN = ("streaming", "camera_tools")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    sorted(PACKAGE.rglob("*.py")),
    ids=lambda path: path.relative_to(PACKAGE).as_posix(),
)
def test_no_client_module_imports_the_server_or_the_camera_tools(path: Path) -> None:
    offending = {name for name in imported_modules(path) if name.split(".")[0] in FORBIDDEN}

    assert not offending, f"{path} imports {sorted(offending)}"


def test_importing_every_client_module_loads_neither_package() -> None:
    modules = sorted(
        ".".join(("client", *path.relative_to(PACKAGE).with_suffix("").parts))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py"
    )
    program = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=50, check=False
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_the_documented_api_is_exported() -> None:
    documented = {
        "StreamClient",
        "AsyncStreamClient",
        "Stream",
        "AsyncStream",
        "ClassifierClientError",
        "Delivery",
        "Prediction",
        "ModelInfo",
        "encode_frame",
        "channel_credentials",
        "add_connection_arguments",
        "connection_from_args",
    }

    assert documented <= set(client.__all__)
    assert all(hasattr(client, name) for name in client.__all__)
