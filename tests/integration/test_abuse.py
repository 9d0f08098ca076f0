"""test_abuse.py - abuse control: rate limits per client and per login, the
owner-safe AUTH lock-out, and `relayguard lockout list|clear|stats`.

Clients come from 127.0.0.9 and 127.0.0.10 (outside mynetworks); 127.0.0.1 is
in mynetworks, so in smtpd_client_event_limit_exceptions by default.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import Conn, Server, TRUSTED, UNTRUSTED, UNTRUSTED2, run_cli
from test_msa import make_passwd, msa_overrides, plain, scratch_dir

ALICE = {'alice@example.com': ('SHA512-CRYPT', 'alice-secret')}


def lockout_cli(srv, *args):
    return run_cli(['lockout'] + list(args) + ['-c', srv.config_path])


def login(c, user='alice@example.com', password='alice-secret'):
    return c.cmd('AUTH PLAIN ' + plain(user, password))


class ClientRates(unittest.TestCase):
    def test_connection_rate_refuses_the_third_connection_with_421(self):
        with Server(overrides={'smtpd_client_connection_rate_limit': '2'}) as srv:
            for _ in range(2):
                with Conn(srv.port) as c:
                    self.assertEqual(c.greeting[0], 220)
            with Conn(srv.port, greeting=False) as c:
                code, text = c.reply()
                self.assertEqual(code, 421, text)
                self.assertIn('4.7.0', text)
                self.assertIn('too many connections from 127.0.0.9 (limit 2 per 60s)', text)
                self.assertTrue(c.closed())
            # another client, and mynetworks (the default exception), are not affected
            with Conn(srv.port, source=UNTRUSTED2) as c:
                self.assertEqual(c.greeting[0], 220)
            for _ in range(4):
                with Conn(srv.port, source=TRUSTED) as c:
                    self.assertEqual(c.greeting[0], 220)
            self.assertIsNotNone(srv.wait_log(
                r'warning rate-limit client=127\.0\.0\.9 limit=smtpd_client_connection_rate_limit'))
            out = lockout_cli(srv, 'stats')
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn('rate_limited_connection 1', out.stdout)

    def test_message_rate_refuses_mail_from_with_452(self):
        with Server(overrides={'smtpd_client_message_rate_limit': '2'}) as srv:
            with Conn(srv.port) as c:
                c.cmd('EHLO c.example.org')
                for _ in range(2):
                    self.assertEqual(c.cmd('MAIL FROM:<a@example.org>')[0], 250)
                    self.assertEqual(c.cmd('RSET')[0], 250)
                code, text = c.cmd('MAIL FROM:<a@example.org>')
                self.assertEqual(code, 452, text)
                self.assertIn('4.7.1 Error: too many messages from 127.0.0.9', text)
            with Conn(srv.port, source=TRUSTED) as c:
                c.cmd('EHLO c.example.org')
                for _ in range(3):
                    self.assertEqual(c.cmd('MAIL FROM:<a@example.org>')[0], 250)
                    c.cmd('RSET')

    def test_recipient_rate_refuses_rcpt_with_452(self):
        with Server(overrides={'smtpd_client_recipient_rate_limit': '3',
                               'smtpd_client_event_limit_exceptions': ''}) as srv:
            with Conn(srv.port, source=TRUSTED) as c:  # no exceptions: mynetworks too
                c.cmd('EHLO c.example.org')
                c.cmd('MAIL FROM:<a@example.org>')
                for _ in range(3):
                    self.assertEqual(c.cmd('RCPT TO:<postmaster@localhost>')[0], 250)
                code, text = c.cmd('RCPT TO:<postmaster@localhost>')
                self.assertEqual(code, 452, text)
                self.assertIn('too many recipients from 127.0.0.1', text)
                # the accepted ones still make a message
                self.assertEqual(c.cmd('DATA')[0], 354)
                self.assertEqual(c.cmd('Subject: x\r\n\r\nbody\r\n.')[0], 250)


    def test_refused_attempts_count_too(self):
        """As Postfix's anvil: a recipient or sender refused by policy still counts."""
        with Server(overrides={'smtpd_client_recipient_rate_limit': '2',
                               'smtpd_client_message_rate_limit': '2'}) as srv:
            with Conn(srv.port) as c:
                c.cmd('EHLO c.example.org')
                self.assertEqual(c.cmd('MAIL FROM:<a@example.org>')[0], 250)
                for _ in range(2):  # relay probes: refused, counted
                    code, text = c.cmd('RCPT TO:<x@elsewhere.example>')
                    self.assertEqual(code // 100, 5, text)
                code, text = c.cmd('RCPT TO:<postmaster@localhost>')
                self.assertEqual(code, 452, text)
                self.assertIn('too many recipients from 127.0.0.9', text)
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd, ALICE)
            o = msa_overrides(passwd, smtpd_sasl_message_rate_limit='2')
            with Server(overrides=o) as srv, Conn(srv.subs_port, tls=True) as c:
                c.cmd('EHLO c.example.org')
                self.assertEqual(login(c)[0], 235)
                for _ in range(2):  # senders the login does not own: refused, counted
                    code, text = c.cmd('MAIL FROM:<ceo@example.org>')
                    self.assertEqual(code, 553, text)
                code, text = c.cmd('MAIL FROM:<alice@example.com>')
                self.assertEqual(code, 452, text)
                self.assertIn('too many messages from login alice@example.com', text)


