"""signlab.py - a DKIM signing lab for the message-authentication tests.

Owns: SigningLab, a temporary directory holding an ed25519 key (selector k1)
for each of a.example and b.example, made by `relayguard dkim keygen`, a
dnslab.DnsLab publishing their TXT records, and the client side of a signing
test (a submission over STARTTLS and AUTH PLAIN, waiting for the delivered
copy, `relayguard dkim verify` against the lab); ServerLab, a class's one
relayguard server with the overrides the class names. Must not: choose a
server's policy (each test class names its own), nor hold any test's
expectations.

    import signlab

    class T(signlab.SigningLab, unittest.TestCase):
        tmp_prefix = 'relayguard-mine-'       # the temporary directory's prefix

        @classmethod
        def setUpClass(cls):
            super().setUpClass()              # cls.tmp, the keys, cls.dns started
            table = os.path.join(cls.tmp, 'table')   # lines: cls.table_line(domain)
            ...
            cls.srv = Server(overrides={'dkim_signing_table': table, ...})
        # tearDownClass (inherited): stops cls.srv if set, the lab, removes cls.tmp

        def test_x(self):
            got = self.submit(msg)            # as alice@a.example; the delivered copy
            rc, out = self.verify(got)        # 0 and "dkim=pass header.d=..." when valid

DOMAINS, SELECTOR     the lab's signed domains and their selector
keygen(directory, domain, selector='k1', typ='ed25519')
                      a key in directory/DOMAIN.SELECTOR.pem; returns its TXT value
crlf(data)            a Maildir file's LF line ends back to the wire's CRLF
delivered(srv, before, user='bob', domain='example.net')
                      the newest Maildir file not in before (waits up to 5 s)
submit_session(tc, port, data, user, password, rcpt='bob@example.net', source=UNTRUSTED)
                      EHLO, STARTTLS, EHLO, AUTH PLAIN, MAIL, RCPT, DATA (each
                      reply asserted with tc), then data (dot-stuffed, with the
                      final dot); returns the end-of-DATA reply
stop_lab(cls)         stop and clean up cls.srv (if set) and cls.dns, remove cls.tmp
send_smtplib(srv, msg, sender='sender@example.org', rcpt='bob@example.net')
                      msg over smtplib from 127.0.0.1 (mynetworks)
ServerLab             mixin: cls.srv = Server(overrides=cls.overrides) for the
                      class; self.deliver(msg) sends it with send_smtplib,
                      self.deliver_raw(data) as raw DATA (with the final dot,
                      as is: no stuffing) from 127.0.0.9; each returns the
                      delivered copy
"""
import os
import shutil
import smtplib
import subprocess
import tempfile
import time

import dnslab
import harness
from harness import UNTRUSTED, Conn, Server
from test_dkim_interop import record_of
from test_msa import plain

DOMAINS = ('a.example', 'b.example')
SELECTOR = 'k1'


def keygen(directory, domain, selector=SELECTOR, typ='ed25519'):
    """keygen - a new key in directory; its TXT record's value, the strings joined."""
    out = subprocess.run([harness.binary(), 'dkim', 'keygen', '--domain', domain,
                          '--selector', selector, '--type', typ, '--out', directory],
                         capture_output=True, text=True, check=True)
    return record_of(out.stdout)[0]


def crlf(data):
    """crlf - a Maildir file has LF line ends: back to the CRLF of the wire."""
    return data.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')


def delivered(srv, before, user='bob', domain='example.net'):
    """delivered - the newest message that was not in the Maildir listing before."""
    base = os.path.join(srv.maildir_path(domain, user), 'new')
    for _ in range(250):
        names = sorted(set(srv.maildir(domain, user)) - set(before))
        if names:
            with open(os.path.join(base, names[-1]), 'rb') as f:
                return f.read()
        time.sleep(0.02)
    raise AssertionError('nothing delivered to %s\n%s' % (base, srv.tail()))


