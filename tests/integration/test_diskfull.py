"""test_diskfull.py - the queue and the mailboxes on a tiny, full file system (issue 11, part 3).

Each test mounts small tmpfs file systems (root only; under CI=true a machine
that cannot mount fails the test) and fills them with a file written until
ENOSPC, then shortened to leave exactly the room the test wants.

- The queue fills up while a client is in DATA (it passed MAIL's queue_minfree
  check with room to spare): the final dot gets a 4xx, never a 250 for a copy
  that is not on disk and never a 5xx, and no partial queue file stays behind.
  The reply does not tell the client our paths or errno text; the log does.
  With room again the next message is accepted and delivered.
- The mailboxes' file system is full: a message is still accepted (250) and
  kept in the queue, nothing reaches a Maildir and nothing is lost; once there is
  room the retry delivers each message exactly once and the queue drains.
"""
import os
import pwd
import subprocess
import tempfile
import time
import unittest
import urllib.request

import harness
from harness import Conn, Server

TOKEN_HEADER = 'X-Token: '


def can_mount_tmpfs():
    if os.geteuid() != 0:
        return False
    d = tempfile.mkdtemp(prefix='relayguard-mnt-')
    try:
        return subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', d],
                              capture_output=True).returncode == 0 and \
            subprocess.run(['umount', d]).returncode == 0
    except OSError:
        return False
    finally:
        os.rmdir(d)


def fill(mnt, leave):
    """Fill MNT's file system but for LEAVE bytes; the filler's path."""
    path = os.path.join(mnt, 'filler')
    with open(path, 'wb', buffering=0) as f:  # unbuffered: nothing left to write at close
        chunk = b'\0' * 65536
        try:
            while f.write(chunk):
                pass
        except OSError:
            pass
        size = f.tell()
        while True:
            st = os.statvfs(mnt)
            free = st.f_bavail * st.f_frsize
            if free >= leave or size == 0:
                break
            size = max(0, size - (leave - free))
            f.truncate(size)
    return path


def scrape(port):
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=5) as r:
        return r.read().decode()


def metric(text, series):
    """The value of one series line (name{labels}), 0 when absent."""
    for line in text.splitlines():
        if line.startswith(series + ' '):
            return float(line.split()[-1])
    return 0


def all_files(root):
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.join(d, f) for f in files]
    return out


def mail_texts(maildir):
    """The texts of the messages in MAILDIR's new/ and cur/."""
    texts = []
    for sub in ('new', 'cur'):
        d = os.path.join(maildir, sub)
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, name), 'rb') as f:
                texts.append(f.read().decode(errors='replace'))
    return texts


def wait_texts(maildir, count, timeout):
    deadline = time.time() + timeout
    while True:
        texts = mail_texts(maildir)
        if len(texts) >= count or time.time() > deadline:
            return texts
        time.sleep(0.1)


