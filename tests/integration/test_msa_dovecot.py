"""test_msa_dovecot.py - SMTP AUTH through a real Dovecot (smtpd_sasl_type = dovecot).

The set-up of a Mailcow-style install: relayguard is the MSA, Dovecot owns the
users. Dovecot (dovecot-core) runs on loopback with its own passwd-file; the
clients are swaks and smtplib from 127.0.0.9.
"""
import os
import smtplib
import unittest

import dovecot_lab
import harness
from harness import Conn, Server, UNTRUSTED, swaks
from test_msa import b64, plain, wait_deferred

SKIP = dovecot_lab.skip_reason()


@harness.requires(SKIP is None, dovecot_lab.PACKAGE, SKIP)
class DovecotBackend(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dv = dovecot_lab.Dovecot(users={'alice@example.com': 'alice-secret',
                                            'bob@example.com': ('bob-secret', 'BLF-CRYPT')})
        cls.servers = []

    @classmethod
    def tearDownClass(cls):
        for srv in cls.servers:
            try:
                srv.stop()
            finally:
                srv.cleanup()
        cls.dv.cleanup()

    def server(self, path):
        srv = Server(overrides={
            'myhostname': 'mx.example.com', 'mydestination': 'example.com',
            'local_recipient_maps': 'inline:{postmaster, alice, bob}',
            'smtpd_sasl_auth_enable': 'yes', 'smtpd_sasl_type': 'dovecot',
            'smtpd_sasl_path': path, 'smtpd_sasl_failure_delay': '0',
            'smtpd_sasl_failure_limit': '1000', 'smtpd_sasl_authenticated_header': 'yes'})
        self.servers.append(srv)
        return srv

    def test_swaks_logs_in_through_dovecot_and_relays(self):
        srv = self.server(self.dv.socket_path)
        rc, out = swaks(srv.sub_port, ['--tls', '--auth', 'PLAIN', '--auth-user',
                                       'Alice@Example.com', '--auth-password', 'alice-secret',
                                       '-f', 'alice@example.com', '-t', 'friend@example.net'])
        self.assertEqual(rc, 0, out)
        self.assertIn('235 2.7.0', out)
        deferred = wait_deferred(srv)
        self.assertEqual(len(deferred), 1)
        with open(os.path.join(srv.queue_dir, 'deferred', deferred[0])) as f:
            # Dovecot's canonical name (auth_username_format = %Lu), not what was typed
            self.assertIn('(Authenticated sender: alice@example.com)', f.read())

    def test_login_mechanism_and_inet_socket(self):
        srv = self.server(self.dv.inet)
        with smtplib.SMTP_SSL('127.0.0.1', srv.subs_port, source_address=(UNTRUSTED, 0),
                              context=harness.tls_context(), timeout=10) as s:
            s.ehlo('c.example.org')
            code, _ = s.docmd('AUTH LOGIN', b64('bob@example.com'))
            self.assertEqual(code, 334)
            code, _ = s.docmd(b64('bob-secret'))
            self.assertEqual(code, 235)

    def test_wrong_password_and_unknown_user_look_the_same(self):
        srv = self.server(self.dv.socket_path)
        with Conn(srv.subs_port, tls=True) as c:
            c.cmd('EHLO c.example.org')
            wrong = c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'nope'))
            unknown = c.cmd('AUTH PLAIN ' + plain('nobody@example.com', 'nope'))
        self.assertEqual(wrong, (535, '5.7.8 Error: authentication failed'))
        self.assertEqual(unknown, wrong)
        self.assertIsNotNone(srv.wait_log(r'auth-failed .*client=127\.0\.0\.9 '
                                          r'user=nobody@example\.com'))

    def test_dovecot_down_is_a_temporary_failure_then_recovers(self):
        srv = self.server(self.dv.socket_path)
        with Conn(srv.subs_port, tls=True) as c:
            c.cmd('EHLO c.example.org')
            self.assertEqual(c.cmd('AUTH PLAIN ' + plain('alice@example.com',
                                                         'alice-secret'))[0], 235)
        self.dv.stop()
        try:
            with Conn(srv.subs_port, tls=True, timeout=20) as c:
                c.cmd('EHLO c.example.org')
                code, text = c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'alice-secret'))
                self.assertEqual((code, text), (454, '4.7.0 Temporary authentication failure'))
                self.assertEqual(c.cmd('NOOP')[0], 250, 'the session goes on')
        finally:
            self.dv.start()
        with Conn(srv.subs_port, tls=True) as c:
            c.cmd('EHLO c.example.org')
            self.assertEqual(c.cmd('AUTH PLAIN ' + plain('alice@example.com',
                                                         'alice-secret'))[0], 235)
        self.assertIsNotNone(srv.wait_log(r'auth-tempfail .*client=127\.0\.0\.9'))


if __name__ == '__main__':
    unittest.main()
