"""The packages depend on each other one way only; this test fails on any import against the arrows.

    client  <-  camera_tools  <-  camera_tools.watch (the watch application)
    client  <-  streaming.server (the server)
    tools (streaming.bench, streaming.training, streaming.labelling) and the front door
    (streaming.cli) depend on the others; nothing depends on them.
    streaming itself (the version) and streaming.default_model (the embedded model's paths) import
    nothing of the project; the server, the tools and the front door may use them.
    default_model_data (the embedded model's generator, not installed) may use the server and the
    tools; nothing depends on it.

Every import statement counts, also those inside functions, and so do module names handed to
``importlib`` as strings (the front door's command table).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("client", "camera_tools", "streaming", "default_model_data")


@dataclass(frozen=True)
class Layer:
    name: str
    prefixes: tuple[str, ...]  # module name prefixes that belong to the layer (longest match wins)
    may_import: tuple[str, ...]  # layer names


LAYERS = (
    Layer("client", ("client",), ("client",)),
    Layer("camera", ("camera_tools",), ("client", "camera")),
    Layer("watch", ("camera_tools.watch",), ("client", "camera", "watch")),
    Layer("package root", ("streaming", "streaming.default_model"), ("package root",)),
    Layer("server", ("streaming.server",), ("client", "package root", "server")),
    Layer(
        "tools",
        ("streaming.bench", "streaming.training", "streaming.labelling"),
        ("client", "camera", "watch", "package root", "server", "tools"),
    ),
    Layer(
        "front door",
        ("streaming.cli", "streaming.__main__"),
        ("client", "camera", "watch", "package root", "server", "tools", "front door"),
    ),
    # The embedded model's data generator and training scripts: a tool outside the package.
    Layer(
        "model data",
        ("default_model_data",),
        ("client", "package root", "server", "tools", "model data"),
    ),
)


def layer_of(module: str) -> Layer | None:
    best: tuple[int, Layer] | None = None
    for layer in LAYERS:
        for prefix in layer.prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), layer)
    return None if best is None else best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> set[str]:
    """Absolute names of every project module imported by the file, however it is imported."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # importlib.import_module("camera_tools.watch...") in a command table
            text = node.value
            if text.split(".")[0] in PACKAGES and all(p.isidentifier() for p in text.split(".")):
                found.add(text)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def project_modules() -> list[Path]:
    files: list[Path] = []
    for package in PACKAGES:
        files += [
            p
            for p in sorted((ROOT / package).rglob("*.py"))
            if not p.name.endswith(("_pb2.py", "_pb2_grpc.py"))
        ]
    return files


def violations(path: Path) -> list[str]:
    module = module_name(path)
    own = layer_of(module)
    assert own is not None, f"{module} belongs to no layer: add it to LAYERS"
    found = []
    for name in sorted(imported_modules(path, module)):
        target = layer_of(name)
        if target is not None and target.name not in own.may_import:
            found.append(f"{module} ({own.name}) imports {name} ({target.name})")
    return found


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_arrows(path: Path) -> None:
    assert violations(path) == []


@pytest.mark.parametrize(
    ("module", "imports", "allowed"),
    [
        ("client._sync", "streaming.server.server_values", False),
        ("client._sync", "streaming", False),
        ("client.classify.classify_cli", "camera_tools.sources", False),
        ("camera_tools.capture", "camera_tools.watch.runner", False),
        ("camera_tools.sources", "streaming.server.frame_decode", False),
        ("camera_tools.watch.runner", "client", True),
        ("streaming.server.batcher", "streaming.bench.suite", False),
        ("streaming.server.stream_service", "client.api.v1.stream_classifier_pb2", True),
        ("streaming.server.stream_service", "camera_tools", False),
        ("streaming.server.grpc_server", "streaming.cli", False),
        ("streaming.server.grpc_server", "streaming", True),
        ("streaming.server.model", "streaming.default_model", True),
        ("streaming.default_model", "streaming.server.model", False),
        ("streaming", "streaming.server", False),
        ("streaming.training.backbones", "streaming.default_model", True),
        ("streaming.training.trainer", "streaming.server.model", True),
        ("streaming.server.model", "streaming.training.trainer", False),
        ("camera_tools.watch.watch_cli", "streaming.server.serve_cli", False),
        ("default_model_data.train_default_model", "streaming.training.trainer", True),
        ("streaming.training.trainer", "default_model_data.synth", False),
        ("streaming.bench.suite", "client", True),
        ("streaming.bench.suite", "streaming.cli", False),
        ("streaming.cli", "camera_tools.watch.watch_cli", True),
        ("streaming.labelling.label_server", "camera_tools.web.local_http", True),
        ("camera_tools.web.web_server", "streaming.labelling.label_server", False),
        ("streaming.server.model_versions", "streaming.labelling.label_dataset", False),
    ],
)
def test_the_rules_themselves(module: str, imports: str, allowed: bool) -> None:
    own, target = layer_of(module), layer_of(imports)
    assert own is not None and target is not None
    assert (target.name in own.may_import) is allowed


# camera_tools is a library: its command lines parse flags into typed options (dataclasses)
# and the library takes those. The RTSP child is a program of its own, run by the system Python.
ARGPARSE_ALLOWED = {
    "camera_tools.watch.watch_cli",
    "camera_tools.report_cli",
    "camera_tools._restream_server",
}


def imports_argparse(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "argparse":
            return True
    return False


def test_only_the_command_lines_of_camera_tools_use_argparse() -> None:
    users = {
        module_name(path)
        for path in project_modules()
        if module_name(path).startswith("camera_tools") and imports_argparse(path)
    }
    assert users - ARGPARSE_ALLOWED == set()
    assert users & ARGPARSE_ALLOWED, "the check found no command line at all: is it broken?"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import argparse", True),
        ("import os, argparse as ap", True),
        ("from argparse import Namespace", True),
        ("def f():\n    import argparse", True),
        ("import argparse_extra", False),
        ("x = 'argparse'", False),
    ],
)
def test_the_argparse_check_itself(tmp_path: Path, source: str, found: bool) -> None:
    path = tmp_path / "module.py"
    path.write_text(source)
    assert imports_argparse(path) is found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("client", ("streaming", "camera_tools", "tensorflow")),
        ("camera_tools", ("streaming", "tensorflow")),
        ("streaming.server", ("tensorflow", "grpc", "camera_tools", "streaming.bench")),
        ("streaming.server.grpc_server", ("camera_tools", "streaming.bench", "streaming.cli")),
    ],
)
def test_importing_a_package_loads_nothing_upstream(
    package: str, forbidden: tuple[str, ...]
) -> None:
    # A fresh interpreter: what a user who installs only this part gets.
    code = (
        f"import sys, {package}\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r} "
        f"or any(m == f or m.startswith(f + '.') for f in {forbidden!r}))\n"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_no_two_modules_share_a_name() -> None:
    # A traceback line or an import should say which side a module is on without its folder.
    names: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name in ("__init__.py", "__main__.py") or "_pb2" in path.name:
                continue
            names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}
