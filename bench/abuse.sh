#!/bin/sh
# abuse.sh - the cost of the abuse checks per message, in-process and through
# a redis-server on a loopback port (see bench/README.md, "Abuse control").
#   sh bench/abuse.sh        (from anywhere; `make bench-abuse` does this)
# Knobs: BENCH_MESSAGES (200000 in-process; a tenth of it through Redis).
# It only reports: no timing assertions.
set -u
cd "$(dirname "$0")/.." || exit 1
N=${BENCH_MESSAGES:-200000}
BENCH=build/bench-tools/abuse_bench
make --no-print-directory "$BENCH" >&2 || exit 1
if ! command -v redis-server >/dev/null 2>&1; then
	"$BENCH" "$N"
	echo "redis-server not installed (sh scripts/deps.sh test): no Redis figures"
	exit 0
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DIR=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --dir "$DIR" \
	>/dev/null 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null; wait $RPID 2>/dev/null; rm -rf "$DIR"' EXIT
sleep 0.5
"$BENCH" "$N" "redis://127.0.0.1:$PORT/0"
echo "two processes against the same Redis at once:"
("$BENCH" "$N" "redis://127.0.0.1:$PORT/0" | grep AUTH) &
OTHER=$!
"$BENCH" "$N" "redis://127.0.0.1:$PORT/0" | grep AUTH
wait $OTHER
