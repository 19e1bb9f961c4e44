"""Which asyncio event loop Ash's processes run: uvloop (libuv) where it is installed, asyncio's
own otherwise, or when ASH_EVENT_LOOP=asyncio.

A turn crosses several loops (the server's, the runner's, the sandbox runtime's), each handling a
few dozen callbacks and socket or pipe events for it; asyncio's pure-Python selector loop is a
fifth of the server's CPU in a turn. Django-free, like the rest of `ash.runtime`: the sandbox
runtime uses it too, and falls back quietly where its Python has no uvloop (a Docker image).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CHOICES = ("uvloop", "asyncio")


def choice() -> str:
    """The loop ASH_EVENT_LOOP asks for (uvloop unless it says asyncio)."""
    wanted = os.environ.get("ASH_EVENT_LOOP", "uvloop").strip().lower() or "uvloop"
    if wanted not in CHOICES:
        raise ValueError(f"ASH_EVENT_LOOP must be one of {', '.join(CHOICES)}, not {wanted!r}")
    return wanted


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    if choice() == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    return loop_factory()()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


def use_for_new_loops() -> None:
    """Make the chosen loop asyncio's default for this process, for code that creates its own
    loop with `asyncio.new_event_loop()` (Daphne's Twisted reactor does, when it is imported).
    A bad ASH_EVENT_LOOP is left to Django's settings to report."""
    try:
        factory = loop_factory()
    except ValueError:
        return
    if factory is not asyncio.new_event_loop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