class LoginRates(unittest.TestCase):
    def test_login_message_rate_counts_over_several_clients(self):
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd, ALICE)
            o = msa_overrides(passwd, smtpd_sasl_message_rate_limit='2',
                              smtpd_client_auth_rate_limit='2')
            with Server(overrides=o) as srv:
                results = []
                for source in (UNTRUSTED, UNTRUSTED2, UNTRUSTED):
                    with Conn(srv.subs_port, source=source, tls=True) as c:
                        c.cmd('EHLO c.example.org')
                        self.assertEqual(login(c)[0], 235)
                        results.append(c.cmd('MAIL FROM:<alice@example.com>'))
                self.assertEqual([r[0] for r in results], [250, 250, 452], results)
                self.assertIn('too many messages from login alice@example.com', results[2][1])
                self.assertIsNotNone(srv.wait_log(
                    r'rate-limit client=127\.0\.0\.9 user=alice@example\.com '
                    r'limit=smtpd_sasl_message_rate_limit'))
                # the AUTH rate: 127.0.0.9 has used its two AUTH commands
                with Conn(srv.subs_port, tls=True) as c:
                    c.cmd('EHLO c.example.org')
                    code, text = login(c)
                    self.assertEqual(code, 454, text)
                    self.assertIn('4.7.0 Error: too many AUTH commands from 127.0.0.9', text)


class OwnNetworks(unittest.TestCase):
    """mynetworks (the default smtpd_client_event_limit_exceptions and
    smtpd_sasl_lockout_exceptions) is never rate-limited per login nor suspended."""

    def test_login_from_mynetworks_is_neither_limited_nor_suspended(self):
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd, ALICE)
            o = msa_overrides(passwd, smtpd_sasl_message_rate_limit='3',
                              smtpd_sasl_hijack_threshold='2')
            with Server(overrides=o) as srv:
                with Conn(srv.subs_port, source=TRUSTED, tls=True) as c:
                    c.cmd('EHLO c.example.org')
                    self.assertEqual(login(c)[0], 235)
                    for k in range(5):  # five messages, each to two new domains
                        code, text = send(c, ['a@o%d.example' % k, 'b@p%d.example' % k])
                        self.assertEqual(code, 250, text)
                self.assertEqual(srv.queue_files('hold'), [])
                self.assertIsNone(re.search('hijack|rate-limit', srv.log()))
                # the same login from elsewhere: limited and suspended as usual
                with Conn(srv.subs_port, source=UNTRUSTED, tls=True) as c:
                    c.cmd('EHLO c.example.org')
                    self.assertEqual(login(c)[0], 235)
                    self.assertEqual(send(c, ['a@q1.example', 'b@q2.example'])[0], 250)
                    self.assertEqual(len(srv.queue_files('hold')), 1)
                    code, text = c.cmd('MAIL FROM:<alice@example.com>')
                    self.assertEqual(code, 454, text)


def send(c, rcpts, sender='alice@example.com'):
    """One message over an authenticated connection; the final reply."""
    code, text = c.cmd('MAIL FROM:<%s>' % sender)
    if code != 250:
        return code, text
    for r in rcpts:
        code, text = c.cmd('RCPT TO:<%s>' % r)
        if code != 250:
            return code, text
    code, text = c.cmd('DATA')
    if code != 354:
        return code, text
    return c.cmd('Subject: hello\r\n\r\nhello\r\n.')


def queue_cli(srv, *args):
    return run_cli(['queue'] + list(args) + ['-c', srv.config_path])


