"""probe() reports this host truthfully; choose_isolation() refuses strict when it can't."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from ash.sandbox import probe as probe_mod
from ash.sandbox.base import Isolation
from ash.sandbox.probe import IsolationUnavailable, choose_isolation, probe
from ash.sandbox.process_backend import ProcessBackend


def test_probe_matches_the_host():
    p = probe()
    assert p.bwrap == shutil.which("bwrap")
    if p.bwrap and p.root:
        assert p.bwrap_works == p.userns
    assert p.strict_available == (not p.problems)
    assert set(p.as_dict()) >= {"bwrap_works", "cgroup_version", "cgroup_kill", "strict_available"}


def test_choose_isolation_modes():
    expected = Isolation.STRICT if probe().strict_available else Isolation.DEGRADED
    assert choose_isolation(None) is expected
    assert choose_isolation("auto") is expected
    assert choose_isolation("degraded") is Isolation.DEGRADED
    assert choose_isolation("best-effort") is Isolation.DEGRADED
    with pytest.raises(ValueError):
        choose_isolation("paranoid")


@pytest.fixture
def host_without_bwrap(monkeypatch):
    crippled = dataclasses.replace(
        probe(), bwrap=None, bwrap_works=False, problems=("bubblewrap (bwrap) is not installed",)
    )
    monkeypatch.setattr(probe_mod, "probe", lambda: crippled)
    return crippled


def test_strict_required_but_unavailable_refuses(host_without_bwrap, tmp_path):
    with pytest.raises(IsolationUnavailable, match="bubblewrap"):
        choose_isolation("strict")
    assert choose_isolation(None) is Isolation.DEGRADED
    with pytest.raises(IsolationUnavailable):
        ProcessBackend(base_dir=tmp_path / "b", strict=True)
    assert ProcessBackend(base_dir=tmp_path / "c").isolation is Isolation.DEGRADED
