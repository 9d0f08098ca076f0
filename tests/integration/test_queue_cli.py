"""test_queue_cli.py - relayguard queue list|show|flush|delete|hold|release.

A real server whose queue holds deferred mail: a trusted client (127.0.0.1)
sending to example.net gets 250 and the message waits in deferred/ (no
outbound delivery yet).  The CLI is run like an operator would, against the
running server (control socket) and against the files after it stopped.
"""
import grp
import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import time
import unittest

import harness

from harness import TRUSTED, Server, binary, sanitizer_report, smtp_client

QUEUED = re.compile(r'queued as ([0-9A-F]{16})')
HEADER = ('-Queue ID-           --Size-- ----Arrival Time---- '
          '-Sender/Recipient-------')
NOT_RUNNING_LIST = 'server not running: read from the queue files'
CHANGED_FILES = 'server not running: changed the queue files directly'


def queue_cli(srv, *args, as_user=None, groups=None):
    """relayguard queue ARGS -c <the server's config>; optionally as another user."""
    cmd = [binary(), 'queue'] + list(args) + ['-c', srv.config_path]
    if as_user is not None:
        pw = pwd.getpwnam(as_user)
        prefix = ['setpriv', '--reuid=%d' % pw.pw_uid, '--regid=%d' % pw.pw_gid]
        prefix += ['--groups=%s' % ','.join(str(g) for g in groups)] if groups else \
            ['--clear-groups']
        cmd = prefix + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=20, errors='replace')
    found = sanitizer_report(p.stderr)
    if found:
        raise AssertionError('sanitizer report (%s) from %s:\n%s' % (found, cmd, p.stderr))
    return p


def send(srv, sender='alice@example.com', rcpts=('bob@example.net',), subject='queue cli',
         body='the body line\r\n'):
    """Queue one message from a trusted client; returns its id once it is in deferred/."""
    with smtp_client(srv.port, source=TRUSTED) as c:
        c.ehlo('client.example.org')
        code, resp = c.mail(sender)
        assert code == 250, resp
        for r in rcpts:
            code, resp = c.rcpt(r)
            assert code == 250, resp
        msg = 'From: <%s>\r\nSubject: %s\r\n\r\n%s' % (sender or 'nobody@example.com',
                                                        subject, body)
        code, resp = c.data(msg.encode())
        assert code == 250, resp
    qid = QUEUED.search(resp.decode()).group(1)
    deadline = time.time() + 5
    while qid not in srv.queue_files('deferred') and time.time() < deadline:
        time.sleep(0.02)
    assert qid in srv.queue_files('deferred'), srv.tail()
    return qid


def listed_ids(text):
    """Queue ids (with their '!'/'*' mark) at the start of listing lines."""
    return re.findall(r'^([0-9A-F]{16}[!*]?) ', text, re.M)


