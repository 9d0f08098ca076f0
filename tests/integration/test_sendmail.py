"""test_sendmail.py - `relayguard sendmail` and the `sendmail` link (issue 12).

A running relayguard listens on <queue_directory>/pickup; the command hands it
the message read on stdin, as the Unix user who runs it (the server asks the
kernel: SO_PEERCRED). The tests run the client as root and, through a
preexec_fn that drops to uid/gid 65534 (nobody), as an unprivileged user:
that user may send as nobody@ourdomain.test and as what smtpd_sender_login_maps
gives it, nothing else. Exit codes are sendmail's (sysexits.h).
"""
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Server, binary

NOBODY = 65534
EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER = 0, 64, 65, 67
EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 75, 77, 78

OVERRIDES = {
    'mydestination': 'ourdomain.test',
    'myorigin': 'ourdomain.test',
    'local_recipient_maps': 'inline:{alice, bob, carol, nobody, root}',
    'smtpd_sender_login_maps': 'inline:{ webmaster@site.test=nobody }',
    'message_size_limit': '20000',
}


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def sendmail(server, args, text, user=None, argv0=None, config=True, timeout=30):
    """Run the client; returns CompletedProcess (stdout/stderr text)."""
    cmd = [argv0] if argv0 else [binary(), 'sendmail']
    if config:
        cmd += ['-C', server.config_path]
    return subprocess.run(cmd + list(args), input=text.encode(), capture_output=True,
                          timeout=timeout, preexec_fn=as_nobody if user == 'nobody' else None)


def unprivileged(test):
    """The test drops to nobody: only root can (CI runs the tests as root)."""
    def wrapper(self):
        harness.require(os.geteuid() == 0, 'root (CI runs the tests as root)',
                        'running the client as another user')
        return test(self)
    wrapper.__name__ = test.__name__
    wrapper.__doc__ = test.__doc__
    return wrapper


class SendmailTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(overrides=OVERRIDES)

    @classmethod
    def tearDownClass(cls):
        harness.stop_server(cls.server)

    def mail_of(self, user, count):
        files = self.server.wait_maildir('ourdomain.test', user, count=count)
        self.assertEqual(len(files), count, 'mail for %s: %s\n%s'
                         % (user, files, self.server.tail()))
        return self.server.read_mail('ourdomain.test', user, files[-1]).decode()

    def count(self, user):
        return len(self.server.maildir('ourdomain.test', user))

    def test_t_delivers_to_and_bcc_and_removes_bcc(self):
        """-t: To and Bcc recipients both get it; Bcc: is in neither copy;
        From:, Date: and Message-ID: are added."""
        a, b = self.count('alice'), self.count('bob')
        r = sendmail(self.server, ['-t'],
                     'To: Alice <alice@ourdomain.test>\nBcc: "B, the hidden" <bob@ourdomain.test>\n'
                     'Subject: cron output\n\nall is well\n')
        self.assertEqual(r.returncode, EX_OK, r.stderr)
        for user, before in (('alice', a), ('bob', b)):
            text = self.mail_of(user, before + 1)
            self.assertNotIn('Bcc:', text)
            self.assertNotIn('hidden', text)
            self.assertIn('Subject: cron output', text)
            self.assertRegex(text, r'(?m)^From: .*root@ourdomain\.test')
            self.assertRegex(text, r'(?m)^Date: \w{3}, \d\d \w{3} \d{4} ')
            self.assertRegex(text, r'(?m)^Message-ID: <[^@>]+@mx\.relayguard\.test>')
            self.assertIn('Return-Path: <root@ourdomain.test>', text)

    def test_nul_byte_is_refused_not_glued_to_the_next_line(self):
        """A NUL byte used to end the line early and glue the next one onto it:
        "X-A: oneBcc: bob@..." went to the To: recipient, and bob got nothing."""
        a, b = self.count('alice'), self.count('bob')
        r = sendmail(self.server, ['-t'], 'To: alice@ourdomain.test\nX-A: one\0\n'
                     'Bcc: bob@ourdomain.test\nSubject: nul\n\nbody\n')
        self.assertEqual(r.returncode, EX_DATAERR, r.stderr)
        self.assertIn(b'NUL byte', r.stderr)
        time.sleep(0.5)
        self.assertEqual((self.count('alice'), self.count('bob')), (a, b))

    def test_lone_dot_with_i_is_delivered_intact(self):
        """-i: a line with one dot is message text, and leading dots survive."""
        before = self.count('carol')
        body = 'first\n.\n..two dots\n.last\n'
        r = sendmail(self.server, ['-i', 'carol@ourdomain.test'], 'Subject: dots\n\n' + body)
        self.assertEqual(r.returncode, EX_OK, r.stderr)
        text = self.mail_of('carol', before + 1)
        self.assertTrue(text.endswith('\n\n' + body), repr(text[-80:]))  # Maildir: LF

    def test_lone_dot_without_i_ends_the_message(self):
        before = self.count('carol')
        r = sendmail(self.server, ['carol'], 'Subject: short\n\nkept\n.\nnot sent\n')
        self.assertEqual(r.returncode, EX_OK, r.stderr)
        text = self.mail_of('carol', before + 1)
        self.assertIn('kept', text)
        self.assertNotIn('not sent', text)

    @unprivileged
    def test_user_cannot_forge_another_domain(self):
        """nobody as ceo@paypal.example: refused, EX_NOPERM, a clear line,
        nothing delivered, and the log names the Unix user."""
        mark = self.server.mark()
        before = self.count('alice')
        r = sendmail(self.server, ['-f', 'ceo@paypal.example', 'alice@ourdomain.test'],
                     'Subject: wire the money\n\nnow\n', user='nobody')
        self.assertEqual(r.returncode, EX_NOPERM, r.stderr)
        err = r.stderr.decode()
        self.assertRegex(err, r'^sendmail: sender <ceo@paypal\.example> refused: 553 5\.7\.1 .*'
                         r'not owned by user nobody; message not sent\n$')
        log = self.server.wait_log(r'mail-refused .*user=nobody', since=mark)
        self.assertIsNotNone(log, self.server.tail())
        self.assertEqual(self.count('alice'), before)

    @unprivileged
    def test_user_sends_as_itself_and_as_what_the_login_maps_give_it(self):
        mark = self.server.mark()
        before = self.count('alice')
        r = sendmail(self.server, ['alice@ourdomain.test'], 'Subject: mine\n\nhello\n',
                     user='nobody')
        self.assertEqual(r.returncode, EX_OK, r.stderr)
        text = self.mail_of('alice', before + 1)
        self.assertIn('Return-Path: <nobody@ourdomain.test>', text)
        r = sendmail(self.server, ['-f', 'webmaster@site.test', '-F', 'Web "Site"',
                                   'alice@ourdomain.test'], 'Subject: site\n\nhello\n',
                     user='nobody')
        self.assertEqual(r.returncode, EX_OK, r.stderr)
        text = self.mail_of('alice', before + 2)
        self.assertIn('Return-Path: <webmaster@site.test>', text)
        self.assertIn('From: "Web Site" <webmaster@site.test>', text)
        log = self.server.log_since(mark)
        self.assertRegex(log, r'auth .*user=nobody mechanism=unix-peer')
        self.assertRegex(log, r'listener=\S*/queue/pickup')

    def test_root_may_use_any_sender(self):
        before = self.count('alice')
        r = sendmail(self.server, ['-f', 'alerts@monitoring.example', 'alice@ourdomain.test'],
                     'Subject: disk\n\n90%\n')
        self.assertEqual(r.returncode, EX_OK, r.stderr)
        self.assertIn('Return-Path: <alerts@monitoring.example>', self.mail_of('alice', before + 1))

    def test_unknown_recipient_is_nouser_and_nothing_is_sent(self):
        before = self.count('alice')
        r = sendmail(self.server, ['alice@ourdomain.test', 'ghost@ourdomain.test'],
                     'Subject: x\n\ny\n')
        self.assertEqual(r.returncode, EX_NOUSER, r.stderr)
        self.assertRegex(r.stderr.decode(),
                         r'^sendmail: recipient <ghost@ourdomain\.test> refused: 550 5\.1\.1 ')
        time.sleep(0.3)  # all or nothing: alice, accepted first, gets nothing either
        self.assertEqual(self.count('alice'), before)

    def test_too_large_is_dataerr(self):
        r = sendmail(self.server, ['alice@ourdomain.test'],
                     'Subject: big\n\n' + ('x' * 70 + '\n') * 400)
        self.assertEqual(r.returncode, EX_DATAERR, r.stderr)
        self.assertIn(b'message_size_limit (20000 bytes)', r.stderr)

    def test_usage_and_config_errors(self):
        r = sendmail(self.server, [], 'Subject: x\n\ny\n')
        self.assertEqual(r.returncode, EX_USAGE)
        self.assertIn(b'no recipients', r.stderr)
        r = sendmail(self.server, ['-bs'], '')
        self.assertEqual(r.returncode, EX_USAGE)
        r = sendmail(self.server, ['-C', '/nonexistent/main.cf', 'alice'], 'x\n', config=False)
        self.assertEqual(r.returncode, EX_CONFIG)

    def test_invoked_as_sendmail(self):
        """A link named sendmail (make install INSTALL_SENDMAIL=yes) is the same command."""
        d = tempfile.mkdtemp(prefix='relayguard-sendmail-')
        try:
            link = os.path.join(d, 'sendmail')
            os.symlink(binary(), link)
            before = self.count('bob')
            r = sendmail(self.server, ['-oi', '-t'], 'To: bob@ourdomain.test\nSubject: link\n\n.\n',
                         argv0=link)
            self.assertEqual(r.returncode, EX_OK, r.stderr)
            self.assertIn('Subject: link', self.mail_of('bob', before + 1))
        finally:
            shutil.rmtree(d)