class HijackHold(unittest.TestCase):
    """smtpd_sasl_hijack_threshold = 5 new recipient domains per 10 minutes."""

    def server(self, tmp, **more):
        passwd = os.path.join(tmp, 'passwd')
        make_passwd(passwd, ALICE)
        more.setdefault('smtpd_sasl_hijack_threshold', '5')
        o = msa_overrides(passwd, **more)
        return Server(overrides=o)

    def test_spray_to_new_domains_is_held_and_the_login_suspended(self):
        with scratch_dir() as tmp, self.server(tmp) as srv:
            with Conn(srv.subs_port, tls=True) as c:
                c.cmd('EHLO c.example.org')
                self.assertEqual(login(c)[0], 235)
                self.assertEqual(send(c, ['a@d1.example', 'b@d2.example'])[0], 250)
                self.assertEqual(send(c, ['a@d3.example', 'b@d4.example'])[0], 250)
                self.assertEqual(srv.queue_files('hold'), [])
                # the fifth new domain: accepted (the client learns nothing) but held
                code, text = send(c, ['x@d5.example'])
                self.assertEqual(code, 250, text)
                self.assertEqual(len(srv.queue_files('hold')), 1)
                # from now on the login may not submit
                code, text = c.cmd('MAIL FROM:<alice@example.com>')
                self.assertEqual(code, 454, text)
                self.assertIn('4.7.0 Error: login alice@example.com is suspended', text)
                self.assertIn('5 new recipient domains in 600s', text)
            self.assertIsNotNone(srv.wait_log(
                r'warning hijack-suspended client=127\.0\.0\.9 user=alice@example\.com'))
            self.assertIsNotNone(srv.wait_log(r'queued .*hold=yes'))
            held = srv.queue_files('hold')[0]
            show = queue_cli(srv, 'show', held)
            self.assertIn('login: alice@example.com', show.stdout)
            self.assertIn('(held)', show.stdout)
            listing = lockout_cli(srv, 'list')
            self.assertTrue(re.search(r'^login alice@example\.com suspended for \d+s more: '
                                      r'5 new recipient domains', listing.stdout, re.M),
                            listing.stdout)
            self.assertIn('hijack_suspended 1', lockout_cli(srv, 'stats').stdout)
            # the postmaster looked: release the mail, lift the suspension
            out = queue_cli(srv, 'release', '--login', 'alice@example.com')
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn('1 held message from login alice@example.com released', out.stdout)
            self.assertIn('suspension lifted', out.stdout)
            self.assertEqual(srv.queue_files('hold'), [])
            with Conn(srv.subs_port, tls=True) as c:
                c.cmd('EHLO c.example.org')
                login(c)
                self.assertEqual(send(c, ['a@d1.example'])[0], 250)
            self.assertEqual(srv.queue_files('hold'), [])

    def test_held_mail_routed_locally_is_not_delivered_at_acceptance(self):
        """Mail whose recipients all route to local delivery is normally in the
        mailbox before the 250: held mail must wait in hold/ all the same."""
        with scratch_dir() as tmp, self.server(
                tmp, smtpd_sasl_hijack_threshold='1', relay_domains='relay.example',
                transport_maps='inline:{relay.example=local}') as srv:
            with Conn(srv.subs_port, tls=True) as c:
                c.cmd('EHLO c.example.org')
                login(c)
                self.assertEqual(send(c, ['bob@relay.example'])[0], 250)
            self.assertEqual(len(srv.queue_files('hold')), 1, srv.tail(10))
            time.sleep(0.3)
            self.assertEqual(srv.maildir('relay.example', 'bob'), [])

    def test_delete_by_login_removes_the_held_mail(self):
        with scratch_dir() as tmp, self.server(tmp) as srv:
            with Conn(srv.subs_port, tls=True) as c:
                c.cmd('EHLO c.example.org')
                login(c)
                self.assertEqual(send(c, ['a@s%d.example' % k for k in range(6)])[0], 250)
            self.assertEqual(len(srv.queue_files('hold')), 1)
            out = queue_cli(srv, 'delete', '--login', 'nobody@example.com')
            self.assertIn('0 held messages from login nobody@example.com deleted', out.stdout)
            self.assertEqual(len(srv.queue_files('hold')), 1)
            out = queue_cli(srv, 'delete', '--login', 'alice@example.com')
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn('1 held message from login alice@example.com deleted', out.stdout)
            self.assertEqual(srv.queue_files('hold'), [])
            self.assertEqual(queue_cli(srv, 'delete', '--login', 'a', '--all').returncode, 64)

    def test_release_by_login_without_a_running_server(self):
        with scratch_dir() as tmp, self.server(tmp) as srv:
            with Conn(srv.subs_port, tls=True) as c:
                c.cmd('EHLO c.example.org')
                login(c)
                self.assertEqual(send(c, ['a@s%d.example' % k for k in range(6)])[0], 250)
            held = srv.queue_files('hold')
            self.assertEqual(len(held), 1)
            srv.stop()
            out = queue_cli(srv, 'release', '--login', 'alice@example.com')
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn('changed the queue files directly', out.stderr)
            self.assertIn('1 held message from login alice@example.com released', out.stdout)
            self.assertEqual(srv.queue_files('hold'), [])
            self.assertEqual(srv.queue_files('deferred'), held)

    def test_newsletter_burst_to_known_recipients_is_not_held(self):
        with scratch_dir() as tmp, self.server(tmp) as srv:
            domains = ['n%d.example' % k for k in range(4)]
            with Conn(srv.subs_port, tls=True) as c:
                c.cmd('EHLO c.example.org')
                login(c)
                # the list's domains, written to before (under the threshold)
                self.assertEqual(send(c, ['list@' + d for d in domains])[0], 250)
                # the burst: one message per subscriber, twelve of them
                for k in range(12):
                    code, text = send(c, ['user%d@%s' % (k, domains[k % 4])])
                    self.assertEqual(code, 250, text)
                # and mail to our own domain never counts
                self.assertEqual(send(c, ['alice@example.com'])[0], 250)
            self.assertEqual(srv.queue_files('hold'), [])
            self.assertIsNone(re.search('hijack', srv.log()))


    def test_many_messages_to_one_known_domain_do_not_count(self):
        """smtpd_sasl_hijack_message_threshold counts only messages with a new domain."""
        with scratch_dir() as tmp, self.server(
                tmp, smtpd_sasl_hijack_message_threshold='3') as srv:
            with Conn(srv.subs_port, tls=True) as c:
                c.cmd('EHLO c.example.org')
                login(c)
                self.assertEqual(send(c, ['list@news.example'])[0], 250)  # learnt
                for k in range(6):
                    code, text = send(c, ['user%d@news.example' % k])
                    self.assertEqual(code, 250, text)
                self.assertEqual(srv.queue_files('hold'), [])
                # messages that bring a new domain do count (the first one did):
                # the third of them is held
                self.assertEqual(send(c, ['a@new1.example'])[0], 250)
                self.assertEqual(srv.queue_files('hold'), [])
                self.assertEqual(send(c, ['a@new2.example'])[0], 250)
            self.assertEqual(len(srv.queue_files('hold')), 1)
            self.assertIsNotNone(srv.wait_log(r'hijack-suspended .*reason="3 messages in 600s"'))


