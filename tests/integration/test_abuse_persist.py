"""test_abuse_persist.py - what the hijacked-account hold keeps across a
restart and over several hosts: suspensions and learnt recipient domains in
queue_directory/hijack-state without shared_state, in Redis with it; the
hijack windows counted over two hosts; a Redis killed mid-window.

Clients come from 127.0.0.9 / 127.0.0.10 (outside mynetworks, so never exempt).
"""
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import unittest

import harness
from harness import Conn, Server, UNTRUSTED, UNTRUSTED2
from test_abuse import ALICE, REDIS, Redis, login, queue_cli, redis_cmd, send
from test_msa import make_passwd, msa_overrides

STATE = 'hijack-state'


def mail(srv, rcpts, source=UNTRUSTED):
    """One authenticated message from alice; the final reply."""
    with Conn(srv.subs_port, source=source, tls=True) as c:
        c.cmd('EHLO c.example.org')
        code, text = login(c)
        assert code == 235, text
        return send(c, rcpts)


def mail_from(srv, source=UNTRUSTED):
    """alice's MAIL FROM after AUTH: 250, or 454 while she is suspended."""
    with Conn(srv.subs_port, source=source, tls=True) as c:
        c.cmd('EHLO c.example.org')
        code, text = login(c)
        assert code == 235, text
        return c.cmd('MAIL FROM:<alice@example.com>')


class Scratch(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='relayguard-persist-')
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.passwd = os.path.join(self.tmp, 'passwd')
        make_passwd(self.passwd, ALICE)

    def server(self, **more):
        more.setdefault('smtpd_sasl_hijack_threshold', '3')
        srv = Server(overrides=msa_overrides(self.passwd, **more))
        self.addCleanup(srv.cleanup)
        self.addCleanup(srv.stop)
        return srv

    def state(self, srv):
        try:
            with open(os.path.join(srv.queue_dir, STATE)) as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def wait_state(self, srv, pattern, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.state(srv), re.M):
                return True
            time.sleep(0.05)
        return False