def control_request(srv, data, timeout=5):
    """Send raw bytes to the control socket; the whole reply as text."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(os.path.join(srv.queue_dir, 'control'))
        s.sendall(data)
        out = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode('utf-8', 'replace')
            out += chunk


class QueueCliCase(unittest.TestCase):
    def setUp(self):
        self.srv = Server()

    def tearDown(self):
        try:
            self.srv.stop()
        finally:
            self.srv.cleanup()

    def cli_ok(self, *args):
        p = queue_cli(self.srv, *args)
        self.assertEqual(p.returncode, 0, 'queue %s: %s%s' % (args, p.stdout, p.stderr))
        return p


class Listing(QueueCliCase):
    def test_list_live_and_after_stop_show_the_same_messages(self):
        a = send(self.srv, rcpts=('bob@example.net', 'carol@example.org'))
        b = send(self.srv, sender='')
        live = self.cli_ok('list')
        lines = live.stdout.splitlines()
        self.assertEqual(lines[0], HEADER)
        self.assertEqual(listed_ids(live.stdout), [a, b])
        first = [l for l in lines if l.startswith(a)][0]
        self.assertRegex(first, r'^%s +\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d  '
                                r'alice@example.com$' % a)
        self.assertEqual(first.index('alice@'), 51)
        self.assertIn(' ' * 51 + 'bob@example.net', lines)
        self.assertIn(' ' * 51 + 'carol@example.org', lines)
        self.assertIn('MAILER-DAEMON', live.stdout)  # the null sender, as mailq shows it
        self.assertRegex(lines[-1], r'^-- \d+ Kbytes in 2 Requests\.$')
        self.assertNotIn(NOT_RUNNING_LIST, live.stderr)
        self.assertIsNotNone(self.srv.wait_log(r'control uid=%d pid=\d+ command=list result=ok'
                                               % os.getuid()), self.srv.tail())
        self.srv.stop()
        offline = self.cli_ok('list')
        self.assertIn(NOT_RUNNING_LIST, offline.stderr)
        self.assertEqual(offline.stdout, live.stdout)

    def test_json_live_and_offline(self):
        a = send(self.srv, rcpts=('bob@example.net', 'carol@example.org'))
        live = json.loads(self.cli_ok('list', '--json').stdout)
        self.assertEqual(len(live), 1)
        m = live[0]
        self.assertEqual(m['id'], a)
        self.assertEqual(m['sender'], 'alice@example.com')
        self.assertIs(m['held'], False)
        self.assertEqual(m['queue'], 'deferred')
        self.assertLess(abs(m['arrival'] - time.time()), 60)
        self.assertEqual(m['arrival_iso'],
                         time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(m['arrival'])))
        self.assertGreater(m['size'], 0)
        # the harness defers mail for other domains (default_transport = error:4.3.2 ...)
        off = harness.OUTBOUND_OFF.split(' ', 1)[1]
        self.assertEqual(m['recipients'], [
            {'address': 'bob@example.net', 'done': False, 'last_reply': off},
            {'address': 'carol@example.org', 'done': False, 'last_reply': off}])
        self.assertGreater(m['next_try'], time.time() - 5)
        self.srv.stop()
        offline = queue_cli(self.srv, 'list', '--json')
        self.assertEqual(offline.returncode, 0, offline.stderr)
        self.assertEqual(json.loads(offline.stdout), live)  # the notice went to stderr

    def test_empty_queue(self):
        self.assertEqual(self.cli_ok('list').stdout, 'Mail queue is empty\n')
        self.assertEqual(json.loads(self.cli_ok('list', '--json').stdout), [])

    def test_show_headers_and_body(self):
        a = send(self.srv, subject='show me', body='unique body text 4711\r\n')
        p = self.cli_ok('show', a)
        self.assertIn('id: %s\n' % a, p.stdout)
        self.assertIn('sender: <alice@example.com>\n', p.stdout)
        self.assertIn('recipient: <bob@example.net>', p.stdout)
        self.assertIn('\nReceived: from ', p.stdout)
        self.assertIn('\nSubject: show me\n', p.stdout)
        self.assertNotIn('unique body text', p.stdout)
        self.assertNotIn('\r', p.stdout)
        p = self.cli_ok('show', a, '--body')
        self.assertIn('Subject: show me\n\nunique body text 4711\n', p.stdout)
        p = queue_cli(self.srv, 'show', '0' * 16)
        self.assertEqual(p.returncode, 1)
        self.assertIn('no such message in the queue: %s' % ('0' * 16), p.stderr)


class Changes(QueueCliCase):
    def test_hold_and_release_move_the_file(self):
        a = send(self.srv)
        b = send(self.srv)
        p = self.cli_ok('hold', a)
        self.assertIn('%s: held' % a, p.stdout)
        self.assertEqual(self.srv.queue_files('hold'), [a])
        self.assertEqual(self.srv.queue_files('deferred'), [b])
        self.assertEqual(listed_ids(self.cli_ok('list').stdout), [b, a + '!'])
        held = {m['id']: m['held'] for m in json.loads(self.cli_ok('list', '--json').stdout)}
        self.assertEqual(held, {a: True, b: False})
        p = queue_cli(self.srv, 'hold', a)
        self.assertEqual(p.returncode, 1)
        self.assertIn('already held', p.stderr)
        self.cli_ok('release', a)
        self.assertEqual(self.srv.queue_files('hold'), [])
        self.assertEqual(self.srv.queue_files('deferred'), sorted([a, b]))
        p = queue_cli(self.srv, 'release', a)
        self.assertEqual(p.returncode, 1)
        self.assertIn('is not held', p.stderr)
        self.assertIsNotNone(self.srv.wait_log(r'queue-held id=%s' % a))

    def test_release_tries_at_once(self):
        # a message held after a failed attempt waited for its old backoff
        # (minutes) after `queue release`: released means tried now
        a = send(self.srv)
        self.assertIsNotNone(self.srv.wait_log(r'deferred queue=%s ' % a), self.srv.tail(10))
        self.cli_ok('hold', a)
        mark = self.srv.mark()
        self.assertIn('%s: released' % a, self.cli_ok('release', a).stdout)
        self.assertIsNotNone(self.srv.wait_log(r'deferred queue=%s ' % a, since=mark),
                             self.srv.tail(10))

    def test_delete_one_and_all(self):
        a, b, c = send(self.srv), send(self.srv), send(self.srv)
        self.cli_ok('hold', c)
        p = self.cli_ok('delete', a)
        self.assertIn('%s: deleted' % a, p.stdout)
        self.assertEqual(self.srv.queue_files('deferred'), [b])
        p = queue_cli(self.srv, 'delete', a)
        self.assertEqual(p.returncode, 1)
        self.assertIn('no such message', p.stderr)
        p = self.cli_ok('delete', '--all')
        self.assertIn('2 messages deleted', p.stdout)
        self.assertEqual(self.srv.queue_files('deferred') + self.srv.queue_files('hold'), [])
        self.assertEqual(self.cli_ok('list').stdout, 'Mail queue is empty\n')

    def test_flush_live(self):
        a = send(self.srv)
        mark = self.srv.mark()
        self.assertIn('every deferred message is scheduled for delivery now',
                      self.cli_ok('flush').stdout)
        self.assertIsNotNone(self.srv.wait_log(r'deferred queue=%s ' % a, since=mark),
                             self.srv.tail(10))  # tried again at once
        self.assertIn('%s: scheduled for delivery now' % a, self.cli_ok('flush', a).stdout)
        self.assertIsNotNone(self.srv.wait_log(r'deferred queue=%s ' % a, since=mark, count=2),
                             self.srv.tail(10))
        deadline = time.time() + 5
        while self.srv.queue_files('deferred') != [a] and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.srv.queue_files('deferred'), [a])  # nothing lost

    def test_without_server(self):
        a, b = send(self.srv), send(self.srv)
        self.srv.stop()
        control = os.path.join(self.srv.queue_dir, 'control')
        self.assertFalse(os.path.exists(control))  # removed at a clean stop
        p = queue_cli(self.srv, 'flush')
        self.assertEqual(p.returncode, 1)
        self.assertIn('relayguard is not running (no control socket at %s): flush needs the '
                      'running server' % control, p.stderr)
        p = self.cli_ok('hold', a)
        self.assertIn(CHANGED_FILES, p.stderr)
        self.assertEqual(self.srv.queue_files('hold'), [a])
        self.cli_ok('release', a)
        self.assertEqual(self.srv.queue_files('deferred'), [a, b])
        self.cli_ok('delete', b)
        self.assertEqual(self.srv.queue_files('deferred'), [a])
        self.srv.start()  # the server still knows the message
        self.assertEqual(listed_ids(self.cli_ok('list').stdout), [a])


class Ids(QueueCliCase):
    def test_new_ids_start_above_every_id_in_the_queue(self):
        """A clock set back since an earlier run must not repeat an id still
        queued: deferred/ID moved back to active/ would replace the new one."""
        self.srv.stop()
        ahead = '%016X' % (int((time.time() + 86400) * 1e6))  # written "tomorrow"
        path = os.path.join(self.srv.queue_dir, 'deferred', ahead)
        with open(path, 'w') as f:
            f.write('not a queue file\n')
        os.chmod(path, 0o600)
        self.srv.start()
        qid = send(self.srv)
        self.assertGreater(int(qid, 16), int(ahead, 16), (qid, ahead))

    def test_a_bogus_huge_name_does_not_wrap_the_ids(self):
        """A name no clock of ours wrote (FFFFFFFFFFFFFFFF, or more digits than
        fit) must not push the next id past the top: it wrapped to
        0000000000000000, given out again after every restart while the first
        one was still queued, replacing it."""
        self.srv.stop()
        for name in ('FFFFFFFFFFFFFFFF', 'FFFFFFFFFFFFFFFFFFFF'):
            path = os.path.join(self.srv.queue_dir, 'corrupt', name)
            with open(path, 'w') as f:
                f.write('not a queue file\n')
            os.chmod(path, 0o600)
        self.srv.start()
        before = int(time.time() * 1e6) - 10 ** 6
        qid = send(self.srv)
        self.assertGreater(int(qid, 16), before, qid)


class BadRequests(QueueCliCase):
    def test_bad_ids_are_usage_errors(self):
        send(self.srv)
        for args in (['delete', 'abc'], ['hold', '0000018c2a3b4c5d'], ['release', '../../x'],
                     ['show', 'ZZZZZZZZZZZZZZZZ'], ['flush', '1' * 21]):
            with self.subTest(args=args):
                p = queue_cli(self.srv, *args)
                self.assertEqual(p.returncode, 64, p.stderr)
                self.assertIn('is not a queue id', p.stderr)
        for args in (['hold'], ['delete'], ['list', '0' * 16], ['frobnicate']):
            with self.subTest(args=args):
                self.assertEqual(queue_cli(self.srv, *args).returncode, 64)
        self.assertNotIn('command=', self.srv.log())  # refused before asking the server

    def test_socket_validates_requests(self):
        a = send(self.srv)
        cases = [(b'delete ../deferred/%s\n' % a.encode(), 'error not a queue id'),
                 (b'hold\n', 'error hold needs a queue id'),
                 (b'list everything\n', 'error list takes no argument'),
                 (b'rm -rf /\n', 'error unknown command'),
                 (b'hold \x1b[2J\n', 'error bad request'),
                 (b'x' * 5000, 'error request too long')]
        for data, want in cases:
            with self.subTest(data=data[:40]):
                reply = control_request(self.srv, data)
                self.assertTrue(reply.startswith(want), reply)
                self.assertTrue(reply.endswith('\n'), reply)
        self.assertEqual(self.srv.queue_files('deferred'), [a])
        self.assertIn('ok', control_request(self.srv, b'list\r\n').splitlines()[-1])

    def test_silent_clients_do_not_block_others_and_are_bounded(self):
        send(self.srv)
        idle = []
        try:
            for n in range(32):  # CONTROL_MAX_CLIENTS
                idle.append(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
                idle[-1].connect(os.path.join(self.srv.queue_dir, 'control'))
                if n == 4:  # a few silent ones: we are still served
                    self.assertIn('-- ', self.cli_ok('list').stdout)
            p = queue_cli(self.srv, 'list')
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn('too many control connections', p.stderr)
        finally:
            for s in idle:
                s.close()
        deadline = time.time() + 5
        while queue_cli(self.srv, 'list').returncode != 0 and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn('-- ', self.cli_ok('list').stdout)

    def test_stale_socket_after_kill(self):
        a = send(self.srv)
        self.srv.kill9()
        control = os.path.join(self.srv.queue_dir, 'control')
        self.assertTrue(stat.S_ISSOCK(os.stat(control).st_mode))  # left behind
        p = self.cli_ok('list')
        self.assertIn(NOT_RUNNING_LIST, p.stderr)
        self.assertEqual(listed_ids(p.stdout), [a])
        p = queue_cli(self.srv, 'flush', a)
        self.assertEqual(p.returncode, 1)
        self.assertIn('flush needs the running server', p.stderr)
        mark = self.srv.mark()
        self.srv.start()
        self.assertIn('control-stale-socket-removed', self.srv.log_since(mark))
        p = self.cli_ok('list')
        self.assertNotIn(NOT_RUNNING_LIST, p.stderr)
        self.assertEqual(listed_ids(p.stdout), [a])


class Help(unittest.TestCase):
    def test_help_names_the_commands(self):
        p = subprocess.run([binary(), '--help'], capture_output=True, text=True)
        self.assertIn('queue', p.stdout)
        p = subprocess.run([binary(), 'queue', '--help'], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for word in ('list', 'show', 'flush', 'delete', 'hold', 'release', '--json', '--body'):
            self.assertIn(word, p.stdout)


class Access(QueueCliCase):
    """The socket is mail_owner's, mode 0660: its group may use it, others not."""

    def setUp(self):
        harness.require(os.geteuid() == 0, 'root (make check as root)',
                        'the server runs as mail_owner and the CLI as nobody')
        harness.require(shutil.which('setpriv') is not None, 'util-linux', 'setpriv')
        super().setUp()

    def test_owner_group_and_mode(self):
        owner = pwd.getpwnam('relayguard')
        st = os.stat(os.path.join(self.srv.queue_dir, 'control'))
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual((st.st_uid, st.st_gid), (owner.pw_uid, owner.pw_gid))
        qst = os.stat(self.srv.queue_dir)
        # the group, and everyone (to reach the 0666 pickup socket of `relayguard
        # sendmail`), may only pass through; the control socket's 0660 keeps others out
        self.assertEqual(stat.S_IMODE(qst.st_mode), 0o711)

    def test_non_member_is_denied_member_is_not(self):
        a = send(self.srv)
        group = grp.getgrgid(pwd.getpwnam('relayguard').pw_gid)
        p = queue_cli(self.srv, 'list', as_user='nobody')
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn('permission denied: %s/control (you need to be root or in group %s)'
                      % (self.srv.queue_dir, group.gr_name), p.stderr)
        p = queue_cli(self.srv, 'delete', a, as_user='nobody')
        self.assertEqual(p.returncode, 1)
        self.assertIn('permission denied', p.stderr)
        self.assertEqual(self.srv.queue_files('deferred'), [a])
        p = queue_cli(self.srv, 'hold', a, as_user='nobody', groups=[group.gr_gid])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.srv.queue_files('hold'), [a])
        uid = pwd.getpwnam('nobody').pw_uid
        self.assertIsNotNone(self.srv.wait_log(r'control uid=%d pid=\d+ command="?hold %s'
                                               % (uid, a)), self.srv.tail())

    def test_socket_under_a_closed_parent(self):
        """Like the queue under /root: the server binds through its open directory."""
        self.srv.stop()
        self.srv.cleanup()
        self.srv = Server(start=False)
        closed = os.path.join(self.srv.dir, 'closed')
        os.mkdir(closed, 0o700)
        old = self.srv.queue_dir
        self.srv.queue_dir = os.path.join(closed, 'queue')
        with open(self.srv.config_path) as f:
            text = f.read().replace(old, self.srv.queue_dir)
        with open(self.srv.config_path, 'w') as f:
            f.write(text)
        self.srv.start()
        a = send(self.srv)
        p = self.cli_ok('list')
        self.assertNotIn(NOT_RUNNING_LIST, p.stderr)
        self.assertEqual(listed_ids(p.stdout), [a])


if __name__ == '__main__':
    unittest.main()