def message(token, size=0):
    body = ''.join('line %06d of filler text to make the message bigger\r\n' % i
                   for i in range(size // 52))
    return ('From: a@example.org\r\nSubject: disk full\r\n%s%s\r\n\r\n%s'
            % (TOKEN_HEADER, token, body))


class DiskCase(unittest.TestCase):
    def setUp(self):
        harness.require(can_mount_tmpfs(), 'util-linux (mount), run as root',
                        'small tmpfs file systems for the queue and the mailboxes')

    def mount(self, size):
        """A tmpfs of SIZE the server's user may write to."""
        d = tempfile.mkdtemp(prefix='relayguard-mnt-')
        try:
            owner = pwd.getpwnam('relayguard')
            opts = 'size=%s,mode=0755,uid=%d,gid=%d' % (size, owner.pw_uid, owner.pw_gid)
        except KeyError:
            opts = 'size=%s,mode=0777' % size
        subprocess.run(['mount', '-t', 'tmpfs', '-o', opts, 'tmpfs', d], check=True)
        self.addCleanup(self.unmount, d)
        return d

    def unmount(self, d):
        if subprocess.run(['umount', d]).returncode != 0:
            subprocess.run(['umount', '-l', d])
        os.rmdir(d)

    def start(self, **overrides):
        srv = Server(overrides=overrides)
        self.addCleanup(harness.stop_server, srv)
        return srv

    def send(self, srv, token, size=0, rcpt='postmaster@localhost'):
        """(code, text) of the reply to the final dot, or of the command refused."""
        with Conn(srv.port, timeout=30) as c:
            c.cmd('EHLO client.example.org')
            for line, want in (('MAIL FROM:<a@example.org>', 250), ('RCPT TO:<%s>' % rcpt, 250),
                               ('DATA', 354)):
                reply = c.cmd(line)
                if reply[0] != want:
                    return reply
            c.send(message(token, size) + '\r\n.\r\n')
            return c.reply()


class QueueFillsDuringData(DiskCase):
    def test_the_dot_gets_4xx_and_no_partial_copy_stays(self):
        queue_fs = self.mount('4m')
        queue = os.path.join(queue_fs, 'queue')
        mport = harness.free_port()
        srv = self.start(queue_directory=queue, message_size_limit='400000',
                         direct_local_delivery='no', metrics_listen='127.0.0.1:%d' % mport)
        rejected = 'relayguard_messages_total{result="rejected"}'
        metrics_before = scrape(mport)
        before = set(all_files(queue))
        with Conn(srv.port, timeout=30) as c:
            c.cmd('EHLO client.example.org')
            # MAIL passes queue_minfree (600 KB) on the empty 4 MB file system
            self.assertEqual(c.cmd('MAIL FROM:<a@example.org> SIZE=300000')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<postmaster@localhost>')[0], 250)
            self.assertEqual(c.cmd('DATA')[0], 354)
            filler = fill(queue_fs, 64 * 1024)  # now something else takes the disk
            c.send(message('full-during-data', 300000) + '\r\n.\r\n')
            # a 4xx that names no path of ours (the log has the details)
            self.assertEqual(c.reply(), (451, '4.3.0 Error: queue file write error'))
            self.assertIsNotNone(srv.wait_log(
                r'reject client=127\.0\.0\.9 command=DATA reply="451 4\.3\.0 Error: queue file '
                r'write error" error="cannot write queue file \S+: No space left on device"'),
                srv.tail(10))
            # and it counts as a message refused at the end of DATA
            self.assertEqual(metric(scrape(mport), rejected),
                             metric(metrics_before, rejected) + 1)
            # the session goes on; within a second (the free space is read once
            # a second) a new transaction is refused at MAIL, with 4xx
            deadline = time.time() + 3
            while True:
                code, text = c.cmd('MAIL FROM:<a@example.org>')
                if code != 250 or time.time() > deadline:
                    break
                self.assertEqual(c.cmd('RSET')[0], 250)
                time.sleep(0.2)
            self.assertEqual((code, text), (452, '4.3.1 Insufficient system storage'))
        # nothing of the refused message stays in the queue
        self.assertEqual(set(all_files(queue)) - before, set(), all_files(queue))
        os.unlink(filler)
        deadline = time.time() + 5
        while time.time() < deadline:
            code, text = self.send(srv, 'room-again', 1000)
            if code == 250:
                break
            time.sleep(0.2)
        self.assertEqual(code, 250, text)
        texts = wait_texts(srv.maildir_path('localhost', 'postmaster'), 1, 10)
        self.assertEqual(len(texts), 1)
        self.assertIn(TOKEN_HEADER + 'room-again\n', texts[0])


class MailboxesFull(DiskCase):
    def check_resumes(self, direct):
        mail_fs = self.mount('1m')
        srv = self.start(virtual_mailbox_base=os.path.join(mail_fs, 'mail'),
                         direct_local_delivery=direct, queue_run_delay='1s',
                         minimal_backoff_time='1s', maximal_backoff_time='2s')
        filler = fill(mail_fs, 0)
        box = os.path.join(mail_fs, 'mail', 'localhost', 'postmaster')
        tokens = ['mailbox-full-%s-%d' % (direct, i) for i in range(3)]
        for t in tokens:
            code, text = self.send(srv, t, 20000)
            self.assertEqual(code, 250, (text, srv.tail(10)))
        # accepted, kept in the queue, delivered nowhere yet
        self.assertIsNotNone(srv.wait_log(r'status=deferred .*No space left', timeout=5),
                             srv.tail(20))
        self.assertEqual(mail_texts(box), [])
        # every message is in the queue; a retry moves a file between active/ and
        # deferred/, so one listing after the other can miss it: look again
        deadline = time.time() + 5
        while True:
            queued = len(srv.queue_files('deferred')) + len(srv.queue_files('active'))
            if queued == len(tokens) or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(queued, len(tokens))
        os.unlink(filler)
        texts = wait_texts(box, len(tokens), 15)
        self.assertEqual(len(texts), len(tokens), srv.tail(20))
        time.sleep(2.5)  # a second copy would come with the next retry
        texts = mail_texts(box)
        self.assertEqual(sorted(t for t in tokens for x in texts if TOKEN_HEADER + t + '\n' in x),
                         sorted(tokens))
        deadline = time.time() + 5
        while srv.queue_files('deferred') and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(srv.queue_files('deferred'), [])
        for d, _, names in os.walk(os.path.join(mail_fs, 'mail')):
            if os.path.basename(d) == 'tmp':
                self.assertEqual(names, [], d)

    def test_queued_mail_waits_and_is_delivered_once_when_space_returns(self):
        self.check_resumes('no')

    def test_direct_local_delivery_falls_back_to_the_queue(self):
        self.check_resumes('yes')


if __name__ == '__main__':
    unittest.main()