class RestartWithoutRedis(Scratch):
    """No shared_state: queue_directory/hijack-state."""

    def test_a_suspension_survives_a_restart_and_its_lifting_too(self):
        srv = self.server()
        self.assertEqual(mail(srv, ['a@s1.example', 'b@s2.example', 'c@s3.example'])[0], 250)
        self.assertEqual(len(srv.queue_files('hold')), 1)
        srv.restart()
        self.assertIsNotNone(srv.wait_log(r'hijack-state-loaded suspended=1 known_domains=0 '
                                          r'bad_lines=0'), srv.tail(10))
        code, text = mail_from(srv)
        self.assertEqual(code, 454, text)
        self.assertIn('3 new recipient domains in 600s', text)
        self.assertRegex(harness.run_cli(['lockout', 'list', '-c', srv.config_path]).stdout,
                         r'login alice@example\.com suspended for \d+s more')
        out = queue_cli(srv, 'release', '--login', 'alice@example.com')
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('suspension lifted', out.stdout)
        srv.restart()
        self.assertEqual(mail_from(srv)[0], 250)

    def test_a_crash_right_after_the_suspension_keeps_it(self):
        """The suspension is written at once (off the loop), not at exit."""
        srv = self.server()
        self.assertEqual(mail(srv, ['a@k1.example', 'b@k2.example', 'c@k3.example'])[0], 250)
        self.assertTrue(self.wait_state(srv, r'^suspended alice@example\.com \d+ 3 new'),
                        self.state(srv))
        srv.kill9()
        srv.start()
        code, text = mail_from(srv)
        self.assertEqual(code, 454, text)

    def test_learnt_domains_survive_a_restart(self):
        """Two known domains plus one new after a restart: one new domain, not three."""
        srv = self.server()
        self.assertEqual(mail(srv, ['a@n1.example', 'b@n2.example'])[0], 250)
        srv.restart()
        self.assertIsNotNone(srv.wait_log(r'hijack-state-loaded suspended=0 known_domains=2 '))
        self.assertEqual(mail(srv, ['c@n1.example', 'd@n2.example', 'e@n3.example'])[0], 250)
        self.assertEqual(srv.queue_files('hold'), [])
        self.assertNotIn('hijack-suspended', srv.log())
        self.assertEqual(mail_from(srv)[0], 250)
        # the file holds hashes of domains, nothing a client wrote in clear
        self.assertRegex(self.state(srv), r'(?m)^known alice@example\.com [0-9a-f]{16} [0-9a-f]{16}$')
        self.assertNotIn('n1.example', self.state(srv))

    def test_release_without_a_running_server_lifts_the_kept_suspension(self):
        srv = self.server()
        self.assertEqual(mail(srv, ['a@r1.example', 'b@r2.example', 'c@r3.example'])[0], 250)
        srv.stop()
        out = queue_cli(srv, 'release', '--login', 'alice@example.com')
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('1 held message from login alice@example.com released', out.stdout)
        self.assertIn('login alice@example.com: suspension lifted', out.stdout)
        srv.start()
        self.assertEqual(mail_from(srv)[0], 250)

    def test_offline_release_writes_through_no_planted_link(self):
        """mail_owner owns the queue directory: it can put a symbolic or a hard
        link where root's offline release writes hijack-state.tmp. The command
        line used to open it with O_TRUNC, write the state into the target and
        hand it to the directory's owner (say /etc/shadow, to relayguard)."""
        srv = self.server()
        self.assertEqual(mail(srv, ['a@p1.example', 'b@p2.example', 'c@p3.example'])[0], 250)
        self.assertTrue(self.wait_state(srv, r'^suspended alice@example\.com '), self.state(srv))
        srv.stop()
        tmp = os.path.join(srv.queue_dir, STATE + '.tmp')
        for plant in (os.symlink, os.link):
            victim = os.path.join(self.tmp, 'victim')
            with open(victim, 'w') as f:
                f.write('root:precious\n')
            os.chmod(victim, 0o644)
            before = os.stat(victim)
            plant(victim, tmp)
            out = queue_cli(srv, 'release', '--login', 'alice@example.com')
            self.assertEqual(out.returncode, 0, out.stderr)
            with open(victim) as f:
                self.assertEqual(f.read(), 'root:precious\n', plant.__name__)
            after = os.stat(victim)
            self.assertEqual((after.st_uid, after.st_gid, after.st_mode),
                             (before.st_uid, before.st_gid, before.st_mode), plant.__name__)
            self.assertNotIn('suspended alice', self.state(srv))
            self.assertFalse(os.path.islink(os.path.join(srv.queue_dir, STATE)))
            os.unlink(victim)
            # suspended again for the next round
            with open(os.path.join(srv.queue_dir, STATE), 'a') as f:
                f.write('suspended alice@example.com %d again\n' % (int(time.time()) + 600))

    def test_a_damaged_file_is_read_as_far_as_it_is_good(self):
        srv = self.server()
        srv.stop()
        until = int(time.time()) + 600
        with open(os.path.join(srv.queue_dir, STATE), 'w') as f:
            f.write('# relayguard hijack-state 1\n'
                    'suspended alice@example.com %d kept\r\n250 fake\n'
                    'suspended bob@example.com %d over long ago\n'
                    'known alice@example.com zz\n'
                    'known alice@example.com 00000000000000ff\n'
                    'nonsense\n'
                    'known x ' % (until, int(time.time()) - 5) + '0' * 5000 + '\n')
        srv.start()
        # bad: "250 fake" (after the CR LF), "zz", "nonsense", the over-long line
        self.assertIsNotNone(srv.wait_log(r'warning hijack-state-loaded suspended=1 '
                                          r'known_domains=1 bad_lines=4'), srv.tail(10))
        code, text = mail_from(srv)
        self.assertEqual(code, 454, text)
        self.assertIn('(kept?); contact', text)


