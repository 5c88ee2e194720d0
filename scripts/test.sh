#!/usr/bin/env bash
# Warden's one test command (the README's, and what .ci/run calls).
#
# On a fresh machine it makes sure PostgreSQL is running on 127.0.0.1:5432 (starting it,
# or installing it with apt when absent) and fails loudly if it cannot: the PostgreSQL
# tests never skip. Then: formatting, clippy with -D warnings, the binaries the
# end-to-end tests drive, and every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=127.0.0.1
PG_PORT=5432
export WARDEN_TEST_PG="${WARDEN_TEST_PG:-postgres://postgres@${PG_HOST}:${PG_PORT}/postgres}"

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }

start_cluster() {
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    [ -n "$version" ] || return 1
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_up && return 0; sleep 1; done
    return 1
}

ensure_postgres() {
    if pg_up; then return 0; fi
    echo "test.sh: PostgreSQL is not answering on ${PG_HOST}:${PG_PORT}; starting it" >&2
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! start_cluster; then
        echo "test.sh: installing PostgreSQL with apt" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq postgresql >/dev/null
        local version hba
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        hba="/etc/postgresql/${version}/main/pg_hba.conf"
        # A throwaway test cluster: trust local TCP connections, as the tests expect.
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        start_cluster || true
    fi
    if ! pg_up; then
        echo "test.sh: FAILED: PostgreSQL could not be started on ${PG_HOST}:${PG_PORT}" >&2
        exit 1
    fi
}

ensure_postgres
# tests/tests/shell.rs drives `warden shell` through a pty with tests/pty/drive.py
# (Python standard library only).
command -v python3 >/dev/null 2>&1 || {
    echo "test.sh: installing python3 with apt (the pty driver of the shell tests)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3 >/dev/null
}
# tests/tests/proxy.rs drives real clients through `warden proxy`: curl, git, Python
# `requests`, with certificates made by the openssl CLI.
for tool in curl git openssl; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "test.sh: installing $tool with apt (a client in the proxy tests)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "$tool" >/dev/null
    }
done
# The Python test peers, pinned, in a venv of their own (target/pyenv; the tests find it
# there, or at WARDEN_TEST_PYTHON, and fail without it): the `mcp` SDK on both sides of
# `warden mcp` (tests/tests/mcp.rs), `requests` through `warden proxy`
# (tests/tests/proxy.rs), the official `openai` SDK in front of `warden llm`
# (tests/tests/llm.rs).
MCP_PY_VERSION=2.3.0
PY_PEERS=("mcp==$MCP_PY_VERSION" "requests==2.34.2" "openai==3.57.0")
if ! target/pyenv/bin/python -c "import requests, openai, importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_PY_VERSION')" 2>/dev/null; then
    echo "test.sh: installing the Python test peers into target/pyenv: ${PY_PEERS[*]}" >&2
    python3 -m venv target/pyenv 2>/dev/null || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv target/pyenv
    }
    target/pyenv/bin/pip install --quiet "${PY_PEERS[@]}"
fi
# ... and a published MCP server from npm as an upstream, pinned, in target/npm.
MCP_FS_VERSION=2026.8.31
MCP_FS_PKG=target/npm/node_modules/@modelcontextprotocol/server-filesystem/package.json
if ! grep -q "\"version\": \"$MCP_FS_VERSION\"" "$MCP_FS_PKG" 2>/dev/null; then
    command -v npm >/dev/null 2>&1 || {
        echo "test.sh: installing node and npm with apt (the MCP tests' filesystem server)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq nodejs npm >/dev/null
    }
    echo "test.sh: installing @modelcontextprotocol/server-filesystem $MCP_FS_VERSION into target/npm" >&2
    npm install --silent --no-audit --no-fund --prefix target/npm \
        "@modelcontextprotocol/server-filesystem@$MCP_FS_VERSION"
fi
psql "$WARDEN_TEST_PG" -qtAc 'select 1' >/dev/null || {
    echo "test.sh: FAILED: cannot connect to $WARDEN_TEST_PG (trust auth for 127.0.0.1 expected)" >&2
    exit 1
}

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Again with `wardend bench engine`'s Cedar side (feature cedar-bench, never in the
# default build). Same package selection, so only cedar-policy's crates (~1 min of
# check builds) and the crates that depend on warden-server are checked anew.
cargo clippy --workspace --all-targets --features warden-server/cedar-bench --locked -- -D warnings
cargo build --workspace --bins --locked
cargo test --workspace --locked
# The command analyzer against the public benchmark data (../shared/data/): fails when
# detection, pass rate, score or macro detection drop below the goals (docs/BENCHMARKS.md).
DATA=""
for d in "${WARDEN_BENCH_DATA:-}" ../shared/data /work/shared/data; do
    if [ -n "$d" ] && [ -f "$d/gtfobins_commands.json" ]; then DATA="$d"; break; fi
done
if [ -z "$DATA" ]; then
    echo "test.sh: FAILED: benchmark data not found (../shared/data; set WARDEN_BENCH_DATA)" >&2
    exit 1
fi
if ! target/debug/wardend bench shell --rounds 1 --check-goals \
    --malicious "$DATA/gtfobins_commands.json" --harmless "$DATA/harmless_commands.json" \
    > target/bench-shell.txt; then
    cat target/bench-shell.txt
    exit 1
fi
head -n 12 target/bench-shell.txt
