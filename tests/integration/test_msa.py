"""test_msa.py - relayguard as a Mail Submission Agent: STARTTLS, implicit TLS, SMTP AUTH.

Real clients: swaks (--tls, --tlsc, --auth), Python's smtplib (starttls, SMTP_SSL,
login) and openssl s_client. The passwd-file is written with hashes made by
'relayguard passwd' itself. Clients come from 127.0.0.9, outside mynetworks.
"""
import base64
import contextlib
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Conn, Server, UNTRUSTED, UNTRUSTED2, run_cli, swaks

USERS = {
    'alice@example.com': ('SHA512-CRYPT', 'alice-secret'),
    'bob@example.com': ('CRYPT', 'bob: tab\tand spaces'),
    'carol@example.com': ('BLF-CRYPT', 'carol-secret'),
}


def b64(text):
    return base64.b64encode(text.encode()).decode()


def plain(user, password, authz=''):
    return b64('%s\0%s\0%s' % (authz, user, password))


def wait_deferred(srv, count=1, timeout=5):
    """The queue files in deferred/ once there are COUNT (remote mail moves there
    from active/ just after the 250)."""
    deadline = time.time() + timeout
    while len(srv.queue_files('deferred')) < count and time.time() < deadline:
        time.sleep(0.02)
    return srv.queue_files('deferred')


@contextlib.contextmanager
def scratch_dir():
    """A temporary directory the server (running as mail_owner) can read; removed after."""
    tmp = tempfile.mkdtemp(prefix='relayguard-msa-')
    os.chmod(tmp, 0o755)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_passwd(path, users=USERS, extra=''):
    """A Dovecot-format passwd-file, hashed by 'relayguard passwd'."""
    lines = []
    for user, (scheme, password) in users.items():
        p = subprocess.run(
            [harness.binary(), 'passwd', '--scheme', scheme], input=password + '\n',
            capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        lines.append('%s:%s::::::' % (user, p.stdout.strip()))
    with open(path, 'w') as f:
        f.write('# test users\n' + '\n'.join(lines) + '\n' + extra)
    os.chmod(path, 0o644)


def msa_overrides(passwd, **more):
    o = {
        'myhostname': 'mx.example.com',
        'mydestination': 'example.com, localhost',
        'local_recipient_maps': 'inline:{postmaster, alice, bob, carol}',
        'smtpd_sasl_auth_enable': 'yes',
        'smtpd_sasl_path': passwd,
        'smtpd_sasl_failure_delay': '0',
    }
    o.update(more)
    return o


class MsaServer(unittest.TestCase):
    """One server with three users for the class; lockout high enough not to trigger."""
    more = {'smtpd_sasl_failure_limit': '1000', 'smtpd_sasl_authenticated_header': 'yes'}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-msa-')
        os.chmod(cls.tmp, 0o755)
        cls.passwd = os.path.join(cls.tmp, 'passwd')
        make_passwd(cls.passwd)
        cls.server = Server(overrides=msa_overrides(cls.passwd, **cls.more))

    @classmethod
    def tearDownClass(cls):
        harness.stop_server(cls.server, cls.tmp)

    def tls_conn(self, port=None, source=UNTRUSTED):
        """A connection to the submission port, after EHLO, STARTTLS and EHLO again."""
        c = Conn(port or self.server.sub_port, source=source)
        c.cmd('EHLO client.example.org')
        code, text = c.cmd('STARTTLS')
        self.assertEqual(code, 220, text)
        c.starttls()
        code, text = c.cmd('EHLO client.example.org')
        self.assertEqual(code, 250, text)
        return c, text

    def login(self, c, user='alice@example.com', password=None):
        password = USERS[user][1] if password is None else password
        return c.cmd('AUTH PLAIN ' + plain(user, password))


class Advertising(MsaServer):
    def test_mta_port_offers_starttls_and_auth_only_after_it(self):
        with Conn(self.server.port) as c:
            code, text = c.cmd('EHLO client.example.org')
            self.assertIn('STARTTLS', text)
            self.assertNotIn('AUTH', text, 'AUTH must not be offered in clear text')
            self.assertEqual(c.cmd('STARTTLS')[0], 220)
            c.starttls()
            code, text = c.cmd('EHLO client.example.org')
            self.assertIn('AUTH PLAIN LOGIN', text)
            self.assertNotIn('STARTTLS', text)

    def test_submissions_port_is_tls_from_the_first_byte(self):
        with Conn(self.server.subs_port, tls=True) as c:
            self.assertEqual(c.greeting[0], 220)
            self.assertIn(c.sock.version(), ('TLSv1.2', 'TLSv1.3'))
            code, text = c.cmd('EHLO client.example.org')
            self.assertIn('AUTH PLAIN LOGIN', text)
            self.assertNotIn('STARTTLS', text)

    def test_plain_text_to_submissions_port_gets_no_smtp(self):
        """A client speaking plain SMTP to 465 gets no greeting; the server logs the failure."""
        mark = self.server.mark()
        with Conn(self.server.subs_port, greeting=False, timeout=3) as c:
            c.send('EHLO client.example.org\r\n')
            self.assertTrue(c.closed())
        self.assertIsNotNone(self.server.wait_log(r'tls-handshake-failed .*client=127\.0\.0\.9',
                                                  since=mark))

    def test_openssl_s_client_sees_the_certificate_and_tls13(self):
        p = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % self.server.sub_port,
                            '-starttls', 'smtp', '-brief'], input='QUIT\r\n',
                           capture_output=True, text=True, timeout=15)
        out = p.stdout + p.stderr
        self.assertIn('Protocol version: TLSv1.3', out)
        self.assertRegex(out, r'Peer certificate: .*CN ?= ?mx\.example\.com')

    def test_self_signed_certificate_is_kept_across_restarts(self):
        crt = os.path.join(self.server.dir, 'data', 'selfsigned.crt')
        with open(crt) as f:
            before = f.read()
        self.assertIn('self-signed', self.server.log())
        self.server.restart()
        with open(crt) as f:
            self.assertEqual(f.read(), before)


