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
import os
import unittest

import signlab
from harness import Conn, Server
from signlab import delivered, send_smtplib
from test_msgauth_trust import COMMON, MX, message, named, signed_domains, write_table
from test_reload import hup


class ForgedPastTheFilter(signlab.ServerLab, unittest.TestCase):
    overrides = COMMON

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
        got = self.deliver_raw(b'Subject: no body\r\n' + line + b'\r\n.\r\n')
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

    def test_colon_on_a_continuation_line(self):
        # a reader that splits fields at CRLF not followed by white space, then
        # the name at the first ':' (as this file's named() does) reads an
        # Authentication-Results field here; the session took the bare name
        # for the start of the body
        forged = (b'Authentication-Results\r\n : ' + MX.encode() + b'; dkim=pass\r\n'
                  b'X-After: 1\r\n')
        got = self.deliver(message('ceo@paypal.example', 'colon folded', forged))
        self.assertEqual(named(got, 'Authentication-Results'), [])
        self.assertNotIn(b'dkim=pass', got)
        self.assertEqual(named(got, 'X-After'), ['X-After: 1'])

    def test_white_space_before_the_colon_past_the_hold(self):
        # the name alone fills the 8 KiB hold, or even the 64 KiB piece a long
        # line is read in: the colon and the claim come after it
        for pad in (9000, 70000):
            forged = (b'Authentication-Results' + b' ' * pad + b': ' + MX.encode() +
                      b'; dkim=pass\r\nX-After: 1\r\n')
            got = self.deliver(message('ceo@paypal.example', 'colon %d' % pad, forged))
            self.assertFalse(b'dkim=pass' in got, 'forged field kept (%d)' % pad)
            self.assertEqual(named(got, 'X-After'), ['X-After: 1'])


class ReloadInFlight(signlab.SigningLab, unittest.TestCase):
    """A transaction keeps the signing table it started with across a SIGHUP
    that replaces it; the old table is freed when the last one ends (the
    ASan build reports a use after free or a leak at stop)."""

    tmp_prefix = 'relayguard-review-'

    def open_tx(self, srv, frm):
        c = Conn(srv.port, source='127.0.0.1')  # mynetworks: signed for any listed domain
        self.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
        self.assertEqual(c.cmd('MAIL FROM:<%s>' % frm)[0], 250)
        self.assertEqual(c.cmd('RCPT TO:<bob@example.net>')[0], 250)
        return c

    def test_transactions_across_a_table_swap(self):
        table = os.path.join(self.tmp, 'table')
        write_table(table, [self.table_line('a.example')])
        srv = Server(overrides=dict(COMMON, dns_servers=self.dns.servers, dkim_signing_table=table))
        try:
            early = self.open_tx(srv, 'x@a.example')    # holds the first table
            dropped = self.open_tx(srv, 'y@a.example')  # holds it too, then leaves
            self.assertEqual(dropped.cmd('DATA')[0], 354)
            dropped.send(b'Subject: half\r\n')
            write_table(table, [self.table_line('b.example')])
            hup(srv, r'dkim-signing-table-loaded')
            dropped.close()
            # a second swap (a new file, same lines) while the first is still held
            write_table(table, [self.table_line('b.example')])
            hup(srv, r'dkim-signing-table-loaded')
            before = srv.maildir('example.net', 'bob')
            self.assertEqual(early.cmd('DATA')[0], 354)
            early.send(message('x@a.example', 'early') + b'.\r\n')
            self.assertEqual(early.reply()[0], 250)
            early.close()
            # signed with the table its MAIL saw: the running one has no a.example
            self.assertEqual(signed_domains(delivered(srv, before)), ['a.example'], srv.tail(60))
            before = srv.maildir('example.net', 'bob')
            send_smtplib(srv, message('x@b.example', 'late'), sender='x@b.example')
            self.assertEqual(signed_domains(delivered(srv, before)), ['b.example'])
        finally:
            srv.stop()
            srv.cleanup()


if __name__ == '__main__':
    unittest.main()
