"""test_delivery.py - queue, Maildir delivery, crash recovery, shutdown."""
import os
import re
import signal
import sys
import tempfile
import time
import unittest

import harness

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'bench'))
import killtest  # noqa: E402  (bench/killtest.py: the long run, 100 kills)
from harness import ServerPerClass, HOSTNAME, UNTRUSTED, Conn, Server, smtp_client, smtp_session

# <arrival>.rg<queue id>_<recipient index>.<host>,S=<size>,W=<size with CRLF>
MAILDIR_NAME = re.compile(r'^(\d+)\.rg([0-9A-F]{16})_(\d+)\..+,S=(\d+),W=(\d+)$')
QUEUED = re.compile(r'^2\.0\.0 Ok: queued as ([0-9A-F]{16})$')

MESSAGE = (b'From: Sender <a@example.org>\r\n'
           b'To: postmaster@localhost\r\n'
           b'Subject: round trip\r\n'
           b'MIME-Version: 1.0\r\n'
           b'Content-Type: text/plain; charset=utf-8\r\n'
           b'Content-Transfer-Encoding: 8bit\r\n'
           b'\r\n'
           b'Gr\xc3\xbc\xc3\x9fe, 8-bit text: \xe2\x82\xac \xff\xfe\x80\r\n'
           b'.a line that starts with a dot\r\n'
           b'..two dots\r\n'
           b'.\r\n'
           b'\ttab and trailing blanks   \r\n'
           b'\r\n'
           b'last line\r\n')


def strip_delivery_lines(data, sender='a@example.org', rcpt='postmaster@localhost'):
    """The copy without the two lines local delivery puts first (checked exactly)."""
    lines = b'Return-Path: <%s>\nDelivered-To: %s\n' % (sender.encode(), rcpt.encode())
    assert data.startswith(lines), data[:120]
    return data[len(lines):]


def split_received(data):
    """(the first Received: header with its continuation lines, the rest), after
    the Return-Path: and Delivered-To: lines."""
    data = strip_delivery_lines(data)
    assert data.startswith(b'Received: '), data[:80]
    lines = data.split(b'\n')
    n = 1
    while n < len(lines) and lines[n].startswith((b'\t', b' ')):
        n += 1
    header = b'\n'.join(lines[:n]) + b'\n'
    return header, data[len(header):]


