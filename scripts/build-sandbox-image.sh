#!/usr/bin/env bash
# Build the Ash sandbox base image locally and import it into the engine at $DOCKER_HOST.
#
#   eval "$(scripts/sandbox-engine.sh start)"; scripts/build-sandbox-image.sh   # prints the tag
#
# The image is `ash-sandbox:<version>`, version = first 12 hex of sha256(ash/sandbox/image/rootfs.sh),
# the recipe (Debian bookworm minbase via debootstrap + python3 + ca-certificates, user agent 1000).
# No registry is needed: the rootfs comes from the Debian mirror apt uses and is imported with the
# Engine API (images/create?fromSrc=-). The rootfs tarball is cached under
# ${ASH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ash}, so a rebuild after an engine reset takes
# seconds; when the tag already exists nothing is done.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECIPE=$HERE/ash/sandbox/image/rootfs.sh
VERSION=$(sha256sum "$RECIPE" | cut -c1-12)
REPO=ash-sandbox
TAG=$REPO:$VERSION
CACHE=${ASH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ash}
TARBALL=$CACHE/sandbox-rootfs-$VERSION.tar

HOST=${DOCKER_HOST:-unix://${ASH_ENGINE_DIR:-${TMPDIR:-/tmp}/ash-engine}/docker.sock}
case "$HOST" in
unix://*) SOCK=${HOST#unix://} ;;
*) echo "only unix:// DOCKER_HOST is supported, got $HOST" >&2; exit 2 ;;
esac
api() { curl -sS --unix-socket "$SOCK" "$@"; }

api -f -m 5 http://engine/_ping >/dev/null || {
  echo "no engine at $SOCK: eval \"\$(scripts/sandbox-engine.sh start)\" first" >&2; exit 2; }

if api -f -o /dev/null "http://engine/images/$TAG/json" 2>/dev/null; then
  echo "$TAG"; exit 0
fi

if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null || {
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
  mkdir -p "$CACHE"
  LOG=$CACHE/sandbox-rootfs-$VERSION.log
  echo "building rootfs $TARBALL (debootstrap, about a minute; log $LOG)" >&2
  bash "$RECIPE" "$TARBALL" 2>"$LOG" || { tail -n 40 "$LOG" >&2; exit 1; }
  # Only the current recipe's rootfs is worth keeping.
  find "$CACHE" -maxdepth 1 -name 'sandbox-rootfs-*' ! -name "sandbox-rootfs-$VERSION.*" -delete
fi

# Imported images carry no config: set PATH, a neutral working dir and a label with the version.
CHANGES=$(printf '%s' \
  'changes=ENV%20PATH%3D%2Fusr%2Flocal%2Fsbin%3A%2Fusr%2Flocal%2Fbin%3A%2Fusr%2Fsbin%3A%2Fusr%2Fbin%3A%2Fsbin%3A%2Fbin' \
  '&changes=WORKDIR%20%2Fworkspace' \
  "&changes=LABEL%20ash.image.version%3D$VERSION")
OUT=$(api -X POST -H 'Content-Type: application/x-tar' --upload-file "$TARBALL" \
  "http://engine/images/create?fromSrc=-&repo=$REPO&tag=$VERSION&$CHANGES")
if echo "$OUT" | grep -q '"error'; then echo "import failed: $OUT" >&2; exit 1; fi
api -f -o /dev/null "http://engine/images/$TAG/json" || { echo "import did not create $TAG" >&2; exit 1; }
echo "$TAG"
