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
import subprocess
import unittest

import harness
import signlab
from signlab import delivered, send_smtplib
from test_msgauth_trust import MX, message, named, start_submission


class LoopbackSigning(signlab.SigningLab, unittest.TestCase):
    """No dns_servers: loopback clients are not checked, but trusted ones are signed."""

    tmp_prefix = 'relayguard-cache-review-'

    @classmethod
    def setUpClass(cls):
        super().setUpClass()  # the verifier's DNS only: the server is given none
        start_submission(cls)

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
        harness.require(os.geteuid() == 0, 'root (CI runs the tests as root)',
                        'the pickup socket signs any domain for root only')
        mark = self.srv.mark()
        before = self.srv.maildir('example.net', 'bob')
        r = subprocess.run([harness.binary(), 'sendmail', '-C', self.srv.config_path, '-oi',
                            '-f', 'b@b.example', 'bob@example.net'],
                           input=message('B <b@b.example>', 'pickup'), capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_signed_unchecked(delivered(self.srv, before), 'b.example', mark)


if __name__ == '__main__':
    unittest.main()
