"""test_smtp_client.py - the SMTP client outbound delivery uses (src/client/dialogue.c).

Driven through build/tools[-asan]/smtp_send_check, which sends one message (or
two over one connection) and prints every result as JSON. Against a real
relayguard (its submission port: STARTTLS and AUTH; its MTA port), where what
arrives in the Maildir is compared byte for byte, and against scripted servers
(fakesmtp.py) for every fault: silence, a drop after DATA, 4xx to the
greeting, to MAIL and to one RCPT, 5xx to one of three RCPTs, a SIZE smaller
than the message, malformed and oversized replies.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import fakesmtp
import harness
from fakesmtp import FakeSMTP, Policy, SILENT
from harness import Server
from test_msa import make_passwd, msa_overrides

# lines starting with '.' (and a lone '.') must arrive exactly as they were
BODY = (b'From: alice@example.com\r\nTo: bob@example.com\r\nSubject: dots\r\n\r\n'
        b'.\r\n..\r\n.leading dot\r\nmiddle . dot\r\n...three\r\n\r\n.\r\nlast line\r\n')
MAILDIR_BODY = BODY.replace(b'\r\n', b'\n')


def driver():
    """build/tools/smtp_send_check beside build/relayguard, tools-asan beside -asan."""
    b = harness.binary()
    sub = 'tools-asan' if os.path.basename(b).endswith('-asan') else 'tools'
    return os.path.join(os.path.dirname(b), sub, 'smtp_send_check')


def send(port, *args, body=BODY, host='127.0.0.1', timeout=30):
    """Run the driver; returns its JSON result."""
    p = subprocess.run([driver()] + list(args) + [host, str(port)], input=body,
                       capture_output=True, timeout=timeout)
    err = p.stderr.decode(errors='replace')
    assert p.returncode == 0, 'driver exit %d: %s' % (p.returncode, err)
    assert 'Sanitizer' not in err and 'runtime error' not in err, err
    return json.loads(p.stdout.decode())


class Base(unittest.TestCase):
    def setUp(self):
        if not os.access(driver(), os.X_OK):
            self.fail('driver %s not built (make tools)' % driver())


# ---------------------------------------------------------------- real relayguard

class AgainstRelayguard(Base):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-client-')
        os.chmod(cls.tmp, 0o755)
        passwd = os.path.join(cls.tmp, 'passwd')
        make_passwd(passwd)
        cls.server = Server(overrides=msa_overrides(passwd, smtpd_sasl_failure_limit='1000'))
        cls.cert = os.path.join(cls.server.dir, 'data', 'selfsigned.crt')

    @classmethod
    def tearDownClass(cls):
        harness.stop_server(cls.server, cls.tmp)

    def arrived(self, user, count):
        files = self.server.wait_maildir('example.com', user, count=count)
        self.assertEqual(len(files), count, 'messages for %s' % user)
        return [self.server.read_mail('example.com', user, f) for f in files]

    def test_submission_starttls_auth_dot_stuffing_round_trip(self):
        before = len(self.server.maildir('example.com', 'bob'))
        r = send(self.server.sub_port, '--tls', 'encrypt', '--auth', 'alice@example.com:alice-secret',
                 '--from', 'alice@example.com', '--to', 'bob@example.com',
                 '--servername', 'mx.example.com')
        self.assertEqual(r['open']['kind'], 'done', r)
        self.assertEqual(r['open']['auth'], 'PLAIN as alice@example.com')
        s = r['sends'][0]
        self.assertEqual(s['kind'], 'done', s)
        self.assertEqual(s['rcpts'][0]['code'], 250)
        self.assertRegex(s['tls'], r'^TLSv1\.[23] \S+ unverified \(self-signed certificate\)$')
        mail = self.arrived('bob', before + 1)[-1]
        # relayguard puts its Received: line first; the rest is what we sent, byte for
        # byte (the Maildir keeps LF line ends)
        self.assertTrue(mail.endswith(MAILDIR_BODY), mail)

    def test_two_messages_over_one_connection(self):
        before = len(self.server.maildir('example.com', 'carol'))
        r = send(self.server.port, '--tls', 'may', '--from', 'x@example.org',
                 '--to', 'carol@example.com', '--twice')
        self.assertEqual([s['kind'] for s in r['sends']], ['done', 'done'], r)
        self.assertEqual(r['reusable'], [True, True])
        mails = self.arrived('carol', before + 2)[-2:]
        for m in mails:
            self.assertTrue(m.endswith(MAILDIR_BODY), m)
        self.assertTrue(r['sends'][1]['tls'].startswith('TLSv1.'), r)

    def test_auth_plain_is_not_sent_before_tls_when_the_server_offers_none(self):
        # the MTA port offers AUTH only after STARTTLS: with TLS none there is nothing to log in
        r = send(self.server.port, '--tls', 'none', '--auth', 'alice@example.com:alice-secret',
                 '--from', 'x@example.org', '--to', 'alice@example.com')
        self.assertEqual(r['open']['auth'], 'not offered', r)
        self.assertEqual(r['open']['tls'], 'none')

    def test_verify_refuses_a_certificate_nobody_vouches_for(self):
        r = send(self.server.sub_port, '--tls', 'verify', '--cafile', self._empty_ca(),
                 '--servername', 'mx.example.com',
                 '--from', 'alice@example.com', '--to', 'bob@example.com')
        o = r['open']
        self.assertEqual(o['kind'], 'conn_fail', o)
        self.assertEqual(o['stage'], 'STARTTLS')
        self.assertTrue(o['try_next'])
        self.assertIn('certificate verify failed', o['text'])
        self.assertEqual(r['sends'], [])

    def _empty_ca(self):
        """A trust store holding a certificate that did not sign the server's."""
        path = os.path.join(self.tmp, 'other-ca')
        os.makedirs(path, exist_ok=True)
        cert, _ = fakesmtp.make_cert(path)
        return cert

    def test_verify_with_the_servers_certificate_as_trust_anchor(self):
        r = send(self.server.sub_port, '--tls', 'verify', '--cafile', self.cert,
                 '--servername', 'mx.example.com', '--auth', 'alice@example.com:alice-secret',
                 '--from', 'alice@example.com', '--to', 'bob@example.com')
        self.assertEqual(r['open']['kind'], 'done', r)
        self.assertRegex(r['sends'][0]['tls'], r'^TLSv1\.[23] \S+ verified$')

    def test_verify_checks_the_host_name(self):
        r = send(self.server.sub_port, '--tls', 'verify', '--cafile', self.cert,
                 '--servername', 'other.example.com',
                 '--from', 'alice@example.com', '--to', 'bob@example.com')
        self.assertEqual(r['open']['kind'], 'conn_fail', r)
        self.assertIn('hostname mismatch', r['open']['text'])
        # may: the same certificate is used, and the result says it would not verify
        r = send(self.server.port, '--tls', 'may', '--cafile', self.cert,
                 '--servername', 'other.example.com',
                 '--from', 'x@example.org', '--to', 'alice@example.com')
        self.assertEqual(r['sends'][0]['kind'], 'done', r)
        self.assertIn('unverified (hostname mismatch)', r['sends'][0]['tls'])

    def test_secure_matches_the_next_hop_domain_and_its_subdomains(self):
        r = send(self.server.sub_port, '--tls', 'secure', '--cafile', self.cert,
                 '--servername', 'mx.example.com', '--match', 'example.com',
                 '--auth', 'alice@example.com:alice-secret',
                 '--from', 'alice@example.com', '--to', 'bob@example.com')
        self.assertEqual(r['open']['kind'], 'done', r)
        self.assertTrue(r['open']['tls'].endswith(' verified'), r)
        r = send(self.server.sub_port, '--tls', 'secure', '--cafile', self.cert,
                 '--servername', 'mx.example.com', '--match', 'example.net',
                 '--from', 'alice@example.com', '--to', 'bob@example.com')
        self.assertEqual(r['open']['kind'], 'conn_fail', r)

    def test_implicit_tls_submissions_port(self):
        before = len(self.server.maildir('example.com', 'bob'))
        r = send(self.server.subs_port, '--implicit-tls', '--tls', 'encrypt',
                 '--auth', 'alice@example.com:alice-secret',
                 '--from', 'alice@example.com', '--to', 'bob@example.com')
        self.assertEqual(r['sends'][0]['kind'], 'done', r)
        self.assertTrue(self.arrived('bob', before + 1)[-1].endswith(MAILDIR_BODY))

    def test_wrong_password_is_reported_at_auth(self):
        r = send(self.server.sub_port, '--tls', 'encrypt', '--auth', 'alice@example.com:wrong',
                 '--from', 'alice@example.com', '--to', 'bob@example.com')
        o = r['open']
        self.assertEqual((o['kind'], o['stage'], o['code']), ('conn_fail', 'AUTH', 535), o)
        self.assertTrue(o['try_next'])


