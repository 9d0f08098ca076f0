"""test_msgauth_trust.py - what message authentication trusts, end to end.

Three gaps closed (smtplib and raw SMTP against a real server, dnsmasq on
loopback for the DKIM keys, `relayguard dkim verify` as the verifier):

* Forged Authentication-Results: a field that names our authserv-id anywhere
  in it (on a continuation line, after a comment, in another case) is removed
  whole; other hosts' fields are kept byte for byte, a long field of another
  kind too; an Authentication-Results field too long to hold is removed.
* DKIM signing checks ownership: alice@a.example, logged in, gets her mail
  signed for a.example (her own domain) and for an address
  smtpd_sender_login_maps gives her, but not for b.example, though the
  signing table has keys for both: that message is delivered unsigned and
  logged as dkim-not-signed. A mynetworks host is still signed for any domain.
* SIGHUP: a changed dkim_signing_table is read again and used; a broken one
  refuses the reload and the running keys go on signing;
  smtpd_message_authentication follows the reload.
"""
import os
import re
import time
import unittest

import signlab
from harness import Server
from signlab import crlf, delivered, send_smtplib
from test_msa import make_passwd
from test_reload import hup, rewrite

MX = 'mx.relayguard.test'
USERS = {'alice@a.example': ('SHA512-CRYPT', 'alice-secret')}


def header_fields(data):
    """The raw header fields (folded, as delivered) of a Maildir file."""
    head = crlf(data).split(b'\r\n\r\n', 1)[0].decode('utf-8', 'replace')
    return re.split(r'\r\n(?![ \t])', head)


def named(data, name):
    return [f for f in header_fields(data) if f.split(':', 1)[0].strip().lower() == name.lower()]


def message(frm, subject, extra=b'', body=b'Hello.\r\n'):
    return (b'From: ' + frm.encode() + b'\r\nTo: bob@example.net\r\nSubject: ' + subject.encode() +
            b'\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <' +
            subject.replace(' ', '.').encode() + b'@a.example>\r\n' + extra + b'\r\n' + body)


def write_table(path, lines):
    """Renamed into place (a new inode), as editors and config tools do."""
    with open(path + '.new', 'w') as f:
        f.write(''.join(l + '\n' for l in lines))
    os.rename(path + '.new', path)


COMMON = {'myhostname': MX, 'mydestination': 'example.net, localhost',
          'local_recipient_maps': '', 'smtpd_peername_lookup': 'no'}


def signed_domains(got):
    """The d= of every DKIM-Signature of a delivered message, sorted."""
    return sorted(re.findall(r'\bd=([a-z.]+);', ' '.join(named(got, 'DKIM-Signature'))))


def start_submission(lab, **overrides):
    """lab.srv (lab a signlab.SigningLab class): COMMON, SASL logins for USERS, and
    lab.table signing for every domain of the lab."""
    lab.passwd = os.path.join(lab.tmp, 'passwd')
    make_passwd(lab.passwd, users=USERS)
    lab.table = os.path.join(lab.tmp, 'signing_table')
    write_table(lab.table, [lab.table_line(d) for d in signlab.DOMAINS])
    lab.srv = Server(overrides=dict(
        COMMON, smtpd_sasl_auth_enable='yes', smtpd_sasl_path=lab.passwd,
        smtpd_sasl_failure_delay='0', dkim_signing_table=lab.table, **overrides))


