"""test_session_pending.py - attacks on the session while it waits for something.

The session waits (one 'pending' at a time) for the end-of-data stages, the
commit, the spool, or the AUTH backend and its failure delay. Whatever a
client pipelines behind such a wait, however it leaves during one, the
answers must come in order, nothing may run twice or be skipped (an open
relay or a lost message), and the server must stay up with no sanitizer
report (the ASan build runs these too). Everything on loopback; clients are
127.0.0.9 ("the Internet").
"""
import os
import re
import socket
import struct
import tempfile
import time
import unittest

import dnslab
import harness
from harness import Conn, Server
from test_msa import make_passwd, msa_overrides, plain

QUEUED = re.compile(r'^2\.0\.0 Ok: queued as ([0-9A-F]{16})$')
MESSAGE = 'Subject: pending\r\n\r\nbody\r\n.\r\n'


def transaction(rcpt='alice@example.com', sender='someone@example.org'):
    return 'MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n%s' % (sender, rcpt, MESSAGE)


def reset_close(c):
    """Leave with a TCP reset, not a FIN: the server sees an error, not a half-close."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    c.close()


class PendingServer(unittest.TestCase):
    """One server for the class: local users, AUTH on the TLS ports."""
    more = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-pending-')
        os.chmod(cls.tmp, 0o755)
        passwd = os.path.join(cls.tmp, 'passwd')
        make_passwd(passwd)
        o = dict({'smtpd_sasl_failure_limit': '1000'}, **cls.more)
        cls.server = Server(overrides=msa_overrides(passwd, **o))

    @classmethod
    def tearDownClass(cls):
        harness.stop_server(cls.server, cls.tmp)

    def assert_up(self):
        self.assertTrue(self.server.alive(), self.server.tail(20))
        with Conn(self.server.port) as c:
            self.assertEqual(c.cmd('NOOP')[0], 250)


class PipelinedBehindTheCommit(PendingServer):
    def test_whole_transaction_and_quit_in_one_packet(self):
        with Conn(self.server.port) as c:
            c.send('EHLO c.example.org\r\n' + transaction() + 'QUIT\r\n')
            r = c.replies(6)
            self.assertEqual([x[0] for x in r], [250, 250, 250, 354, 250, 221], r)
            self.assertRegex(r[4][1], QUEUED)
            self.assertTrue(c.closed())

    def test_two_messages_in_one_packet_are_two_messages(self):
        with Conn(self.server.port) as c:
            c.send('EHLO c.example.org\r\n' + transaction() + transaction('bob@example.com') +
                   'QUIT\r\n')
            r = c.replies(10)
        self.assertEqual([x[0] for x in r], [250, 250, 250, 354, 250, 250, 250, 354, 250, 221], r)
        ids = [QUEUED.match(r[i][1]).group(1) for i in (4, 8)]
        self.assertNotEqual(ids[0], ids[1])

    def test_relay_pipelined_behind_a_commit_is_refused(self):
        mark = self.server.mark()
        with Conn(self.server.port) as c:
            c.send('EHLO c.example.org\r\n' + transaction() +
                   transaction('victim@example.net') + 'QUIT\r\n')
            r = c.replies(6)
            self.assertEqual([x[0] for x in r], [250, 250, 250, 354, 250, 250], r)
            code, text = c.reply()  # RCPT TO:<victim@example.net>
            self.assertEqual(code, 554, text)
            self.assertIn('Relay access denied', text)
            code, text = c.reply()  # DATA
            self.assertEqual(code, 554, text)
        self.assertIsNotNone(self.server.wait_log(r'rcpt .*to=<victim@example\.net>.*result=reject',
                                                  since=mark))
        self.assertNotRegex(self.server.log_since(mark), r'queued .*victim@example\.net')

    def test_rset_and_ehlo_behind_a_commit_do_not_undo_the_message(self):
        with Conn(self.server.port) as c:
            c.send('EHLO c.example.org\r\n' + transaction() +
                   'RSET\r\nEHLO c.example.org\r\nDATA\r\nQUIT\r\n')
            r = c.replies(9)
        self.assertEqual([x[0] for x in r], [250, 250, 250, 354, 250, 250, 250, 503, 221], r)
        self.assertRegex(r[4][1], QUEUED)

    def test_half_close_after_a_pipelined_transaction_gets_every_answer(self):
        with Conn(self.server.port) as c:
            c.send('EHLO c.example.org\r\n' + transaction())
            c.sock.shutdown(socket.SHUT_WR)
            r = c.replies(5)
            self.assertEqual([x[0] for x in r], [250, 250, 250, 354, 250], r)
            self.assertRegex(r[4][1], QUEUED)
            self.assertTrue(c.closed())

    def test_half_close_right_after_the_final_dot(self):
        with Conn(self.server.port) as c:
            self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
            c.send(transaction())
            c.sock.shutdown(socket.SHUT_WR)
            r = c.replies(4)
            self.assertEqual([x[0] for x in r], [250, 250, 354, 250], r)
            self.assertTrue(c.closed())

    def test_reset_during_the_stages_and_commit_leaves_the_server_up(self):
        """The worker's callback outlives the connection: it must not touch a freed session."""
        for i in range(20):
            c = Conn(self.server.port)
            c.send('EHLO c.example.org\r\n' + transaction())
            if i % 2:
                time.sleep(0.002 * i)  # sometimes later: during the commit, not the stages
            reset_close(c)
        self.assert_up()

    def test_a_client_that_does_not_read_its_replies_cannot_pile_them_up(self):
        """Hundreds of pipelined messages behind commits: answered in order, one by one."""
        with Conn(self.server.port, timeout=30) as c:
            c.send('EHLO c.example.org\r\n' + transaction() * 200 + 'QUIT\r\n')
            r = c.replies(1 + 4 * 200 + 1)
        self.assertEqual(r[-1][0], 221, r[-5:])
        self.assertEqual(sum(1 for x in r if x[0] == 250 and QUEUED.match(x[1])), 200)


