"""test_msgauth.py - SPF, DKIM and DMARC in `relayguard serve`, end to end.

The seed's attack (../shared/docs/open-relay-attack.md) played against a
relayguard MX: a real DNS server (dnsmasq on loopback, dnslab.py) publishes
paypal.example with "v=spf1 ip4:127.0.0.50 -all", "v=DMARC1; p=reject" and a
DKIM key. A forged From: ceo@paypal.example from 127.0.0.9 must get spf=fail,
dmarc=fail and 550 5.7.1 at the end of DATA; the same message signed with the
right key from 127.0.0.50 passes and is delivered with Received-SPF: and
Authentication-Results:. Also: p=quarantine lands in .Junk/, the SPF
restrictions at RCPT, forged Authentication-Results removed, DKIM signing
for authenticated submissions (verified by python3-dkim), a spooled 200 KiB
message, and smtpd_dmarc_enforce = no.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import dnslab
import harness
import signlab
from harness import Conn, Server
from test_dkim_interop import DEB_PYTHON, TOOL, have_dkimpy, record_of
from test_msa import make_passwd

MX = 'mx.relayguard.test'
FORGER = '127.0.0.9'
PAYPAL_IP = '127.0.0.50'


def message(frm='CEO <ceo@paypal.example>', subject='Urgent wire transfer', extra=b'',
            body=b'Please pay the attached invoice today.\r\n'):
    return (b'From: ' + frm.encode() + b'\r\n'
            b'To: Bob <bob@example.net>\r\n'
            b'Subject: ' + subject.encode() + b'\r\n'
            b'Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n'
            b'Message-ID: <' + subject.replace(' ', '.').encode() + b'@paypal.example>\r\n'
            + extra + b'\r\n' + body)


def stuffed(msg):
    """Dot-stuffed for DATA, with the final dot."""
    lines = msg.split(b'\r\n')
    if lines and lines[-1] == b'':
        lines.pop()
    return b''.join((b'.' + l if l.startswith(b'.') else l) + b'\r\n' for l in lines) + b'.\r\n'


def crlf(data):
    """A Maildir file has LF line ends: back to the CRLF of the wire."""
    return data.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')


def header_block(data):
    return crlf(data).split(b'\r\n\r\n', 1)[0].decode('utf-8', 'replace')


def fields(data, name):
    """The (unfolded) values of every field called name in the header."""
    out = []
    for f in re.split(r'\r\n(?![ \t])', header_block(data)):
        k, _, v = f.partition(':')
        if k.strip().lower() == name.lower():
            out.append(re.sub(r'\r\n[ \t]+', ' ', v).strip())
    return out


class MsgAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        dnslab.require_dnsmasq()
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-msgauth-')
        keys = {}
        for domain, sel, typ in (('paypal.example', 'pp', 'rsa'), ('example.com', 'rg-rsa', 'rsa'),
                                 ('example.com', 'rg-ed', 'ed25519')):
            out = subprocess.run([harness.binary(), 'dkim', 'keygen', '--domain', domain,
                                  '--selector', sel, '--type', typ, '--out', cls.tmp],
                                 capture_output=True, text=True, check=True)
            keys['%s._domainkey.%s' % (sel, domain)] = [record_of(out.stdout)[0]]
        txt = {'paypal.example': ['v=spf1 ip4:127.0.0.50 -all'],
               '_dmarc.paypal.example': ['v=DMARC1; p=reject'],
               'quarantine.example': ['v=spf1 ip4:127.0.0.50 -all'],
               '_dmarc.quarantine.example': ['v=DMARC1; p=quarantine'],
               'example.com': ['v=spf1 ip4:127.0.0.1 -all'],
               '_dmarc.example.com': ['v=DMARC1; p=reject'],
               'permerror.example': ['v=spf1 ip4:127.0.0.50 bogus:x -all'],
               'tempkey.example': ['v=spf1 ip4:127.0.0.50 -all'],
               '_dmarc.tempkey.example': ['v=DMARC1; p=reject']}
        txt.update(keys)
        cls.dns = dnslab.DnsLab(txt=txt, servfail=['broken.test', '_domainkey.tempkey.example'],
                                silent=['slow.test'])
        cls.dns.start()
        cls.passwd = os.path.join(cls.tmp, 'passwd')
        make_passwd(cls.passwd)
        table = os.path.join(cls.tmp, 'signing_table')
        with open(table, 'w') as f:
            f.write('example.com rg-rsa %s\nexample.com rg-ed %s\n'
                    % (cls.key('example.com', 'rg-rsa'), cls.key('example.com', 'rg-ed')))
        common = {'myhostname': MX, 'dns_servers': cls.dns.servers,
                  'mydestination': 'example.net, localhost', 'local_recipient_maps': '',
                  'smtpd_peername_lookup': 'no'}
        cls.mx = Server(overrides=dict(common, smtpd_sasl_auth_enable='yes',
                                       smtpd_sasl_path=cls.passwd, smtpd_sasl_failure_delay='0',
                                       dkim_signing_table=table))
        cls.strict = Server(overrides=dict(
            common, smtpd_recipient_restrictions='permit_mynetworks, permit_sasl_authenticated, '
                                                 'reject_spf_fail, defer_spf_temperror, '
                                                 'reject_spf_permerror'))
        cls.lax = Server(overrides=dict(common, smtpd_dmarc_enforce='no'))

    @classmethod
    def tearDownClass(cls):
        for s in (cls.mx, cls.strict, cls.lax):
            s.stop()
            s.cleanup()
        cls.dns.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def key(cls, domain, sel):
        return os.path.join(cls.tmp, '%s.%s.pem' % (domain, sel))

    def sign(self, msg, domain='paypal.example', sel='pp', key=None):
        r = subprocess.run([harness.binary(), 'dkim', 'sign', '--domain', domain, '--selector', sel,
                            '--key', key or self.key(domain, sel)], input=msg, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def send(self, srv, msg, source=FORGER, sender='ceo@paypal.example', rcpt='bob@example.net',
             helo='mail.paypal.example'):
        """(MAIL reply, RCPT reply, end-of-DATA reply or None)."""
        with Conn(srv.port, source=source) as c:
            self.assertEqual(c.cmd('EHLO ' + helo)[0], 250)
            mail = c.cmd('MAIL FROM:<%s>' % sender)
            if mail[0] != 250:
                return mail, None, None
            rc = c.cmd('RCPT TO:<%s>' % rcpt)
            if rc[0] != 250:
                return mail, rc, None
            self.assertEqual(c.cmd('DATA')[0], 354)
            c.send(stuffed(msg))
            return mail, rc, c.reply()

    def delivered(self, srv, user='bob', domain='example.net', before=(), sub='new', folder=''):
        base = os.path.join(srv.maildir_path(domain, user), folder, sub)
        for _ in range(250):
            names = sorted(set(os.listdir(base)) - set(before)) if os.path.isdir(base) else []
            if names:
                with open(os.path.join(base, names[-1]), 'rb') as f:
                    return f.read()
            time.sleep(0.02)
        self.fail('nothing delivered to %s\n%s' % (base, srv.tail()))

    def inbox(self, srv):
        return srv.maildir('example.net', 'bob')

    # -- the seed's attack --

    def test_forged_paypal_is_refused_at_end_of_data(self):
        before = self.inbox(self.mx)
        mark = self.mx.mark()
        mail, rcpt, data = self.send(self.mx, message())
        self.assertEqual(mail[0], 250)   # no SPF restriction configured: decided at DATA
        self.assertEqual(data[0], 550, data)
        self.assertIn('5.7.1', data[1])
        self.assertIn('DMARC', data[1])
        log = self.mx.log_since(mark)
        self.assertRegex(log, r'spf.*result=fail')
        self.assertRegex(log, r'dmarc.*result=fail.*disposition=reject.*action=reject')
        time.sleep(0.3)
        self.assertEqual(self.inbox(self.mx), before)

    def test_two_from_domains_refused_no_from_recorded(self):
        # the OpenDMARC CVE-2019-16378 class: which domain would DMARC check?
        mail, rcpt, data = self.send(self.mx, message(
            frm='ceo@paypal.example, someone@evil.example', subject='Two authors'))
        self.assertEqual(data[0], 550, data)
        self.assertIn('5.7.1', data[1])
        self.assertIn('author domain', data[1])
        # no From: at all impersonates nobody: accepted, dmarc=fail recorded
        before = self.inbox(self.mx)
        msg = b'To: bob@example.net\r\nSubject: No author\r\n\r\nhello\r\n'
        mail, rcpt, data = self.send(self.mx, msg, sender='x@example.org')
        self.assertEqual(data[0], 250, data)
        got = self.delivered(self.mx, before=before)
        self.assertIn('dmarc=fail', fields(got, 'Authentication-Results')[0])

    def test_forged_paypal_without_the_empty_line_refused(self):
        # a line that is no field ends the header (for relayguard and for the reader's
        # mail program) without the empty line: the forged From: must not escape DMARC
        before = self.inbox(self.mx)
        msg = (b'From: ceo@paypal.example\r\nTo: bob@example.net\r\nSubject: Invoice\r\n'
               b'Please pay the attached invoice today.\r\n')
        mail, rcpt, data = self.send(self.mx, msg)
        self.assertEqual(data[0], 550, data)
        self.assertIn('5.7.1', data[1])
        time.sleep(0.3)
        self.assertEqual(self.inbox(self.mx), before)

    def test_signed_from_the_listed_ip_passes(self):
        before = self.inbox(self.mx)
        mail, rcpt, data = self.send(self.mx, self.sign(message(subject='Real invoice')),
                                     source=PAYPAL_IP)
        self.assertEqual(data[0], 250, data)
        got = self.delivered(self.mx, before=before)
        spf = fields(got, 'Received-SPF')
        self.assertEqual(len(spf), 1)
        self.assertTrue(spf[0].startswith('pass'), spf)
        ar = fields(got, 'Authentication-Results')
        self.assertEqual(len(ar), 1, ar)
        self.assertTrue(ar[0].startswith(MX + ';'), ar)
        self.assertIn('spf=pass smtp.mailfrom=ceo@paypal.example', ar[0])
        self.assertRegex(ar[0], r'dkim=pass header\.d=paypal\.example header\.s=pp header\.b=')
        self.assertIn('dmarc=pass', ar[0])
        self.assertIn('header.from=paypal.example', ar[0])

    def test_quarantine_goes_to_junk(self):
        before_inbox = self.inbox(self.mx)
        mail, rcpt, data = self.send(self.mx, message(frm='<billing@quarantine.example>',
                                                      subject='Quarantined'),
                                     sender='billing@quarantine.example')
        self.assertEqual(data[0], 250, data)
        got = self.delivered(self.mx, folder='.Junk')
        self.assertIn(b'Subject: Quarantined', got)
        self.assertIn('dmarc=fail', fields(got, 'Authentication-Results')[0])
        self.assertTrue(os.path.isdir(os.path.join(self.mx.maildir_path('example.net', 'bob'),
                                                   '.Junk', 'cur')))
        time.sleep(0.2)
        self.assertEqual(self.inbox(self.mx), before_inbox)

    def test_spooled_quarantine_goes_to_junk(self):
        body = b''.join(b'junk line %06d ------------------------------------------------\r\n' % i
                        for i in range(3500))  # spooled: the junk mark rewrites tmp/ID
        mail, rcpt, data = self.send(self.mx, message(frm='<billing@quarantine.example>',
                                                      subject='Big quarantined', body=body),
                                     sender='billing@quarantine.example')
        self.assertEqual(data[0], 250, data)
        for _ in range(250):
            got = [open(os.path.join(d, f), 'rb').read()
                   for d in [os.path.join(self.mx.maildir_path('example.net', 'bob'), '.Junk', 'new')]
                   if os.path.isdir(d) for f in os.listdir(d)]
            got = [g for g in got if b'Subject: Big quarantined' in g]
            if got:
                break
            time.sleep(0.02)
        self.assertTrue(got, self.mx.tail())
        self.assertGreater(len(got[0]), 200 * 1024)
        self.assertIn('dmarc=fail', fields(got[0], 'Authentication-Results')[0])
        self.assertTrue(got[0].rstrip().endswith(b'junk line 003499 ' + b'-' * 48))

    def test_a_dns_failure_on_an_aligned_signature_defers_not_rejects(self):
        # p=reject, SPF fails, but the DKIM key of the From: domain cannot be looked up
        # now: the signature might pass later (mail forwarded through another host
        # relies on it), so the message is deferred, never bounced
        msg = self.sign(b'From: ceo@tempkey.example\r\nTo: bob@example.net\r\n'
                        b'Subject: forwarded\r\n\r\nhello\r\n', domain='tempkey.example',
                        key=self.key('paypal.example', 'pp'))
        _, _, end = self.send(self.mx, msg, sender='ceo@tempkey.example')
        self.assertEqual(end[0], 451, end)
        self.assertIn('4.7.5', end[1])
        self.assertIsNotNone(self.mx.wait_log(r'dmarc .*from=tempkey\.example .*'
                                              r'action="defer \(a DNS lookup failed\)"'))
        # unsigned, the same forgery is refused outright: nothing could have passed it
        _, _, end = self.send(self.mx, b'From: ceo@tempkey.example\r\nTo: bob@example.net\r\n'
                                       b'Subject: forged\r\n\r\nhello\r\n',
                              sender='ceo@tempkey.example')
        self.assertEqual(end[0], 550, end)

    def test_enforce_no_only_records(self):
        before = self.inbox(self.lax)
        mail, rcpt, data = self.send(self.lax, message(subject='Recorded only'))
        self.assertEqual(data[0], 250, data)
        got = self.delivered(self.lax, before=before)
        ar = fields(got, 'Authentication-Results')[0]
        self.assertIn('spf=fail', ar)
        self.assertIn('dmarc=fail', ar)
        self.assertTrue(fields(got, 'Received-SPF')[0].startswith('fail'))
        self.assertRegex(self.lax.log(), r'dmarc.*action="?none \(smtpd_dmarc_enforce = no\)')

    # -- the SPF restrictions --

    def test_reject_spf_fail_at_rcpt(self):
        mail, rcpt, data = self.send(self.strict, message())
        self.assertEqual(mail[0], 250)
        self.assertEqual(rcpt[0], 550, rcpt)
        self.assertIn('5.7.23', rcpt[1])

    def test_defer_spf_temperror_at_rcpt(self):
        mail, rcpt, data = self.send(self.strict, message(frm='<x@broken.test>'),
                                     sender='x@broken.test')
        self.assertEqual(rcpt[0], 451, rcpt)
        self.assertIn('4.7.24', rcpt[1])

    def test_reject_spf_permerror_at_rcpt(self):
        mail, rcpt, data = self.send(self.strict, message(frm='<x@permerror.example>'),
                                     sender='x@permerror.example')
        self.assertEqual(rcpt[0], 550, rcpt)
        self.assertIn('5.7.24', rcpt[1])

    def test_spf_restrictions_spare_mynetworks(self):
        # 127.0.0.1 is in mynetworks: permit_mynetworks comes first in the list
        mail, rcpt, data = self.send(self.strict, message(subject='From inside'), source='127.0.0.1')
        self.assertEqual(rcpt[0], 250, rcpt)

    # -- the client leaves while a lookup is in flight --

    def test_client_leaves_during_each_lookup(self):
        # the SPF check at MAIL, then the DKIM key at the end of DATA, never answered
        # (slow.test is silent): the answers come after the session ended
        mark = self.lax.mark()
        with Conn(self.lax.port, source=FORGER) as c:
            self.assertEqual(c.cmd('EHLO mail.slow.test')[0], 250)
            c.send(b'MAIL FROM:<a@slow.test>\r\n')
        sig = (b'DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=slow.test; s=s;\r\n'
               b' h=from:to:subject; bh=AAAA; b=AAAA\r\n')
        with Conn(self.lax.port, source=FORGER) as c:
            self.assertEqual(c.cmd('EHLO mail.paypal.example')[0], 250)
            self.assertEqual(c.cmd('MAIL FROM:<ceo@paypal.example>')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<bob@example.net>')[0], 250)
            self.assertEqual(c.cmd('DATA')[0], 354)
            c.send(stuffed(message(subject='Leaving', extra=sig)))
        time.sleep(10)  # past the resolver's timeouts (3 s, 2 tries)
        self.assertTrue(self.lax.alive(), self.lax.tail())
        self.lax.check_sanitizers()
        # the key lookup really was in flight (it ended in its timeout)
        self.assertRegex(self.lax.log_since(mark), r'dkim result=temperror d=slow\.test')
        with Conn(self.lax.port, source=FORGER) as c:
            self.assertEqual(c.cmd('EHLO mail.paypal.example')[0], 250)

    # -- Authentication-Results forged by the sender --

    def test_forged_authentication_results_removed_foreign_kept(self):
        before = self.inbox(self.lax)
        forged = (b'Authentication-Results: ' + MX.encode() + b'; dmarc=pass header.from=paypal.example\r\n'
                  b'Authentication-Results:\r\n ' + MX.encode() + b'; dkim=pass\r\n'
                  b'Authentication-Results: other.example; spf=pass smtp.mailfrom=a@b.example\r\n')
        mail, rcpt, data = self.send(self.lax, message(subject='Forged results', extra=forged))
        self.assertEqual(data[0], 250, data)
        got = self.delivered(self.lax, before=before)
        ar = fields(got, 'Authentication-Results')
        ours = [v for v in ar if v.startswith(MX)]
        self.assertEqual(len(ours), 1, ar)
        self.assertIn('dmarc=fail', ours[0])
        self.assertIn('other.example; spf=pass smtp.mailfrom=a@b.example', ar)

    def test_forged_authentication_results_with_a_comment_first_removed(self):
        # the first line holds only a comment (closed or not): our id follows on the next
        before = self.inbox(self.lax)
        forged = (b'Authentication-Results: (checked)\r\n ' + MX.encode() + b'; dmarc=pass header.from=paypal.example\r\n'
                  b'Authentication-Results: (checked\r\n by us) ' + MX.encode() + b'; dkim=pass\r\n')
        mail, rcpt, data = self.send(self.lax, message(subject='Forged results', extra=forged))
        self.assertEqual(data[0], 250, data)
        got = self.delivered(self.lax, before=before)
        ar = fields(got, 'Authentication-Results')
        self.assertEqual(len(ar), 1, ar)
        self.assertTrue(ar[0].startswith(MX), ar)
        self.assertIn('dmarc=fail', ar[0])

    # -- signing --

    def submit(self, msg, user='alice@example.com', password='alice-secret', rcpt='bob@example.net'):
        return signlab.submit_session(self, self.mx.sub_port, stuffed(msg), user, password,
                                      rcpt=rcpt, source=FORGER)

    def py_verify(self, msg):
        harness.require(have_dkimpy(), 'python3-dkim', 'dkimpy as an independent DKIM verifier')
        return subprocess.run([DEB_PYTHON, TOOL, 'verify', str(self.dns.port)], input=crlf(msg),
                              capture_output=True, check=True).stdout.decode().strip()

    def test_authenticated_submission_is_signed(self):
        before = self.inbox(self.mx)
        r = self.submit(message(frm='Alice <alice@example.com>', subject='Signed by us'))
        self.assertEqual(r[0], 250, r)
        got = self.delivered(self.mx, before=before)
        sigs = fields(got, 'DKIM-Signature')
        self.assertEqual(len(sigs), 2, sigs)  # RSA and Ed25519
        self.assertTrue(any('a=rsa-sha256' in s for s in sigs))
        self.assertTrue(any('a=ed25519-sha256' in s for s in sigs))
        ar = fields(got, 'Authentication-Results')[0]
        self.assertIn('auth=pass smtp.auth=alice@example.com', ar)
        self.assertNotIn('spf=', ar)
        self.assertEqual(self.py_verify(got), 'pass,pass')

    def test_spooled_submission_is_signed_and_verifies(self):
        before = self.inbox(self.mx)
        body = b''.join(b'line %06d of a long report, padded to make it longer\r\n' % i
                        for i in range(4000))  # ~220 KiB: spooled to disk
        r = self.submit(message(frm='alice@example.com', subject='Big signed', body=body))
        self.assertEqual(r[0], 250, r)
        got = self.delivered(self.mx, before=before)
        self.assertGreater(len(got), 200 * 1024)
        self.assertEqual(len(fields(got, 'DKIM-Signature')), 2)
        self.assertEqual(self.py_verify(got), 'pass,pass')

    def test_spooled_inbound_verifies(self):
        before = self.inbox(self.mx)
        body = b''.join(b'row %06d .......................................................\r\n' % i
                        for i in range(3500))
        mail, rcpt, data = self.send(self.mx, self.sign(message(subject='Big inbound', body=body)),
                                     source=PAYPAL_IP)
        self.assertEqual(data[0], 250, data)
        got = self.delivered(self.mx, before=before)
        self.assertGreater(len(got), 200 * 1024)
        ar = fields(got, 'Authentication-Results')[0]
        self.assertIn('dkim=pass', ar)
        self.assertIn('dmarc=pass', ar)
        self.assertTrue(fields(got, 'Received-SPF')[0].startswith('pass'))

    def test_spooled_forgery_refused(self):
        body = b'x' * 70 + b'\r\n'
        mail, rcpt, data = self.send(self.mx, message(subject='Big forgery', body=body * 3000))
        self.assertEqual(data[0], 550, data)
        self.assertIn('5.7.1', data[1])


    def test_bad_signing_table_stops_the_start(self):
        table = os.path.join(self.tmp, 'bad_table')
        with open(table, 'w') as f:
            f.write('# keys\nexample.com rg-rsa %s\nexample.org sel /nonexistent/key.pem\n'
                    % self.key('example.com', 'rg-rsa'))
        srv = Server(overrides={'dkim_signing_table': table}, start=False)
        try:
            with self.assertRaises(harness.ServerError) as cm:
                srv.start(timeout=5)
            self.assertIn('%s:3:' % table, str(cm.exception))
        finally:
            srv.cleanup()


if __name__ == '__main__':
    unittest.main()
