#!/usr/bin/env bash
# Build the Ash sandbox root filesystem as a tarball: rootfs.sh OUTPUT.tar
# This file is the image recipe: its sha256 is the image version (ash/sandbox/image/__init__.py),
# so any change here produces a new `ash-sandbox:<version>` tag.
# Debian bookworm minbase + python3 (3.11, the same minor as the host venv, so the bind-mounted
# site-packages with compiled wheels import) + ca-certificates + procps (ps, kill, top).
# The Ash runtime and its Python dependencies are NOT baked in: the backend bind-mounts them
# read-only at /opt/ash.
set -euo pipefail
OUT=${1:?usage: rootfs.sh OUTPUT.tar}
SUITE=bookworm
PACKAGES=python3,ca-certificates,procps
MIRROR=${ASH_DEBIAN_MIRROR:-http://deb.debian.org/debian}

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/ash-rootfs.XXXXXX")
cleanup() {
  # debootstrap mounts /proc and /sys in the target; an interrupted run can leave them mounted.
  findmnt -rn -o TARGET | grep -F "$ROOT/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >&2

# The unprivileged agent user; HOME is the workspace because the root fs is read-only.
echo 'agent:x:1000:1000:Ash agent:/workspace:/bin/bash' >>"$ROOT/etc/passwd"
echo 'agent:x:1000:' >>"$ROOT/etc/group"
echo 'agent:*:20000:0:99999:7:::' >>"$ROOT/etc/shadow"
# Mount points: workspace (rw), agent definition (ro), LLM proxy socket dir (ro), runtime (ro).
mkdir -p "$ROOT/workspace" "$ROOT/agent" "$ROOT/run/ash-proxy" "$ROOT/opt/ash/src" "$ROOT/opt/ash/site"
chown 1000:1000 "$ROOT/workspace"
chmod 0755 "$ROOT/workspace"
chmod 1777 "$ROOT/tmp"  # dockerd keeps the image's /tmp mode for a tmpfs mount
# Nothing in the sandbox installs packages: drop the apt caches and docs to shrink the image.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/* "$ROOT"/var/cache/debconf/*-old \
  "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
  "$ROOT"/var/log/* "$ROOT"/debootstrap
# Mountpoints the engine provides must be empty in the image.
rm -rf "$ROOT"/proc/* "$ROOT"/sys/* "$ROOT"/dev/*

tar --numeric-owner --xattrs -C "$ROOT" -cf "$OUT.part" .
mv "$OUT.part" "$OUT"