class Submission(MsaServer):
    def test_swaks_starttls_auth_plain_relays_and_records_tls(self):
        rc, out = swaks(self.server.sub_port, [
            '--tls', '--auth', 'PLAIN', '--auth-user', 'alice@example.com',
            '--auth-password', 'alice-secret', '-f', 'alice@example.com',
            '-t', 'friend@example.net', '--ehlo', 'client.example.org'])
        self.assertEqual(rc, 0, out)
        self.assertIn('235 2.7.0', out)
        self.assertRegex(out, r'250 2\.0\.0 Ok: queued as')
        deferred = wait_deferred(self.server)
        self.assertTrue(deferred, 'remote mail waits for outbound delivery in deferred/')
        with open(os.path.join(self.server.queue_dir, 'deferred', deferred[-1]), 'rb') as f:
            text = f.read().decode()
        self.assertIn('with ESMTPSA id', text)
        self.assertRegex(text, r'\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)')
        self.assertIn('(Authenticated sender: alice@example.com)', text)
        self.assertNotIn('alice-secret', text)
        self.assertNotIn('alice-secret', self.server.log())

    def test_swaks_implicit_tls_auth_login(self):
        rc, out = swaks(self.server.subs_port, [
            '--tlsc', '--auth', 'LOGIN', '--auth-user', 'bob@example.com',
            '--auth-password', 'bob: tab\tand spaces', '-f', 'bob@example.com',
            '-t', 'alice@example.com'])
        self.assertEqual(rc, 0, out)
        self.assertIn('235 2.7.0', out)
        files = self.server.wait_maildir('example.com', 'alice')
        self.assertTrue(files)

    def test_smtplib_starttls_login_and_smtp_ssl(self):
        with smtplib.SMTP('127.0.0.1', self.server.sub_port, local_hostname='c.example.org',
                          source_address=(UNTRUSTED, 0), timeout=10) as s:
            s.starttls(context=harness.tls_context())
            s.login('carol@example.com', 'carol-secret')
            refused = s.sendmail('carol@example.com', ['someone@example.org'],
                                 b'Subject: hi\r\n\r\nbody\r\n')
            self.assertEqual(refused, {})
        with smtplib.SMTP_SSL('127.0.0.1', self.server.subs_port, local_hostname='c.example.org',
                              source_address=(UNTRUSTED, 0), timeout=10,
                              context=harness.tls_context()) as s:
            s.login('alice@example.com', 'alice-secret')
            self.assertEqual(s.sendmail('alice@example.com', ['x@example.org'],
                                        b'Subject: hi\r\n\r\nbody\r\n'), {})

    def test_plain_without_initial_response_and_login_with_one(self):
        c, _ = self.tls_conn()
        with c:
            self.assertEqual(c.cmd('AUTH PLAIN'), (334, ''))
            self.assertEqual(c.cmd(plain('alice@example.com', 'alice-secret'))[0], 235)
        c, _ = self.tls_conn()
        with c:
            code, text = c.cmd('AUTH LOGIN ' + b64('bob@example.com'))
            self.assertEqual((code, text), (334, 'UGFzc3dvcmQ6'))
            self.assertEqual(c.cmd(b64('bob: tab\tand spaces'))[0], 235)

    def test_login_names_are_case_insensitive(self):
        c, _ = self.tls_conn()
        with c:
            self.assertEqual(c.cmd('AUTH PLAIN ' + plain('Alice@Example.COM', 'alice-secret'))[0],
                             235)

    def test_auth_cancelled_with_star(self):
        c, _ = self.tls_conn()
        with c:
            self.assertEqual(c.cmd('AUTH LOGIN')[0], 334)
            code, text = c.cmd('*')
            self.assertEqual(code, 501)
            self.assertTrue(text.startswith('5.7.0'), text)
            self.assertEqual(self.login(c)[0], 235, 'a new AUTH works after a cancelled one')

    def test_malformed_responses(self):
        c, _ = self.tls_conn()
        with c:
            for bad in ('AUTH PLAIN not-base64!', 'AUTH PLAIN ' + b64('no nul here'),
                        'AUTH PLAIN ' + plain('alice@example.com', 'alice-secret',
                                              authz='bob@example.com')):
                code, text = c.cmd(bad)
                self.assertEqual(code, 501, bad)
                self.assertTrue(text.startswith('5.5.2'), text)
            self.assertEqual(c.cmd('AUTH CRAM-MD5')[0], 504)
            self.assertEqual(self.login(c)[0], 235)
            self.assertEqual(self.login(c)[0], 503, 'a second AUTH is refused')

    def test_long_plain_response_is_accepted_up_to_rfc4954s_limit(self):
        c, _ = self.tls_conn()
        with c:
            # a 600-byte password: longer than a command line, so the AUTH limit applies
            code, text = c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'x' * 200))
            self.assertEqual(code, 535, text)
            code, text = c.cmd('AUTH PLAIN ' + 'A' * 13000)
            self.assertEqual(code, 500, text)
            self.assertIn('too long (the limit is 12288 octets)', text)