class OwnerSafeLockout(unittest.TestCase):
    def test_exception_is_never_locked_out_others_are_and_are_told_how_long(self):
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd, ALICE)
            o = msa_overrides(passwd, smtpd_sasl_failure_limit='2',
                              smtpd_sasl_lockout_time='60s',
                              smtpd_sasl_lockout_exceptions='127.0.0.9/32')
            with Server(overrides=o) as srv:
                # the owner's address mistypes its password again and again
                with Conn(srv.subs_port, tls=True) as c:
                    c.cmd('EHLO c.example.org')
                    for _ in range(5):
                        self.assertEqual(login(c, password='wrong')[0], 535)
                    self.assertEqual(login(c)[0], 235)
                with Conn(srv.subs_port, tls=True) as c:
                    self.assertEqual(c.greeting[0], 220)
                # a stranger is locked out, and told for how long
                with Conn(srv.subs_port, source=UNTRUSTED2, tls=True) as c:
                    c.cmd('EHLO c.example.org')
                    self.assertEqual(login(c, password='wrong')[0], 535)
                    code, text = login(c, password='wrong')
                    self.assertEqual(code, 421, text)
                    self.assertIn('locked out for 60s', text)
                with Conn(srv.port, source=UNTRUSTED2, greeting=False) as c:
                    code, text = c.reply()
                    self.assertEqual(code, 421, text)
                    self.assertTrue(re.search(r'locked out for \d+s more', text), text)
                self.assertIsNone(re.search(r'auth-lockout client=127\.0\.0\.9 ', srv.log()))

    def test_a_network_added_to_mynetworks_on_reload_is_never_locked_out(self):
        # the exceptions default to $mynetworks: an office network added with a
        # reload must be the owner's at once, not after a restart
        from test_reload import hup, rewrite
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd, ALICE)
            o = msa_overrides(passwd, smtpd_sasl_failure_limit='2',
                              smtpd_sasl_lockout_time='60s')
            with Server(overrides=o) as srv:
                rewrite(srv, {'mynetworks': '127.0.0.1/32 [::1]/128 %s/32' % UNTRUSTED2})
                log = hup(srv)
                self.assertNotIn('reload-needs-restart', log)
                with Conn(srv.subs_port, source=UNTRUSTED2, tls=True) as c:
                    c.cmd('EHLO c.example.org')
                    for _ in range(5):
                        self.assertEqual(login(c, password='wrong')[0], 535)
                    self.assertEqual(login(c)[0], 235)
                # a stranger is still locked out
                with Conn(srv.subs_port, tls=True) as c:
                    c.cmd('EHLO c.example.org')
                    self.assertEqual(login(c, password='wrong')[0], 535)
                    self.assertEqual(login(c, password='wrong')[0], 421)

    def test_lockout_list_and_clear_on_the_running_server(self):
        with scratch_dir() as tmp:
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd, ALICE)
            o = msa_overrides(passwd, smtpd_sasl_failure_limit='1',
                              smtpd_sasl_lockout_time='600s')
            with Server(overrides=o) as srv:
                out = lockout_cli(srv, 'list')
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertIn('0 clients locked out', out.stdout)
                with Conn(srv.subs_port, tls=True) as c:
                    c.cmd('EHLO c.example.org')
                    self.assertEqual(login(c, password='wrong')[0], 421)
                out = lockout_cli(srv, 'list')
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertTrue(re.search(r'^127\.0\.0\.9 locked out for \d+s more$',
                                          out.stdout, re.M), out.stdout)
                self.assertIn('1 client locked out', out.stdout)
                with Conn(srv.port, greeting=False) as c:
                    self.assertEqual(c.reply()[0], 421)
                out = lockout_cli(srv, 'clear', '127.0.0.9')
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertIn('127.0.0.9: lock-out lifted', out.stdout)
                with Conn(srv.subs_port, tls=True) as c:
                    self.assertEqual(c.greeting[0], 220)
                    c.cmd('EHLO c.example.org')
                    self.assertEqual(login(c)[0], 235)
                self.assertIn('0 clients locked out', lockout_cli(srv, 'list').stdout)
                self.assertIsNotNone(srv.wait_log(r'lockout-cleared client=127\.0\.0\.9'))
                # bad input is refused by the CLI or the server, not acted on
                out = lockout_cli(srv, 'clear', '127.0.0.999')
                self.assertEqual(out.returncode, 64, out.stdout)  # a usage error
                self.assertIn('not an IP address', out.stderr)
                self.assertEqual(lockout_cli(srv, 'clear').returncode, 64)
                self.assertEqual(lockout_cli(srv, 'frobnicate').returncode, 64)

    def test_lockout_needs_the_running_server(self):
        srv = Server(start=False)
        try:
            out = lockout_cli(srv, 'list')
            self.assertEqual(out.returncode, 1)
            self.assertIn('not running', out.stderr)
        finally:
            srv.cleanup()


REDIS = shutil.which('redis-server')


class Redis:
    """A redis-server of our own on a loopback port, no persistence; start/kill/start again."""

    def __init__(self, *extra):
        self.port = harness.free_port()
        self.dir = tempfile.mkdtemp(prefix='relayguard-redis-')
        self.proc = None
        self.extra = list(extra)
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS, '--bind', '127.0.0.1', '--port', str(self.port), '--save', '',
             '--appendonly', 'no', '--dir', self.dir, '--protected-mode', 'no'] + self.extra,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=1) as s:
                    s.sendall(b'PING\r\n')
                    if s.recv(16).startswith((b'+PONG', b'-NOAUTH')):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError('redis-server did not answer on port %d' % self.port)

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def resp(*args):
    out = b'*%d\r\n' % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b'$%d\r\n%s\r\n' % (len(a), a)
    return out


def redis_cmd(port, *args, password=None):
    """One command to Redis on PORT (RESP by hand: no client library needed); the raw reply."""
    with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
        if password:
            s.sendall(resp('AUTH', password))
            assert s.recv(64) == b'+OK\r\n'
        s.sendall(resp(*args))
        return s.recv(65536)


