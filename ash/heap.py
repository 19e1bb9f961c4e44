"""Keep the cyclic garbage collector's full collections short in the long-running processes.

A full (generation 2) collection walks every tracked object. After startup the web server holds
well over a hundred thousand (Django, DRF, Daphne, Twisted, the models and the URLconf), and the
runner as many with Celery. On the bench machine a full collection took 50-70 ms in either, and
nothing else in the process ran meanwhile: the relays, and in the runner (the web server too,
embedded) every model proxy and so every model call in flight. They were the benchmarks' slowest
turns: 60-100 ms where the rest took under 10. The startup objects live as long as the process, so
collecting them finds nothing. `settle()` moves them out of the collector's reach once startup is
done (`gc.freeze`); full collections then took 1.5-8.5 ms. What the process creates later is
collected as before.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Load what requests would load lazily (the URLconf and the views it imports), collect the
    garbage startup left, then freeze what remains; returns how many objects were frozen."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module now, before the freeze
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
