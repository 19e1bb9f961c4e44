"""The web server's event loop: Daphne's Twisted reactor runs on uvloop (libuv) where it is
installed, on asyncio's own loop when ASH_EVENT_LOOP=asyncio.

Only Daphne's. A turn's HTTP request, its SSE relay and Django's handler run on that loop, and
uvloop runs the loop itself in C (asyncio's own loop was ~a fifth of the server's CPU in a
turn's profile). The runner's loop (sandboxes, their model proxies) and the sandbox runtimes
stay on asyncio's loop, because they start processes: uvloop starts one by forking the whole
process and waits, holding the GIL, until the child has exec'd. In a server holding 200
sandboxes that froze every thread for tens of milliseconds per snapshot, and 200 snapshots put
seconds on concurrent turns; a runtime would pay ~1.3 ms more per tool command.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable

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


def import_daphne_on_chosen_loop() -> None:
    """Import Daphne's server with the chosen loop as asyncio's default (its Twisted reactor makes
    its loop at import), then put asyncio's own default back for every other loop. Call before
    Django's setup, which imports Daphne. A bad ASH_EVENT_LOOP is left to the settings to report."""
    if "daphne.server" in sys.modules:
        return  # too late to choose: Daphne made its loop already
    try:
        factory = loop_factory()
    except ValueError:
        return
    if factory is asyncio.new_event_loop:
        return
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        import daphne.server  # noqa: F401
    finally:
        asyncio.set_event_loop_policy(None)