class MaildirDelivery(ServerPerClass):
    def send_with_smtplib(self, msg, rcpt='postmaster@localhost'):
        with smtp_client(self.server.port) as c:
            code, _ = c.ehlo('client.example.org')
            self.assertEqual(code, 250)
            self.assertTrue(c.has_extn('8bitmime'))
            code, resp = c.mail('a@example.org', ['BODY=8BITMIME', 'SIZE=%d' % len(msg)])
            self.assertEqual(code, 250, resp)
            code, resp = c.rcpt(rcpt)
            self.assertEqual(code, 250, resp)
            code, resp = c.data(msg)
            self.assertEqual(code, 250, resp)
            m = QUEUED.match(resp.decode())
            self.assertIsNotNone(m, resp)
            return m.group(1)

    def find_delivered(self, qid, domain='localhost', user='postmaster'):
        s = self.server
        log = s.wait_log(r'delivered queue=%s' % qid)
        self.assertIsNotNone(log, 'message %s not delivered:\n%s' % (qid, s.tail()))
        for name in s.maildir(domain, user):
            data = s.read_mail(domain, user, name)
            if (b' id ' + qid.encode()) in data.split(b'\n\n', 1)[0]:
                return name, data
        self.fail('no file in %s/%s/new/ has queue id %s' % (domain, user, qid))

    def test_byte_for_byte_round_trip(self):
        qid = self.send_with_smtplib(MESSAGE)
        name, data = self.find_delivered(qid)
        header, rest = split_received(data)
        self.assertEqual(rest, MESSAGE.replace(b'\r\n', b'\n'))
        self.assertNotIn(b'\r', data)

    def test_received_header(self):
        qid = self.send_with_smtplib(b'Subject: hdr\r\n\r\nbody\r\n')
        _name, data = self.find_delivered(qid)
        header, _rest = split_received(data)
        text = header.decode()
        self.assertIn('from client.example.org', text)
        self.assertIn('[127.0.0.9]', text)
        self.assertIn('(relayguard)', text)
        self.assertIn('by ' + HOSTNAME, text)
        self.assertIn('with ESMTP id ' + qid, text)
        self.assertIn('for <postmaster@localhost>', text)
        self.assertRegex(text, r'; \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\n$')

    def test_maildir_file_name_and_sizes(self):
        qid = self.send_with_smtplib(MESSAGE)
        name, data = self.find_delivered(qid)
        m = MAILDIR_NAME.match(name)
        self.assertIsNotNone(m, name)
        self.assertEqual(m.group(2), qid, 'the unique part carries the queue id')
        self.assertEqual(m.group(3), '0', 'and the recipient index')
        self.assertLessEqual(abs(int(m.group(1)) - time.time()), 60)
        path = os.path.join(self.server.maildir_path('localhost', 'postmaster'), 'new', name)
        self.assertEqual(int(m.group(4)), os.path.getsize(path))
        self.assertEqual(int(m.group(5)), len(data) + data.count(b'\n'),
                         'W= must be the size with CRLF line ends')
        for sub in ('tmp', 'cur'):
            self.assertTrue(os.path.isdir(os.path.join(
                self.server.maildir_path('localhost', 'postmaster'), sub)))
        self.assertEqual(self.server.maildir('localhost', 'postmaster', 'tmp'), [])

    def test_queue_file_removed_after_delivery(self):
        qid = self.send_with_smtplib(b'Subject: q\r\n\r\nq\r\n')
        self.find_delivered(qid)
        self.assertEqual(self.server.wait_queue_empty('active'), [])
        self.assertNotIn(qid, self.server.queue_files('deferred'))
        self.assertEqual(self.server.queue_files('tmp'), [])

    def test_sendmail_to_bare_postmaster(self):
        with smtp_client(self.server.port) as c:
            refused = c.sendmail('a@example.org', ['postmaster'],
                                 b'Subject: bare postmaster\r\n\r\nhi\r\n')
        self.assertEqual(refused, {})
        log = self.server.wait_log(r'delivered .*to=<postmaster>')
        self.assertIsNotNone(log, self.server.tail())

    def test_two_recipients_one_copy_each(self):
        s = self.server
        with smtp_client(s.port) as c:
            c.ehlo('client.example.org')
            c.mail('a@example.org')
            self.assertEqual(c.rcpt('postmaster@localhost')[0], 250)
            self.assertEqual(c.rcpt('POSTMASTER@localhost')[0], 250)  # the same mailbox
            code, resp = c.data(b'Subject: dup\r\n\r\nonce\r\n')
            self.assertEqual(code, 250)
            qid = QUEUED.match(resp.decode()).group(1)
        self.find_delivered(qid)
        time.sleep(0.2)
        copies = [n for n in s.maildir('localhost', 'postmaster')
                  if (' id ' + qid).encode() in s.read_mail('localhost', 'postmaster', n)]
        self.assertEqual(len(copies), 1)