class ForgedResults(signlab.ServerLab, unittest.TestCase):
    """No DNS needed: the filter runs for every client while message
    authentication is on (a loopback client is not checked, so nothing of
    ours is added and every field with our id in the delivered mail would be
    a forgery that got through)."""

    overrides = COMMON

    def assert_none_ours(self, got):
        for f in named(got, 'Authentication-Results'):
            self.assertNotIn(MX.lower(), f.lower(), f)

    def test_claim_on_a_continuation_line_removed(self):
        forged = (b'X-Before: 1\r\n'
                  b'Authentication-Results: spf=pass smtp.mailfrom=ceo@paypal.example;\r\n'
                  b' ' + MX.encode() + b'; dkim=pass header.d=paypal.example\r\n'
                  b'Authentication-Results: dkim=pass header.d=paypal.example;\r\n'
                  b'\tdmarc=pass;\r\n\t' + MX.encode() + b'\r\n'
                  b'X-After: 2\r\n')
        got = self.deliver(message('ceo@paypal.example', 'continuation', forged))
        self.assertEqual(named(got, 'Authentication-Results'), [])
        names = [f.split(':', 1)[0] for f in header_fields(got)]
        self.assertLess(names.index('X-Before'), names.index('X-After'))
        self.assertNotIn('dmarc=pass', got.decode())
        self.assertIn('authres-forged-dropped', self.srv.log())

    def test_claim_after_a_comment_or_in_another_case_removed(self):
        forged = (b'Authentication-Results: (verified by)\r\n MX.RelayGuard.TEST; dkim=pass\r\n'
                  b'Authentication-Results:\r\n (x)\r\n ' + MX.encode() + b'.; spf=pass\r\n')
        got = self.deliver(message('ceo@paypal.example', 'comment', forged))
        self.assertEqual(named(got, 'Authentication-Results'), [])

    def test_other_hosts_fields_kept_whole(self):
        theirs = ('Authentication-Results: other.example;\r\n\tspf=pass '
                  'smtp.mailfrom=a@mx.relayguard.test;\r\n\tdkim=pass header.d=b.example')
        arc = 'ARC-Authentication-Results: i=1; ' + MX + '; dkim=pass'
        got = self.deliver(message('a@b.example', 'foreign',
                                   theirs.encode() + b'\r\n' + arc.encode() + b'\r\n'))
        self.assertEqual(named(got, 'Authentication-Results'), [theirs])
        self.assertEqual(named(got, 'ARC-Authentication-Results'), [arc])

    def test_long_fields(self):
        # past the 8 KiB the session holds: another kind of field is kept byte
        # for byte; an Authentication-Results field is removed (it could be ours)
        long_x = 'X-Long: start' + ''.join('\r\n\tword%05d padding padding' % i for i in range(600))
        long_ar = ('Authentication-Results: other.example; spf=pass' +
                   ''.join('\r\n\t(comment %05d padding padding)' % i for i in range(600)))
        self.assertGreater(len(long_x), 9000)
        got = self.deliver(message('a@b.example', 'long', long_x.encode() + b'\r\n' +
                                   long_ar.encode() + b'\r\nX-Last: yes\r\n'))
        self.assertEqual(named(got, 'X-Long'), [long_x])
        self.assertEqual(named(got, 'Authentication-Results'), [])
        self.assertEqual(named(got, 'X-Last'), ['X-Last: yes'])

    def test_header_without_body_judged_at_the_end(self):
        # the last field is ended by the final dot, not by the empty line
        forged = (b'From: ceo@paypal.example\r\nSubject: no body\r\n'
                  b'Authentication-Results: spf=pass;\r\n ' + MX.encode() + b'; dkim=pass\r\n')
        got = self.deliver_raw(forged + b'.\r\n')
        self.assertNotIn(b'dkim=pass', got)
        self.assertIn(b'Subject: no body', got)


class SigningOwnership(signlab.SigningLab, unittest.TestCase):
    tmp_prefix = 'relayguard-trust-'

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        logins = os.path.join(cls.tmp, 'senders')
        with open(logins, 'w') as f:
            f.write('alice@a.example alice@a.example\nshared@b.example alice@a.example\n')
        os.chmod(logins, 0o644)
        start_submission(cls, dns_servers=cls.dns.servers,
                         smtpd_sender_login_maps='texthash:' + logins)

    def test_own_domain_signed(self):
        got = self.submit(message('Alice <alice@a.example>', 'own domain'))
        rc, out = self.verify(got)
        self.assertEqual(rc, 0, out)
        self.assertIn('dkim=pass header.d=a.example', out)

    def test_another_address_of_the_own_domain_signed(self):
        got = self.submit(message('Sales <sales@a.example>', 'own domain other address'))
        self.assertEqual(len(named(got, 'DKIM-Signature')), 1)
        self.assertEqual(self.verify(got)[0], 0)

    def test_foreign_domain_not_signed_but_delivered(self):
        mark = self.srv.mark()
        got = self.submit(message('B <b@b.example>', 'foreign domain'))
        self.assertEqual(named(got, 'DKIM-Signature'), [])
        self.assertIn('Subject: foreign domain', got.decode())
        line = self.srv.wait_log(r'dkim-not-signed[^\n]*', since=mark)
        self.assertIsNotNone(line, self.srv.log_since(mark))
        m = re.search(r'info dkim-not-signed [^\n]*', self.srv.log_since(mark))
        self.assertIn('domain=b.example', m.group(0))
        self.assertIn('login=alice@a.example', m.group(0))

    def test_address_from_sender_login_maps_signed(self):
        got = self.submit(message('Shared <shared@b.example>', 'mapped address'))
        rc, out = self.verify(got)
        self.assertEqual(rc, 0, out)
        self.assertIn('header.d=b.example', out)

    def test_display_name_tricks_do_not_sign(self):
        # the author a reader sees is b.example whatever the display name says
        got = self.submit(message('"alice@a.example" <boss@b.example>', 'display name'))
        self.assertEqual(named(got, 'DKIM-Signature'), [])

    def test_mynetworks_host_signed_for_any_listed_domain(self):
        before = self.srv.maildir('example.net', 'bob')
        send_smtplib(self.srv, message('B <b@b.example>', 'from a trusted host'),
                     sender='b@b.example')
        got = delivered(self.srv, before)
        rc, out = self.verify(got)
        self.assertEqual(rc, 0, out)
        self.assertIn('header.d=b.example', out)


