"""test_probe_msa.py - relayguard probe against relayguard's own submission ports.

The MSA (issue 3) and the probe (issue 4) meet: on 587 (STARTTLS) and 465
(implicit TLS) nothing relays without AUTH, and with --auth the probe sees that
relaying works only after a real login.
"""
import os
import tempfile
import unittest

import harness
from test_msa import make_passwd, msa_overrides
from test_probe import probe, tests_by_id


class ProbeTheMsa(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-pmsa-')
        os.chmod(cls.tmp, 0o755)
        passwd = os.path.join(cls.tmp, 'passwd')
        make_passwd(passwd, {'alice@example.com': ('SHA512-CRYPT', 'alice-secret')})
        cls.server = harness.Server(overrides=msa_overrides(passwd,
                                                            smtpd_sasl_failure_limit='1000'))

    @classmethod
    def tearDownClass(cls):
        harness.stop_server(cls.server, cls.tmp)

    def test_submission_port_with_starttls_and_auth(self):
        rc, objs, err = probe(['--starttls', '--port', str(self.server.sub_port), '--domain',
                               'example.com', '--auth', 'alice@example.com:alice-secret',
                               '127.0.0.1'])
        self.assertEqual(rc, 0, err)
        obj = objs[0]
        self.assertEqual(obj['verdict'], 'closed')
        self.assertEqual(obj['tls'], 'starttls')
        by = tests_by_id(obj)
        self.assertEqual(by['submission-noauth']['verdict'], 'denied')
        self.assertEqual(by['auth-relay']['verdict'], 'accepted-after-auth')
        self.assertEqual(by['plain']['verdict'], 'denied')
        self.assertEqual(self.server.queue_files('deferred'), [], 'the probe sent no DATA')

    def test_implicit_tls_with_a_wrong_password(self):
        rc, objs, err = probe(['--tls', '--domain', 'example.com', '--auth',
                               'alice@example.com:wrong',
                               '127.0.0.1:%d' % self.server.subs_port])
        by = tests_by_id(objs[0])
        self.assertEqual(objs[0]['tls'], 'implicit')
        self.assertEqual(by['auth-relay']['verdict'], 'auth-failed')
        self.assertEqual(by['submission-noauth']['verdict'], 'denied')
        self.assertNotEqual(objs[0]['verdict'], 'open')
        self.assertIsNotNone(self.server.wait_log(r'auth-failed .*user=alice@example\.com'))


if __name__ == '__main__':
    unittest.main()