class HostileRedis:
    """A fake Redis on a loopback port that answers SELECT and SUBSCRIBE, then
    sends what hiredis does not expect: a pub/sub push of integers and a reply
    no command asked for."""

    PUSH = b'*3\r\n:1\r\n:2\r\n$4\r\nlock\r\n'
    EVAL = None  # the catch-up's answer (None: ':1')
    SELECT = b'+OK\r\n:5\r\n'  # the second reply: nobody asked

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.talk, args=(c,), daemon=True).start()

    def talk(self, c):
        try:
            while True:
                data = c.recv(4096)
                if not data:
                    return
                up = data.upper()
                if b'SUBSCRIBE' in up:
                    c.sendall(b'*3\r\n$9\r\nsubscribe\r\n$12\r\nrg:lockout:0\r\n:1\r\n' +
                              self.PUSH)
                    self.sent += 1
                elif b'SELECT' in up:
                    c.sendall(self.SELECT)
                    self.sent += 1
                elif b'EVAL' in up and self.EVAL:
                    c.sendall(self.EVAL)
                else:
                    c.sendall(b':1\r\n')
        except OSError:
            return

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class UntrustedRedis(unittest.TestCase):
    def test_a_hostile_redis_reply_drops_the_connection_not_the_server(self):
        fake = HostileRedis()
        self.addCleanup(fake.close)
        o = {'shared_state': 'redis://127.0.0.1:%d/0' % fake.port}
        with Server(overrides=o) as srv:
            deadline = time.time() + 10
            while time.time() < deadline and fake.sent < 4:  # reconnected after the first
                time.sleep(0.05)
            self.assertGreaterEqual(fake.sent, 4)
            self.assertTrue(srv.alive(), srv.tail(20))
            with Conn(srv.port) as c:
                self.assertEqual(c.greeting[0], 220)
            self.assertIsNotNone(srv.wait_log(r'warning shared-state-failed'))
            self.assertIn('shared_state down', lockout_cli(srv, 'stats').stdout)


    def test_an_unsubscribe_from_redis_drops_the_connection_not_the_server(self):
        """hiredis leaves subscribed mode on "unsubscribe ... 0", then asserts (aborts
        the process) on the next reply that no command waits for."""
        fake = HostileRedis()
        fake.PUSH = (b'*3\r\n$11\r\nunsubscribe\r\n$12\r\nrg:lockout:0\r\n:0\r\n'
                     b':7\r\n')
        self.addCleanup(fake.close)
        o = {'shared_state': 'redis://127.0.0.1:%d/0' % fake.port}
        with Server(overrides=o) as srv:
            deadline = time.time() + 10
            while time.time() < deadline and fake.sent < 4:  # reconnected after the first
                time.sleep(0.05)
            self.assertGreaterEqual(fake.sent, 4)
            time.sleep(0.2)
            self.assertTrue(srv.alive(), srv.tail(20))
            with Conn(srv.port) as c:
                self.assertEqual(c.greeting[0], 220)


    def test_a_bad_catch_up_reply_is_checked_before_use(self):
        """The catch-up answer: a cursor that is no number, entries of the wrong types."""
        fake = HostileRedis()
        fake.PUSH = b''
        fake.SELECT = b'+OK\r\n'
        fake.EVAL = (b'*7\r\n$5\r\n12x34\r\n$15\r\nrg:lock:1.2.3.4\r\n*1\r\n:1\r\n:60\r\n'
                     b':7\r\n$14\r\nrg:susp:a b\r\nc\r\n$-1\r\n')
        self.addCleanup(fake.close)
        o = {'shared_state': 'redis://127.0.0.1:%d/0' % fake.port}
        with Server(overrides=o) as srv:
            self.assertIsNotNone(srv.wait_log(
                r'shared-state-caught-up lockouts=0 suspensions=0 tls_raises=0 '
                r'stopped="bad reply"'), srv.tail(20))
            self.assertTrue(srv.alive())


@harness.requires(REDIS is not None, 'redis-server', 'a real Redis for shared_state')
class RedisPassword(unittest.TestCase):
    def test_a_password_in_the_url_is_sent_and_never_logged(self):
        redis = Redis('--requirepass', 's3cret-pw')
        self.addCleanup(redis.cleanup)
        url = 'redis://:%%s@127.0.0.1:%d/0' % redis.port
        o = {'smtpd_client_connection_rate_limit': '10', 'shared_state': url % 's3cret-pw'}
        with Server(overrides=o) as srv:
            # connected (caught up) first: a count made before that stays local
            self.assertIsNotNone(srv.wait_log(r'shared-state-caught-up ', timeout=30),
                                 srv.tail(10))
            with Conn(srv.port) as c:
                self.assertEqual(c.greeting[0], 220)
            deadline = time.time() + 5
            while time.time() < deadline and redis_cmd(
                    redis.port, 'DBSIZE', password='s3cret-pw') == b':0\r\n':
                time.sleep(0.05)
            self.assertEqual(redis_cmd(redis.port, 'DBSIZE', password='s3cret-pw'), b':1\r\n')
            self.assertIn('shared_state up', lockout_cli(srv, 'stats').stdout)
            self.assertIn('url=redis://***@127.0.0.1', srv.log())
            self.assertNotIn('s3cret-pw', srv.log())
            shown = run_cli(['config', '-c', srv.config_path])
            self.assertIn('shared_state = redis://***@127.0.0.1:', shown.stdout)
            self.assertNotIn('s3cret-pw', shown.stdout)
        o['shared_state'] = url % 'wrong-pw'
        with Server(overrides=o) as srv:
            self.assertIsNotNone(srv.wait_log(r'warning shared-state-failed what=auth'))
            self.assertIn('shared_state down', lockout_cli(srv, 'stats').stdout)
            self.assertNotIn('wrong-pw', srv.log())


def redis_load(port, commands):
    """Many commands to Redis on PORT in one pipeline; waits for every reply."""
    with socket.create_connection(('127.0.0.1', port), timeout=30) as s:
        s.sendall(b''.join(resp(*c) for c in commands))
        data = b''
        while data.count(b'\r\n') < len(commands):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        return data


