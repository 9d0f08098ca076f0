#!/usr/bin/env python3
"""run.py - run the relayguard integration tests.

usage: python3 tests/integration/run.py [--binary PATH] [-q] [FILTER...]

FILTER selects tests whose id (e.g. test_relay.RelayTricks.test_tricks)
contains it.  The last line printed is always
    integration: N passed, N failed, N skipped
(errors count as failed); the exit status is 1 when anything failed.
"""
import argparse
import os
import sys
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
    """Counts passes; unittest itself records each failing subTest as a failure."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--binary', help='relayguard binary (sets RELAYGUARD_BIN)')
    ap.add_argument('-q', '--quiet', action='store_true', help='do not list each test')
    ap.add_argument('filters', nargs='*', help='run only tests whose id contains one of these')
    opts = ap.parse_args()
    if opts.binary:
        os.environ['RELAYGUARD_BIN'] = os.path.abspath(opts.binary)
    sys.path.insert(0, HERE)
    import harness
    bin_path = harness.binary()
    if not os.access(bin_path, os.X_OK):
        print('relayguard binary not found or not executable: %s' % bin_path)
        print('integration: 0 passed, 1 failed, 0 skipped')
        return 1

    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern='test_*.py', top_level_dir=HERE)
    if opts.filters:
        keep = [t for t in iter_tests(suite) if any(f in t.id() for f in opts.filters)]
        suite = unittest.TestSuite(keep)
    print('binary: %s' % bin_path, flush=True)
    start = time.time()
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=1 if opts.quiet else 2,
                                     resultclass=CountingResult)
    result = runner.run(suite)
    elapsed = time.time() - start
    # A test with failing subtests counts once per failing subtest; errors
    # (including setUpClass/tearDownClass ones) count as failed.
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.passed
    print('time: %.1fs' % elapsed)
    print('integration: %d passed, %d failed, %d skipped' % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