class RecipientMaps(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tables = tempfile.mkdtemp(prefix='relayguard-maps-')
        os.chmod(cls.tables, 0o755)
        a = os.path.join(cls.tables, 'users-a')
        b = os.path.join(cls.tables, 'users-b')
        with open(a, 'w') as f:
            f.write('# local users\nalice@localhost OK\n')
        with open(b, 'w') as f:
            f.write('bob\tOK\n\n')
        cls.server = Server(overrides={'local_recipient_maps': 'texthash:%s, %s' % (a, b)})

    @classmethod
    def tearDownClass(cls):
        harness.stop_server(cls.server, cls.tables)

    def rcpt(self, addr):
        r = smtp_session(self.server.port, ['HELO c.example.org', 'MAIL FROM:<a@example.org>',
                                            'RCPT TO:<%s>' % addr, 'RSET', 'QUIT'])
        return r[3]

    def test_listed_users_accepted(self):
        for addr in ('alice@localhost', 'Alice@LOCALHOST', 'bob@localhost', 'postmaster'):
            with self.subTest(addr=addr):
                self.assertEqual(self.rcpt(addr), (250, '2.1.5 Ok'))

    def test_unlisted_users_rejected(self):
        for addr in ('carol@localhost', 'root@localhost', 'alicex@localhost'):
            with self.subTest(addr=addr):
                self.assertEqual(self.rcpt(addr),
                                 (550, '5.1.1 <%s>: Recipient address rejected: User '
                                       'unknown in local recipient table' % addr))

    def test_listed_user_gets_mail(self):
        s = self.server
        r = smtp_session(s.port, ['HELO c.example.org', 'MAIL FROM:<a@example.org>',
                                  'RCPT TO:<bob@localhost>', 'DATA', 'Subject: bob', '',
                                  'hi bob', '.', 'QUIT'])
        self.assertEqual(r[5][0], 250, r)
        self.assertEqual(len(s.wait_maildir('localhost', 'bob')), 1)


class CrashRecovery(unittest.TestCase):
    def setUp(self):
        self.server = None

    def tearDown(self):
        if self.server is not None:
            try:
                self.server.stop()
            finally:
                self.server.cleanup()

    def test_kill9_after_250_then_restart_delivers(self):
        s = self.server = Server()
        with Conn(s.port) as c:
            c.cmd('EHLO c.example.org')
            c.cmd('MAIL FROM:<a@example.org>')
            c.cmd('RCPT TO:<postmaster@localhost>')
            c.cmd('DATA')
            c.send(b'Subject: survive\r\n\r\n' + b'x' * 200000 + b'\r\n.\r\n')
            r = c.reply()
            s.kill9()
        self.assertEqual(r[0], 250, r)
        qid = QUEUED.match(r[1]).group(1)
        s.start()
        deadline = time.time() + 10
        found = []
        while time.time() < deadline and not found:
            found = [n for n in s.maildir('localhost', 'postmaster')
                     if (' id ' + qid).encode() in s.read_mail('localhost', 'postmaster', n)]
            time.sleep(0.05)
        self.assertTrue(found, 'acknowledged message %s lost after kill -9:\n%s'
                        % (qid, s.tail()))
        self.assertEqual(s.wait_queue_empty('active'), [])

    def test_acknowledged_but_undelivered_message_survives_kill9(self):
        """Deterministic: delivery fails (the mailbox path is a file), kill -9, repair,
        restart: the message, deferred, is delivered at its next try."""
        s = self.server = Server(start=False, overrides={'minimal_backoff_time': '1s',
                                                         'queue_run_delay': '1s'})
        os.makedirs(os.path.join(s.mail_dir, 'localhost'))
        blocker = os.path.join(s.mail_dir, 'localhost', 'postmaster')
        with open(blocker, 'w') as f:
            f.write('not a directory')
        s.start()
        r = smtp_session(s.port, ['HELO c.example.org', 'MAIL FROM:<a@example.org>',
                                  'RCPT TO:<postmaster@localhost>', 'DATA', 'Subject: kept',
                                  '', 'kept', '.', 'QUIT'])
        self.assertEqual(r[5][0], 250, r)
        qid = QUEUED.match(r[5][1]).group(1)
        self.assertIsNotNone(s.wait_log('deferred queue=%s .*local delivery failed' % qid),
                             s.tail())
        deadline = time.time() + 5
        while s.queue_files('deferred') != [qid] and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(s.queue_files('deferred'), [qid])
        s.kill9()
        os.unlink(blocker)
        s.start()
        files = s.wait_maildir('localhost', 'postmaster', timeout=10)
        self.assertEqual(len(files), 1, s.tail())
        self.assertTrue(s.read_mail('localhost', 'postmaster', files[0]).endswith(b'\n\nkept\n'))
        self.assertEqual(s.wait_queue_empty('active'), [])
        self.assertEqual(s.wait_queue_empty('deferred'), [])

    def test_hand_made_queue_file_recovered_at_start(self):
        s = self.server = Server(start=False)
        body = b'Received: from x (localhost [127.0.0.9])\r\n\tby y; now\r\nSubject: old\r\n\r\nold\r\n'
        qid = '0000018C2A3B4C5D'
        head = ('RGQ1\nid %s\narrival 1700000000\nclient 127.0.0.9 localhost\n'
                'helo c.example.org\nsender a@example.org\n'
                'rcpt P L postmaster localhost postmaster@localhost\nsize %d\n\n'
                % (qid, len(body))).encode()
        os.makedirs(os.path.join(s.queue_dir, 'active'))
        with open(os.path.join(s.queue_dir, 'active', qid), 'wb') as f:
            f.write(head + body)
        s.start()
        files = s.wait_maildir('localhost', 'postmaster')
        self.assertEqual(len(files), 1, s.tail())
        self.assertEqual(files[0].split(',')[0], '1700000000.rg%s_0.%s' % (qid, os.uname().nodename))
        self.assertEqual(s.read_mail('localhost', 'postmaster', files[0]),
                         b'Return-Path: <a@example.org>\nDelivered-To: postmaster@localhost\n'
                         + body.replace(b'\r\n', b'\n'))
        self.assertEqual(s.wait_queue_empty('active'), [])

    def hand_made_queue_file(self, s, qid):
        body = b'Received: from x (localhost [127.0.0.9])\r\n\tby y; now\r\nSubject: old\r\n\r\nold\r\n'
        head = ('RGQ1\nid %s\narrival 1700000000\nclient 127.0.0.9 localhost\n'
                'helo c.example.org\nsender \n'
                'rcpt P L postmaster localhost postmaster@localhost\n'
                'rcpt P L abuse localhost abuse@localhost\nsize %d\n\n'
                % (qid, len(body))).encode()
        os.makedirs(os.path.join(s.queue_dir, 'active'))
        with open(os.path.join(s.queue_dir, 'active', qid), 'wb') as f:
            f.write(head + body)

    def test_copy_delivered_before_the_crash_is_not_delivered_again(self):
        """The crash fell between "copy in new/" and "done mark written", and a mail
        client has since moved the copy to cur/: the restart finds it by its name."""
        s = self.server = Server(start=False)
        qid = '0000018C2A3B4C60'
        self.hand_made_queue_file(s, qid)
        cur = os.path.join(s.maildir_path('localhost', 'postmaster'), 'cur')
        for sub in ('tmp', 'new', 'cur'):
            os.makedirs(os.path.join(s.maildir_path('localhost', 'postmaster'), sub))
        earlier = '1700000000.rg%s_0.%s,S=1,W=1:2,S' % (qid, os.uname().nodename)
        with open(os.path.join(cur, earlier), 'wb') as f:
            f.write(b'x')
        s.start()
        self.assertEqual(len(s.wait_maildir('localhost', 'abuse')), 1, s.tail())
        self.assertEqual(s.wait_queue_empty('active'), [])
        self.assertIsNotNone(s.wait_log(r'already-delivered queue=%s to=<postmaster@localhost> '
                                        r'mailbox=\S+/localhost/postmaster/cur copy=rg%s_0 '
                                        % (qid, qid)), s.tail())
        self.assertEqual(s.maildir('localhost', 'postmaster'), [], 'delivered twice')
        self.assertEqual(os.listdir(cur), [earlier])
        # the other recipient's copy: the null sender as <>, its own index
        name = s.maildir('localhost', 'abuse')[0]
        self.assertTrue(name.startswith('1700000000.rg%s_1.' % qid), name)
        self.assertTrue(s.read_mail('localhost', 'abuse', name).startswith(
            b'Return-Path: <>\nDelivered-To: abuse@localhost\nReceived: from x'))

    def test_own_orphans_in_maildir_tmp_removed_at_start(self):
        s = self.server = Server(start=False)
        tmp = os.path.join(s.maildir_path('localhost', 'postmaster'), 'tmp')
        os.makedirs(tmp)
        ours, theirs = '1700000000.rg0000018C2A3B4C61_0.h', '1700000000.M1P2Q3.h'
        for name in (ours, theirs):
            with open(os.path.join(tmp, name), 'wb') as f:
                f.write(b'half a messa')
            os.utime(os.path.join(tmp, name), (time.time() - 60, time.time() - 60))
        s.start()
        self.assertIsNotNone(s.wait_log(r'maildir-recovery orphans_removed=1 mailboxes=1'),
                             s.tail())
        self.assertEqual(os.listdir(tmp), [theirs], "only our own files go")

    def test_stale_tmp_file_removed_at_start(self):
        s = self.server = Server(start=False)
        os.makedirs(os.path.join(s.queue_dir, 'tmp'))
        with open(os.path.join(s.queue_dir, 'tmp', '0000018C2A3B4C5E'), 'wb') as f:
            f.write(b'RGQ1\nid 0000018C2A3B4C5E\nhalf writ')
        s.start()
        self.assertEqual(s.queue_files('tmp'), [])
        self.assertIn('unacknowledged_removed=1', s.log())
        self.assertEqual(s.all_mail(), [])

    def test_garbage_in_active_moved_to_corrupt(self):
        s = self.server = Server(start=False)
        os.makedirs(os.path.join(s.queue_dir, 'active'))
        with open(os.path.join(s.queue_dir, 'active', 'GARBAGE'), 'wb') as f:
            f.write(b'\x00\x01 this is not a queue file\n')
        truncated = (b'RGQ1\nid 0000018C2A3B4C5F\narrival 1\nclient 127.0.0.9 localhost\n'
                     b'helo x\nsender a@example.org\n'
                     b'rcpt P L postmaster localhost postmaster@localhost\nsize 500\n\nshort\r\n')
        with open(os.path.join(s.queue_dir, 'active', '0000018C2A3B4C5F'), 'wb') as f:
            f.write(truncated)
        s.start()
        # the scan at start runs on a worker, after "listening"
        self.assertEqual(s.wait_queue_empty('active', timeout=10), [])
        self.assertEqual(s.queue_files('corrupt'), ['0000018C2A3B4C5F', 'GARBAGE'])
        self.assertIn('queue-corrupt', s.log())
        self.assertEqual(s.all_mail(), [])
        r = smtp_session(s.port, ['EHLO c.example.org', 'QUIT'])
        self.assertEqual(r[1][0], 250)


class MixedRecipients(ServerPerClass):
    def test_local_delivered_remote_deferred(self):
        """Trusted client: the local copy is delivered, the file waits in deferred/ with
        the local recipient marked done."""
        s = self.server
        r = smtp_session(s.port, ['HELO app.example.org', 'MAIL FROM:<app@example.org>',
                                  'RCPT TO:<victim@example.net>',
                                  'RCPT TO:<postmaster@localhost>', 'DATA', 'Subject: mixed',
                                  '', 'both', '.', 'QUIT'], source='127.0.0.1')
        self.assertEqual(r[6][0], 250, r)
        qid = QUEUED.match(r[6][1]).group(1)
        self.assertIsNotNone(s.wait_log('delivered queue=%s' % qid), s.tail())
        deadline = time.time() + 5
        while qid not in s.queue_files('deferred') and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(s.queue_files('deferred'), [qid])
        self.assertEqual(s.wait_queue_empty('active'), [])
        with open(os.path.join(s.queue_dir, 'deferred', qid), 'rb') as f:
            head = f.read().split(b'\n\n', 1)[0].decode()
        rcpts = [l for l in head.splitlines() if l.startswith('rcpt ')]
        self.assertIn('rcpt D L postmaster localhost postmaster@localhost', rcpts)
        self.assertIn('rcpt P X victim example.net victim@example.net', rcpts)
        # a restart does not deliver the local copy again
        s.restart()
        time.sleep(0.3)
        self.assertEqual(len(s.maildir('localhost', 'postmaster')), 1)
        self.assertEqual(s.queue_files('deferred'), [qid])


class SameMailboxTwice(ServerPerClass):
    def test_literal_and_name_of_the_same_mailbox_give_one_copy(self):
        """postmaster@[127.0.0.1] and postmaster@localhost are the same mailbox: one copy."""
        s = self.server
        r = smtp_session(s.port, ['HELO c.example.org', 'MAIL FROM:<a@example.org>',
                                  'RCPT TO:<postmaster@localhost>',
                                  'RCPT TO:<postmaster@[127.0.0.1]>', 'RCPT TO:<postmaster>',
                                  'DATA', 'Subject: twice', '', 'x', '.', 'QUIT'])
        self.assertEqual(r[7][0], 250, r)
        qid = QUEUED.match(r[7][1]).group(1)
        self.assertIsNotNone(s.wait_log('delivered queue=%s' % qid))
        self.assertEqual(s.wait_queue_empty('active'), [])
        time.sleep(0.2)
        self.assertEqual(len(s.maildir('localhost', 'postmaster')), 1,
                         'duplicate copies: %s' % s.maildir('localhost', 'postmaster'))


class UnsafeLocalParts(ServerPerClass):
    """With local_recipient_maps empty every local user exists; local parts that can
    never be a mailbox must be refused at RCPT, not accepted and kept forever."""
    overrides = {'local_recipient_maps': ''}

    def test_any_user_accepted_and_delivered(self):
        s = self.server
        r = smtp_session(s.port, ['HELO c.example.org', 'MAIL FROM:<a@example.org>',
                                  'RCPT TO:<Some.User@localhost>', 'DATA', 'x', '.', 'QUIT'])
        self.assertEqual(r[5][0], 250, r)
        self.assertEqual(len(s.wait_maildir('localhost', 'some.user')), 1)

    def test_unusable_mailbox_names_refused_at_rcpt(self):
        s = self.server
        for rcpt in ('"../../escape"@localhost', '".hidden"@localhost', '"a/b"@localhost',
                     '".."@localhost'):
            with self.subTest(rcpt=rcpt):
                r = smtp_session(s.port, ['HELO c.example.org', 'MAIL FROM:<a@example.org>',
                                          'RCPT TO:<%s>' % rcpt, 'DATA', 'x', '.', 'QUIT'])
                self.assertEqual(r[3][0] // 100, 5, 'RCPT TO:<%s> got %r' % (rcpt, r[3]))
        time.sleep(0.3)
        self.assertEqual(s.queue_files('active'), [], 'undeliverable mail kept in active/')
        self.assertFalse(os.path.exists(os.path.join(s.dir, 'escape')))
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(s.dir), 'escape')))


