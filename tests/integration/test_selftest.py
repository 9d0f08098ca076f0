"""test_selftest.py - relayguard serve audits its own configuration at start.

A configuration on which a stranger could relay does not start (exit 78, one
fatal "open-relay" line per accepted trick); relay_selftest = warn starts it
with one "open-relay-risk" warning per trick; relay_selftest = off starts it
with a warning that the check is off.  A safe configuration starts silently.
"""
import subprocess
import unittest

from harness import Server, binary, smtp_session


class SelfTest(unittest.TestCase):

    def server(self, **overrides):
        s = Server(overrides=overrides, start=False)
        self.addCleanup(s.cleanup)
        return s

    def test_open_relay_does_not_start(self):
        s = self.server(mynetworks='0.0.0.0/0')
        p = subprocess.run([binary(), 'serve', '-c', s.config_path], capture_output=True,
                           text=True, timeout=30, cwd=s.dir)
        self.assertEqual(p.returncode, 78, p.stderr)
        tricks = [l for l in p.stderr.splitlines() if ' fatal open-relay ' in l]
        # each accepted trick is named with its envelope and what let it through
        self.assertTrue(any('plain (third-party relay)' in l and
                            'RCPT TO:<relaytest@example.net>' in l and
                            'accepted by permit_mynetworks in smtpd_relay_restrictions' in l
                            for l in tricks), p.stderr)
        self.assertTrue(any('mynetworks-covers-internet' in l for l in tricks), p.stderr)
        self.assertIn('relay-selftest-failed tricks=%d' % len(tricks), p.stderr)
        self.assertNotIn('listening', p.stderr)

    def test_warn_starts_loudly(self):
        s = self.server(mynetworks='0.0.0.0/0', relay_selftest='warn')
        with s.start():
            risks = [l for l in s.log_lines() if 'open-relay-risk selftest=relayed' in l]
            self.assertGreater(len(risks), 20, s.tail())
            self.assertTrue(any('plain (third-party relay)' in l for l in risks))
            # and it really is the open relay the self-test described
            replies = smtp_session(s.port, ['HELO a.example', 'MAIL FROM:<a@a.example>',
                                            'RCPT TO:<victim@example.net>', 'QUIT'])
            self.assertEqual(replies[3][0], 250)

    def test_off_says_so(self):
        s = self.server(mynetworks='0.0.0.0/0', relay_selftest='off')
        with s.start():
            self.assertTrue(any('relay-selftest-off' in l for l in s.log_lines()))
            self.assertFalse(any('selftest=relayed' in l for l in s.log_lines()))

    def test_safe_configuration_starts_quietly(self):
        s = self.server()
        with s.start():
            log = s.log()
        self.assertNotIn('open-relay', log)
        self.assertNotIn('selftest', log)

    def test_correct_configurations_start(self):
        # each of these was refused (exit 78) by an earlier self-test: a long
        # list ending in reject_unauth_destination, a bare relay_domains entry
        # that relayguard matches exactly, a trusted documentation network
        long_list = ', '.join(['permit_mynetworks'] + ['reject_non_fqdn_recipient'] * 70 +
                              ['reject_unauth_destination'])
        for overrides in ({'smtpd_relay_restrictions': long_list},
                          {'relay_domains': 'dyndns.org'},
                          {'mynetworks': '127.0.0.0/8 203.0.113.0/24'}):
            with self.subTest(overrides=list(overrides)):
                s = self.server(**overrides)
                with s.start():
                    log = s.log()
                self.assertIn('listening', log)
                self.assertNotIn('selftest', log)

    def test_half_the_internet_trusted_does_not_start(self):
        s = self.server(smtpd_relay_restrictions='permit_mynetworks, check_client_access '
                        'cidr:half.cidr, reject_unauth_destination')
        with open(s.dir + '/half.cidr', 'w') as f:
            f.write('0.0.0.0/1 OK\n128.0.0.0/2 OK\n')
        p = subprocess.run([binary(), 'serve', '-c', s.config_path], capture_output=True,
                           text=True, timeout=30, cwd=s.dir)
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn('forgeable-permit', p.stderr)

    def test_bad_value(self):
        s = self.server(relay_selftest='maybe')
        p = subprocess.run([binary(), 'serve', '-c', s.config_path], capture_output=True,
                           text=True, timeout=30, cwd=s.dir)
        self.assertEqual(p.returncode, 78)
        self.assertIn('relay_selftest: "maybe" is not enforce, warn or off', p.stderr)


if __name__ == '__main__':
    unittest.main()