class Refusals(MsaServer):
    def test_auth_before_starttls_is_538(self):
        with Conn(self.server.sub_port) as c:
            code, text = c.cmd('EHLO client.example.org')
            self.assertNotIn('AUTH', text)
            code, text = c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'alice-secret'))
            self.assertEqual(code, 538)
            self.assertTrue(text.startswith('5.7.11 Encryption required'), text)

    def test_mail_before_starttls_on_587_is_530(self):
        with Conn(self.server.sub_port) as c:
            c.cmd('EHLO client.example.org')
            code, text = c.cmd('MAIL FROM:<alice@example.com>')
            self.assertEqual(code, 530)
            self.assertIn('5.7.0 Must issue a STARTTLS command first', text)

    def test_mail_before_auth_on_587_is_530(self):
        c, _ = self.tls_conn()
        with c:
            code, text = c.cmd('MAIL FROM:<alice@example.com>')
            self.assertEqual((code, text), (530, '5.7.0 Authentication required'))
        with Conn(self.server.subs_port, tls=True) as c:
            c.cmd('EHLO client.example.org')
            self.assertEqual(c.cmd('MAIL FROM:<alice@example.com>')[0], 530)

    def test_wrong_password_and_unknown_user_get_the_same_reply(self):
        mark = self.server.mark()
        c, _ = self.tls_conn()
        with c:
            wrong = c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'guess'))
            unknown = c.cmd('AUTH PLAIN ' + plain('nobody@example.com', 'guess'))
            login_unknown = c.cmd('AUTH LOGIN ' + b64('nobody@example.com'))
            login_unknown = c.cmd(b64('guess'))
        self.assertEqual(wrong, (535, '5.7.8 Error: authentication failed'))
        self.assertEqual(unknown, wrong)
        self.assertEqual(login_unknown, wrong)
        log = self.server.wait_log(r'auth-failed .*user=nobody@example\.com', since=mark)
        self.assertIsNotNone(log)
        self.assertRegex(log, r'auth-failed .*client=127\.0\.0\.9 user=alice@example\.com '
                              r'mechanism=PLAIN reason="wrong password"')

    def test_unknown_user_costs_the_same_hash_as_a_wrong_password(self):
        """No user enumeration by timing: both cases run one password hash."""
        def timed(user):
            c, _ = self.tls_conn()
            with c:
                samples = []
                for _ in range(5):
                    t = time.perf_counter()
                    self.assertEqual(c.cmd('AUTH PLAIN ' + plain(user, 'guess'))[0], 535)
                    samples.append(time.perf_counter() - t)
            return sorted(samples)[2]
        known, unknown = timed('bob@example.com'), timed('nobody@example.com')
        # yescrypt takes milliseconds; skipping it would make unknown users ~100x faster
        self.assertGreater(unknown, known / 4, (known, unknown))

    def test_sender_not_owned_is_553_at_mail(self):
        c, _ = self.tls_conn()
        with c:
            self.assertEqual(self.login(c)[0], 235)
            code, text = c.cmd('MAIL FROM:<ceo@example.org>')
            self.assertEqual(code, 553)
            self.assertEqual(text, '5.7.1 <ceo@example.org>: Sender address rejected: '
                                   'not owned by user alice@example.com')
            # routed forms of a foreign address resolve before the check
            for trick in ('<"ceo@example.org"@example.com>', '<ceo%example.org@example.com>',
                          '<@example.com:ceo@example.org>', '<bob@example.com>'):
                self.assertEqual(c.cmd('MAIL FROM:%s' % trick)[0], 553, trick)
            self.assertEqual(c.cmd('MAIL FROM:<Alice@Example.com>')[0], 250)

    def test_pipelined_commands_after_starttls_are_not_executed(self):
        """CVE-2011-0411: what is sent with STARTTLS in one packet is thrown away."""
        mark = self.server.mark()
        with Conn(self.server.port) as c:
            c.cmd('EHLO client.example.org')
            c.send('STARTTLS\r\nMAIL FROM:<attacker@example.org>\r\n'
                   'RCPT TO:<postmaster@example.com>\r\n')
            code, _ = c.reply()
            self.assertEqual(code, 220)
            c.starttls()
            self.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
            code, text = c.cmd('RCPT TO:<postmaster@example.com>')
            self.assertEqual(code, 503, 'the injected MAIL must not have run: ' + text)
        self.assertIsNotNone(self.server.wait_log(
            r'starttls-pipelining-discarded .*client=127\.0\.0\.9 bytes=\d+', since=mark))

    def test_starttls_resets_the_session(self):
        with Conn(self.server.port) as c:
            c.cmd('EHLO client.example.org')
            self.assertEqual(c.cmd('MAIL FROM:<a@example.org>')[0], 250)
            self.assertEqual(c.cmd('STARTTLS')[0], 503, 'not inside a transaction')
            c.cmd('RSET')
            self.assertEqual(c.cmd('STARTTLS')[0], 220)
            c.starttls()
            code, text = c.cmd('MAIL FROM:<a@example.org>')
            self.assertEqual(code, 503, 'HELO is forgotten after STARTTLS: ' + text)
            c.cmd('EHLO client.example.org')
            self.assertEqual(c.cmd('STARTTLS')[0], 554)

    def test_tls_10_and_11_are_refused(self):
        mark = self.server.mark()
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            ctx = harness.tls_context(minimum=version, maximum=version,
                                      ciphers='DEFAULT@SECLEVEL=0')
            with Conn(self.server.sub_port) as c:
                c.cmd('EHLO client.example.org')
                self.assertEqual(c.cmd('STARTTLS')[0], 220)
                with self.assertRaises((ssl.SSLError, ConnectionResetError)):
                    c.starttls(ctx)
        log = self.server.wait_log(r'tls-handshake-failed .*client=127\.0\.0\.9', since=mark,
                                   count=2)
        self.assertIsNotNone(log, self.server.tail())
        self.assertRegex(log, r'reason="?[^"\n]*(unsupported protocol|version)')


