"""test_msgauth_cache_review.py - what a review of the lookup cache, the key
cache and stages_need_data found.

* A trusted client on loopback (a webmail on the same host, logged in or in
  mynetworks; local users on the pickup socket count as 127.0.0.1 too) was
  never DKIM-signed unless dns_servers was set: the MAIL hook left such a
  client alone ("not checked": SPF, DKIM verification and DMARC would ask the
  world's DNS), so the transaction had no hook data and the signing stage had
  nothing to sign with (with stages_need_data it does not even run). Signing
  asks no DNS: it is done, and still nothing is checked (no
  Authentication-Results of ours, no SPF, no DNS question).

(The lookup cache's own findings are rows of tests/unit/test_dns.c.)
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import dnslab
import harness
from harness import Conn, Server
from test_dkim_interop import record_of
from test_msa import make_passwd, plain
from test_msgauth_trust import (COMMON, MX, USERS, crlf, delivered, message, named,
                                send_smtplib, write_table)


class LoopbackSigning(unittest.TestCase):
    """No dns_servers: loopback clients are not checked, but trusted ones are signed."""

    @classmethod
    def setUpClass(cls):
        dnslab.require_dnsmasq()
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-cache-review-')
        os.chmod(cls.tmp, 0o755)
        txt = {}
        for domain in ('a.example', 'b.example'):
            out = subprocess.run([harness.binary(), 'dkim', 'keygen', '--domain', domain,
                                  '--selector', 'k1', '--type', 'ed25519', '--out', cls.tmp],
                                 capture_output=True, text=True, check=True)
            txt['k1._domainkey.' + domain] = [record_of(out.stdout)[0]]
            os.chmod(os.path.join(cls.tmp, '%s.k1.pem' % domain), 0o644)
        # the verifier's DNS only: the server is given none (dns_servers unset)
        cls.dns = dnslab.DnsLab(txt=txt)
        cls.dns.start()
        cls.passwd = os.path.join(cls.tmp, 'passwd')
        make_passwd(cls.passwd, users=USERS)
        table = os.path.join(cls.tmp, 'signing_table')
        write_table(table, ['%s k1 %s/%s.k1.pem' % (d, cls.tmp, d)
                            for d in ('a.example', 'b.example')])
        cls.srv = Server(overrides=dict(
            COMMON, smtpd_sasl_auth_enable='yes', smtpd_sasl_path=cls.passwd,
            smtpd_sasl_failure_delay='0', dkim_signing_table=table))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()
        cls.dns.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def verify(self, msg):
        r = subprocess.run([harness.binary(), 'dkim', 'verify', '--dns', self.dns.servers],
                           input=crlf(msg), capture_output=True, timeout=30)
        return r.returncode, r.stdout.decode()

    def assert_signed_unchecked(self, got, domain, mark):
        self.assertEqual(len(named(got, 'DKIM-Signature')), 1, got.decode('utf-8', 'replace'))
        rc, out = self.verify(got)
        self.assertEqual(rc, 0, out)
        self.assertIn('dkim=pass header.d=%s' % domain, out)
        # still not checked: nothing of ours but the signature
        for f in named(got, 'Authentication-Results') + named(got, 'Received-SPF'):
            self.assertNotIn(MX.lower(), f.lower(), f)
        log = self.srv.log_since(mark)
        self.assertIsNone(re.search(r' (spf|dmarc|dkim) ', log), log)

    def test_mynetworks_client_on_loopback_signed(self):
        mark = self.srv.mark()
        before = self.srv.maildir('example.net', 'bob')
        send_smtplib(self.srv, message('B <b@b.example>', 'loopback mynetworks'),
                     sender='b@b.example')
        self.assert_signed_unchecked(delivered(self.srv, before), 'b.example', mark)

    def test_logged_in_client_on_loopback_signed_for_its_own_domain_only(self):
        mark = self.srv.mark()
        got = self.submit(message('Alice <alice@a.example>', 'loopback login'))
        self.assert_signed_unchecked(got, 'a.example', mark)
        # the login rule holds on loopback too
        got = self.submit(message('B <b@b.example>', 'loopback foreign'))
        self.assertEqual(named(got, 'DKIM-Signature'), [])

    def test_pickup_user_signed(self):
        """root on the pickup socket (relayguard sendmail) may use any sender."""
        if os.geteuid() != 0:
            self.skipTest('the pickup socket signs any domain for root only')
        mark = self.srv.mark()
        before = self.srv.maildir('example.net', 'bob')
        r = subprocess.run([harness.binary(), 'sendmail', '-C', self.srv.config_path, '-oi',
                            '-f', 'b@b.example', 'bob@example.net'],
                           input=message('B <b@b.example>', 'pickup'), capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_signed_unchecked(delivered(self.srv, before), 'b.example', mark)

    def submit(self, msg, user='alice@a.example', password='alice-secret'):
        before = self.srv.maildir('example.net', 'bob')
        with Conn(self.srv.sub_port) as c:
            self.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
            self.assertEqual(c.cmd('STARTTLS')[0], 220)
            c.starttls()
            self.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
            self.assertEqual(c.cmd('AUTH PLAIN ' + plain(user, password))[0], 235)
            self.assertEqual(c.cmd('MAIL FROM:<%s>' % user)[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<bob@example.net>')[0], 250)
            self.assertEqual(c.cmd('DATA')[0], 354)
            c.send(msg.replace(b'\r\n.', b'\r\n..') + b'.\r\n')
            self.assertEqual(c.reply()[0], 250)
        return delivered(self.srv, before)


if __name__ == '__main__':
    unittest.main()
