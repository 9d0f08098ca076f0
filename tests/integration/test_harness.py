"""test_harness.py - the harness itself catches what it promises to catch."""
import os
import re
import unittest
from unittest import mock

import harness
from harness import Server, ServerError


class HarnessSelfTest(unittest.TestCase):
    def test_sanitizer_report_fails_the_stop(self):
        s = Server(start=False)
        try:
            for marker in ('==1==ERROR: AddressSanitizer: heap-use-after-free',
                           '==1==ERROR: LeakSanitizer: detected memory leaks',
                           'src/x.c:1:2: runtime error: signed integer overflow'):
                with open(s.log_path, 'w') as f:
                    f.write('info listening\n' + marker + '\n')
                with self.subTest(marker=marker):
                    with self.assertRaises(ServerError):
                        s.check_sanitizers()
        finally:
            s.cleanup()

    def test_nonzero_exit_fails_the_stop(self):
        s = Server(extra='smtpd_timeout = 1s')
        try:
            s.proc.kill()
            s.proc.wait()
            s.proc.returncode = -9
            with self.assertRaises(ServerError):
                s.stop()
        finally:
            s.cleanup()



class RequireSelfTest(unittest.TestCase):
    """A missing component skips a test on a developer's machine and fails it
    under CI=true, naming the package to install."""

    def run_case(self, ci, decorate_class):
        deco = harness.requires(False, 'dnsmasq-base', 'a DNS server')

        class Case(unittest.TestCase):
            ran = []

            @classmethod
            def setUpClass(cls):
                cls.ran.append('setUpClass')

            def test_x(self):
                self.ran.append('test_x')
        if decorate_class:
            Case = deco(Case)
        else:
            Case.test_x = deco(Case.test_x)
        result = unittest.TestResult()
        with mock.patch.dict(os.environ, {'CI': ci}):
            unittest.TestSuite([Case('test_x')]).run(result)
        return result, Case.ran

    def test_skips_outside_ci(self):
        for decorate_class in (False, True):
            with self.subTest(decorate_class=decorate_class):
                result, ran = self.run_case('', decorate_class)
                self.assertEqual((len(result.skipped), len(result.failures) + len(result.errors)), (1, 0))
                self.assertIn('dnsmasq-base', result.skipped[0][1])
                self.assertNotIn('test_x', ran)

    def test_fails_under_ci_naming_the_package(self):
        for decorate_class in (False, True):
            with self.subTest(decorate_class=decorate_class):
                result, ran = self.run_case('true', decorate_class)
                problems = result.failures + result.errors
                self.assertEqual((len(result.skipped), len(problems)), (0, 1))
                self.assertIn('needs dnsmasq-base', problems[0][1])
                self.assertNotIn('test_x', ran)

    def test_met_condition_runs_the_test(self):
        with mock.patch.dict(os.environ, {'CI': 'true'}):
            harness.require(True, 'openssl', 'never raised')
        self.assertIs(harness.requires(True, 'openssl', 'x')(len), len)

    def test_no_test_skips_except_through_require(self):
        # a bare skipTest()/SkipTest skips under CI=true as well, and tells
        # nobody what to install: every skip goes through harness.require
        bare = re.compile(r'\.skipTest\(|raise\s+(unittest\.)?SkipTest|@unittest\.skip')
        top = os.path.dirname(os.path.abspath(__file__))
        found = []
        for d in (top, os.path.join(os.path.dirname(top), 'peers')):
            for name in sorted(os.listdir(d)):
                if not name.endswith('.py') or name == 'harness.py':
                    continue
                with open(os.path.join(d, name)) as f:
                    for n, line in enumerate(f, 1):
                        if bare.search(line) and 'bare =' not in line:
                            found.append('%s:%d: %s' % (name, n, line.strip()))
        self.assertEqual(found, [])


if __name__ == '__main__':
    unittest.main()