@harness.requires(REDIS is not None, 'redis-server', 'a real Redis for shared_state')
class LargeCatchUp(unittest.TestCase):
    """A Redis that holds very many keys: the catch-up must not block it, nor loop."""

    def test_100000_lockout_keys_are_caught_up_in_bounded_steps(self):
        redis = Redis()
        self.addCleanup(redis.cleanup)
        keys = [('SET', 'rg:lock:2001:db8::%x:%x' % (i >> 16, i & 0xffff), '1', 'EX', '600')
                for i in range(100000)]
        keys += [('SET', 'rg:lock:junk%d' % i, 'x', 'EX', '600') for i in range(5)]
        keys += [('SADD', 'rg:lock:wrongtype', 'x'), ('EXPIRE', 'rg:lock:wrongtype', '600'),
                 ('SET', 'rg:susp:a b\r\nc', 'why', 'EX', '600')]
        redis_load(redis.port, keys)
        o = {'shared_state': 'redis://127.0.0.1:%d/0' % redis.port}
        with Server(overrides=o) as srv:
            # capped at 10,000 keys, read in steps each well inside the request deadline;
            # Redis's SCAN order is random, so the one suspension may be among them
            log = srv.wait_log(r'shared-state-caught-up ', timeout=60)
            self.assertIsNotNone(log, srv.tail(20))
            m = re.search(r'shared-state-caught-up lockouts=(\d+) suspensions=(\d+) '
                          r'tls_raises=0 stopped="key limit"', log)
            self.assertIsNotNone(m, srv.tail(5))
            self.assertEqual(int(m.group(1)) + int(m.group(2)), 10000, m.group(0))
            self.assertGreaterEqual(int(m.group(1)), 9999, m.group(0))
            self.assertNotIn('no answer within the deadline', srv.log())
            self.assertTrue(srv.alive())
            with Conn(srv.port) as c:
                self.assertEqual(c.greeting[0], 220)


