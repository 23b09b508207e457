"""The layering rule: client <- camera_tools (the library) <- camera_tools.watch (the application)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import camera_tools

LIBRARY = Path(camera_tools.__file__).parent
WATCH = LIBRARY / "watch"


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def top_packages(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


LIBRARY_FILES = sorted(p for p in LIBRARY.rglob("*.py") if WATCH not in p.parents)


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(LIBRARY)))
def test_the_library_imports_neither_the_watch_application_nor_the_server(path: Path) -> None:
    modules = imported_modules(path)
    assert not {
        m for m in modules if m == "camera_tools.watch" or m.startswith("camera_tools.watch.")
    }
    assert "streaming" not in top_packages(modules)


@pytest.mark.parametrize("path", sorted(WATCH.rglob("*.py")), ids=lambda p: p.name)
def test_the_watch_application_does_not_import_the_server(path: Path) -> None:
    assert "streaming" not in top_packages(imported_modules(path))


def test_the_layering_check_sees_imports() -> None:
    # the check above would pass vacuously if it found no imports at all
    assert "camera_tools.capture" in imported_modules(WATCH / "source_loop.py")
    assert len(LIBRARY_FILES) >= 10