class ReloadTrust(signlab.SigningLab, unittest.TestCase):
    tmp_prefix = 'relayguard-trust-reload-'

    def signed_as(self, srv, frm):
        before = srv.maildir('example.net', 'bob')
        send_smtplib(srv, message(frm, 'reload %f' % time.time()), sender=frm)
        return signed_domains(delivered(srv, before))

    def test_signing_table_follows_sighup(self):
        table = os.path.join(self.tmp, 'table_reload')
        write_table(table, [self.table_line('a.example')])
        srv = Server(overrides=dict(COMMON, dns_servers=self.dns.servers, dkim_signing_table=table))
        try:
            self.assertEqual(self.signed_as(srv, 'x@b.example'), [])
            write_table(table, [self.table_line('a.example'),
                                self.table_line('b.example')])
            log = hup(srv, r'info reloaded config=')
            self.assertIn('dkim-signing-table-loaded', log)
            self.assertEqual(self.signed_as(srv, 'x@b.example'), ['b.example'])
            # broken: the whole reload is refused, the running keys go on signing
            write_table(table, ['b.example k1 /nonexistent/key.pem'])
            rewrite(srv, {'smtpd_dmarc_enforce': 'no'})
            log = hup(srv, r'reload-refused')
            self.assertIn('%s:1:' % table, log)
            self.assertEqual(self.signed_as(srv, 'x@b.example'), ['b.example'])
            # an unchanged table is not read again (its keys stay loaded)
            write_table(table, [self.table_line('b.example')])
            hup(srv, r'info reloaded config=')
            log = hup(srv, r'info reloaded config=')
            self.assertNotIn('dkim-signing-table-loaded', log)
            self.assertEqual(self.signed_as(srv, 'x@b.example'), ['b.example'])
            self.assertEqual(self.signed_as(srv, 'x@a.example'), [])
        finally:
            srv.stop()
            srv.cleanup()

    def test_message_authentication_follows_sighup(self):
        table = os.path.join(self.tmp, 'table_switch')
        write_table(table, [self.table_line('a.example')])
        srv = Server(overrides=dict(COMMON, dns_servers=self.dns.servers, dkim_signing_table=table,
                                    smtpd_message_authentication='no'))
        forged = b'Authentication-Results: spf=pass;\r\n ' + MX.encode() + b'; dkim=pass\r\n'
        try:
            before = srv.maildir('example.net', 'bob')
            send_smtplib(srv, message('x@a.example', 'off', forged), sender='x@a.example')
            got = delivered(srv, before)
            self.assertEqual(len(named(got, 'Authentication-Results')), 1)  # the client's, kept
            self.assertEqual(named(got, 'DKIM-Signature'), [])
            rewrite(srv, {'smtpd_message_authentication': 'yes'})
            log = hup(srv, r'info reloaded config=')
            self.assertNotIn('reload-needs-restart param=smtpd_message_authentication', log)
            before = srv.maildir('example.net', 'bob')
            send_smtplib(srv, message('x@a.example', 'on', forged), sender='x@a.example')
            got = delivered(srv, before)
            ar = named(got, 'Authentication-Results')
            self.assertEqual(len(ar), 1, ar)  # ours alone: the forgery is gone
            self.assertTrue(ar[0].startswith('Authentication-Results: ' + MX), ar)
            self.assertEqual(len(named(got, 'DKIM-Signature')), 1)
        finally:
            srv.stop()
            srv.cleanup()


if __name__ == '__main__':
    unittest.main()
