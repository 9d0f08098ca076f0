"""test_msgauth_review.py - forged Authentication-Results that a review found
getting past the header filter (tests/integration/test_msgauth_trust.py has
the cases the filter was built for).

* One line longer than the 8 KiB the session holds for the filter: the field
  was judged on nothing held (so not even its name was seen) and stored whole.
* The authserv-id behind a byte our parser does not skip but other readers
  do: a control character (form feed, vertical tab) or a UTF-8 no-break
  space before it, or the id in an RFC 2047 encoded word, which a reader that
  decodes the field (Python's email package does) takes as the id.
* "Authentication-Results :" (white space before the colon, RFC 5322's
  obsolete syntax, which msgauth's own header parser reads as a field): the
  session took the line for the start of the body and never filtered it.
"""
import unittest

from harness import Conn, Server
from test_msgauth_trust import COMMON, MX, delivered, message, named, send_smtplib


class ForgedPastTheFilter(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(overrides=dict(COMMON))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()

    def deliver(self, msg):
        before = self.srv.maildir('example.net', 'bob')
        send_smtplib(self.srv, msg)
        return delivered(self.srv, before)

    def assert_none_ours(self, got):
        for f in named(got, 'Authentication-Results'):
            self.assertFalse(MX.lower() in f.lower(), 'forged field kept: ' + f[:120])

    def test_one_line_longer_than_the_hold(self):
        # the claim is on the first line, which alone is past the 8 KiB bound
        line = ('Authentication-Results: ' + MX + '; dkim=pass header.d=paypal.example'
                ' (' + 'x' * 9000 + ')')
        got = self.deliver(message('ceo@paypal.example', 'one long line',
                                   line.encode() + b'\r\nX-Last: yes\r\n'))
        self.assert_none_ours(got)
        self.assertEqual(named(got, 'Authentication-Results'), [])
        self.assertEqual(named(got, 'X-Last'), ['X-Last: yes'])

    def test_one_long_line_of_another_field_kept(self):
        line = 'X-Long: ' + 'y' * 9000
        got = self.deliver(message('a@b.example', 'long other', line.encode() + b'\r\n'))
        self.assertEqual(named(got, 'X-Long'), [line])

    def test_one_long_line_before_the_final_dot(self):
        line = b'Authentication-Results: ' + MX.encode() + b'; dkim=pass (' + b'z' * 9000 + b')'
        before = self.srv.maildir('example.net', 'bob')
        with Conn(self.srv.port) as c:
            self.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
            self.assertEqual(c.cmd('MAIL FROM:<s@example.org>')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<bob@example.net>')[0], 250)
            self.assertEqual(c.cmd('DATA')[0], 354)
            c.send(b'Subject: no body\r\n' + line + b'\r\n.\r\n')
            self.assertEqual(c.reply()[0], 250)
        got = delivered(self.srv, before)
        self.assertFalse(b'dkim=pass' in got, 'forged field kept: %r' % got[:400])
        self.assertIn(b'Subject: no body', got)

    def test_id_behind_another_readers_white_space_or_encoded(self):
        # Python's email package (policy=default) decodes the encoded word and
        # str.split() skips \f and U+00A0: each of these reads as our id there
        forged = (b'Authentication-Results: \x0c' + MX.encode() + b'; dkim=pass\r\n'
                  b'Authentication-Results: \xc2\xa0' + MX.encode() + b'; dmarc=pass\r\n'
                  b'Authentication-Results: =?us-ascii?q?' + MX.encode() + b'?=; spf=pass\r\n')
        got = self.deliver(message('ceo@paypal.example', 'readers', forged))
        self.assertEqual(named(got, 'Authentication-Results'), [])
        self.assertNotIn(b'=pass', got)
        kept = b'Authentication-Results: other.example; spf=pass (=?utf-8?q?caf=C3=A9?=)'
        got = self.deliver(message('a@b.example', 'readers kept', kept + b'\r\n'))
        self.assertEqual(named(got, 'Authentication-Results'), [kept.decode()])

    def test_obsolete_space_before_the_colon(self):
        # RFC 5322 4.5 (obs-optional) and our own msgauth header parser read
        # "Name :" as a field; the session took it for the start of the body,
        # so the filter never saw it and it stayed in the header block
        forged = (b'Authentication-Results : ' + MX.encode() + b'; dkim=pass\r\n'
                  b'Authentication-Results\t:\r\n ' + MX.encode() + b'; dmarc=pass\r\n'
                  b'X-After: 1\r\n')
        got = self.deliver(message('ceo@paypal.example', 'obsolete colon', forged))
        self.assertEqual(named(got, 'Authentication-Results'), [])
        self.assertNotIn(b'=pass', got)
        self.assertEqual(named(got, 'X-After'), ['X-After: 1'])


if __name__ == '__main__':
    unittest.main()