class Shutdown(unittest.TestCase):
    def setUp(self):
        self.server = Server()

    def tearDown(self):
        try:
            self.server.stop()
        finally:
            self.server.cleanup()

    def test_sigterm_idle_session_gets_421(self):
        s = self.server
        with Conn(s.port) as c:
            self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
            s.proc.send_signal(signal.SIGTERM)
            r = c.reply()
            self.assertIsNotNone(r, 'closed without a reply')
            self.assertEqual(r[0], 421, r)
            self.assertTrue(r[1].startswith('4.3.2 '), r)
            self.assertTrue(c.closed())
        rc = s.proc.wait(10)
        self.assertEqual(rc, 0, s.tail())
        self.assertIn('stopped', s.log())

    def test_sigterm_during_data_finishes_the_message(self):
        s = self.server
        with Conn(s.port) as c:
            c.cmd('EHLO c.example.org')
            c.cmd('MAIL FROM:<a@example.org>')
            c.cmd('RCPT TO:<postmaster@localhost>')
            self.assertEqual(c.cmd('DATA')[0], 354)
            c.send(b'Subject: in flight\r\n\r\nfirst half\r\n')
            time.sleep(0.1)
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            # no new connections once stopping
            r = c.cmd(b'second half\r\n.\r\n')
            self.assertEqual(r[0], 250, r)
            r2 = c.reply()
            self.assertIsNotNone(r2)
            self.assertEqual(r2[0], 421, r2)
            self.assertTrue(r2[1].startswith('4.3.2 '), r2)
        rc = s.proc.wait(10)
        self.assertEqual(rc, 0, s.tail())
        self.assertEqual(len(s.maildir('localhost', 'postmaster')), 1, s.tail())


