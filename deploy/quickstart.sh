#!/usr/bin/env bash
# quickstart.sh -- one command from a fresh Debian machine to a running
# auditwatch daemon.
#
#   deploy/quickstart.sh                 private redis-server on loopback,
#                                        demo traffic with a few injected gaps
#   deploy/quickstart.sh --redis URL     consume a real Caracal Redis instead
#                                        (no demo traffic is written to it)
#
# Any further arguments are passed to `auditwatch run`. Ctrl-C stops the
# daemon (it commits and acks what is in flight) and the private redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/install-deps.sh
aw_install_deps run

redis_url=${AUDITWATCH_REDIS:-}
if [ "${1:-}" = --redis ]; then redis_url=$2; shift 2; fi

build=build/release
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAW_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
aw="$build/auditwatch"

state=${AUDITWATCH_DEMO_DIR:-$PWD/.demo}
mkdir -p "$state"
chmod 700 "$state"

redis_pid=
cleanup() {
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    return 0
}
trap cleanup EXIT

if [ -z "$redis_url" ]; then
    # A private server on a free loopback port: redis-server exits at once
    # when the port is taken, so try a few random ones.
    for _ in $(seq 1 20); do
        port=$((20000 + RANDOM % 40000))
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$state" --logfile "$state/redis.log" &
        redis_pid=$!
        for _ in $(seq 1 50); do
            redis-cli -p "$port" ping >/dev/null 2>&1 && break
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.1
        done
        if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
        redis_pid=
    done
    [ -n "$redis_pid" ] || { echo "quickstart: could not start redis-server" >&2; exit 1; }
    redis_url="redis://127.0.0.1:$port"
    echo "quickstart: private redis-server at $redis_url (data in $state)" >&2

    # Demo keys: the same HMAC keys Caracal's producers would hold.
    for k in audit streams; do
        [ -s "$state/$k.key" ] || (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$state/$k.key")
    done
    # Caracal's variable names: both loadgen and the daemon read them.
    export AUDIT_HMAC_KEY_FILE="$state/audit.key" STREAMS_HMAC_KEY_FILE="$state/streams.key"
    "$build/loadgen" --redis "$redis_url" --events 20000 --rate 2000 --anomalies 12 \
        --truth "$state/truth.jsonl" >"$state/loadgen.log" 2>&1 &
    set -- --grace-missing 10 "$@"
    echo "quickstart: publishing 20,000 signed Caracal events with 12 injected gaps" >&2
fi

echo "quickstart: index at $state/auditwatch.db; in another terminal try:" >&2
echo "  $aw alerts --db $state/auditwatch.db" >&2
echo "  $aw status --db $state/auditwatch.db --redis $redis_url" >&2
"$aw" run --redis "$redis_url" --db "$state/auditwatch.db" --alerts-stdout "$@" || status=$?
exit "${status:-0}"
