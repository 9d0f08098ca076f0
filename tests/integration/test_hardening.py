"""test_hardening.py - findings of the hostile review of 'relayguard serve' (issue 11).

The fail2ban filter printed in README.md is run with the real fail2ban-regex over
the log of a real server that was fed hostile user names, HELO names and
addresses. The AUTH tests open many TLS sessions at once from one or a few
addresses, as the review did. Clients come from 127.0.0.x, outside mynetworks.
"""
import base64
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import Conn, Server, UNTRUSTED, UNTRUSTED2

F2B_PACKAGE = 'fail2ban'


def b64(raw):
    return base64.b64encode(raw if isinstance(raw, bytes) else raw.encode()).decode()


def plain(user, password):
    u = user if isinstance(user, bytes) else user.encode()
    return b64(b'\0' + u + b'\0' + password.encode())


def need_tool(tool, package):
    """The path of TOOL; under CI=true a missing tool fails naming its package,
    elsewhere the test is skipped."""
    path = shutil.which(tool)
    harness.require(path is not None, package, '%s is not installed' % tool)
    return path


def readme_filter():
    """The fail2ban [Definition] block exactly as README.md prints it."""
    with open(os.path.join(harness.REPO, 'README.md')) as f:
        text = f.read()
    m = re.search(r'```\n\s*# /etc/fail2ban/filter\.d/relayguard\.conf\n(.*?)```', text, re.S)
    assert m, 'README.md has no fail2ban filter block'
    return '\n'.join(line.strip() for line in m.group(1).splitlines()) + '\n'


def make_passwd(path, users, scheme='SHA512-CRYPT'):
    lines = []
    for user, password in users.items():
        p = subprocess.run([harness.binary(), 'passwd', '--scheme', scheme],
                           input=password + '\n', capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        lines.append('%s:%s::::::' % (user, p.stdout.strip()))
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.chmod(path, 0o644)


class AuthServer(unittest.TestCase):
    """A scratch directory with a passwd-file; servers are started per test."""
    users = {'alice@example.com': 'alice-secret', 'bob@example.com': 'bob-secret'}
    scheme = 'SHA512-CRYPT'

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='relayguard-hard-')
        os.chmod(self.tmp, 0o755)
        self.passwd = os.path.join(self.tmp, 'passwd')
        make_passwd(self.passwd, self.users, self.scheme)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def overrides(self, **more):
        o = {
            'myhostname': 'mx.example.com',
            'mydestination': 'example.com, localhost',
            'local_recipient_maps': 'inline:{postmaster, alice, bob}',
            'smtpd_sasl_auth_enable': 'yes',
            'smtpd_sasl_path': self.passwd,
            'smtpd_sasl_failure_delay': '0',
            'smtpd_sasl_failure_limit': '1000',
        }
        o.update(more)
        return o


