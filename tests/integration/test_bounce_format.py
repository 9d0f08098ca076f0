"""test_bounce_format.py - the DSNs relayguard builds (src/queue/bounce.c), as a mail client reads them.

Runs build/tools[-asan]/dsn_build_check (the one matching RELAYGUARD_BIN),
which prints the DSN dsn_build() makes from its arguments, and parses it with
Python's email package (policy=email.policy.default), the way a mail user
agent or a bounce processor would: a multipart/report with
report-type=delivery-status, a message/delivery-status part whose fields
the parser splits into per-message and per-recipient blocks, and the original
(message/rfc822, equal to what was sent) or its headers (text/rfc822-headers).
"""
import email
import email.policy
import email.utils
import os
import subprocess
import tempfile
import unittest

import harness

POLICY = email.policy.default
ARRIVAL = 1767225600   # Thu, 01 Jan 2026 00:00:00 +0000
NOW = ARRIVAL + 7200

HEAD = (b'From: Alice <alice@example.com>\r\n'
        b'To: Bob <bob@example.net>\r\n'
        b'Subject: quarterly figures\r\n'
        b'\tcontinued on a folded line\r\n'
        b'Message-ID: <q1.2026@example.com>\r\n'
        b'Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n')
BODY = b'Bob,\r\n\r\nthe figures.\r\n--not-a-boundary\r\n.\r\n'
MESSAGE = HEAD + b'\r\n' + BODY


def driver():
    """build/tools/dsn_build_check beside build/relayguard, tools-asan beside -asan."""
    b = harness.binary()
    sub = 'tools-asan' if os.path.basename(b).endswith('-asan') else 'tools'
    return os.path.join(os.path.dirname(b), sub, 'dsn_build_check')


def ts(value):
    """Unix time of an RFC 5322 date field (the DSN fields are unstructured to the parser)."""
    return email.utils.parsedate_to_datetime(str(value)).timestamp()


def rcpt(final, orig='-', action='failed', status='5.1.1', remote='mx.example.net',
         diag='550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown',
         last=NOW - 60, retry='-'):
    return [final, orig, action, status, remote, diag, str(last), str(retry)]