@harness.requires(REDIS is not None, 'redis-server', 'a real Redis for shared_state')
class TwoHostsOneRedis(Scratch):
    """Two relayguard instances sharing one redis-server on loopback."""

    def setUp(self):
        super().setUp()
        self.redis = Redis()
        self.addCleanup(self.redis.cleanup)

    def pair(self, **more):
        more['shared_state'] = 'redis://127.0.0.1:%d/0' % self.redis.port
        a, b = self.server(**more), self.server(**more)
        self.caught_up(a, b)
        return a, b

    def caught_up(self, *servers):
        for srv in servers:
            self.assertIsNotNone(srv.wait_log(r'shared-state-caught-up ', timeout=30),
                                 srv.tail(10))

    def test_new_domain_mail_spread_over_both_hosts_is_held(self):
        a, b = self.pair()
        self.assertEqual(mail(a, ['a@x1.example'])[0], 250)
        self.assertEqual(mail(b, ['b@x2.example'], UNTRUSTED2)[0], 250)
        self.assertEqual(mail(a, ['c@x3.example'])[0], 250)
        # neither host saw three new domains; together they did
        self.assertIsNotNone(a.wait_log(r'hijack-suspended client=127\.0\.0\.9 '
                                        r'user=alice@example\.com reason="3 new recipient '
                                        r'domains in 600s, over all hosts"'), a.tail(10))
        self.assertIsNotNone(b.wait_log(r'hijack-suspended user=alice@example\.com .*'
                                        r'source=shared'), b.tail(10))
        for srv in (a, b):
            code, text = mail_from(srv, UNTRUSTED2)
            self.assertEqual(code, 454, text)
        # and the next message is held wherever it comes in
        self.assertEqual(mail(b, ['d@x1.example'], UNTRUSTED2)[0], 454)

    def test_a_burst_to_known_domains_over_both_hosts_is_not_held(self):
        """alice has written to k1..k4 (learnt on a); b, restarted, never saw them:
        a newsletter to them through both hosts counts no new domain anywhere."""
        a, b = self.pair(smtpd_sasl_hijack_window='2s')
        self.assertEqual(mail(a, ['l@k1.example', 'l@k2.example'])[0], 250)
        time.sleep(4.3)  # two windows: the counts of the first learning are over
        self.assertEqual(mail(a, ['l@k3.example', 'l@k4.example'])[0], 250)
        time.sleep(0.3)
        self.assertEqual(len(redis_cmd(self.redis.port, 'SMEMBERS',
                                       'rg:hjk:alice@example.com').split(b'.example')), 5)
        b.restart()
        self.caught_up(b)
        for k in range(8):
            srv = (a, b)[k % 2]
            code, text = mail(srv, ['user%d@k%d.example' % (k, 1 + k % 4),
                                    'other%d@k%d.example' % (k, 1 + (k + 1) % 4)], UNTRUSTED2)
            self.assertEqual(code, 250, text)
        self.assertEqual(a.queue_files('hold') + b.queue_files('hold'), [])
        self.assertNotIn('hijack', a.log() + b.log())

    def test_redis_killed_mid_window_the_local_count_still_holds(self):
        a, b = self.pair()
        self.assertEqual(mail(a, ['a@w1.example', 'b@w2.example'])[0], 250)
        time.sleep(0.3)
        self.redis.kill()
        # never opens: the third new domain on a is held on a's own count
        self.assertEqual(mail(a, ['c@w3.example'])[0], 250)
        self.assertEqual(len(a.queue_files('hold')), 1)
        self.assertIsNotNone(a.wait_log(r'hijack-suspended client=127\.0\.0\.9 .*'
                                        r'source=local'))
        self.assertIsNotNone(a.wait_log(r'warning shared-state-failed'))
        self.assertEqual(mail_from(a)[0], 454)
        # never closes: b, without Redis, takes alice's mail to a domain she knows
        # nowhere yet, counted on its own
        self.assertEqual(mail(b, ['z@w9.example'], UNTRUSTED2)[0], 250)
        self.assertEqual(b.queue_files('hold'), [])
        self.assertIn('shared_state down',
                      harness.run_cli(['lockout', 'stats', '-c', b.config_path]).stdout)

    def test_a_restarted_host_keeps_the_suspension(self):
        a, b = self.pair()
        self.assertEqual(mail(a, ['a@r1.example', 'b@r2.example', 'c@r3.example'])[0], 250)
        self.assertIsNotNone(b.wait_log(r'hijack-suspended user=alice@example\.com .*'
                                        r'source=shared'))
        for srv in (a, b):
            srv.restart()
            self.assertIsNotNone(srv.wait_log(r'shared-state-caught-up lockouts=0 '
                                              r'suspensions=1', timeout=30), srv.tail(10))
            code, text = mail_from(srv, UNTRUSTED2)
            self.assertEqual(code, 454, text)
            self.assertIn('3 new recipient domains', text)
        # with Redis the state lives there, not in a file
        self.assertFalse(os.path.exists(os.path.join(a.queue_dir, STATE)))

    def test_release_without_a_running_server_lifts_the_suspension_in_redis(self):
        """The operator releases alice with both hosts stopped: the restarted hosts
        read Redis back at start and must not find her suspended there."""
        a, b = self.pair()
        self.assertEqual(mail(a, ['a@o1.example', 'b@o2.example', 'c@o3.example'])[0], 250)
        self.assertIsNotNone(b.wait_log(r'hijack-suspended user=alice@example\.com .*'
                                        r'source=shared'))
        a.stop()
        b.stop()
        out = queue_cli(a, 'release', '--login', 'alice@example.com')
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('suspension lifted (here and in shared_state)', out.stdout)
        self.assertEqual(redis_cmd(self.redis.port, 'EXISTS', 'rg:susp:alice@example.com'),
                         b':0\r\n')
        for srv in (a, b):
            srv.start()
            self.assertIsNotNone(srv.wait_log(r'shared-state-caught-up lockouts=0 '
                                              r'suspensions=0', timeout=30), srv.tail(10))
            code, text = mail_from(srv, UNTRUSTED2)
            self.assertEqual(code, 250, text)

    def test_an_offline_release_of_a_login_with_a_control_character_lifts_nobody(self):
        """'alice@example.com<VT>x' is no login relayguard can have (AUTH names are
        cleaned); published as "resume alice@example.com<VT>x" it was read by the
        running hosts as "resume alice@example.com": alice was lifted everywhere."""
        a, b = self.pair()
        self.assertEqual(mail(a, ['a@v1.example', 'b@v2.example', 'c@v3.example'])[0], 250)
        self.assertIsNotNone(b.wait_log(r'hijack-suspended user=alice@example\.com .*'
                                        r'source=shared'))
        a.stop()
        for odd in ('\x0b', '\x0c', '\x01', '\x7f'):
            out = queue_cli(a, 'release', '--login', 'alice@example.com%sx' % odd)
            self.assertEqual(out.returncode, 64, repr(odd) + out.stdout + out.stderr)
        time.sleep(0.3)
        self.assertNotIn('hijack-cleared', b.log())
        self.assertEqual(mail_from(b, UNTRUSTED2)[0], 454)

    def test_release_without_a_running_server_and_redis_down_says_so(self):
        a, _ = self.pair()
        a.stop()
        self.redis.kill()
        out = queue_cli(a, 'release', '--login', 'alice@example.com')
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assertIn('shared_state: connect:', out.stderr)
        self.assertIn('the suspension is still in Redis', out.stderr)


    def test_an_offline_release_against_a_dripping_redis_gives_up_in_time(self):
        """hiredis's 2 s timeout is per read: a Redis answering a byte a second
        held the offline CLI, and the queue lock with it, for as long as it
        liked, so no server could start. The whole lift now ends within 2 s."""
        a, _ = self.pair()
        a.stop()
        drip = socket.socket()
        drip.bind(('127.0.0.1', 0))
        drip.listen(4)
        self.addCleanup(drip.close)

        def talk():
            try:
                c, _ = drip.accept()
                c.recv(4096)
                for b in b'+OK\r\n' * 100:
                    c.send(bytes([b]))
                    time.sleep(0.5)
            except OSError:
                pass
        threading.Thread(target=talk, daemon=True).start()
        with open(a.config_path) as f:
            text = f.read()
        with open(a.config_path, 'w') as f:
            f.write(re.sub(r'(?m)^shared_state = .*$', 'shared_state = redis://127.0.0.1:%d/0'
                           % drip.getsockname()[1], text))
        started = time.monotonic()
        out = queue_cli(a, 'release', '--login', 'alice@example.com')
        self.assertLess(time.monotonic() - started, 6)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn('no answer within 2 s', out.stderr)
        self.assertIn('the suspension is still in Redis', out.stderr)

if __name__ == '__main__':
    unittest.main()
