#!/usr/bin/env bash
# Counts the durable syncs (fsync/fdatasync) `wardend serve` makes on SQLite for N
# refused and N allowed `warden exec` runs, one process per run, under strace.
#
#   scripts/sync-count.sh [BIN_DIR] [N] [PORT]
#
# BIN_DIR holds `wardend` and `warden` (default target/release). An allowed run is an
# Evaluate and a Report; a refused one an Evaluate only. Needs strace.
set -euo pipefail
BIN=${1:-target/release}
N=${2:-40}
PORT=${3:-50991}
command -v strace >/dev/null || { echo "sync-count.sh: needs strace" >&2; exit 1; }
DIR=$(mktemp -d)
trap 'kill "$DAEMON" 2>/dev/null || true; rm -rf "$DIR"' EXIT
cat > "$DIR/policy.yaml" <<'POLICY'
version: 1
name: sync-count
default: allow
rules:
  - id: no-rm-rf
    decision: deny
    reason: recursive deletes are refused
    match: { channel: exec, command: "rm -rf *" }
POLICY
"$BIN/wardend" serve --db "sqlite://$DIR/warden.db" --policy "$DIR/policy.yaml" \
    --listen "127.0.0.1:$PORT" >"$DIR/daemon.log" 2>&1 &
DAEMON=$!
run() { "$BIN/warden" exec --daemon "127.0.0.1:$PORT" -- "$@" >/dev/null 2>&1 || true; }
for _ in $(seq 1 30); do run true && grep -q . "$DIR/daemon.log" && break; sleep 0.2; done
run true
for kind in refused allowed; do
    strace -f -qq -p "$DAEMON" -e trace=fsync,fdatasync -c -o "$DIR/$kind.txt" &
    TRACER=$!
    sleep 0.5
    for i in $(seq 1 "$N"); do
        if [ "$kind" = refused ]; then run rm -rf "/nonexistent-$i"; else run true; fi
    done
    sleep 0.3
    kill -INT "$TRACER"
    wait "$TRACER" 2>/dev/null || true
    syncs=$(awk '$NF ~ /^f(data)?sync$/ {n += $4} END {print n + 0}' "$DIR/$kind.txt")
    echo "$N $kind runs: $syncs syncs"
done
