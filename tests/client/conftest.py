"""The ``flavour`` fixture: each stream behaviour test runs with both clients (see ``flavours``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .flavours import Flavour


@pytest.fixture(params=["sync", "asyncio"])
def flavour(request: pytest.FixtureRequest) -> Iterator[Flavour]:
    """The client under test, once blocking and once asyncio."""
    chosen = Flavour(request.param)
    yield chosen
    chosen.close()