class Fail2banFilter(AuthServer):
    HOSTILE_USERS = [
        'a client=198.51.100.7 x',
        'x" client=198.51.100.8 "',
        'client=198.51.100.9',
        '\\" client=198.51.100.10 \\',
        'u\n2026-01-01T00:00:00.000Z warning auth-failed client=198.51.100.11 x',
        'u\r warning auth-failed client=198.51.100.12 ',
        '\u2028 client=198.51.100.13 ',
    ]

    def test_readme_filter_matches_only_the_real_client(self):
        f2b = need_tool('fail2ban-regex', F2B_PACKAGE)
        filt = os.path.join(self.tmp, 'relayguard.conf')
        with open(filt, 'w') as f:
            f.write(readme_filter())
        with Server(overrides=self.overrides()) as srv:
            # hostile HELO names and addresses from another address, without AUTH
            with Conn(srv.port, source=UNTRUSTED2) as c:
                c.cmd('EHLO client=198.51.100.20')
                c.cmd('MAIL FROM:<"x client=198.51.100.21 y"@example.org>')
                c.cmd('RCPT TO:<"auth-failed client=198.51.100.22 "@example.net>')
                c.cmd('RSET')
                c.cmd('HELO auth-failed')
                c.cmd('MAIL FROM:<a@example.org> client=198.51.100.23')
                c.cmd('AUTH PLAIN ' + plain('client=198.51.100.24', 'x'))
            # hostile user names from the one client that really fails to log in
            with Conn(srv.subs_port, tls=True) as c:
                c.cmd('EHLO warning.auth-failed.client=198.51.100.25')
                for user in self.HOSTILE_USERS:
                    code, text = c.cmd('AUTH PLAIN ' + plain(user.encode(), 'x'))
                    self.assertIn(code, (535, 501), text)
                code, text = c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'wrong'))
                self.assertEqual(code, 535, text)
            failures = len(re.findall(r'^\S+ warning auth-failed ', srv.log(), re.M))
            self.assertGreaterEqual(failures, 2)
            out = subprocess.run([f2b, '-o', 'ip', srv.log_path, filt], capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            hosts = [line.strip() for line in out.stdout.splitlines() if line.strip()]
            self.assertEqual(hosts, [UNTRUSTED] * failures, out.stdout + srv.tail(30))



def open_sessions(port, n, source):
    """N implicit-TLS sessions from SOURCE, each after its EHLO."""
    conns = []
    for _ in range(n):
        c = Conn(port, source=source, tls=True, timeout=30)
        code, text = c.cmd('EHLO c.example.org')
        assert code == 250, text
        conns.append(c)
    return conns


def close_all(conns):
    for c in conns:
        try:
            c.close()
        except OSError:
            pass


class ParallelAuth(AuthServer):
    """yescrypt (~20 ms a check) keeps the checks in flight while more arrive."""
    scheme = 'CRYPT'

    def test_parallel_sessions_get_no_more_guesses_than_the_limit(self):
        with Server(overrides=self.overrides(smtpd_sasl_failure_limit='5',
                                             smtpd_sasl_lockout_time='60s')) as srv:
            conns = open_sessions(srv.subs_port, 45, UNTRUSTED)
            try:
                # every session sends its AUTH before any reply is read; the
                # last one has the right password
                for i, c in enumerate(conns):
                    password = 'alice-secret' if i == len(conns) - 1 else 'guess%d' % i
                    c.send('AUTH PLAIN %s\r\n' % plain('alice@example.com', password))
                codes = [(c.reply() or (None, 'closed'))[0] for c in conns]
            finally:
                close_all(conns)
            # five passwords were tried, not 45: the rest were not checked (454)
            checked = codes.count(535) + codes.count(421) + codes.count(235)
            self.assertLessEqual(checked, 5, codes)
            self.assertLessEqual(len(re.findall(r' auth-failed ', srv.log())), 5, srv.tail(20))
            self.assertEqual(codes.count(454) + checked, 45, codes)
            if 235 not in codes:  # five wrong guesses: locked out now, on every port
                with Conn(srv.port, greeting=False) as c:
                    self.assertEqual(c.reply()[0], 421)

    def test_a_flood_from_three_addresses_does_not_starve_a_real_user(self):
        with Server(overrides=self.overrides()) as srv:
            floods = []
            try:
                for source in ('127.0.0.11', '127.0.0.12', '127.0.0.13'):
                    floods += open_sessions(srv.subs_port, 40, source)
                with Conn(srv.subs_port, source=UNTRUSTED, tls=True, timeout=30) as user:
                    user.cmd('EHLO c.example.org')
                    for i, c in enumerate(floods):
                        c.send('AUTH PLAIN %s\r\n' % plain('bob@example.com', 'bogus%d' % i))
                    code, text = user.cmd('AUTH PLAIN ' + plain('alice@example.com',
                                                                'alice-secret'))
                    self.assertEqual(code, 235, text)
                codes = [(c.reply() or (None, 'closed'))[0] for c in floods]
            finally:
                close_all(floods)
            # the flood got what its shares allowed: checks (535) or 454
            self.assertEqual(set(codes) - {535, 454}, set(), codes)
            self.assertGreater(codes.count(454), 0, codes)



class SenderOwnership(AuthServer):
    def test_authenticated_client_cannot_forge_senders_on_the_mta_port(self):
        with Server(overrides=self.overrides()) as srv:
            with Conn(srv.port) as c:
                c.cmd('EHLO client.example.org')
                self.assertEqual(c.cmd('STARTTLS')[0], 220)
                c.starttls()
                c.cmd('EHLO client.example.org')
                self.assertEqual(c.cmd('AUTH PLAIN ' + plain('alice@example.com',
                                                             'alice-secret'))[0], 235)
                code, text = c.cmd('MAIL FROM:<ceo@paypal.com>')
                self.assertEqual((code, text), (553, '5.7.1 <ceo@paypal.com>: Sender address '
                                                'rejected: not owned by user alice@example.com'))
                self.assertEqual(c.cmd('MAIL FROM:<bob@example.com>')[0], 553)
                self.assertEqual(c.cmd('MAIL FROM:<"bob@example.com"@example.com>')[0], 553)
                # its own address and bounces go, and relay as before
                self.assertEqual(c.cmd('MAIL FROM:<alice@example.com>')[0], 250)
                self.assertEqual(c.cmd('RCPT TO:<friend@example.net>')[0], 250)
                self.assertEqual(c.cmd('RSET')[0], 250)
                self.assertEqual(c.cmd('MAIL FROM:<>')[0], 250)
            self.assertIsNotNone(srv.wait_log(
                r'mail-refused client=127\.0\.0\.9 from=<ceo@paypal\.com> '
                r'user=alice@example\.com restriction=reject_authenticated_sender_login_mismatch '
                r'list=smtpd_sender_login_maps'))

    def test_unauthenticated_trusted_client_is_not_held_to_logins(self):
        with Server(overrides=self.overrides()) as srv:
            with Conn(srv.port, source=harness.TRUSTED) as c:
                c.cmd('EHLO client.example.org')
                self.assertEqual(c.cmd('MAIL FROM:<ceo@example.org>')[0], 250)
                self.assertEqual(c.cmd('RCPT TO:<friend@example.net>')[0], 250)



def send_message(port, text, source=UNTRUSTED, rcpt='postmaster@localhost'):
    """One message from SOURCE; (code, text) of the reply to the final dot."""
    with Conn(port, source=source, timeout=30) as c:
        c.cmd('EHLO client.example.org')
        assert c.cmd('MAIL FROM:<sender@example.org>')[0] == 250
        assert c.cmd('RCPT TO:<%s>' % rcpt)[0] == 250
        assert c.cmd('DATA')[0] == 354
        data = text.replace('\n', '\r\n')
        c.send((data if data.endswith('\r\n') else data + '\r\n') + '.\r\n')
        return c.reply()


class MessageLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        harness.stop_server(cls.server)

    def received(self, n):
        return ''.join('Received: from hop%d.example.org by hop%d.example.net; '
                       'Fri, 4 Dec 2026 12:00:00 +0000\n' % (i, i + 1) for i in range(n))

    def test_more_received_headers_than_hopcount_limit_is_a_loop(self):
        # as in Postfix, the field we add counts: 49 and ours reach the limit of 50
        mark = self.server.mark()
        code, text = send_message(self.server.port,
                                  self.received(49) + 'Subject: loop\n\nlooping\n')
        self.assertEqual((code, text), (554, '5.4.6 Error: too many hops'))
        self.assertIsNotNone(self.server.wait_log(r'too-many-hops client=127\.0\.0\.9 hops=49 ',
                                                  since=mark))
        # 48, and Received: lines in the body, are fine
        code, text = send_message(self.server.port, self.received(48) + 'Subject: ok\n\n' +
                                  self.received(60))
        self.assertEqual(code, 250, text)

    def test_received_with_white_space_before_the_colon_counts_as_a_hop(self):
        # "Received :" is the obsolete form (RFC 5322 4.5.3) that readers take
        # as a Received: field; Postfix counts it too. A loop must not get past
        # hopcount_limit by writing its trace fields that way.
        # (and the name alone on its line, the colon on the continuation line)
        names = ['Received :', 'received\t:', 'RECEIVED  :', 'Received:', 'Received\n :']
        hops = ''.join('%s from hop%d.example.org by hop%d.example.net; '
                       'Fri, 4 Dec 2026 12:00:00 +0000\n' % (names[i % 5], i, i + 1)
                       for i in range(51))
        mark = self.server.mark()
        code, text = send_message(self.server.port, hops + 'Subject: loop\n\nlooping\n')
        self.assertEqual((code, text), (554, '5.4.6 Error: too many hops'))
        self.assertIsNotNone(self.server.wait_log(r'too-many-hops client=127\.0\.0\.9 hops=51 ',
                                                  since=mark))
        # a field whose name only begins with Received is another field
        code, text = send_message(self.server.port, self.received(48) +
                                  'Received-SPF: pass\nReceivedx : y\nSubject: ok\n\nfine\n')
        self.assertEqual(code, 250, text)

    def test_a_header_field_beyond_header_size_limit_is_cut_and_the_message_kept(self):
        before = len(self.server.maildir('localhost', 'postmaster'))
        mark = self.server.mark()
        # one To: field of 150 KB in continuation lines of 100 octets, and a single
        # 200 KB line (arriving in pieces): each keeps its first 102400 octets
        folded = 'To: ' + ',\n '.join('user%06d@example.org' % i for i in range(6000))
        long_line = 'X-Long: ' + 'a' * 200000
        body = 'body line 1\nbody line 2\n'
        code, text = send_message(self.server.port, 'Subject: big\n%s\n%s\nX-After: kept\n\n%s'
                                  % (folded, long_line, body))
        self.assertEqual(code, 250, text)
        files = self.server.wait_maildir('localhost', 'postmaster', before + 1)
        # Maildir lines end in LF; the limit counts the octets as sent, with CRLF
        msg = self.server.read_mail('localhost', 'postmaster', files[-1]).decode()
        header, _, got_body = msg.partition('\n\n')
        self.assertEqual(got_body, body)
        fields = re.split(r'\n(?![ \t])', header)
        to = [f for f in fields if f.startswith('To: ')]
        xlong = [f for f in fields if f.startswith('X-Long: ')]
        self.assertEqual(len(to), 1)
        self.assertLessEqual(len(to[0].replace('\n', '\r\n')) + 2, 102400)
        self.assertGreater(len(to[0]), 90000)
        self.assertTrue(to[0].startswith('To: user000000@example.org,\n user000001@'))
        self.assertEqual(len(xlong), 1)
        self.assertLessEqual(len(xlong[0]) + 2, 102400)
        self.assertGreater(len(xlong[0]), 60000)
        self.assertIn('X-After: kept', fields)
        self.assertIn('Subject: big', fields)
        self.assertIsNotNone(self.server.wait_log(r'header-truncated client=127\.0\.0\.9 ',
                                                  since=mark))


class ConnectionCountLimit(unittest.TestCase):
    def test_zero_means_no_limit_as_in_postfix(self):
        with Server(overrides={'smtpd_client_connection_count_limit': '0'}) as srv:
            conns = []
            try:
                for _ in range(60):
                    conns.append(Conn(srv.port))
                    self.assertEqual(conns[-1].greeting[0], 220)
            finally:
                close_all(conns)

    def test_a_limit_still_limits(self):
        with Server(overrides={'smtpd_client_connection_count_limit': '2'}) as srv:
            with Conn(srv.port), Conn(srv.port):
                with Conn(srv.port) as third:
                    self.assertEqual(third.greeting[0], 421)


if __name__ == '__main__':
    unittest.main()
