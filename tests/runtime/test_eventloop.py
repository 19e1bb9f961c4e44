"""The event loop choice: uvloop by default, asyncio's on request or where uvloop is missing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import uvloop

from ash.runtime import eventloop


def test_default_is_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASH_EVENT_LOOP", raising=False)
    assert eventloop.choice() == "uvloop"
    assert eventloop.loop_factory() is uvloop.new_event_loop

    async def which() -> type:
        return type(asyncio.get_running_loop())

    assert eventloop.run(which()) is uvloop.Loop


def test_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASH_EVENT_LOOP", " AsyncIO ")
    assert eventloop.loop_factory() is asyncio.new_event_loop
    loop = eventloop.new_event_loop()
    try:
        assert isinstance(loop, asyncio.SelectorEventLoop)
    finally:
        loop.close()


def test_unknown_choice_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASH_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="ASH_EVENT_LOOP must be one of uvloop, asyncio"):
        eventloop.choice()


def test_falls_back_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASH_EVENT_LOOP", raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert eventloop.loop_factory() is asyncio.new_event_loop
    eventloop.use_for_new_loops()  # nothing to install: no error


def test_daphne_reactor_runs_on_the_chosen_loop() -> None:
    """`serve` installs the policy before Daphne's import builds Twisted's reactor loop."""
    code = (
        "from ash.runtime import eventloop; eventloop.use_for_new_loops()\n"
        "import daphne.server, asyncio\n"
        "from twisted.internet import reactor\n"
        "print(type(reactor._asyncioEventloop).__module__, type(asyncio.new_event_loop()).__module__)\n"
    )
    env_asyncio = {"ASH_EVENT_LOOP": "asyncio"}
    run = lambda extra: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,  # noqa: E731
                                       cwd=Path(__file__).resolve().parents[2], env={"PATH": "/usr/bin:/bin", **extra}).stdout.split()
    assert run({}) == ["uvloop", "uvloop"]
    assert run(env_asyncio) == ["asyncio.unix_events", "asyncio.unix_events"]
