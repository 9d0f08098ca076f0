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
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time
import unittest

import dnslab
import harness
from harness import Conn, Server
from test_dkim_interop import record_of
from test_msa import make_passwd, plain

MX = 'mx.relayguard.test'
USERS = {'alice@a.example': ('SHA512-CRYPT', 'alice-secret')}


def crlf(data):
    return data.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')


def header_fields(data):
    """The raw header fields (folded, as delivered) of a Maildir file."""
    head = crlf(data).split(b'\r\n\r\n', 1)[0].decode('utf-8', 'replace')
    return re.split(r'\r\n(?![ \t])', head)


def named(data, name):
    return [f for f in header_fields(data) if f.split(':', 1)[0].strip().lower() == name.lower()]


def delivered(srv, before, user='bob', domain='example.net'):
    base = os.path.join(srv.maildir_path(domain, user), 'new')
    for _ in range(250):
        names = sorted(set(srv.maildir(domain, user)) - set(before))
        if names:
            with open(os.path.join(base, names[-1]), 'rb') as f:
                return f.read()
        time.sleep(0.02)
    raise AssertionError('nothing delivered to %s\n%s' % (base, srv.tail()))


def send_smtplib(srv, msg, sender='sender@example.org', rcpt='bob@example.net'):
    with smtplib.SMTP('127.0.0.1', srv.port, timeout=10) as s:
        s.ehlo('client.example.org')
        s.sendmail(sender, [rcpt], msg)


def message(frm, subject, extra=b'', body=b'Hello.\r\n'):
    return (b'From: ' + frm.encode() + b'\r\nTo: bob@example.net\r\nSubject: ' + subject.encode() +
            b'\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <' +
            subject.replace(' ', '.').encode() + b'@a.example>\r\n' + extra + b'\r\n' + body)


def hup(srv, expect):
    mark = srv.mark()
    srv.proc.send_signal(signal.SIGHUP)
    text = srv.wait_log(expect, since=mark, timeout=10)
    if text is None:
        raise AssertionError('no %r after SIGHUP:\n%s' % (expect, srv.log_since(mark)))
    return text


def write_table(path, lines):
    """Renamed into place (a new inode), as editors and config tools do."""
    with open(path + '.new', 'w') as f:
        f.write(''.join(l + '\n' for l in lines))
    os.rename(path + '.new', path)


COMMON = {'myhostname': MX, 'mydestination': 'example.net, localhost',
          'local_recipient_maps': '', 'smtpd_peername_lookup': 'no'}


class ForgedResults(unittest.TestCase):
    """No DNS needed: the filter runs for every client while message
    authentication is on (a loopback client is not checked, so nothing of
    ours is added and every field with our id in the delivered mail would be
    a forgery that got through)."""

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
        before = self.srv.maildir('example.net', 'bob')
        with Conn(self.srv.port) as c:
            self.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
            self.assertEqual(c.cmd('MAIL FROM:<s@example.org>')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<bob@example.net>')[0], 250)
            self.assertEqual(c.cmd('DATA')[0], 354)
            c.send(forged + b'.\r\n')
            self.assertEqual(c.reply()[0], 250)
        got = delivered(self.srv, before)
        self.assertNotIn(b'dkim=pass', got)
        self.assertIn(b'Subject: no body', got)


class SigningOwnership(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        dnslab.require_dnsmasq()
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-trust-')
        os.chmod(cls.tmp, 0o755)
        txt = {}
        for domain in ('a.example', 'b.example'):
            out = subprocess.run([harness.binary(), 'dkim', 'keygen', '--domain', domain,
                                  '--selector', 'k1', '--type', 'ed25519', '--out', cls.tmp],
                                 capture_output=True, text=True, check=True)
            txt['k1._domainkey.' + domain] = [record_of(out.stdout)[0]]
            os.chmod(cls.key(domain), 0o644)  # a reload reads keys as mail_owner
        cls.dns = dnslab.DnsLab(txt=txt)
        cls.dns.start()
        cls.passwd = os.path.join(cls.tmp, 'passwd')
        make_passwd(cls.passwd, users=USERS)
        cls.table = os.path.join(cls.tmp, 'signing_table')
        write_table(cls.table, ['a.example k1 ' + cls.key('a.example'),
                                'b.example k1 ' + cls.key('b.example')])
        logins = os.path.join(cls.tmp, 'senders')
        with open(logins, 'w') as f:
            f.write('alice@a.example alice@a.example\nshared@b.example alice@a.example\n')
        os.chmod(logins, 0o644)
        cls.srv = Server(overrides=dict(
            COMMON, dns_servers=cls.dns.servers, smtpd_sasl_auth_enable='yes',
            smtpd_sasl_path=cls.passwd, smtpd_sasl_failure_delay='0',
            dkim_signing_table=cls.table, smtpd_sender_login_maps='texthash:' + logins))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()
        cls.dns.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def key(cls, domain):
        return os.path.join(cls.tmp, '%s.k1.pem' % domain)

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

    def verify(self, msg):
        r = subprocess.run([harness.binary(), 'dkim', 'verify', '--dns', self.dns.servers],
                           input=crlf(msg), capture_output=True, timeout=30)
        return r.returncode, r.stdout.decode()

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


class ReloadTrust(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        dnslab.require_dnsmasq()
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-trust-reload-')
        os.chmod(cls.tmp, 0o755)
        txt = {}
        for domain in ('a.example', 'b.example'):
            out = subprocess.run([harness.binary(), 'dkim', 'keygen', '--domain', domain,
                                  '--selector', 'k1', '--type', 'ed25519', '--out', cls.tmp],
                                 capture_output=True, text=True, check=True)
            txt['k1._domainkey.' + domain] = [record_of(out.stdout)[0]]
            os.chmod(os.path.join(cls.tmp, '%s.k1.pem' % domain), 0o644)
        cls.dns = dnslab.DnsLab(txt=txt)
        cls.dns.start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def key(self, domain):
        return os.path.join(self.tmp, '%s.k1.pem' % domain)

    def signed_as(self, srv, frm):
        before = srv.maildir('example.net', 'bob')
        send_smtplib(srv, message(frm, 'reload %f' % time.time()), sender=frm)
        got = delivered(srv, before)
        return sorted(re.findall(r'\bd=([a-z.]+);', ' '.join(named(got, 'DKIM-Signature'))))

    def test_signing_table_follows_sighup(self):
        from test_reload import rewrite
        table = os.path.join(self.tmp, 'table_reload')
        write_table(table, ['a.example k1 ' + self.key('a.example')])
        srv = Server(overrides=dict(COMMON, dns_servers=self.dns.servers, dkim_signing_table=table))
        try:
            self.assertEqual(self.signed_as(srv, 'x@b.example'), [])
            write_table(table, ['a.example k1 ' + self.key('a.example'),
                                'b.example k1 ' + self.key('b.example')])
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
            write_table(table, ['b.example k1 ' + self.key('b.example')])
            hup(srv, r'info reloaded config=')
            log = hup(srv, r'info reloaded config=')
            self.assertNotIn('dkim-signing-table-loaded', log)
            self.assertEqual(self.signed_as(srv, 'x@b.example'), ['b.example'])
            self.assertEqual(self.signed_as(srv, 'x@a.example'), [])
        finally:
            srv.stop()
            srv.cleanup()

    def test_message_authentication_follows_sighup(self):
        from test_reload import rewrite
        table = os.path.join(self.tmp, 'table_switch')
        write_table(table, ['a.example k1 ' + self.key('a.example')])
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