# ---------------------------------------------------------------- scripted servers

class Caps(Policy):
    """A server with the extensions a test asks for."""
    extra = ()
    pipelining = True

    def ehlo(self, sess, verb, arg):
        if verb == 'HELO':
            return '250 mx.fake.test'
        caps = ['mx.fake.test Hello'] + (['PIPELINING'] if self.pipelining else [])
        caps += list(self.extra)
        if self.starttls and not sess['tls']:
            caps.append('STARTTLS')
        return '\n'.join('250 ' + c for c in caps)

    def rcpt(self, sess, path):
        return '250 2.1.5 Ok'


def policy(base=Caps, **methods):
    """A Policy subclass with the given attributes/methods."""
    return type('P', (base,), methods)()


THREE = ('--to', 'a@fake.test', '--to', 'b@fake.test', '--to', 'c@fake.test')


class Faults(Base):
    def run_fake(self, pol, *args, body=BODY, certs=None, **kw):
        with FakeSMTP(pol, certs=certs) as srv:
            r = send(srv.port, '--from', 's@example.org', *args, body=body, **kw)
            time.sleep(0.05)  # the QUIT, recorded
            return r, srv.sessions

    def test_a_server_that_never_answers(self):
        r, _ = self.run_fake(policy(greeting=lambda self, s: SILENT),
                             '--timeout', 'helo=700', '--to', 'a@fake.test')
        o = r['open']
        self.assertEqual((o['kind'], o['stage'], o['try_next']), ('conn_fail', 'greeting', True), o)
        self.assertIn('timed out', o['text'])

    def test_drop_after_data_before_the_final_reply_is_a_temporary_failure(self):
        r, sess = self.run_fake(policy(data_end=lambda self, s, b: None), *THREE)
        s = r['sends'][0]
        self.assertEqual((s['kind'], s['stage'], s['try_next']), ('temp_all', 'end of data', True), s)
        self.assertIn('may be sent more than once', s['text'])
        self.assertEqual([x['code'] for x in s['rcpts']], [451, 451, 451])
        self.assertEqual({x['enhanced'] for x in s['rcpts']}, {'4.4.2'})
        self.assertEqual(r['reusable'], [False])
        self.assertEqual(len(sess[0]['messages']), 1)  # it did arrive: hence "more than once"

    def test_timeout_waiting_for_the_final_reply(self):
        r, _ = self.run_fake(policy(data_end=lambda self, s, b: SILENT),
                             '--timeout', 'data-done=500', '--to', 'a@fake.test')
        s = r['sends'][0]
        self.assertEqual((s['kind'], s['stage']), ('temp_all', 'end of data'), s)
        self.assertIn('timed out', s['text'])
        self.assertEqual(r['reusable'], [False])

    def test_4xx_greeting(self):
        for code in ('421 4.3.2 Service not available', '450 4.7.1 busy, come back later'):
            with self.subTest(code=code):
                r, sess = self.run_fake(policy(greeting=lambda self, s, c=code: c),
                                        '--to', 'a@fake.test')
                o = r['open']
                self.assertEqual((o['kind'], o['stage'], o['code'], o['try_next']),
                                 ('conn_fail', 'greeting', int(code[:3]), True), o)
                self.assertEqual(o['text'], code)
                self.assertFalse(o['local'])
                self.assertNotIn('EHLO client.example.org', sess[0]['commands'])

    def test_4xx_to_mail(self):
        for pipelining in (True, False):
            with self.subTest(pipelining=pipelining):
                r, sess = self.run_fake(policy(mail=lambda self, s, p: '451 4.3.0 try again later',
                                               data=lambda self, s: '503 5.5.1 no recipients',
                                               pipelining=pipelining), *THREE)
                s = r['sends'][0]
                self.assertEqual((s['kind'], s['stage'], s['code']), ('temp_all', 'MAIL', 451), s)
                self.assertEqual([x['code'] for x in s['rcpts']], [451, 451, 451])
                self.assertEqual(r['reusable'], [True])
                self.assertEqual(sess[0]['messages'], [])
                if not pipelining:  # one at a time: nothing after the refused MAIL
                    self.assertFalse(any(c.startswith('RCPT') for c in sess[0]['commands']))

    def test_4xx_to_one_rcpt_and_5xx_to_one_of_three(self):
        for refusal in ('450 4.2.0 <b@fake.test>: mailbox busy',
                        '550 5.1.1 <b@fake.test>: no such user'):
            for pipelining in (True, False):
                with self.subTest(refusal=refusal, pipelining=pipelining):
                    def rcpt(self, s, p, refusal=refusal):
                        return refusal if p == 'b@fake.test' else '250 2.1.5 Ok'
                    r, sess = self.run_fake(policy(rcpt=rcpt, pipelining=pipelining), *THREE)
                    s = r['sends'][0]
                    self.assertEqual(s['kind'], 'done', s)
                    codes = [x['code'] for x in s['rcpts']]
                    self.assertEqual(codes, [250, int(refusal[:3]), 250])
                    self.assertEqual(s['rcpts'][1]['text'], refusal)
                    self.assertEqual(s['rcpts'][1]['enhanced'], refusal[4:9])
                    self.assertEqual(sess[0]['bodies'], [BODY])

    def test_every_rcpt_refused_sends_no_message(self):
        for pipelining in (True, False):
            with self.subTest(pipelining=pipelining):
                r, sess = self.run_fake(policy(rcpt=lambda self, s, p: '550 5.1.1 unknown',
                                               data=lambda self, s: '554 5.5.1 No valid recipients',
                                               pipelining=pipelining), *THREE)
                s = r['sends'][0]
                self.assertEqual(s['kind'], 'done', s)
                self.assertEqual([x['code'] for x in s['rcpts']], [550, 550, 550])
                self.assertEqual(sess[0]['messages'], [])
                self.assertEqual(r['reusable'], [True])
                self.assertEqual('DATA' in sess[0]['commands'], pipelining)

    def test_data_refused(self):
        r, _ = self.run_fake(policy(data=lambda self, s: '554 5.7.0 not today'), *THREE)
        s = r['sends'][0]
        self.assertEqual((s['kind'], s['stage'], s['code']), ('perm_all', 'DATA', 554), s)
        self.assertEqual([x['code'] for x in s['rcpts']], [554, 554, 554])

    def test_size_smaller_than_the_message_refuses_before_mail(self):
        r, sess = self.run_fake(policy(extra=('SIZE 100',)), '--to', 'a@fake.test', '--twice')
        s = r['sends'][0]
        self.assertEqual((s['kind'], s['code'], s['enhanced'], s['local']),
                         ('perm_all', 552, '5.3.4', True), s)
        self.assertIn('exceeds size limit 100', s['text'])
        self.assertEqual(s['rcpts'][0]['code'], 552)
        self.assertFalse(any(c.startswith('MAIL') for c in sess[0]['commands']))
        self.assertEqual(r['reusable'][0], True)

    def test_size_dsn_8bitmime_parameters(self):
        r, sess = self.run_fake(policy(extra=('SIZE 100000', '8BITMIME', 'DSN')),
                                '--to', 'a@fake.test', '--8bit', '--ret', 'HDRS',
                                '--envid', 'id+1', '--notify', 'SUCCESS,FAILURE',
                                '--orcpt', 'rfc822;a@fake.test')
        self.assertEqual(r['sends'][0]['kind'], 'done', r)
        cmds = sess[0]['commands']
        self.assertIn('MAIL FROM:<s@example.org> SIZE=%d BODY=8BITMIME RET=HDRS ENVID=id+2B1'
                      % len(BODY), cmds)
        self.assertIn('RCPT TO:<a@fake.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@fake.test',
                      cmds)
        # without DSN offered, nothing of it is sent
        r, sess = self.run_fake(policy(), '--to', 'a@fake.test', '--ret', 'HDRS',
                                '--notify', 'NEVER')
        self.assertIn('MAIL FROM:<s@example.org>', sess[0]['commands'])
        self.assertIn('RCPT TO:<a@fake.test>', sess[0]['commands'])

    def test_two_messages_over_one_connection_with_rset_between(self):
        r, sess = self.run_fake(policy(), '--to', 'a@fake.test', '--twice')
        self.assertEqual([x['kind'] for x in r['sends']], ['done', 'done'], r)
        self.assertEqual(len(sess), 1)
        self.assertEqual(sess[0]['bodies'], [BODY, BODY])
        cmds = sess[0]['commands']
        self.assertEqual(cmds[cmds.index('DATA') + 1], 'RSET')
        self.assertEqual(cmds[-1], 'QUIT')

    def test_pipelining_sends_the_commands_in_one_go(self):
        r, sess = self.run_fake(policy(), *THREE)
        self.assertEqual(r['sends'][0]['kind'], 'done')
        self.assertEqual(sess[0]['commands'][1:6], [
            'MAIL FROM:<s@example.org>', 'RCPT TO:<a@fake.test>', 'RCPT TO:<b@fake.test>',
            'RCPT TO:<c@fake.test>', 'DATA'])
        self.assertEqual(sess[0]['bodies'], [BODY])

    def test_multi_line_reply_with_mixed_codes(self):
        mixed = b'250-first\r\n550-second\r\n250 third\r\n'
        r, _ = self.run_fake(policy(mail=lambda self, s, p: mixed), '--to', 'a@fake.test')
        s = r['sends'][0]
        self.assertEqual((s['kind'], s['stage'], s['try_next']), ('temp_all', 'MAIL', True), s)
        self.assertIn('malformed reply line', s['text'])
        self.assertEqual(r['reusable'], [False])

    def test_reply_line_over_512_bytes(self):
        # RFC 5321 4.5.3.1.5 says 512; a longer line is read (up to 64 KiB) and the
        # result keeps a bounded part of it
        long = '250 2.1.0 ' + 'x' * 2000
        r, sess = self.run_fake(policy(mail=lambda self, s, p: long), '--to', 'a@fake.test')
        self.assertEqual(r['sends'][0]['kind'], 'done', r)
        self.assertEqual(sess[0]['bodies'], [BODY])
        # a line without end beyond 64 KiB is a protocol error, not unbounded memory
        huge = b'250 ' + b'y' * 70000
        r, _ = self.run_fake(policy(mail=lambda self, s, p: huge), '--to', 'a@fake.test')
        s = r['sends'][0]
        self.assertEqual((s['kind'], s['stage']), ('temp_all', 'MAIL'), s)
        self.assertIn('too long', s['text'])

    def test_reply_of_10000_lines(self):
        many = '\n'.join(['250 mx.fake.test'] + ['250 X-LINE-%d' % i for i in range(10000)])
        r, _ = self.run_fake(policy(ehlo=lambda self, s, v, a: many), '--to', 'a@fake.test')
        o = r['open']
        self.assertEqual((o['kind'], o['stage'], o['try_next']), ('conn_fail', 'EHLO', True), o)
        self.assertIn('more than 512 lines', o['text'])

    def test_helo_after_ehlo_refused_with_5xx(self):
        def ehlo(self, s, verb, arg):
            return '250 mx.fake.test' if verb == 'HELO' else '502 5.5.2 what?'
        r, sess = self.run_fake(policy(ehlo=ehlo), '--to', 'a@fake.test')
        self.assertEqual(r['sends'][0]['kind'], 'done', r)
        self.assertEqual(sess[0]['commands'][:2], ['EHLO client.example.org',
                                                    'HELO client.example.org'])
        # 4xx to EHLO: no HELO, the session fails (another address may do)
        r, sess = self.run_fake(policy(ehlo=lambda self, s, v, a: '451 4.3.0 later'),
                                '--to', 'a@fake.test')
        self.assertEqual((r['open']['kind'], r['open']['stage']), ('conn_fail', 'EHLO'), r)
        self.assertNotIn('HELO client.example.org', sess[0]['commands'])

    def test_connect_refused(self):
        port = harness.free_port()
        r = send(port, '--from', 's@example.org', '--to', 'a@fake.test')
        o = r['open']
        self.assertEqual((o['kind'], o['stage'], o['try_next'], o['local']),
                         ('conn_fail', 'connect', True, True), o)
        self.assertIn('127.0.0.1[127.0.0.1]:%d' % port, o['text'])

    def test_421_to_one_rcpt_ends_the_session(self):
        def rcpt(self, s, p):
            return '421 4.4.5 shutting down' if p == 'b@fake.test' else '250 2.1.5 Ok'
        r, sess = self.run_fake(policy(rcpt=rcpt, pipelining=False), *THREE, '--twice')
        s = r['sends'][0]
        self.assertEqual((s['kind'], s['code'], s['try_next']), ('temp_all', 421, True), s)
        # the third was never tried: it is deferred with the session's end
        self.assertEqual([x['code'] for x in s['rcpts']], [421, 421, 421])
        self.assertEqual(r['reusable'], [False])
        self.assertEqual(len(r['sends']), 1)