def submit_session(tc, port, data, user, password, rcpt='bob@example.net', source=UNTRUSTED):
    """submit_session - one logged-in submission; the reply to the data."""
    with Conn(port, source=source) as c:
        tc.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
        tc.assertEqual(c.cmd('STARTTLS')[0], 220)
        c.starttls()
        tc.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
        tc.assertEqual(c.cmd('AUTH PLAIN ' + plain(user, password))[0], 235)
        tc.assertEqual(c.cmd('MAIL FROM:<%s>' % user)[0], 250)
        tc.assertEqual(c.cmd('RCPT TO:<%s>' % rcpt)[0], 250)
        tc.assertEqual(c.cmd('DATA')[0], 354)
        c.send(data)
        return c.reply()


def send_smtplib(srv, msg, sender='sender@example.org', rcpt='bob@example.net'):
    """send_smtplib - one message to srv's port with Python's own SMTP client."""
    with smtplib.SMTP('127.0.0.1', srv.port, timeout=10) as s:
        s.ehlo('client.example.org')
        s.sendmail(sender, [rcpt], msg)


def stop_lab(cls):
    """stop_lab - a test class's server (if any), DNS lab and directory, in that order."""
    if getattr(cls, 'srv', None) is not None:
        cls.srv.stop()
        cls.srv.cleanup()
    cls.dns.cleanup()
    shutil.rmtree(cls.tmp, ignore_errors=True)


class SigningLab:
    """Mixin for a unittest.TestCase (listed before it): the keys and their DNS
    for the whole class; a subclass may set cls.srv in its setUpClass."""

    tmp_prefix = 'relayguard-signlab-'
    srv = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        dnslab.require_dnsmasq()
        cls.tmp = tempfile.mkdtemp(prefix=cls.tmp_prefix)
        os.chmod(cls.tmp, 0o755)
        txt = {}
        for domain in DOMAINS:
            txt['%s._domainkey.%s' % (SELECTOR, domain)] = [keygen(cls.tmp, domain)]
            os.chmod(cls.key(domain), 0o644)  # a reload reads keys as mail_owner
        cls.dns = dnslab.DnsLab(txt=txt)
        cls.dns.start()

    @classmethod
    def tearDownClass(cls):
        stop_lab(cls)
        super().tearDownClass()

    @classmethod
    def key(cls, domain):
        return os.path.join(cls.tmp, '%s.%s.pem' % (domain, SELECTOR))

    @classmethod
    def table_line(cls, domain):
        """table_line - domain's dkim_signing_table line: domain, selector, key file."""
        return '%s %s %s' % (domain, SELECTOR, cls.key(domain))

    def submit(self, msg, user='alice@a.example', password='alice-secret'):
        """submit - msg (CRLF, no final dot) to bob@example.net; the delivered copy."""
        before = self.srv.maildir('example.net', 'bob')
        data = msg.replace(b'\r\n.', b'\r\n..') + b'.\r\n'
        reply = submit_session(self, self.srv.sub_port, data, user, password)
        self.assertEqual(reply[0], 250)
        return delivered(self.srv, before)

    def verify(self, msg):
        """verify - (exit status, output) of `relayguard dkim verify` against the lab."""
        r = subprocess.run([harness.binary(), 'dkim', 'verify', '--dns', self.dns.servers],
                           input=crlf(msg), capture_output=True, timeout=30)
        return r.returncode, r.stdout.decode()


class ServerLab:
    """Mixin for a unittest.TestCase (listed before it): one server for the
    whole class, configured by the class attribute overrides."""

    overrides = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.srv = Server(overrides=dict(cls.overrides))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()
        super().tearDownClass()

    def deliver(self, msg):
        """deliver - msg to bob@example.net from a trusted client; the delivered copy."""
        before = self.srv.maildir('example.net', 'bob')
        send_smtplib(self.srv, msg)
        return delivered(self.srv, before)

    def deliver_raw(self, data):
        """deliver_raw - data, sent as is after DATA, to bob@example.net; the delivered copy."""
        before = self.srv.maildir('example.net', 'bob')
        with Conn(self.srv.port) as c:
            self.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
            self.assertEqual(c.cmd('MAIL FROM:<s@example.org>')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<bob@example.net>')[0], 250)
            self.assertEqual(c.cmd('DATA')[0], 354)
            c.send(data)
            self.assertEqual(c.reply()[0], 250)
        return delivered(self.srv, before)