class RelayDecisions(MsaServer):
    """The relay table with AUTH: only a logged-in outsider may relay, as itself."""

    def test_unauthenticated_outside_client_is_denied(self):
        with Conn(self.server.port) as c:
            c.cmd('EHLO client.example.org')
            c.cmd('MAIL FROM:<alice@example.com>')
            code, text = c.cmd('RCPT TO:<victim@example.net>')
            self.assertEqual((code, text),
                             (554, '5.7.1 <victim@example.net>: Relay access denied'))

    def test_authenticated_outside_client_may_relay_on_port_25(self):
        mark = self.server.mark()
        with Conn(self.server.port) as c:
            c.cmd('EHLO client.example.org')
            c.cmd('STARTTLS')
            c.starttls()
            c.cmd('EHLO client.example.org')
            self.assertEqual(self.login(c)[0], 235)
            self.assertEqual(c.cmd('MAIL FROM:<alice@example.com>')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<victim@example.net>')[0], 250)
        log = self.server.wait_log(r'rcpt .*result=accept restriction=permit_sasl_authenticated',
                                   since=mark)
        self.assertIsNotNone(log)

    def test_authenticated_user_spoofing_a_foreign_sender_is_rejected(self):
        c, _ = self.tls_conn()
        with c:
            self.login(c, 'bob@example.com')
            self.assertEqual(c.cmd('MAIL FROM:<alice@example.com>')[0], 553)
            self.assertEqual(c.cmd('MAIL FROM:<bob@example.com>')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<victim@example.net>')[0], 250)

    def test_trusted_network_still_cannot_submit_without_auth(self):
        c, _ = self.tls_conn(source=harness.TRUSTED)
        with c:
            self.assertEqual(c.cmd('MAIL FROM:<alice@example.com>')[0], 530)


class SenderLoginMaps(unittest.TestCase):
    def test_owner_table(self):
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd)
            owners = os.path.join(tmp, 'owners')
            with open(owners, 'w') as f:
                f.write('alice@example.com alice@example.com\n'
                        'sales@example.com alice@example.com, bob@example.com\n'
                        '@example.org carol@example.com\n')
            o = msa_overrides(passwd, smtpd_sender_login_maps='texthash:' + owners,
                              smtpd_sender_restrictions='reject_sender_login_mismatch')
            with Server(overrides=o) as srv:
                def mail(user, sender, port=srv.sub_port):
                    c = Conn(port)
                    with c:
                        c.cmd('EHLO c.example.org')
                        c.cmd('STARTTLS')
                        c.starttls()
                        c.cmd('EHLO c.example.org')
                        if user:
                            c.cmd('AUTH PLAIN ' + plain(user, USERS[user][1]))
                        return c.cmd('MAIL FROM:<%s>' % sender)[0]
                self.assertEqual(mail('alice@example.com', 'sales@example.com'), 250)
                self.assertEqual(mail('bob@example.com', 'sales@example.com'), 250)
                self.assertEqual(mail('carol@example.com', 'sales@example.com'), 553)
                self.assertEqual(mail('carol@example.com', 'anyone@example.org'), 250)
                self.assertEqual(mail('bob@example.com', 'bob@example.com'), 553,
                                 'with a table, only the table says who owns what')
                # port 25: an unauthenticated client may not use an owned address
                with Conn(srv.port) as c:
                    c.cmd('EHLO c.example.org')
                    c.cmd('MAIL FROM:<sales@example.com>')
                    code, text = c.cmd('RCPT TO:<alice@example.com>')
                    self.assertEqual(code, 553, text)
                    self.assertIn('not logged in', text)


class Lockout(unittest.TestCase):
    def test_three_failures_lock_the_client_out(self):
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd, {'alice@example.com': ('SHA512-CRYPT', 'alice-secret')})
            o = msa_overrides(passwd, smtpd_sasl_failure_limit='3',
                              smtpd_sasl_lockout_time='60s')
            with Server(overrides=o) as srv:
                with Conn(srv.subs_port, tls=True) as c:
                    c.cmd('EHLO c.example.org')
                    for _ in range(2):
                        self.assertEqual(c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'x'))[0],
                                         535)
                    code, text = c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'x'))
                    self.assertEqual(code, 421, text)
                    self.assertIn('too many failed authentication attempts', text)
                    self.assertTrue(c.closed())
                # the same address is refused at connect, on every port, even with the password
                for port in (srv.port, srv.sub_port):
                    with Conn(port, greeting=False) as c:
                        code, text = c.reply()
                        self.assertEqual(code, 421, text)
                # another address is not affected
                with Conn(srv.subs_port, source=UNTRUSTED2, tls=True) as c:
                    c.cmd('EHLO c.example.org')
                    self.assertEqual(c.cmd('AUTH PLAIN ' + plain('alice@example.com',
                                                                 'alice-secret'))[0], 235)
                self.assertIsNotNone(srv.wait_log(r'auth-lockout client=127\.0\.0\.9'))
                self.assertIsNotNone(srv.wait_log(r'auth-lockout-refused client=127\.0\.0\.9'))

    def test_failure_reply_is_delayed_without_blocking_others(self):
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd, {'alice@example.com': ('SHA512-CRYPT', 'alice-secret')})
            with Server(overrides=msa_overrides(passwd, smtpd_sasl_failure_delay='2s')) as srv:
                slow = Conn(srv.subs_port, tls=True)
                slow.cmd('EHLO c.example.org')
                t0 = time.monotonic()
                slow.send('AUTH PLAIN %s\r\n' % plain('alice@example.com', 'wrong'))
                # while that failure waits, another client logs in at once
                with Conn(srv.subs_port, source=UNTRUSTED2, tls=True) as c:
                    c.cmd('EHLO c.example.org')
                    self.assertEqual(c.cmd('AUTH PLAIN ' + plain('alice@example.com',
                                                                 'alice-secret'))[0], 235)
                    fast = time.monotonic() - t0
                self.assertEqual(slow.reply()[0], 535)
                delayed = time.monotonic() - t0
                slow.close()
                self.assertGreaterEqual(delayed, 1.9)
                self.assertLess(fast, delayed)


