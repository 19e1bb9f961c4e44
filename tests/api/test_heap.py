"""`ash.heap.settle`: what startup loaded is frozen out of the garbage collector's full
collections, the URLconf's views included, and later objects are still collected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SETTLE = (
    "import gc, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'ash.settings')\n"
    "import django; django.setup()\n"
    "from ash import heap\n"
    "lazy = 'sessions_app.streaming' in sys.modules\n"
    "frozen = heap.settle()\n"
    "loaded = 'sessions_app.streaming' in sys.modules\n"
    "class Cycle: pass\n"
    "a, b = Cycle(), Cycle(); a.other, b.other = b, a; del a, b\n"
    "found = gc.collect()\n"
    "print(lazy, loaded, frozen, found, gc.get_freeze_count() == frozen)\n"
)


def test_settle_loads_the_views_then_freezes_what_startup_left(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", SETTLE], capture_output=True, text=True, check=True, cwd=REPO,
                         env={"PATH": "/usr/bin:/bin", "ASH_DATA_DIR": str(tmp_path)}).stdout.split()
    lazy, loaded, frozen, found, kept = out
    assert (lazy, loaded) == ("False", "True")  # the views came in with the URLconf, before the freeze
    assert int(frozen) > 50_000 and kept == "True"
    assert int(found) >= 2  # a cycle made afterwards is still collected