class SpoolWaits(PendingServer):
    """Text past 128 KiB goes to disk while it arrives (PENDING_SPOOL, a write in flight)."""

    def test_reset_while_the_spool_writes_leaves_the_server_up(self):
        big = ('x' * 998 + '\r\n') * 1200  # 1.2 MB: several spool writes
        for i in range(8):
            c = Conn(self.server.port)
            c.send('EHLO c.example.org\r\nMAIL FROM:<a@example.org>\r\n'
                   'RCPT TO:<alice@example.com>\r\nDATA\r\nSubject: big\r\n\r\n')
            try:
                c.send(big[:len(big) * (i + 1) // 8] + ('.\r\n' if i % 2 else ''))
            except OSError:
                pass
            reset_close(c)
        self.assert_up()

    def test_a_spooled_message_pipelined_with_the_next_one(self):
        big = ('y' * 998 + '\r\n') * 600
        with Conn(self.server.port, timeout=30) as c:
            c.send('EHLO c.example.org\r\nMAIL FROM:<a@example.org>\r\n'
                   'RCPT TO:<alice@example.com>\r\nDATA\r\nSubject: big\r\n\r\n' + big +
                   '.\r\n' + transaction('bob@example.com') + 'QUIT\r\n')
            r = c.replies(10)
        self.assertEqual([x[0] for x in r], [250, 250, 250, 354, 250, 250, 250, 354, 250, 221], r)


class ShutdownDuringACommit(unittest.TestCase):
    def test_sigterm_with_sessions_in_every_wait_exits_cleanly(self):
        with tempfile.TemporaryDirectory(prefix='relayguard-pending-') as tmp:
            os.chmod(tmp, 0o755)
            passwd = os.path.join(tmp, 'passwd')
            make_passwd(passwd)
            srv = Server(overrides=msa_overrides(passwd, smtpd_sasl_failure_delay='5s'))
            try:
                conns = []
                for i in range(6):
                    c = Conn(srv.port)
                    c.send('EHLO c.example.org\r\n' + transaction())
                    conns.append(c)
                c = Conn(srv.subs_port, tls=True)
                c.cmd('EHLO c.example.org')
                c.send('AUTH PLAIN %s\r\n' % plain('alice@example.com', 'wrong'))
                conns.append(c)
                time.sleep(0.3)  # the AUTH failure reply is being delayed
                srv.stop()  # exit status 0, no sanitizer report
                for c in conns:
                    c.close()
            finally:
                srv.stop(check=False)
                srv.cleanup()


class LookupWait(unittest.TestCase):
    def test_a_slow_client_name_lookup_is_not_the_clients_timeout(self):
        """The greeting waits for the client's name (PENDING_LOOKUP): a resolver that
        never answers costs the DNS time limit, and the client, who may not talk
        before the greeting, is not timed out for our wait."""
        silent = dnslab.SilentDns()
        self.addCleanup(silent.close)
        with Server(overrides={'dns_servers': silent.servers, 'smtpd_timeout': '2s'}) as srv:
            with Conn(srv.port, greeting=False, timeout=30) as c:
                code, text = c.reply()
                self.assertEqual(code, 220, text)
                self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)  # reading is on
                self.assertEqual(c.cmd('QUIT')[0], 221)
            self.assertIsNotNone(srv.wait_log(r'connect .*name=unknown'))


class StartTlsInjection(PendingServer):
    def test_commands_pipelined_after_starttls_are_never_run(self):
        """CVE-2011-0411: what came in plain text after STARTTLS must not run under TLS."""
        mark = self.server.mark()
        with Conn(self.server.port) as c:
            self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
            c.send('STARTTLS\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.com>\r\n'
                   'DATA\r\n' + MESSAGE)
            self.assertEqual(c.reply()[0], 220)
            c.starttls()
            # nothing was run: the first reply under TLS is this NOOP's
            self.assertEqual(c.cmd('NOOP'), (250, '2.0.0 Ok'))
            self.assertEqual(c.cmd('MAIL FROM:<a@example.org>')[0], 503)  # EHLO again first
            self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<alice@example.com>')[0], 503)  # no MAIL survived
        self.assertIsNotNone(self.server.wait_log(r'starttls-pipelining-discarded', since=mark))
        self.assertNotIn(' queued ', self.server.log_since(mark))

    def test_starttls_on_submission_still_needs_auth_for_mail(self):
        with Conn(self.server.sub_port) as c:
            self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
            self.assertEqual(c.cmd('STARTTLS')[0], 220)
            c.starttls()
            self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
            code, text = c.cmd('MAIL FROM:<alice@example.com>')
            self.assertEqual(code, 530, text)

    def test_bdat_is_not_offered_and_refused(self):
        with Conn(self.server.port) as c:
            self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
            self.assertEqual(c.cmd('MAIL FROM:<a@example.org>')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<alice@example.com>')[0], 250)
            self.assertEqual(c.cmd('BDAT 6 LAST')[0], 502)
            self.assertEqual(c.cmd('DATA')[0], 354)  # the transaction is still there


class AuthPipelined(PendingServer):
    def auth_conn(self):
        c = Conn(self.server.subs_port, tls=True)
        self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
        return c

    def test_mail_pipelined_after_auth_waits_for_the_verdict(self):
        with self.auth_conn() as c:
            c.send('AUTH PLAIN %s\r\nMAIL FROM:<alice@example.com>\r\n'
                   'RCPT TO:<friend@example.net>\r\n' % plain('alice@example.com', 'alice-secret'))
            r = c.replies(3)
        self.assertEqual([x[0] for x in r], [235, 250, 250], r)

    def test_a_failed_auth_does_not_let_pipelined_mail_through(self):
        with self.auth_conn() as c:
            c.send('AUTH PLAIN %s\r\nMAIL FROM:<alice@example.com>\r\n'
                   'RCPT TO:<friend@example.net>\r\nDATA\r\n' %
                   plain('alice@example.com', 'wrong'))
            r = c.replies(4)
        self.assertEqual([x[0] for x in r], [535, 530, 503, 503], r)

    def test_a_login_exchange_with_pipelined_commands_reads_them_as_responses(self):
        """AUTH LOGIN's next lines are SASL responses, never commands."""
        with self.auth_conn() as c:
            c.send('AUTH LOGIN\r\nMAIL FROM:<alice@example.com>\r\n'
                   'RCPT TO:<friend@example.net>\r\n')
            r = c.replies(2)
            self.assertEqual(r[0][0], 334, r)
            self.assertEqual(r[1][0], 501, r)  # "MAIL FROM..." is no base64
            self.assertEqual(c.reply()[0], 503)  # RCPT: no MAIL


class AuthWaits(PendingServer):
    """A failure reply held back for smtpd_sasl_failure_delay, with a short smtpd_timeout."""
    more = {'smtpd_sasl_failure_delay': '2s', 'smtpd_timeout': '1s'}

    def test_the_delayed_reply_is_owed_not_a_timeout(self):
        with Conn(self.server.subs_port, tls=True) as c:
            self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
            t0 = time.monotonic()
            code, text = c.cmd('AUTH PLAIN %s' % plain('alice@example.com', 'wrong'))
            self.assertEqual(code, 535, text)
            self.assertGreaterEqual(time.monotonic() - t0, 1.5)

    def test_leaving_during_the_delay_is_logged_with_the_wait_name(self):
        mark = self.server.mark()
        for leave in (reset_close, lambda c: c.sock.shutdown(socket.SHUT_WR)):
            c = Conn(self.server.subs_port, tls=True)
            self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
            c.send('AUTH PLAIN %s\r\nQUIT\r\n' % plain('alice@example.com', 'wrong'))
            time.sleep(0.2)
            leave(c)
            c.close()
        self.assertIsNotNone(self.server.wait_log(r'lost-connection .*state=AUTH_WAIT',
                                                  since=mark, count=2))
        time.sleep(2.2)  # the delay timer must not fire on a freed session
        self.assert_up()


if __name__ == '__main__':
    unittest.main()