class Configuration(unittest.TestCase):
    def write(self, d, name, text):
        path = os.path.join(d, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def test_bad_settings_refuse_to_start_with_file_and_line(self):
        with scratch_dir() as tmp:
            cf = self.write(tmp, 'main.cf', 'smtpd_sasl_auth_enable = yes\n'
                            'smtpd_tls_security_level = maybe\n'
                            'smtpd_sasl_type = ldap\n')
            p = run_cli(['config', '-c', cf])
            self.assertEqual(p.returncode, 78)
            self.assertIn('%s:1: smtpd_sasl_auth_enable = yes needs smtpd_sasl_path' % cf, p.stderr)
            self.assertIn('%s:2: smtpd_tls_security_level: "maybe" is not none, may or encrypt'
                          % cf, p.stderr)
            self.assertIn('%s:3: smtpd_sasl_type: "ldap" is not passwd-file or dovecot' % cf,
                          p.stderr)
            cf = self.write(tmp, 'dovecot.cf', 'smtpd_sasl_type = dovecot\n'
                            'smtpd_sasl_path = inet:dovecot.example.com:12345\n')
            p = run_cli(['config', '-c', cf])
            self.assertEqual(p.returncode, 78)
            self.assertIn('%s:2: smtpd_sasl_path: "inet:dovecot.example.com:12345" is not '
                          'inet:IP:PORT' % cf, p.stderr)

    def test_broken_passwd_file_refuses_to_start(self):
        with scratch_dir() as tmp:
            passwd = self.write(tmp, 'passwd', 'alice@example.com:{SSHA}abc\n'
                                'no-colon-line\n')
            srv = Server(overrides=msa_overrides(passwd), start=False)
            try:
                with self.assertRaises(harness.ServerError) as cm:
                    srv.start(timeout=5)
                self.assertIn('%s:1: unsupported password scheme' % passwd, str(cm.exception))
                self.assertIn('%s:2: expected user:password' % passwd, str(cm.exception))
            finally:
                srv.cleanup()

    @harness.requires(os.geteuid() == 0, 'root (.ci/run runs as root)',
                      'the server reads the file as root, then runs as mail_owner')
    def test_passwd_file_unreadable_after_start_is_logged_once_with_a_hint(self):
        # read as root at start; after chmod 600 mail_owner cannot read it again:
        # one warning, one line (no escaped newline), naming whom it must be
        # readable by; the users read before still log in
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd)
            with Server(overrides=msa_overrides(passwd)) as srv:
                os.chmod(passwd, 0o600)
                with open(passwd, 'a') as f:
                    f.write('# changed\n')
                mark = srv.mark()
                for _ in range(2):
                    with Conn(srv.sub_port) as c:
                        c.cmd('EHLO client.example.org')
                        c.cmd('STARTTLS')
                        c.starttls()
                        c.cmd('EHLO client.example.org')
                        code, text = c.cmd('AUTH PLAIN ' + plain('alice@example.com',
                                                                 'alice-secret'))
                        self.assertEqual(code, 235, text)
                lines = [l for l in srv.log_since(mark).splitlines()
                         if 'passwd-reload-failed' in l]
                self.assertEqual(len(lines), 1, srv.log_since(mark))
                self.assertNotIn('\\x0a', lines[0])
                self.assertIn('cannot open: Permission denied', lines[0])
                self.assertIn('must be readable by user relayguard (mail_owner)', lines[0])

    def test_missing_certificate_refuses_to_start(self):
        srv = Server(overrides={'smtpd_tls_cert_file': '/nonexistent/cert.pem'}, start=False)
        try:
            with self.assertRaises(harness.ServerError) as cm:
                srv.start(timeout=5)
            self.assertIn('smtpd_tls_cert_file /nonexistent/cert.pem', str(cm.exception))
        finally:
            srv.cleanup()

    def test_configured_certificate_is_served(self):
        with scratch_dir() as tmp:
            crt, key = os.path.join(tmp, 'c.pem'), os.path.join(tmp, 'k.pem')
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                            '-keyout', key, '-out', crt, '-days', '2', '-subj',
                            '/CN=smtp.example.org'], check=True, capture_output=True)
            with Server(overrides={'smtpd_tls_cert_file': crt, 'smtpd_tls_key_file': key}) as srv:
                with Conn(srv.subs_port, tls=True) as c:
                    der = c.sock.getpeercert(binary_form=True)
                pem = ssl.DER_cert_to_PEM_cert(der)
                with open(crt) as f:
                    self.assertEqual(pem.split(), f.read().split())

    def test_passwd_command(self):
        for scheme, prefix in (('CRYPT', '{CRYPT}$y$'), ('SHA512-CRYPT', '{SHA512-CRYPT}$6$'),
                               ('SHA256-CRYPT', '{SHA256-CRYPT}$5$'),
                               ('BLF-CRYPT', '{BLF-CRYPT}$2y$')):
            p = run_cli(['passwd', '--scheme', scheme, 'pw'])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(p.stdout.startswith(prefix), p.stdout)
        p = run_cli(['passwd', '--scheme', 'MD4', 'pw'])
        self.assertEqual(p.returncode, 64)
        self.assertIn('unknown scheme', p.stderr)

    def test_login_name_stays_out_of_received_by_default(self):
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd, {'alice@example.com': ('SHA512-CRYPT', 'alice-secret')})
            with Server(overrides=msa_overrides(passwd)) as srv:
                with smtplib.SMTP_SSL('127.0.0.1', srv.subs_port, timeout=10,
                                      source_address=(UNTRUSTED, 0),
                                      context=harness.tls_context()) as s:
                    s.login('alice@example.com', 'alice-secret')
                    s.sendmail('alice@example.com', ['x@example.org'], b'Subject: t\r\n\r\nb\r\n')
                name = wait_deferred(srv)[0]
                with open(os.path.join(srv.queue_dir, 'deferred', name)) as f:
                    text = f.read()
                self.assertIn('with ESMTPSA id', text, 'the session is still marked as authenticated')
                self.assertNotIn('Authenticated sender', text)
                self.assertNotIn('alice@example.com)', text)

    def test_auth_off_by_default(self):
        with Server() as srv:
            with Conn(srv.sub_port) as c:
                c.cmd('EHLO c.example.org')
                c.cmd('STARTTLS')
                c.starttls()
                code, text = c.cmd('EHLO c.example.org')
                self.assertNotIn('AUTH', text)
                self.assertEqual(c.cmd('AUTH PLAIN ' + plain('a', 'b'))[0], 503)
                self.assertEqual(c.cmd('MAIL FROM:<a@example.org>')[0], 530)


