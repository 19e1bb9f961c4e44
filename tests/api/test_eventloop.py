"""The web server's loop choice: Daphne on uvloop by default (asyncio's on request or where uvloop
is missing); every other loop of the process on asyncio's own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import uvloop

from ash import eventloop

REPO = Path(__file__).resolve().parents[2]


def test_default_is_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASH_EVENT_LOOP", raising=False)
    assert eventloop.choice() == "uvloop"
    assert eventloop.loop_factory() is uvloop.new_event_loop


def test_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASH_EVENT_LOOP", " AsyncIO ")
    assert eventloop.loop_factory() is asyncio.new_event_loop


def test_unknown_choice_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASH_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="ASH_EVENT_LOOP must be one of uvloop, asyncio"):
        eventloop.choice()


def test_falls_back_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASH_EVENT_LOOP", raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert eventloop.loop_factory() is asyncio.new_event_loop


LOOPS = (
    "from ash.eventloop import import_daphne_on_chosen_loop; import_daphne_on_chosen_loop()\n"
    "import os, asyncio; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'ash.settings')\n"
    "import django; django.setup()\n"
    "from twisted.internet import reactor\n"
    "print(type(reactor._asyncioEventloop).__module__, type(asyncio.new_event_loop()).__module__)\n"
)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, ["uvloop", "asyncio.unix_events"]),
    ({"ASH_EVENT_LOOP": "asyncio"}, ["asyncio.unix_events", "asyncio.unix_events"]),
])
def test_only_daphne_runs_on_the_chosen_loop(tmp_path: Path, env: dict[str, str], expected: list[str]) -> None:
    """As manage.py does it: Daphne's reactor gets the chosen loop; loops made afterwards (the
    runner host's, asyncio.run's) are asyncio's, since uvloop forks the whole process to spawn."""
    out = subprocess.run([sys.executable, "-c", LOOPS], capture_output=True, text=True, check=True, cwd=REPO,
                         env={"PATH": "/usr/bin:/bin", "ASH_DATA_DIR": str(tmp_path), **env}).stdout.split()
    assert out == expected
