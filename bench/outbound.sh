#!/bin/sh
# outbound.sh - outbound delivery figures: smtp-source -> relayguard -> smtp-sink
# against the same through Postfix, interleaved, and relayguard on a queue of
# 100,000 deferred messages (see "Outbound delivery" in bench/README.md).
#   sh bench/outbound.sh [options of bench/outbound_lab.py]
# (`make bench-outbound` does this after scripts/deps.sh test.)  Needs root: the
# peer lab starts Postfix (build/peers, from scripts/peers.sh) as root.
# It only reports: no timing assertions.  Exit 0 on a completed run, 1 if the run
# itself could not be carried out (a server did not start, messages lost...).
# Knobs (environment): BENCH_BIN (build/relayguard) BENCH_ROUNDS (2)
#   BENCH_MESSAGES (2000) BENCH_SESSIONS (20) BENCH_SIZE (4096)
#   BENCH_DEFERRED (100000) BENCH_TMPDIR (/tmp: parent of the temp dir)
set -u
cd "$(dirname "$0")/.." || exit 1
BIN=${BENCH_BIN:-build/relayguard}
TOOLS=build/bench-tools
say() { printf 'bench-outbound: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
	say "the peer lab needs root"
	exit 1
fi
if [ ! -x "$BIN" ]; then
	say "building $BIN"
	make --no-print-directory "$BIN" >&2 || { say "build failed"; exit 1; }
fi
. bench/tools.sh
get_postfix_tools || { say "no smtp-source/smtp-sink"; exit 1; }
# a missing shared library shows up as a loader error instead of the usage
case $(LD_LIBRARY_PATH=$TOOLS/usr/lib/postfix "$TOOLS/usr/sbin/smtp-sink" 2>&1) in
*usage:*) ;;
*) say "smtp-sink does not run"; exit 1 ;;
esac
BENCH_BIN=$BIN exec "${PYTHON:-python3}" bench/outbound_lab.py "$@"
