"""Pytest fixtures for the fake Messages API; import them into a test module or conftest.

    from tests.fakes.fixtures import fake_anthropic  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.anthropic_server import FakeAnthropic


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A started fake with an empty script; call `.script([...])` in the test."""
    server = FakeAnthropic().start()
    try:
        yield server
    finally:
        server.stop()
