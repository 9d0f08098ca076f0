#!/bin/sh
# run.sh - every test of relayguard: unit tables and integration tests, each
# against the normal build and the AddressSanitizer+UBSan build.
# The last line is "N passed, N failed" (the total).
set -u
cd "$(dirname "$0")/.." || exit 1

passed=0
failed=0
skipped=0

# Integration test files run this many at a time (run.py -j), each in its own
# process: every test makes its own servers on free ports in its own temporary
# directories. The suite mostly waits (timeouts, queue runs, DNS), using about
# a fifth of one core per file, so 4 at a time fit 2 cores.
jobs=${TEST_JOBS:-4}

# run_suite NAME COMMAND... - the command's last "x: N passed, N failed[, N skipped]" counts.
run_suite() {
	name=$1
	shift
	start=$(date +%s)
	out=$("$@" 2>&1)
	rc=$?
	# where the time goes: run.py's files of 10 s or more and its slowest tests
	printf '%s\n' "$out" | awk '/^time: / && $2 + 0 >= 10 || /^slow: /'
	took=$(($(date +%s) - start))
	[ "$took" -lt 2 ] || echo "$name: $took s"
	printf '%s\n' "$out" | grep -E '(^FAIL|^ERROR|: [0-9]+ passed, [0-9]+ failed|ERROR: (Address|Leak)Sanitizer|runtime error:|\.\.\. skipped )' | tail -n 60
	# unittest's report of what failed (tracebacks and messages), so a CI log says why
	printf '%s\n' "$out" | awk '/^=====/ { on = 1 } /^Ran [0-9]+ tests? in/ { on = 0 } on' |
		head -n 300
	line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	if [ -z "$line" ]; then
		printf '%s\n' "$out" | tail -n 30
		echo "$name: no result line (exit $rc): counted as 1 failed"
		failed=$((failed + 1))
		return
	fi
	p=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/; s/^([0-9]+) passed.*/\1/')
	f=$(printf '%s' "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
	s=$(printf '%s' "$line" | sed -nE 's/.*failed, ([0-9]+) skipped.*/\1/p')
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + ${s:-0}))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "$name: exit status $rc with no failed test: counted as 1 failed"
		failed=$((failed + 1))
	fi
}

for t in build/unit/test_*; do
	run_suite "$t" "$t"
done
for t in build/unit-asan/test_*; do
	run_suite "$t (asan)" "$t"
done
run_suite integration python3 tests/integration/run.py -j "$jobs" --binary build/relayguard
# test_peers_lab tests the peer lab itself (Postfix, Exim and OpenSMTPD as the
# probe tests find them): it never starts relayguard or a tool built from its
# code, so the sanitized build has nothing to add there.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	run_suite "integration (asan)" python3 tests/integration/run.py -j "$jobs" \
	--exclude test_peers_lab --binary build/relayguard-asan

# Under CI=true nothing may pass by skipping: a skipped test hides a package
# missing from scripts/deps.sh (tests use harness.require(), which fails
# there instead; this catches any skip that does not).
if [ "${CI:-}" = true ] && [ "$skipped" -gt 0 ]; then
	echo "CI=true: $skipped skipped tests (listed above as '... skipped'), each counted as failed"
	failed=$((failed + skipped))
fi

echo
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
