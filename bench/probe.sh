#!/bin/sh
# probe.sh - nmap's smtp-open-relay script against `relayguard probe`, timed on
# the real peer lab (Postfix, Exim, OpenSMTPD on loopback; tests/peers/lab.py).
#   sh bench/probe.sh [--kinds postfix,exim] [--many KIND:MODE] [--no-many]
# (`make bench-probe` does this after scripts/deps.sh test.)  Needs root.
# It only reports a table: no timing assertion.  Exit 0 on a completed run, 1
# when no peer could be started or nmap is missing.  Without build/relayguard
# its rows say "relayguard probe not built" and nmap is still measured.
# Knobs (environment): BENCH_BIN (build/relayguard), BENCH_PROBE_MANY (postfix:secure)
set -u
cd "$(dirname "$0")/.." || exit 1
if [ "$(id -u)" -ne 0 ]; then
	echo "bench-probe: the peer lab needs root" >&2
	exit 1
fi
exec "${PYTHON:-python3}" bench/probe_lab.py "$@"
