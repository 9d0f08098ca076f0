#!/usr/bin/env python3
"""run.py - run the relayguard integration tests.

usage: python3 tests/integration/run.py [--binary PATH] [-q] [-j N] [--exclude FILE]
                                        [FILTER...]

FILTER selects tests whose id (e.g. test_relay.RelayTricks.test_tricks)
contains it.  -j N runs N test files at a time, each in its own process
(every test makes its own servers on free ports in its own temporary
directories, so files do not share anything), slowest files first; a file's
output is printed whole when it ends.  --exclude FILE (e.g. test_peers_lab)
leaves a file out.  Each file's time and the slowest tests are listed at the
end.  The last line printed is always
    integration: N passed, N failed, N skipped
(errors count as failed); the exit status is 1 when anything failed.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


class CountingResult(unittest.TextTestResult):
    """Counts passes and times each test; unittest itself records each failing
    subTest as a failure."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = 0
        self.test_times = {}    # test id -> seconds (the method with setUp/tearDown)
        self.file_times = {}    # module -> seconds, with its classes' setUpClass/tearDownClass
        self._last_stop = time.time()

    def startTest(self, test):
        # the time since the previous test ended (the last class's tearDownClass,
        # this class's setUpClass) is counted to this test's module
        now = time.time()
        module = test.id().split('.')[0]
        self.file_times[module] = self.file_times.get(module, 0) + now - self._last_stop
        self._test_start = now
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self._last_stop = time.time()
        took = self._last_stop - self._test_start
        self.test_times[test.id()] = took
        module = test.id().split('.')[0]
        self.file_times[module] = self.file_times.get(module, 0) + took

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1


# Seconds a file took in the normal build's suite (2-core machine, ASan about
# twice as long). Only the order of -j's work comes from this: longest first,
# so no long file starts last; a file not listed counts as short.
EXPECTED = {
    'test_probe_peers': 73, 'test_outbound_tls': 65, 'test_abuse': 42, 'test_dkim_interop': 36,
    'test_audit_peers': 31, 'test_msa': 30, 'test_outbound': 29, 'test_delivery': 27,
    'test_limits': 25, 'test_probe': 23, 'test_dovecot_client': 23, 'test_hardening': 23,
    'test_peers_lab': 20, 'test_dns_route': 18, 'test_session_pending': 17, 'test_msgauth': 16,
    'test_accept_flow': 15, 'test_demo': 15, 'test_dns': 13, 'test_lmtp': 11,
    'test_robustness': 9, 'test_queue_cli': 9, 'test_protocol': 8,
}
RESULT = re.compile(r'^(\S+): (\d+) passed, (\d+) failed, (\d+) skipped$')


def print_times(file_times, test_times, slowest=15):
    """Each file's time, slowest first, and the slowest tests: where CI time goes."""
    print()
    for module, secs in sorted(file_times.items(), key=lambda kv: -kv[1]):
        print('time: %7.1fs %s' % (secs, module))
    for test_id, secs in sorted(test_times.items(), key=lambda kv: -kv[1])[:slowest]:
        print('slow: %7.1fs %s' % (secs, test_id))


def select(suite, filters):
    if not filters:
        return suite
    return unittest.TestSuite([t for t in iter_tests(suite) if any(f in t.id() for f in filters)])


def run_here(suite, quiet, label):
    """Run SUITE in this process; prints the times and LABEL's result line."""
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=1 if quiet else 2,
                                     resultclass=CountingResult)
    start = time.time()
    result = runner.run(suite)
    elapsed = time.time() - start
    # A test with failing subtests counts once per failing subtest; errors
    # (including setUpClass/tearDownClass ones) count as failed.
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print_times(result.file_times, result.test_times)
    print('time: %.1fs' % elapsed)
    print('%s: %d passed, %d failed, %d skipped' % (label, result.passed, failed,
                                                    len(result.skipped)))
    return 1 if failed else 0


