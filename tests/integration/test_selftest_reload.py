"""test_selftest_reload.py - a reload the relay self-test refuses is not a death.

The server keeps running on its configuration when SIGHUP finds a file on
which a stranger could relay, so its log must not say "fatal" (monitoring
alerts on it as on a crashed MTA) nor "not starting": the trick lines and
the verdict are errors, and the verdict says the running configuration stays.
At start the same file still gives fatal lines and no server (test_selftest).
"""
import os
import signal
import unittest

from harness import UNTRUSTED, Conn, Server

RELAY_DENIED = 554


def set_param(srv, name, value):
    """name = value in the server's main.cf, renamed into place as editors do."""
    with open(srv.config_path) as f:
        lines = [l for l in f.read().splitlines() if l.split('=', 1)[0].strip() != name]
    tmp = srv.config_path + '.new'
    with open(tmp, 'w') as f:
        f.write('\n'.join(lines + ['%s = %s' % (name, value)]) + '\n')
    os.rename(tmp, srv.config_path)


def stranger_rcpt(port):
    """A stranger's RCPT to another domain: the reply code."""
    with Conn(port, source=UNTRUSTED) as c:
        c.cmd('EHLO stranger.example')
        c.cmd('MAIL FROM:<a@stranger.example>')
        return c.cmd('RCPT TO:<victim@example.net>')[0]


class RefusedReload(unittest.TestCase):

    def test_refused_reload_logs_errors_not_fatal(self):
        with Server() as srv:
            set_param(srv, 'mynetworks', '0.0.0.0/0')
            mark = srv.mark()
            srv.proc.send_signal(signal.SIGHUP)
            log = srv.wait_log(r'reload-refused', since=mark, timeout=15)
            self.assertIsNotNone(log, srv.log_since(mark))
            lines = srv.log_since(mark).splitlines()
            self.assertEqual([l for l in lines if ' fatal ' in l], [], 'a "fatal" line for a '
                             'server that runs on')
            self.assertNotIn('not starting', srv.log_since(mark))
            tricks = [l for l in lines if ' error open-relay trick=' in l]
            self.assertTrue(any('plain (third-party relay)' in l for l in tricks),
                            srv.log_since(mark))
            verdict = [l for l in lines if 'relay-selftest-failed' in l]
            self.assertEqual(len(verdict), 1, lines)
            self.assertIn(' error relay-selftest-failed tricks=%d ' % len(tricks), verdict[0])
            self.assertIn('reload refused: a stranger could relay through the edited '
                          'configuration; the running configuration stays', verdict[0])
            # it did run on, with the old policy
            self.assertTrue(srv.alive())
            self.assertEqual(stranger_rcpt(srv.port), RELAY_DENIED)


if __name__ == '__main__':
    unittest.main()
