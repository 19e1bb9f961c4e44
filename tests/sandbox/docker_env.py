"""The Docker test environment: the project's private engine and sandbox image, set up once.

`docker_backend_factory(tmp_base)` is what suites call (lazily, only when a Docker test runs).
The engine is started with scripts/sandbox-engine.sh (installed first when dockerd is missing)
and stopped at interpreter exit if this process started it; the image is built or reused with
scripts/build-sandbox-image.sh.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from ash.sandbox.docker_backend import DockerBackend

REPO = Path(__file__).resolve().parents[2]
ENGINE_SCRIPT = REPO / "scripts" / "sandbox-engine.sh"
IMAGE_SCRIPT = REPO / "scripts" / "build-sandbox-image.sh"

_lock = threading.Lock()
_env: dict[str, str] = {}


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def _start_engine() -> str:
    if shutil.which("dockerd") is None:
        _run(["bash", str(ENGINE_SCRIPT), "install"])
    already = (
        subprocess.run(
            ["bash", str(ENGINE_SCRIPT), "status"], capture_output=True, text=True, check=False
        ).returncode
        == 0
    )
    out = _run(["bash", str(ENGINE_SCRIPT), "start"], timeout=120)
    host = out.strip().splitlines()[-1].removeprefix("export DOCKER_HOST=")
    if not already:
        atexit.register(
            subprocess.run, ["bash", str(ENGINE_SCRIPT), "stop"], capture_output=True, check=False
        )
    return host


def docker_environment() -> tuple[str, str]:
    """(DOCKER_HOST, image tag), starting the engine and building the image on first use."""
    with _lock:
        if not _env:
            host = _start_engine()
            env = {**os.environ, "DOCKER_HOST": host}
            image = _run(["bash", str(IMAGE_SCRIPT)], env=env).strip().splitlines()[-1]
            _env.update(host=host, image=image)
    return _env["host"], _env["image"]


def docker_backend_factory(tmp_base: Path | None = None) -> DockerBackend:
    """A DockerBackend on the private test engine; `tmp_base` (default: a temp dir) for spools."""
    host, image = docker_environment()
    if tmp_base is None:
        tmp_base = Path(tempfile.mkdtemp(prefix="ash-docker-backend-"))
        atexit.register(shutil.rmtree, tmp_base, ignore_errors=True)
    return DockerBackend(base_dir=tmp_base, image=image, docker_host=host)