if __name__ == '__main__':
    unittest.main()


@harness.requires(os.geteuid() == 0, 'root (.ci/run runs as root)', 'privileges are dropped only when started as root')
class ClosedParentDirectory(unittest.TestCase):
    """Started as root under a directory that mail_owner cannot enter (like
    /root), the server still works: it holds its directories open."""

    def test_delivery_under_a_0700_parent(self):
        with Server(start=False) as srv:
            closed = os.path.join(srv.dir, 'closed')
            os.mkdir(closed, 0o700)
            srv.queue_dir = os.path.join(closed, 'queue')
            srv.mail_dir = os.path.join(closed, 'mail')
            with open(srv.config_path) as f:
                text = f.read()
            text = text.replace(os.path.join(srv.dir, 'queue'), srv.queue_dir)
            text = text.replace(os.path.join(srv.dir, 'mail'), srv.mail_dir)
            with open(srv.config_path, 'w') as f:
                f.write(text)
            srv.start()
            with smtp_client(srv.port) as c:
                c.sendmail('a@example.org', ['postmaster@localhost'],
                           b'Subject: closed parent\r\n\r\nbody\r\n')
            self.assertEqual(len(srv.wait_maildir('localhost', 'postmaster')), 1, srv.tail())
            self.assertEqual(os.stat(closed).st_mode & 0o777, 0o700)


