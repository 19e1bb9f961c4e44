"""Workspace snapshots after turns: debounced to one per burst, never later than the cap."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import AshSystem, running_server
from tests.e2e.support import read_db, reset_script, wait_until
from tests.fakes.anthropic_server import Reply

pytestmark = pytest.mark.slow

DELAY, MAX_DELAY = 1.0, 3.0


@pytest.fixture
def own_server(fake) -> Iterator[AshSystem]:
    with running_server(fake, ASH_SNAPSHOT_DELAY=str(DELAY), ASH_SNAPSHOT_MAX_DELAY=str(MAX_DELAY)) as system:
        yield system


def snapshot_key(system: AshSystem, sid: str) -> str | None:
    """The session's newest snapshot, as the server recorded it (its database, read-only)."""
    rows = read_db(system.data_dir, "SELECT snapshot_key FROM sessions_app_session WHERE id = ?", uuid.UUID(sid).hex)
    return rows[0][0] if rows else None


def test_a_quiet_session_is_snapshotted_once_after_its_turns(own_server: AshSystem, fake) -> None:
    reset_script(fake)
    api = own_server.api
    assert api is not None
    api.deploy("snapshotted")
    sid = api.create_session("snapshotted")["id"]
    before = snapshot_key(own_server, sid)
    fake.script([Reply.tool("Bash", {"command": "echo one > one.txt"}), Reply.text("done")])
    api.turn(sid, "write a file")
    assert snapshot_key(own_server, sid) == before, "debounced: not right after the turn"
    first = wait_until(lambda: (k := snapshot_key(own_server, sid)) != before and k, timeout=10 + DELAY,
                       what="the after-turn snapshot")
    time.sleep(DELAY * 2)
    assert snapshot_key(own_server, sid) == first, "one snapshot for a quiet session, not one per check"


def test_a_session_that_never_goes_quiet_is_still_snapshotted_within_the_cap(own_server: AshSystem, fake) -> None:
    reset_script(fake)
    api = own_server.api
    assert api is not None
    api.deploy("busy")
    sid = api.create_session("busy")["id"]
    keys = {snapshot_key(own_server, sid)}
    started = time.monotonic()
    while time.monotonic() - started < MAX_DELAY + 2.5:  # turns back to back, never DELAY apart
        fake.script([Reply.text("again")])
        api.turn(sid, "again")
        keys.add(snapshot_key(own_server, sid))
    assert len(keys) >= 2, "a snapshot must be taken within ASH_SNAPSHOT_MAX_DELAY of the first unsaved turn"