if __name__ == '__main__':
    unittest.main()



class TlsRobustness(unittest.TestCase):
    """What a hostile client can do to a TLS session (found by review)."""

    def flood_without_reading(self, sock, seconds=3):
        """Send EHLOs without reading replies; returns the bytes the server took."""
        sock.setblocking(False)
        sent, chunk = 0, b'EHLO client.example.org\r\n' * 4000
        deadline = time.time() + seconds
        while time.time() < deadline and sent < 64 * 1024 * 1024:
            try:
                sent += sock.send(chunk)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                time.sleep(0.01)
        return sent

    def test_unread_replies_are_bounded_under_starttls_and_implicit_tls(self):
        with Server(overrides={'smtpd_timeout': '5s'}) as srv:
            for implicit in (False, True):
                with self.subTest(implicit=implicit):
                    before = harness.vm_rss_kib(srv.proc.pid)
                    if implicit:
                        c = Conn(srv.subs_port, tls=True)
                    else:
                        c = Conn(srv.port)
                        c.cmd('EHLO client.example.org')
                        self.assertEqual(c.cmd('STARTTLS')[0], 220)
                        c.starttls()
                    sent = self.flood_without_reading(c.sock)
                    after = harness.vm_rss_kib(srv.proc.pid)
                    c.close()
                    self.assertLess(sent, 16 * 1024 * 1024, 'server kept reading commands')
                    if 'asan' not in os.path.basename(harness.binary()):
                        # (ASan keeps freed memory in quarantine: its RSS says nothing)
                        self.assertLess(after - before, 32 * 1024,
                                        'RSS grew by %d KiB' % (after - before))

    def test_last_replies_are_not_lost_when_a_starttls_session_ends(self):
        with Server() as srv:
            with Conn(srv.port, timeout=10) as c:
                c.cmd('EHLO client.example.org')
                c.cmd('STARTTLS')
                c.starttls()
                # EHLO is not a junk command: thousands stay within the error limits
                c.send('EHLO client.example.org\r\n' * 3000 + 'QUIT\r\n')
                replies = [c.reply() for _ in range(3001)]
            self.assertTrue(all(r is not None and r[0] == 250 for r in replies[:3000]),
                            replies[-5:])
            self.assertEqual(replies[3000], (221, '2.0.0 Bye'))

    def test_sigterm_does_not_wait_for_a_handshake_that_never_comes(self):
        srv = Server(overrides={'smtpd_timeout': '300s'})
        try:
            silent = Conn(srv.subs_port, greeting=False)  # TCP only, no ClientHello
            half = Conn(srv.port)
            half.cmd('EHLO client.example.org')
            self.assertEqual(half.cmd('STARTTLS')[0], 220)  # and no handshake either
            t0 = time.monotonic()
            srv.stop(timeout=20)  # asserts exit status 0 and no sanitizer report
            self.assertLess(time.monotonic() - t0, 20)
            silent.close()
            half.close()
        finally:
            srv.cleanup()


class LockoutWithOpenSessions(unittest.TestCase):
    def test_sessions_opened_before_the_lockout_get_no_more_guesses(self):
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd, {'alice@example.com': ('SHA512-CRYPT', 'alice-secret')})
            o = msa_overrides(passwd, smtpd_sasl_failure_limit='3', smtpd_sasl_lockout_time='60s')
            with Server(overrides=o) as srv:
                conns = [Conn(srv.subs_port, tls=True) for _ in range(4)]
                for c in conns:
                    c.cmd('EHLO c.example.org')
                codes = [c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'guess'))[0]
                         for c in conns[:3]]
                self.assertEqual(codes, [535, 535, 421])
                # the fourth session was open all along: even the right password is refused
                code, text = conns[3].cmd('AUTH PLAIN ' + plain('alice@example.com',
                                                                'alice-secret'))
                self.assertEqual(code, 421, text)
                # and a session that failed before the lock-out cannot guess again
                self.assertEqual(conns[0].cmd('AUTH PLAIN ' + plain('alice@example.com',
                                                                    'guess'))[0], 421)
                for c in conns:
                    c.close()
