"""test_harness.py - the harness itself catches what it promises to catch."""
import unittest

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


if __name__ == '__main__':
    unittest.main()