PICKUP_WAIT_SECONDS = 30  # sendmail_cmd.c: how long it waits for a server that is down


class SendmailServerDownTest(unittest.TestCase):
    def test_server_down_is_tempfail(self):
        """No server on the socket for PICKUP_WAIT_SECONDS: EX_TEMPFAIL (75), so a
        caller can try later; the wait is bounded."""
        server = Server(overrides=OVERRIDES)
        try:
            sock = os.path.join(server.queue_dir, 'pickup')
            self.assertTrue(os.path.exists(sock))
            server.stop()
            self.assertFalse(os.path.exists(sock), 'the socket outlived the server')
            began = time.monotonic()
            r = sendmail(server, ['alice@ourdomain.test'], 'Subject: x\n\ny\n',
                         timeout=PICKUP_WAIT_SECONDS + 30)
            waited = time.monotonic() - began
            self.assertEqual(r.returncode, EX_TEMPFAIL, r.stderr)
            self.assertRegex(r.stderr.decode(), r'^sendmail: cannot reach the mail server at '
                             r'\S+/pickup .*message not sent\n$')
            self.assertGreaterEqual(waited, PICKUP_WAIT_SECONDS - 1)
            self.assertLess(waited, PICKUP_WAIT_SECONDS + 10)
        finally:
            server.cleanup()

    def test_server_restarting_gets_the_message(self):
        """cron's mail during a restart: sendmail started while the server is
        down reads the message at once (the writer is not blocked) and hands it
        over once the server is back 2 s later: exit 0, delivered."""
        server = Server(overrides=dict(OVERRIDES, message_size_limit='1000000'))
        try:
            server.stop()
            p = None
            text = b'Subject: during the restart\n\n' + b'x' * 200000 + b'\n'
            began = time.monotonic()
            p = subprocess.Popen([binary(), 'sendmail', '-C', server.config_path,
                                  'alice@ourdomain.test'], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            p.stdin.write(text)  # more than a pipe holds: blocks unless it is read
            p.stdin.close()
            self.assertLess(time.monotonic() - began, 1.5, 'the message was not read first')
            time.sleep(2)
            if p.poll() is not None:
                self.fail('sendmail gave up while the server was down: %r' % p.stderr.read())
            server.start()
            p.wait(timeout=PICKUP_WAIT_SECONDS)
            self.assertEqual(p.returncode, EX_OK, p.stderr.read())
            files = server.wait_maildir('ourdomain.test', 'alice')
            self.assertEqual(len(files), 1, server.tail())
            self.assertIn(b'Subject: during the restart',
                          server.read_mail('ourdomain.test', 'alice', files[0]))
        finally:
            if p is not None and p.poll() is None:
                p.kill()
            if p is not None:
                p.wait()
                p.stdout.close()
                p.stderr.close()
            server.stop()
            server.cleanup()


class PickupConnectionLimit(unittest.TestCase):
    """Local users are one client for smtpd_client_connection_count_limit: one
    of them holding many pickup connections cannot take every session the
    server has (smtpd_connection_limit) from the network's clients."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(overrides=dict(OVERRIDES, smtpd_client_connection_count_limit='3',
                                           smtpd_connection_limit='8'))

    @classmethod
    def tearDownClass(cls):
        harness.stop_server(cls.server)

    def greeting_from(self, source):
        c = socket.create_connection(('127.0.0.1', self.server.port), timeout=10,
                                     source_address=(source, 0))
        try:
            return c.recv(512).decode(errors='replace')
        finally:
            c.close()

    @unprivileged
    def test_many_pickup_connections_leave_room_for_others(self):
        path = os.path.join(self.server.queue_dir, 'pickup')
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:  # nobody opens 12 connections and holds them
            code = 1
            try:
                os.close(rd)
                as_nobody()
                held = []
                for _ in range(12):
                    c = socket.socket(socket.AF_UNIX)
                    c.settimeout(10)
                    c.connect(path)
                    held.append((c, c.recv(512)))
                os.write(wr, b''.join(g[:3] for _, g in held))
                time.sleep(3)
                code = 0
            finally:
                os._exit(code)
        os.close(wr)
        greetings = b''
        while len(greetings) < 36:
            chunk = os.read(rd, 64)
            if not chunk:
                break
            greetings += chunk
        os.close(rd)
        try:
            self.assertEqual(greetings.count(b'220'), 3, greetings)
            self.assertEqual(greetings.count(b'421'), 9, greetings)
            self.assertTrue(self.greeting_from('127.0.0.2').startswith('220 '),
                            self.server.tail())
        finally:
            os.waitpid(pid, 0)


SLOW_PWUID_SHIM = r'''
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>
/* a user database behind the network (LDAP, sssd) that takes its time */
int getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t len, struct passwd **out)
{
	static int (*real)(uid_t, struct passwd *, char *, size_t, struct passwd **);
	if (!real)
		real = (int (*)(uid_t, struct passwd *, char *, size_t, struct passwd **))
			dlsym(RTLD_NEXT, "getpwuid_r");
	const char *s = getenv("RG_TEST_SLOW_PWUID");
	if (s)
		sleep((unsigned)atoi(s));
	return real(uid, pw, buf, len, out);
}
'''


def smtp_over(sock, lines):
    """Send each line, return the code of each reply (the greeting first)."""
    f = sock.makefile('rb')
    codes = []

    def reply():
        while True:
            line = f.readline()
            if not line:
                return None
            if line[3:4] != b'-':
                return int(line[:3])
    codes.append(reply())
    in_data = False
    for line in lines:
        sock.sendall(line.encode() + b'\r\n')
        if in_data and line != '.':
            continue
        codes.append(reply())
        in_data = codes[-1] == 354
    return codes


@harness.requires(shutil.which('cc'), 'gcc and libc6-dev', 'a C compiler for the NSS shim')
class PickupUserLookup(unittest.TestCase):
    """The pickup peer's user name (getpwuid_r) is looked up on a worker, not
    on the event loop: with a user database that takes 3 s (an LD_PRELOAD
    shim), a network client is greeted and its message queued meanwhile, and
    the pickup session is greeted after, as its user. Clients that connect
    and leave at once, while look-ups wait or run, leave the server healthy."""

    @classmethod
    def setUpClass(cls):
        cls.shim = harness.build_shim(cls, SLOW_PWUID_SHIM, 'slowpw')

    def slow_server(self, seconds):
        return harness.preloaded_server(self.shim, {'RG_TEST_SLOW_PWUID': str(seconds)},
                                        overrides=OVERRIDES)

    def test_a_slow_user_database_delays_only_the_pickup_session(self):
        with self.slow_server(3) as srv:
            p = socket.socket(socket.AF_UNIX)
            p.settimeout(15)
            p.connect(os.path.join(srv.queue_dir, 'pickup'))
            try:
                time.sleep(0.3)  # accepted: its user's name is being looked up
                with harness.Conn(srv.port, timeout=15) as c:
                    self.assertEqual(c.greeting[0], 220)
                    for line in ('EHLO client.example.org', 'MAIL FROM:<a@example.org>',
                                 'RCPT TO:<alice@ourdomain.test>'):
                        self.assertEqual(c.cmd(line)[0], 250, line)
                    self.assertEqual(c.cmd('DATA')[0], 354)
                    c.send(b'Subject: meanwhile\r\n\r\nbody\r\n')
                    self.assertEqual(c.cmd('.')[0], 250)
                self.assertEqual(select.select([p], [], [], 0)[0], [],
                                 'the pickup session was greeted before the network '
                                 'session ended: the look-up held the event loop')
                me = pwd.getpwuid(os.getuid()).pw_name
                codes = smtp_over(p, ['EHLO localhost', 'MAIL FROM:<%s@ourdomain.test>' % me,
                                      'RCPT TO:<alice@ourdomain.test>', 'DATA',
                                      'Subject: picked up', '', 'body', '.', 'QUIT'])
                self.assertEqual(codes, [220, 250, 250, 250, 354, 250, 221], srv.tail())
            finally:
                p.close()
            self.assertIsNotNone(srv.wait_log(r'auth .*user=%s mechanism=unix-peer'
                                              % pwd.getpwuid(os.getuid()).pw_name))
            self.assertEqual(len(srv.wait_maildir('ourdomain.test', 'alice', count=2)), 2)

    def churn(self, srv):
        path = os.path.join(srv.queue_dir, 'pickup')
        for i in range(200):
            c = socket.socket(socket.AF_UNIX)
            c.connect(path)
            try:
                if i % 2:
                    c.sendall(b'EHLO early.example\r\n')
            except OSError:
                pass  # refused at once (421: over the limit of connections per client)
            c.close()
        with harness.Conn(srv.port, timeout=10) as c:
            self.assertEqual(c.greeting[0], 220)
        r = sendmail(srv, ['alice@ourdomain.test'], 'Subject: after the churn\n\nbody\n')
        self.assertEqual(r.returncode, EX_OK, r.stderr)
        self.assertEqual(len(srv.wait_maildir('ourdomain.test', 'alice', count=1, timeout=10)),
                         1, srv.tail())

    def pickup_socket(self, srv):
        p = socket.socket(socket.AF_UNIX)
        p.settimeout(15)
        p.connect(os.path.join(srv.queue_dir, 'pickup'))
        return p

    def test_sigterm_while_looked_up_and_waiting(self):
        """SIGTERM while one look-up runs on its worker and two wait their
        turn: each pickup client gets 421, and the server exits at once
        (status 0, no sanitizer report) without a late answer to a session
        that is gone."""
        srv = self.slow_server(2)
        try:
            clients = [self.pickup_socket(srv) for _ in range(3)]
            time.sleep(0.3)  # the first is looked up, the others wait
            start = time.time()
            srv.proc.send_signal(signal.SIGTERM)
            for c in clients:
                line = c.makefile('rb').readline()
                self.assertTrue(line.startswith(b'421 '), line)
                c.close()
            rc = srv.proc.wait(10)
            self.assertEqual(rc, 0, srv.tail())
            self.assertLess(time.time() - start, 5)  # the running look-up ends in 2 s
            srv.proc = None
            srv.check_sanitizers()
        finally:
            srv.cleanup()

    def test_sighup_while_looked_up(self):
        """A reload while a look-up runs and another waits: both sessions are
        greeted after it as their user, and send."""
        with self.slow_server(1) as srv:
            clients = [self.pickup_socket(srv) for _ in range(2)]
            try:
                time.sleep(0.3)
                mark = srv.mark()
                srv.proc.send_signal(signal.SIGHUP)
                self.assertIsNotNone(srv.wait_log('reloaded', since=mark), srv.tail())
                me = pwd.getpwuid(os.getuid()).pw_name
                for i, c in enumerate(clients):
                    codes = smtp_over(c, ['EHLO localhost',
                                          'MAIL FROM:<%s@ourdomain.test>' % me,
                                          'RCPT TO:<alice@ourdomain.test>', 'DATA',
                                          'Subject: %d' % i, '', 'body', '.', 'QUIT'])
                    self.assertEqual(codes, [220, 250, 250, 250, 354, 250, 221], srv.tail())
            finally:
                for c in clients:
                    c.close()
            self.assertEqual(len(srv.wait_maildir('ourdomain.test', 'alice', count=2)), 2)

    def test_a_client_that_half_closes_before_the_greeting_is_answered(self):
        """A script that pipes its whole conversation into the socket and
        half-closes it (printf ... | socat), while its user's name is looked
        up: it still reads, so it is answered and its mail taken (it was
        dropped as a client that left); one that closes the socket entirely
        gives up its turn, as before."""
        with self.slow_server(1) as srv:
            me = pwd.getpwuid(os.getuid()).pw_name
            p = self.pickup_socket(srv)
            try:
                p.sendall(('EHLO localhost\r\nMAIL FROM:<%s@ourdomain.test>\r\n'
                           'RCPT TO:<alice@ourdomain.test>\r\nDATA\r\nSubject: piped\r\n'
                           '\r\nbody\r\n.\r\nQUIT\r\n' % me).encode())
                p.shutdown(socket.SHUT_WR)
                replies = b''
                while True:
                    data = p.recv(4096)
                    if not data:
                        break
                    replies += data
            finally:
                p.close()
            codes = [int(l[:3]) for l in replies.split(b'\r\n') if l[3:4] == b' ']
            self.assertEqual(codes, [220, 250, 250, 250, 354, 250, 221], srv.tail())
            self.assertEqual(len(srv.wait_maildir('ourdomain.test', 'alice', count=1)), 1)
            gone = self.pickup_socket(srv)
            gone.sendall(b'EHLO localhost\r\n')
            gone.close()
            self.assertIsNotNone(srv.wait_log(r'lost-connection .*state=CONNECTED'), srv.tail())

    def test_clients_that_leave_at_once_while_looked_up(self):
        with self.slow_server(1) as srv:  # stopped, and ASan's report checked, on exit
            self.churn(srv)

    def test_clients_that_leave_at_once(self):
        with Server(overrides=OVERRIDES) as srv:
            self.churn(srv)


if __name__ == '__main__':
    unittest.main()