class StalledReader:
    """A server that answers up to 354 and then reads no more (a full TCP window)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        f = conn.makefile('rb')
        conn.sendall(b'220 stall.fake.test ESMTP\r\n')
        while True:
            line = f.readline()
            if not line:
                break
            if line.upper().startswith(b'DATA'):
                conn.sendall(b'354 go ahead\r\n')
                self.done.wait(20)  # and never read again
                break
            conn.sendall(b'250 ok\r\n')
        conn.close()

    def close(self):
        self.done.set()
        self.sock.close()


class Stalls(Base):
    def test_data_transfer_that_makes_no_progress_times_out(self):
        srv = StalledReader()
        try:
            body = b'x' * 998 + b'\r\n'
            started = time.time()
            r = send(srv.port, '--from', 's@example.org', '--to', 'a@fake.test',
                     '--timeout', 'data-xfer=700', '--timeout', 'data-done=60000',
                     body=body * 16000)
            took = time.time() - started
        finally:
            srv.close()
        s = r['sends'][0]
        self.assertEqual((s['kind'], s['stage'], s['try_next']), ('temp_all', 'end of data', True), s)
        self.assertIn('timed out while sending message content', s['text'])
        self.assertNotIn('more than once', s['text'])
        self.assertLess(took, 20, 'the data-done timeout (60 s) was not what ended it')

    def test_no_reply_to_data(self):
        with FakeSMTP(policy(data=lambda self, s: SILENT)) as srv:
            r = send(srv.port, '--from', 's@example.org', '--to', 'a@fake.test',
                     '--timeout', 'data-init=500')
        s = r['sends'][0]
        self.assertEqual((s['kind'], s['stage']), ('temp_all', 'DATA'), s)
        self.assertIn('timed out while sending DATA command', s['text'])
        self.assertEqual(s['rcpts'][0]['code'], 451)


class TlsAndAuth(Base):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-client-tls-')
        cls.certs = fakesmtp.make_cert(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_fake(self, pol, *args, certs=None):
        with FakeSMTP(pol, certs=certs) as srv:
            r = send(srv.port, '--from', 's@example.org', '--to', 'a@fake.test', *args)
            time.sleep(0.05)
            return r, srv.sessions

    def test_encrypt_requires_starttls(self):
        r, sess = self.run_fake(policy(), '--tls', 'encrypt')
        o = r['open']
        self.assertEqual((o['kind'], o['stage'], o['try_next']), ('conn_fail', 'STARTTLS', True), o)
        self.assertIn('TLS is required, but was not offered', o['text'])
        self.assertFalse(any(c.startswith('MAIL') for c in sess[0]['commands']))

    def test_may_uses_starttls_when_offered(self):
        r, sess = self.run_fake(policy(starttls=True), '--tls', 'may', certs=self.certs)
        self.assertEqual(r['sends'][0]['kind'], 'done', r)
        self.assertTrue(sess[0]['tls'])
        self.assertRegex(r['sends'][0]['tls'], r'^TLSv1\.[23] \S+ unverified')
        self.assertEqual(sess[0]['bodies'], [BODY])

    def test_may_goes_on_in_plain_text_when_starttls_is_refused(self):
        class Refusing(Caps):
            extra = ('STARTTLS',)

            def other(self, sess, verb, line):
                if verb == 'STARTTLS':
                    return '454 4.7.0 TLS not available'
                return Caps.other(self, sess, verb, line)
        r, sess = self.run_fake(Refusing(), '--tls', 'may')
        self.assertEqual(r['sends'][0]['kind'], 'done', r)
        self.assertEqual(r['sends'][0]['tls'], 'none')
        self.assertIn('STARTTLS', sess[0]['commands'])
        # encrypt: the same refusal ends the session
        r, sess = self.run_fake(Refusing(), '--tls', 'encrypt')
        self.assertEqual((r['open']['kind'], r['open']['code']), ('conn_fail', 454), r)

    def test_verify_with_the_fake_certificate(self):
        cert = self.certs[0]
        r, _ = self.run_fake(policy(starttls=True), '--tls', 'verify', '--cafile', cert,
                             '--servername', 'mx.fake.test', certs=self.certs)
        self.assertRegex(r['sends'][0]['tls'], r' verified$', r)

    def test_password_never_goes_in_plain_text(self):
        pol = policy(extra=('AUTH PLAIN LOGIN',))
        r, sess = self.run_fake(pol, '--auth', 'user:secret')
        o = r['open']
        self.assertEqual((o['kind'], o['stage'], o['try_next']), ('conn_fail', 'AUTH', True), o)
        self.assertIn('without TLS', o['text'])
        self.assertFalse(any('AUTH' in c for c in sess[0]['commands']), sess[0]['commands'])
        # unless allowed: PLAIN when offered
        r, sess = self.run_fake(pol, '--auth', 'user:secret', '--plaintext-auth-ok')
        self.assertIn('AUTH PLAIN ' + base64.b64encode(b'\0user\0secret').decode(),
                      sess[0]['commands'])

    def test_auth_login_when_only_login_is_offered(self):
        class Login(Caps):
            extra = ('AUTH LOGIN',)

            def before_command(self, sess, line):
                step = sess.get('login', 0)
                if line == 'AUTH LOGIN':
                    sess['login'] = 1
                    return '334 VXNlcm5hbWU6'
                if step == 1:
                    sess['login'] = 2
                    return '334 UGFzc3dvcmQ6'
                if step == 2:
                    sess['login'] = 3
                    ok = sess['commands'][-2:] == [base64.b64encode(b'user').decode(),
                                                   base64.b64encode(b'secret').decode()]
                    return '235 2.7.0 ok' if ok else '535 5.7.8 bad'
                return False
        r, sess = self.run_fake(Login(), '--auth', 'user:secret', '--plaintext-auth-ok')
        self.assertEqual(r['open']['auth'], 'LOGIN as user', r)
        self.assertEqual(r['sends'][0]['kind'], 'done', r)


if __name__ == '__main__':
    unittest.main()
