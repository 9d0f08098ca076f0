#!/bin/sh
# dkim.sh - DKIM signing cost per message (RSA-2048, Ed25519) and verification
# speed against python3-dkim on the same 1,000 messages (make bench-dkim).
set -e
dir=$(mktemp -d /tmp/relayguard-dkim-bench-XXXXXX)
trap 'rm -rf "$dir"' EXIT
build/bench-tools/dkim_bench "$dir" "${DKIM_BENCH_MESSAGES:-1000}"
/usr/bin/python3 bench/dkim_bench.py "$dir"