class BounceFormat(unittest.TestCase):
    def setUp(self):
        if not os.access(driver(), os.X_OK):
            self.fail('driver %s not built (make tools)' % driver())
        self.tmp = tempfile.TemporaryDirectory(prefix='rg-dsn-')

    def tearDown(self):
        self.tmp.cleanup()

    def build(self, message=MESSAGE, rcpts=(), args=()):
        """Run the driver; the raw DSN, the parsed DSN and dsn_build's BODY= answer."""
        path = '-'
        if message is not None:
            path = os.path.join(self.tmp.name, 'msg.eml')
            with open(path, 'wb') as f:
                f.write(message)
        cmd = [driver(), '-a', str(ARRIVAL), '-n', str(NOW)] + list(args) + [path]
        for r in rcpts:
            cmd += r
        out = subprocess.run(cmd, capture_output=True, timeout=30)
        err = out.stderr.decode('utf-8', 'replace')
        self.assertEqual(harness.sanitizer_report(err), [], err[-3000:])
        self.assertEqual(out.returncode, 0, 'driver exit status; stderr:\n' + err[-3000:])
        raw = out.stdout
        msg = email.message_from_bytes(raw, policy=POLICY)
        return raw, msg, err.strip()

    def assert_report(self, raw, msg, nparts=3):
        """The structure every DSN shares; returns (parts, per-message, per-recipient blocks)."""
        self.assertTrue(msg.is_multipart())
        self.assertEqual(msg.get_content_type(), 'multipart/report')
        self.assertEqual(msg.get_param('report-type'), 'delivery-status')
        self.assertEqual(msg['Auto-Submitted'], 'auto-replied')
        self.assertEqual(msg['MIME-Version'], '1.0')
        self.assertEqual(msg['Date'].datetime.timestamp(), NOW)
        self.assertEqual(msg['From'].addresses[0].addr_spec, 'MAILER-DAEMON@mail.example.com')
        self.assertTrue(msg['Message-ID'].startswith('<') and msg['Message-ID'].endswith('>'))
        parts = list(msg.iter_parts())
        self.assertEqual(len(parts), nparts, [p.get_content_type() for p in parts])
        self.assertEqual(parts[0].get_content_type(), 'text/plain')
        self.assertEqual(parts[1].get_content_type(), 'message/delivery-status')
        for p in [msg] + parts:
            self.assertEqual(p.defects, [], p.get_content_type())
        for line in raw.split(b'\r\n'):
            self.assertLessEqual(len(line), 998)
        self.assertNotIn(b'\r\n', raw.replace(b'\r\n', b''), 'only CRLF line ends')
        self.assertNotIn(b'\n', raw.replace(b'\r\n', b''), 'only CRLF line ends')
        blocks = parts[1].get_payload()
        self.assertGreaterEqual(len(blocks), 2)
        return parts, blocks[0], blocks[1:]

    def attached_raw(self, raw, msg):
        """The bytes of the third part's body, straight from the DSN."""
        b = msg.get_boundary().encode()
        start = raw.index(b'\r\n--' + b + b'\r\n', raw.index(b'message/delivery-status'))
        body = raw.index(b'\r\n\r\n', start) + 4
        return raw[body:raw.rindex(b'\r\n--' + b + b'--')]

    def test_failed(self):
        raw, msg, body = self.build(rcpts=[
            rcpt('bob@example.net', orig='Bob@example.net'),
            rcpt('carol@example.net', status='5.4.4', remote='-',
                 diag='Host or domain name not found: no MX for example.net', last='-')],
            args=['-e', 'ENV-42'])
        parts, per_msg, per_rcpt = self.assert_report(raw, msg)
        self.assertEqual(body, 'body=7BIT')
        self.assertEqual(msg['Subject'], 'Undelivered Mail Returned to Sender')
        self.assertEqual(msg['To'].addresses[0].addr_spec, 'alice@example.com')
        text = parts[0].get_content()
        self.assertIn('This is the mail system at host mail.example.com.', text)
        self.assertIn('<bob@example.net> (expanded from <Bob@example.net>): host mx.example.net said:', text)
        self.assertIn('Recipient address rejected: User unknown', text)
        self.assertIn('<carol@example.net>: Host or domain name not found', text)

        self.assertEqual(per_msg['Reporting-MTA'], 'dns; mail.example.com')
        self.assertEqual(per_msg['X-Relayguard-Queue-ID'], '0000000000ABC123')
        self.assertEqual(per_msg['Original-Envelope-Id'], 'ENV-42')
        self.assertEqual(ts(per_msg['Arrival-Date']), ARRIVAL)
        self.assertEqual(len(per_rcpt), 2)
        bob, carol = per_rcpt
        self.assertEqual(bob['Final-Recipient'], 'rfc822; bob@example.net')
        self.assertEqual(bob['Original-Recipient'], 'rfc822; Bob@example.net')
        self.assertEqual(bob['Action'], 'failed')
        self.assertEqual(bob['Status'], '5.1.1')
        self.assertEqual(bob['Remote-MTA'], 'dns; mx.example.net')
        self.assertEqual(bob['Diagnostic-Code'], 'smtp; 550 5.1.1 <bob@example.net>: '
                         'Recipient address rejected: User unknown')
        self.assertEqual(ts(bob['Last-Attempt-Date']), NOW - 60)
        self.assertIsNone(bob['Will-Retry-Until'])
        self.assertEqual(carol['Final-Recipient'], 'rfc822; carol@example.net')
        self.assertIsNone(carol['Original-Recipient'])
        self.assertIsNone(carol['Remote-MTA'])
        self.assertEqual(carol['Status'], '5.4.4')
        self.assertEqual(carol['Diagnostic-Code'],
                         'X-Relayguard; Host or domain name not found: no MX for example.net')

        self.assertEqual(parts[2].get_content_type(), 'message/rfc822')
        self.assertEqual(self.attached_raw(raw, msg), MESSAGE)
        orig = parts[2].get_content()
        self.assertEqual(orig['Message-ID'], '<q1.2026@example.com>')
        self.assertEqual(orig['Subject'], 'quarterly figures\tcontinued on a folded line')
        self.assertEqual(orig.get_content(), BODY.decode())
        gen = orig.as_bytes(policy=POLICY.clone(linesep='\r\n', max_line_length=None))
        self.assertEqual(gen, MESSAGE)

    def test_delayed(self):
        retry = NOW + 5 * 86400
        raw, msg, _ = self.build(rcpts=[
            rcpt('bob@example.net', action='delayed', status='4.4.1', remote='-',
                 diag='connect to mx.example.net[192.0.2.1]:25: Connection timed out',
                 retry=retry)])
        parts, per_msg, per_rcpt = self.assert_report(raw, msg)
        self.assertEqual(msg['Subject'], 'Delayed Mail (still being retried)')
        self.assertIn('This is a warning only', parts[0].get_content())
        self.assertIn('for 2 hour(s)', parts[0].get_content())
        self.assertEqual(per_rcpt[0]['Action'], 'delayed')
        self.assertEqual(per_rcpt[0]['Status'], '4.4.1')
        self.assertEqual(ts(per_rcpt[0]['Will-Retry-Until']), retry)
        # a warning returns the headers only, whatever RET says
        self.assertEqual(parts[2].get_content_type(), 'text/rfc822-headers')
        self.assertEqual(self.attached_raw(raw, msg), HEAD)

    def test_expired_is_failed_with_class_5(self):
        raw, msg, _ = self.build(rcpts=[rcpt('bob@example.net', status='4.4.7', remote='-',
                                             diag='delivery time expired')])
        _, _, per_rcpt = self.assert_report(raw, msg)
        self.assertEqual(per_rcpt[0]['Action'], 'failed')
        self.assertEqual(per_rcpt[0]['Status'], '5.4.7')

    def test_headers_only(self):
        raw, msg, _ = self.build(rcpts=[rcpt('bob@example.net')], args=['-H'])
        parts, _, _ = self.assert_report(raw, msg)
        self.assertEqual(parts[2].get_content_type(), 'text/rfc822-headers')
        self.assertEqual(parts[2]['Content-Description'], 'Undelivered Message Headers')
        self.assertEqual(parts[2].get_content(), HEAD.decode())
        self.assertEqual(self.attached_raw(raw, msg), HEAD)
        self.assertNotIn(b'the figures', raw)

    def test_size_limit(self):
        # at the limit: whole; one byte over: the headers, as Postfix does
        raw, msg, _ = self.build(rcpts=[rcpt('bob@example.net')], args=['-l', str(len(MESSAGE))])
        parts, _, _ = self.assert_report(raw, msg)
        self.assertEqual(parts[2].get_content_type(), 'message/rfc822')
        self.assertEqual(self.attached_raw(raw, msg), MESSAGE)

        raw, msg, _ = self.build(rcpts=[rcpt('bob@example.net')], args=['-l', str(len(MESSAGE) - 1)])
        parts, _, _ = self.assert_report(raw, msg)
        self.assertEqual(parts[2].get_content_type(), 'text/rfc822-headers')
        self.assertEqual(self.attached_raw(raw, msg), HEAD)
        self.assertNotIn(b'the figures', raw)

    def test_big_message_over_default_limit(self):
        big = HEAD + b'\r\n' + b''.join(b'line %06d of a long report\r\n' % i for i in range(3000))
        self.assertGreater(len(big), 50000)
        raw, msg, _ = self.build(message=big, rcpts=[rcpt('bob@example.net')])
        parts, _, _ = self.assert_report(raw, msg)
        self.assertEqual(parts[2].get_content_type(), 'text/rfc822-headers')
        self.assertEqual(self.attached_raw(raw, msg), HEAD)
        self.assertLess(len(raw), 5000)

    def test_header_block_over_limit_cut_between_fields(self):
        # the limit falls inside the folded Subject: it goes whole, CRLFs intact
        cut = HEAD.index(b'\tcontinued') + 3
        raw, msg, _ = self.build(rcpts=[rcpt('bob@example.net')], args=['-l', str(cut)])
        parts, _, _ = self.assert_report(raw, msg)
        self.assertEqual(parts[2].get_content_type(), 'text/rfc822-headers')
        self.assertEqual(self.attached_raw(raw, msg), HEAD[:HEAD.index(b'Subject:')])

    def test_8bit(self):
        head = 'Subject: caf\u00e9 cr\u00e8me\r\nFrom: J\u00fcrgen <j@example.com>\r\n'.encode()
        body = 'na\u00efve r\u00e9sum\u00e9 \u20ac\r\n'.encode()
        m8 = head + b'Content-Type: text/plain; charset=utf-8\r\n' \
            b'Content-Transfer-Encoding: 8bit\r\n\r\n' + body
        raw, msg, answer = self.build(message=m8, rcpts=[rcpt('bob@example.net')])
        parts, _, _ = self.assert_report(raw, msg)
        self.assertEqual(answer, 'body=8BITMIME')
        self.assertEqual(msg['Content-Transfer-Encoding'], '8bit')
        self.assertEqual(parts[2]['Content-Transfer-Encoding'], '8bit')
        self.assertEqual(self.attached_raw(raw, msg), m8)
        orig = parts[2].get_content()
        self.assertEqual(orig.get_content(), body.decode())

        raw, msg, answer = self.build(message=m8, rcpts=[rcpt('bob@example.net')], args=['-H'])
        parts, _, _ = self.assert_report(raw, msg)
        self.assertEqual(answer, 'body=8BITMIME')
        self.assertEqual(parts[2]['Content-Transfer-Encoding'], '8bit')

    def test_hostile_remote_reply(self):
        boundary0 = '0000000000ABC123.%d.0/mail.example.com' % NOW
        diag = ('550 no\r\nX-Injected: yes\r\n\r\n--%s\r\nContent-Type: text/html\r\n\r\n'
                '<b>hi</b>\r\n--%s--\r\n' % (boundary0, boundary0))
        raw, msg, _ = self.build(rcpts=[
            rcpt('bob@example.net\r\nBcc: victim@example.org', remote='mx.example.net\r\nX-Evil: 1',
                 diag=diag)], args=['-e', 'e\r\nX-Envid: 1'])
        parts, per_msg, per_rcpt = self.assert_report(raw, msg)
        self.assertNotEqual(msg.get_boundary(), boundary0)
        self.assertEqual(len(per_rcpt), 1)
        r = per_rcpt[0]
        self.assertTrue(r['Diagnostic-Code'].startswith('smtp; 550 no X-Injected: yes --'), r['Diagnostic-Code'])
        self.assertIn('<b>hi</b>', r['Diagnostic-Code'])
        self.assertEqual(r['Final-Recipient'], 'rfc822; bob@example.net Bcc: victim@example.org')
        for block in [msg, per_msg, r] + parts:
            for name in ('X-Injected', 'Bcc', 'X-Evil', 'X-Envid'):
                self.assertIsNone(block[name], name)
        self.assertNotIn('text/html', [p.get_content_type() for p in msg.walk()])
        self.assertEqual(self.attached_raw(raw, msg), MESSAGE)

    def test_boundary_in_message(self):
        boundary0 = ('0000000000ABC123.%d.0/mail.example.com' % NOW).encode()
        evil = HEAD + b'\r\n--' + boundary0 + b'\r\nContent-Type: text/plain\r\n\r\nx\r\n--' + \
            boundary0 + b'--\r\n'
        raw, msg, _ = self.build(message=evil, rcpts=[rcpt('bob@example.net')])
        parts, _, _ = self.assert_report(raw, msg)
        self.assertNotIn(msg.get_boundary().encode(), evil)
        self.assertEqual(self.attached_raw(raw, msg), evil)

    def test_double_bounce_and_success(self):
        raw, msg, _ = self.build(rcpts=[rcpt('alice@example.com')], args=['-s', '', '-t', 'postmaster'])
        _, per_msg, _ = self.assert_report(raw, msg)
        self.assertEqual(msg['Subject'], 'Postmaster Copy: Undelivered Mail')
        self.assertEqual(msg['To'].addresses[0].username, 'postmaster')
        self.assertIsNone(per_msg['X-Relayguard-Sender'])

        raw, msg, _ = self.build(rcpts=[rcpt('bob@example.net', action='relayed', status='2.0.0',
                                             diag='250 2.0.0 Ok: queued as 4XyZ')])
        parts, _, per_rcpt = self.assert_report(raw, msg)
        self.assertEqual(msg['Subject'], 'Successful Mail Delivery Report')
        self.assertEqual(per_rcpt[0]['Action'], 'relayed')
        self.assertEqual(parts[2].get_content_type(), 'text/rfc822-headers')

    def test_no_original(self):
        raw, msg, _ = self.build(message=None, rcpts=[rcpt('bob@example.net')])
        self.assert_report(raw, msg, nparts=2)


if __name__ == '__main__':
    unittest.main()