class Worker:
    """One test file run by a child run.py (--file), its output kept until it ends."""

    def __init__(self, name, opts, slot):
        self.name = name
        self.slot = slot
        self.start = time.time()
        cmd = [sys.executable, os.path.abspath(__file__), '--file', name + '.py']
        cmd += ['-q'] if opts.quiet else []
        # its own share of the ports harness.free_port() picks from
        env = dict(os.environ, RG_PORT_SLOT='%d/%d' % (slot, opts.jobs))
        self.proc = subprocess.Popen(cmd + opts.filters, stdout=subprocess.PIPE, env=env,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # drained by a thread: a file's output can be larger than a pipe holds
        self.chunks = []
        self.reader = threading.Thread(target=lambda: self.chunks.append(self.proc.stdout.read()))
        self.reader.start()

    def finish(self):
        """Print the file's output; ([passed, failed, skipped], {file: s}, {test id: s})."""
        rc = self.proc.wait()
        self.reader.join()
        out = b''.join(self.chunks).decode('utf-8', 'replace')
        counts, times, slow, keep = None, {}, {}, []
        for line in out.splitlines():
            m = RESULT.match(line)
            if m and m.group(1) == self.name:
                counts = [int(m.group(k)) for k in (2, 3, 4)]
            elif line.startswith('time: ') and ' ' in line.strip()[6:].strip():
                secs, _, name = line[6:].strip().partition('s ')
                times[name] = float(secs)
            elif line.startswith('slow: '):
                secs, _, name = line[6:].strip().partition('s ')
                slow[name] = float(secs)
            elif not line.startswith('time: ') and line != 'binary: ' + os.environ['RELAYGUARD_BIN']:
                keep.append(line)
        print('\n'.join(keep).strip('\n'), flush=True)
        if counts is None:
            print('%s: no result line (exit %s): counted as 1 failed' % (self.name, rc))
            counts = [0, 1, 0]
        elif rc != 0 and counts[1] == 0:
            print('%s: exit status %s with no failed test: counted as 1 failed' % (self.name, rc))
            counts[1] = 1
        if not times and sum(counts):
            times[self.name] = time.time() - self.start
        return counts, times, slow


def run_parallel(names, jobs, opts):
    """Each of NAMES (test files) in its own process, JOBS at a time, longest first."""
    todo = sorted(names, key=lambda n: (-EXPECTED.get(n, 1), n))
    running, total, file_times, test_times = [], [0, 0, 0], {}, {}
    start = time.time()
    while todo or running:
        while todo and len(running) < jobs:
            slot = min(set(range(jobs)) - {w.slot for w in running})
            running.append(Worker(todo.pop(0), opts, slot))
        done = next((w for w in running if w.proc.poll() is not None), None)
        if done is None:
            time.sleep(0.05)
            continue
        running.remove(done)
        counts, times, slow = done.finish()
        total = [a + b for a, b in zip(total, counts)]
        file_times.update(times)
        test_times.update(slow)
    print_times(file_times, test_times)
    print('time: %.1fs' % (time.time() - start))
    print('integration: %d passed, %d failed, %d skipped' % tuple(total))
    return 1 if total[1] else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--binary', help='relayguard binary (sets RELAYGUARD_BIN)')
    ap.add_argument('-q', '--quiet', action='store_true', help='do not list each test')
    ap.add_argument('-j', '--jobs', type=int, default=1, help='test files run at a time')
    ap.add_argument('--exclude', action='append', default=[],
                    help='leave out this test file (name without .py)')
    ap.add_argument('--file', help=argparse.SUPPRESS)  # a -j worker: this file only
    ap.add_argument('filters', nargs='*', help='run only tests whose id contains one of these')
    opts = ap.parse_args()
    if opts.binary:
        os.environ['RELAYGUARD_BIN'] = os.path.abspath(opts.binary)
    sys.path.insert(0, HERE)
    import harness
    bin_path = harness.binary()
    os.environ['RELAYGUARD_BIN'] = bin_path
    if not os.access(bin_path, os.X_OK):
        print('relayguard binary not found or not executable: %s' % bin_path)
        print('integration: 0 passed, 1 failed, 0 skipped')
        return 1

    loader = unittest.TestLoader()
    if opts.file:
        suite = loader.discover(HERE, pattern=opts.file, top_level_dir=HERE)
        return run_here(select(suite, opts.filters), opts.quiet, opts.file[:-3])
    names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(HERE, 'test_*.py')))
    for name in opts.exclude:
        if name not in names:
            ap.error('--exclude %s: no such test file' % name)
        names.remove(name)
        print('left out: %s' % name)
    print('binary: %s' % bin_path, flush=True)
    suites = {n: select(loader.discover(HERE, pattern=n + '.py', top_level_dir=HERE),
                        opts.filters) for n in names}
    if opts.jobs > 1:
        return run_parallel([n for n in names if suites[n].countTestCases()], opts.jobs, opts)
    return run_here(unittest.TestSuite(suites[n] for n in names), opts.quiet, 'integration')


if __name__ == '__main__':
    sys.exit(main())
