"""requirements.lock pins every dependency that `make install` installs, and only pins.

``make install`` passes the lock to pip as constraints: a dependency missing from it would be
resolved freshly on every machine, so a fresh clone could again install something the suite never
ran with. ``make lock`` regenerates the file; this test says when someone forgot to.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]["name"]
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)$")
REQUIREMENT = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?")


def normalize(name: str) -> str:
    """PEP 503: pip treats ``Foo_bar``, ``foo.bar`` and ``foo-bar`` as one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def make_extras() -> list[str]:
    """The extras `make install` and `make lock` install (the Makefile's ``EXTRAS :=`` line)."""
    match = re.search(r"^EXTRAS\s*:=\s*(\S+)\s*$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "the Makefile declares EXTRAS := ... for make install and make lock"
    return match.group(1).split(",")


def required_names(extras: list[str]) -> set[str]:
    """Every project named by the core dependencies and the extras, following self-references
    such as ``stream-classification[server,train]``."""
    optional = PYPROJECT["project"]["optional-dependencies"]
    names: set[str] = set()
    seen: set[str] = set()
    todo = [None, *extras]  # None: the core dependencies
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra or "")
        requirements = PYPROJECT["project"]["dependencies"] if extra is None else optional[extra]
        for requirement in requirements:
            match = REQUIREMENT.match(requirement)
            assert match, f"cannot read the requirement {requirement!r}"
            if normalize(match["name"]) == normalize(PROJECT):
                todo.extend(e.strip() for e in (match["extras"] or "").split(",") if e.strip())
            else:
                names.add(normalize(match["name"]))
    return names


def lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = PIN.match(line.strip())
            assert match, f"requirements.lock: {line!r} is not name==version"
            pins[normalize(match["name"])] = match["version"]
    return pins


def test_the_lock_has_only_exact_pins_one_per_project() -> None:
    lines = [
        line.strip()
        for line in LOCK.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines, "requirements.lock is empty: run make lock"
    assert all(PIN.match(line) for line in lines), [line for line in lines if not PIN.match(line)]
    names = [normalize(PIN.match(line)["name"]) for line in lines]  # type: ignore[index]
    assert len(names) == len(set(names)), "a project is pinned twice"
    assert normalize(PROJECT) not in names, "the project itself is installed from the tree"


@pytest.mark.parametrize("extra", ["core", *make_extras()])
def test_every_dependency_make_installs_is_pinned(extra: str) -> None:
    pins = lock_pins()
    wanted = required_names([] if extra == "core" else [extra])
    missing = sorted(wanted - pins.keys())
    assert not missing, f"not pinned in requirements.lock (run make lock): {missing}"


def test_the_pins_lie_inside_pyproject_ranges() -> None:
    # A range tightened in pyproject.toml after the last `make lock` would make pip fail to resolve.
    packaging = pytest.importorskip("packaging.requirements")
    pins = lock_pins()
    optional = PYPROJECT["project"]["optional-dependencies"]
    requirements = [*PYPROJECT["project"]["dependencies"], *sum(optional.values(), [])]
    outside = []
    for text in requirements:
        requirement = packaging.Requirement(text)
        version = pins.get(normalize(requirement.name))
        if version is not None and not requirement.specifier.contains(version, prereleases=True):
            outside.append(f"{requirement.name}=={version} (pyproject: {requirement.specifier})")
    assert not outside, f"run make lock: {outside}"


@pytest.mark.parametrize(
    ("line", "pinned"),
    [
        ("numpy==2.4.6", True),
        ("opencv-python-headless==5.1.0.95", True),
        ("prometheus_client==0.26.0", True),
        ("numpy>=2", False),
        ("numpy", False),
        ("-e /work/repo", False),
        ("numpy @ file:///tmp/numpy.whl", False),
    ],
)
def test_pin_pattern(line: str, pinned: bool) -> None:
    assert bool(PIN.match(line)) is pinned