class OneServerPerQueue(unittest.TestCase):
    """A second server on the same queue_directory must refuse to start: it
    would deliver the first one's mail again and delete files it is writing."""

    def test_second_server_refused(self):
        with Server() as first:
            second = Server(start=False)
            try:
                with open(second.config_path) as f:
                    text = f.read()
                text = text.replace(second.queue_dir, first.queue_dir)
                with open(second.config_path, 'w') as f:
                    f.write(text)
                with self.assertRaises(Exception) as ctx:
                    second.start(timeout=5)
                self.assertIn('is in use by another running relayguard', str(ctx.exception))
            finally:
                second.cleanup()
            # the first one is unharmed
            with smtp_client(first.port) as c:
                c.sendmail('a@example.org', ['postmaster@localhost'], b'Subject: x\r\n\r\nok\r\n')
            self.assertEqual(len(first.wait_maildir('localhost', 'postmaster')), 1)


class FaultsUnderLoad(unittest.TestCase):
    """bench/killtest.py, short: a token-tracking client (8 sessions, two local
    recipients per message) while the server is stopped again and again."""

    def check(self, r):
        self.assertGreater(r['messages_acknowledged'], 0, r)
        self.assertEqual(r['lost'], 0, r)
        self.assertEqual(r['duplicated'], 0, r)
        self.assertTrue(r['queue_drained'], r)
        self.assertEqual(r['orphans_in_tmp'], 0, r)
        self.assertEqual(r['unclean_exits'], 0, r)

    def test_kill9_at_random_moments(self):
        self.check(killtest.run(kills=8, sessions=8, sig='KILL', min_gap=0.1, max_gap=0.4,
                                run_delay=2))

    def test_sigterm_under_load(self):
        self.check(killtest.run(kills=2, sessions=8, sig='TERM', min_gap=0.3, max_gap=0.6,
                                run_delay=2))