@harness.requires(REDIS is not None, 'redis-server', 'a real Redis for shared_state')
class SharedState(unittest.TestCase):
    """Two relayguard instances, one Redis: the lock-out is shared."""

    def setUp(self):
        self.redis = Redis()
        self.addCleanup(self.redis.cleanup)
        self.tmp = tempfile.mkdtemp(prefix='relayguard-shared-')
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        passwd = os.path.join(self.tmp, 'passwd')
        make_passwd(passwd, ALICE)
        o = msa_overrides(passwd, smtpd_sasl_failure_limit='3', smtpd_sasl_lockout_time='60s',
                          smtpd_sasl_hijack_threshold='3',
                          shared_state='redis://127.0.0.1:%d/0' % self.redis.port)
        self.a = Server(overrides=o)
        self.addCleanup(self.a.cleanup)
        self.addCleanup(self.a.stop)
        self.b = Server(overrides=o)
        self.addCleanup(self.b.cleanup)
        self.addCleanup(self.b.stop)
        self.caught_up(self.a, self.b)

    def caught_up(self, *servers):
        """Each connected to Redis: what a host counts before that stays local."""
        for srv in servers:
            self.assertIsNotNone(srv.wait_log(r'shared-state-caught-up ', timeout=30),
                                 srv.tail(10))

    def guess(self, srv, source, password='wrong'):
        with Conn(srv.subs_port, source=source, tls=True) as c:
            c.cmd('EHLO c.example.org')
            return login(c, password=password)

    def refused(self, srv, source):
        with Conn(srv.port, source=source, greeting=False) as c:
            return c.reply()

    def test_guesses_spread_over_two_hosts_lock_out_on_both(self):
        self.assertEqual(self.guess(self.a, UNTRUSTED)[0], 535)
        self.assertEqual(self.guess(self.b, UNTRUSTED)[0], 535)
        # the third guess: each host has seen at most two, together three
        self.assertEqual(self.guess(self.a, UNTRUSTED)[0], 535)
        self.assertIsNotNone(self.a.wait_log(r'auth-lockout client=127\.0\.0\.9 failures=3 '
                                             r'source="shared count"'))
        self.assertIsNotNone(self.b.wait_log(r'auth-lockout client=127\.0\.0\.9 for=60s '
                                             r'source=shared'))
        for srv in (self.a, self.b):
            code, text = self.refused(srv, UNTRUSTED)
            self.assertEqual(code, 421, text)
            self.assertIn('locked out for', text)
        # another client is untouched; lifting it on one host lifts it on both
        self.assertEqual(self.guess(self.b, UNTRUSTED2, 'alice-secret')[0], 235)
        out = lockout_cli(self.a, 'clear', UNTRUSTED)
        self.assertEqual(out.returncode, 0, out.stderr)
        deadline = time.time() + 5
        while time.time() < deadline and self.refused(self.b, UNTRUSTED)[0] == 421:
            time.sleep(0.05)
        self.assertEqual(self.guess(self.b, UNTRUSTED, 'alice-secret')[0], 235)

    def test_a_hijack_suspension_holds_on_both_hosts(self):
        with Conn(self.a.subs_port, tls=True) as c:
            c.cmd('EHLO c.example.org')
            login(c)
            self.assertEqual(send(c, ['a@h1.example', 'b@h2.example', 'c@h3.example'])[0], 250)
        self.assertEqual(len(self.a.queue_files('hold')), 1)
        self.assertIsNotNone(self.b.wait_log(
            r'hijack-suspended user=alice@example\.com reason="3 new recipient domains in 600s" '
            r'for=86400s source=shared'))
        with Conn(self.b.subs_port, source=UNTRUSTED2, tls=True) as c:
            c.cmd('EHLO c.example.org')
            self.assertEqual(login(c)[0], 235)
            code, text = c.cmd('MAIL FROM:<alice@example.com>')
            self.assertEqual(code, 454, text)
            self.assertIn('suspended', text)
        # released on the host that holds the mail: lifted on both
        out = queue_cli(self.a, 'release', '--login', 'alice@example.com')
        self.assertEqual(out.returncode, 0, out.stderr)
        deadline = time.time() + 5
        code = 0
        while time.time() < deadline and code != 250:
            with Conn(self.b.subs_port, source=UNTRUSTED2, tls=True) as c:
                c.cmd('EHLO c.example.org')
                login(c)
                code, text = c.cmd('MAIL FROM:<alice@example.com>')
        self.assertEqual(code, 250, text)

    def test_new_domains_spread_over_two_hosts_trip_the_login_on_both(self):
        # threshold 3: two new domains through a, one through b; neither host alone sees 3
        with Conn(self.a.subs_port, tls=True) as c:
            c.cmd('EHLO c.example.org')
            login(c)
            self.assertEqual(send(c, ['a@s1.example', 'b@s2.example'])[0], 250)
        with Conn(self.b.subs_port, source=UNTRUSTED2, tls=True) as c:
            c.cmd('EHLO c.example.org')
            login(c)
            self.assertEqual(send(c, ['c@s3.example'])[0], 250)
        self.assertIsNotNone(self.b.wait_log(
            r'hijack-suspended client=127\.0\.0\.10 user=alice@example\.com '
            r'reason="3 new recipient domains in 600s, over all hosts" for=86400s source=shared'))
        self.assertIsNotNone(self.a.wait_log(
            r'hijack-suspended user=alice@example\.com reason="3 new recipient domains in 600s, '
            r'over all hosts" for=86400s source=shared'))
        for srv in (self.a, self.b):
            with Conn(srv.subs_port, source=UNTRUSTED2, tls=True) as c:
                c.cmd('EHLO c.example.org')
                self.assertEqual(login(c)[0], 235)
                code, text = c.cmd('MAIL FROM:<alice@example.com>')
                self.assertEqual(code, 454, text)
                self.assertIn('over all hosts', text)

    def test_domains_known_on_one_host_do_not_count_on_the_other(self):
        for srv in (self.a, self.b):
            srv.stop()
        passwd = os.path.join(self.tmp, 'passwd')
        o = msa_overrides(passwd, smtpd_sasl_hijack_threshold='3', smtpd_sasl_hijack_window='2s',
                          shared_state='redis://127.0.0.1:%d/0' % self.redis.port)
        a, b = Server(overrides=o), Server(overrides=o)
        for srv in (a, b):
            self.addCleanup(srv.cleanup)
            self.addCleanup(srv.stop)
        self.caught_up(a, b)

        def mail(srv, rcpts):
            with Conn(srv.subs_port, source=UNTRUSTED2, tls=True) as c:
                c.cmd('EHLO c.example.org')
                login(c)
                self.assertEqual(send(c, rcpts)[0], 250)
            time.sleep(0.3)  # the count reaches Redis
        # a learns s1 and s2 (under the threshold: they become the login's known domains)
        mail(a, ['a@s1.example', 'b@s2.example'])
        time.sleep(4.3)  # two windows pass (the local count weighs the previous one in)
        mail(a, ['c@s3.example'])
        # b never wrote to s1 and s2 itself, but every host knows them now: one new
        # domain (s3) in the window, not three
        mail(b, ['d@s1.example', 'e@s2.example'])
        self.assertNotIn('hijack-suspended', a.log() + b.log())
        self.assertIn(b's1.example', redis_cmd(self.redis.port, 'SMEMBERS',
                                               'rg:hjk:alice@example.com'))

    def test_a_host_started_later_knows_lockouts_and_suspensions(self):
        self.assertEqual(self.guess(self.a, UNTRUSTED)[0], 535)
        self.assertEqual(self.guess(self.b, UNTRUSTED)[0], 535)
        self.assertEqual(self.guess(self.a, UNTRUSTED)[0], 535)
        self.assertIsNotNone(self.a.wait_log(r'auth-lockout client=127\.0\.0\.9'))
        with Conn(self.a.subs_port, source=UNTRUSTED2, tls=True) as c:
            c.cmd('EHLO c.example.org')
            login(c)
            self.assertEqual(send(c, ['a@h1.example', 'b@h2.example', 'c@h3.example'])[0], 250)
        self.assertIsNotNone(self.a.wait_log(r'hijack-suspended client=127\.0\.0\.10'))
        time.sleep(0.2)  # the keys reach Redis
        passwd = os.path.join(self.tmp, 'passwd')
        late = Server(overrides=msa_overrides(
            passwd, smtpd_sasl_hijack_threshold='3',
            shared_state='redis://127.0.0.1:%d/0' % self.redis.port))
        self.addCleanup(late.cleanup)
        self.addCleanup(late.stop)
        self.assertIsNotNone(late.wait_log(
            r'shared-state-caught-up lockouts=1 suspensions=1 tls_raises=0'))
        code, text = self.refused(late, UNTRUSTED)
        self.assertEqual(code, 421, text)
        self.assertIn('locked out for', text)
        with Conn(late.subs_port, source=UNTRUSTED2, tls=True) as c:
            c.cmd('EHLO c.example.org')
            self.assertEqual(login(c)[0], 235)
            code, text = c.cmd('MAIL FROM:<alice@example.com>')
            self.assertEqual(code, 454, text)
            self.assertIn('3 new recipient domains', text)
        # lifted while it runs: the key goes too, so a host started afterwards knows nothing
        out = queue_cli(self.a, 'release', '--login', 'alice@example.com')
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(lockout_cli(self.a, 'clear', UNTRUSTED).returncode, 0)
        time.sleep(0.2)
        self.assertEqual(redis_cmd(self.redis.port, 'EXISTS', 'rg:susp:alice@example.com'),
                         b':0\r\n')
        self.assertEqual(redis_cmd(self.redis.port, 'EXISTS', 'rg:lock:127.0.0.9'), b':0\r\n')

    def test_rate_limits_count_across_both_hosts(self):
        for srv in (self.a, self.b):
            srv.stop()
        o = {'smtpd_client_connection_rate_limit': '3',
             'shared_state': 'redis://127.0.0.1:%d/0' % self.redis.port}
        a, b = Server(overrides=o), Server(overrides=o)
        self.addCleanup(a.cleanup)
        self.addCleanup(a.stop)
        self.addCleanup(b.cleanup)
        self.addCleanup(b.stop)
        self.caught_up(a, b)
        # two connections on each: neither host alone reaches 3, together they pass it
        for srv in (a, b, a, b):
            with Conn(srv.port) as c:
                self.assertEqual(c.greeting[0], 220)
            time.sleep(0.05)  # the total comes back from Redis
        for srv in (a, b):
            with Conn(srv.port, greeting=False) as c:
                code, text = c.reply()
                self.assertEqual(code, 421, text)
                self.assertIn('too many connections from 127.0.0.9 (limit 3 per 60s)', text)

    def test_a_hung_redis_costs_a_deadline_not_a_stall(self):
        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            for _ in range(2):
                self.assertEqual(self.guess(self.a, UNTRUSTED)[0], 535)
            with Conn(self.a.subs_port, tls=True) as c:
                c.cmd('EHLO c.example.org')
                self.assertEqual(login(c, password='wrong')[0], 421)
            # the loop never waited on Redis: other clients are served at once
            with Conn(self.a.subs_port, source=UNTRUSTED2, tls=True) as c:
                c.cmd('EHLO c.example.org')
                self.assertEqual(login(c)[0], 235)
            self.assertLess(time.monotonic() - t0, 3)
            self.assertIsNotNone(self.a.wait_log(
                r'shared-state-failed what=request reason="no answer within the deadline"'))
        finally:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        self.assertIsNotNone(self.a.wait_log(r'shared-state-recovered', timeout=10))

    def test_published_lines_are_cleaned_clamped_and_per_database(self):
        """Anyone who can PUBLISH must not forge reply lines or lock out for ever."""
        self.b.stop()
        port = self.redis.port
        # another database's cluster: not ours
        redis_cmd(port, 'PUBLISH', 'rg:lockout:1', 'lock 127.0.0.11 30')
        redis_cmd(port, 'PUBLISH', 'rg:lockout:0', 'lock 127.0.0.10 4000000000')
        redis_cmd(port, 'PUBLISH', 'rg:lockout:0',
                  'suspend alice@example.com 600 x\r\n250 2.0.0 Ok: fake\r\n')
        self.assertIsNotNone(self.a.wait_log(r'hijack-suspended user=alice@example\.com '
                                             r'.*source=shared'))
        listing = lockout_cli(self.a, 'list').stdout
        m = re.search(r'^127\.0\.0\.10 locked out for (\d+)s more', listing, re.M)
        self.assertIsNotNone(m, listing)
        self.assertLessEqual(int(m.group(1)), 60)  # our smtpd_sasl_lockout_time
        self.assertNotIn('127.0.0.11', listing)
        self.assertRegex(listing, r'login alice@example\.com suspended for \d+s more: '
                                  r'x\?\?250 2\.0\.0 Ok: fake\?\?')
        with Conn(self.a.subs_port, source=UNTRUSTED, tls=True) as c:
            c.cmd('EHLO c.example.org')
            self.assertEqual(login(c)[0], 235)
            code, text = c.cmd('MAIL FROM:<alice@example.com>')
            self.assertEqual(code, 454, text)
            self.assertIn('(x??250 2.0.0 Ok: fake??); contact your postmaster', text)
            code, text = c.cmd('NOOP')  # no forged reply waiting in line
            self.assertEqual((code, 'fake' in text), (250, False), text)

    def test_a_failed_select_is_noticed_and_nothing_lands_in_database_0(self):
        for srv in (self.a, self.b):
            srv.stop()
        o = {'smtpd_client_connection_rate_limit': '10',
             'shared_state': 'redis://127.0.0.1:%d/99' % self.redis.port}
        with Server(overrides=o) as srv:
            self.assertIsNotNone(srv.wait_log(r'warning shared-state-failed what=select'))
            with Conn(srv.port) as c:
                self.assertEqual(c.greeting[0], 220)
            time.sleep(0.3)
            self.assertIn('shared_state down', lockout_cli(srv, 'stats').stdout)
        self.assertEqual(redis_cmd(self.redis.port, 'DBSIZE'), b':0\r\n')

    def test_redis_down_falls_back_to_local_state_and_recovers(self):
        self.redis.kill()
        # never opens: three guesses on one host still lock the client out there
        for _ in range(2):
            self.assertEqual(self.guess(self.a, UNTRUSTED)[0], 535)
        with Conn(self.a.subs_port, tls=True) as c:
            c.cmd('EHLO c.example.org')
            self.assertEqual(login(c, password='wrong')[0], 421)
        self.assertEqual(self.refused(self.a, UNTRUSTED)[0], 421)
        # never closes: other clients log in and send as usual
        with Conn(self.b.subs_port, source=UNTRUSTED2, tls=True) as c:
            c.cmd('EHLO c.example.org')
            self.assertEqual(login(c)[0], 235)
            self.assertEqual(send(c, ['alice@example.com'])[0], 250)
        self.assertIsNotNone(self.a.wait_log(r'warning shared-state-failed'))
        self.assertIn('shared_state down', lockout_cli(self.a, 'stats').stdout)
        # Redis is back: both hosts reconnect and count together again
        self.redis.start()
        self.assertIsNotNone(self.a.wait_log(r'shared-state-recovered', timeout=10))
        self.assertIsNotNone(self.b.wait_log(r'shared-state-recovered', timeout=10))
        other = '127.0.0.11'
        self.assertEqual(self.guess(self.a, other)[0], 535)
        self.assertEqual(self.guess(self.b, other)[0], 535)
        self.assertEqual(self.guess(self.b, other)[0], 535)
        self.assertIsNotNone(self.a.wait_log(r'auth-lockout client=127\.0\.0\.11 .*source=shared'))
        self.assertEqual(self.refused(self.a, other)[0], 421)


if __name__ == '__main__':
    unittest.main()
