#!/usr/bin/env bash
# A private Docker engine (dockerd) for Ash's Docker sandbox backend and its tests.
#
#   scripts/sandbox-engine.sh install   apt-get docker.io when dockerd is missing
#   scripts/sandbox-engine.sh start     start (idempotent); prints: export DOCKER_HOST=unix://...
#   scripts/sandbox-engine.sh status    prints the DOCKER_HOST line and exits 0 when running, else 3
#   scripts/sandbox-engine.sh stop      stops only the dockerd this script started (by PID)
#
# Usage: eval "$(scripts/sandbox-engine.sh start)"
#
# All state lives under $ASH_ENGINE_DIR (default ${TMPDIR:-/tmp}/ash-engine): socket, data root,
# exec root, config, log and PID file. Nothing uses /var/run/docker.sock or /var/lib/docker.
# No bridge and no iptables rules: containers only get network modes "none" and "host", and
# the host firewall is never touched. cgroupfs driver because these hosts have no systemd.
set -euo pipefail
CMD=${1:?usage: $0 install|start|status|stop}
DIR=${ASH_ENGINE_DIR:-${TMPDIR:-/tmp}/ash-engine}
SOCK=$DIR/docker.sock
PIDF=$DIR/dockerd.pid
LOG=$DIR/dockerd.log

say_host() { echo "export DOCKER_HOST=unix://$SOCK"; }

ping_ok() {
  # The Engine API answers "OK" on /_ping; curl speaks HTTP over the Unix socket.
  [ -S "$SOCK" ] && curl -sf -m 2 --unix-socket "$SOCK" http://engine/_ping 2>/dev/null | grep -q OK
}

our_pid_alive() {
  [ -f "$PIDF" ] || return 1
  local pid; pid=$(cat "$PIDF")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # Guard against PID reuse: the live process must be a dockerd.
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]
}

install_engine() {
  local pkgs=()
  command -v dockerd >/dev/null || pkgs+=(docker.io)
  command -v curl >/dev/null || pkgs+=(curl)
  [ ${#pkgs[@]} -eq 0 ] && { echo "engine already installed: $(dockerd --version)" >&2; return; }
  # Without a policy-rc.d the package's postinst would start a system dockerd on
  # /var/run/docker.sock; forbid service starts for the duration of the install.
  local tmp_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    tmp_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$tmp_policy" && chmod +x "$tmp_policy"
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
  [ -n "$tmp_policy" ] && rm -f "$tmp_policy"
  echo "installed: $(dockerd --version)" >&2
}

start_engine() {
  mkdir -p "$DIR"
  if our_pid_alive && ping_ok; then say_host; return; fi
  if our_pid_alive; then
    # Started but not answering yet (a concurrent start): wait for it instead of racing it.
    for _ in $(seq 150); do ping_ok && { say_host; return; }; sleep 0.2; done
    echo "dockerd $(cat "$PIDF") does not answer on $SOCK; see $LOG" >&2; exit 1
  fi
  command -v dockerd >/dev/null || { echo "dockerd missing: run $0 install" >&2; exit 2; }
  rm -f "$SOCK" "$PIDF" "$DIR/dockerd.own.pid"
  # dockerd writes /etc/docker/key.json on first start; remember whether we caused it.
  [ -e /etc/docker/key.json ] || touch "$DIR/remove-key-json"
  [ -e /run/docker ] || touch "$DIR/remove-run-docker"
  # An empty config file of our own, so a host /etc/docker/daemon.json cannot change anything.
  echo '{}' >"$DIR/daemon.json"
  # nofile/nproc are pinned below the host's hard limits: root here lacks CAP_SYS_RESOURCE, so
  # runc cannot raise them and container starts would fail with "setrlimit: operation not permitted".
  nohup dockerd \
    --config-file "$DIR/daemon.json" \
    --host "unix://$SOCK" \
    --data-root "$DIR/data" \
    --exec-root "$DIR/exec" \
    --pidfile "$DIR/dockerd.own.pid" \
    --bridge none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --exec-opt native.cgroupdriver=cgroupfs \
    --default-ulimit nofile=20000:20000 --default-ulimit nproc=4096:4096 \
    --log-driver json-file --log-opt max-size=1m \
    >"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDF"
  for _ in $(seq 300); do ping_ok && break; kill -0 "$(cat "$PIDF")" 2>/dev/null || break; sleep 0.1; done
  ping_ok || { echo "dockerd did not answer on $SOCK; last log lines:" >&2; tail -n 20 "$LOG" >&2; exit 1; }
  say_host
}

clean_cgroups() {
  # dockerd leaves an empty docker/ group in every v1 hierarchy (and cgroup2). rmdir only
  # removes empty groups, so a group still used by another engine is left alone.
  local h
  for h in /sys/fs/cgroup/*/docker /sys/fs/cgroup/docker; do
    [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}

stop_engine() {
  if our_pid_alive; then
    local pid; pid=$(cat "$PIDF")
    # SIGTERM: dockerd stops its containers and its managed containerd, then exits.
    kill -TERM "$pid"
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$PIDF" "$SOCK" "$DIR/dockerd.own.pid"
  # Container mounts (overlay, shm) under our data root should be gone; unmount leftovers.
  if [ -d "$DIR/data" ]; then
    { findmnt -rn -o TARGET | grep -F "$DIR/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
  fi
  if [ -f "$DIR/remove-key-json" ]; then
    rm -f /etc/docker/key.json "$DIR/remove-key-json"
  fi
  if [ -f "$DIR/remove-run-docker" ]; then
    # rmdir: only if empty, i.e. no other engine uses it meanwhile.
    rmdir /run/docker/plugins /run/docker 2>/dev/null || true
    rm -f "$DIR/remove-run-docker"
  fi
  clean_cgroups
}

case "$CMD" in
install) install_engine ;;
start) start_engine ;;
status)
  if our_pid_alive && ping_ok; then say_host; echo "dockerd pid $(cat "$PIDF"), dir $DIR" >&2; exit 0; fi
  echo "not running (dir $DIR)" >&2; exit 3 ;;
stop) stop_engine ;;
*) echo "unknown command: $CMD (install|start|status|stop)" >&2; exit 2 ;;
esac
