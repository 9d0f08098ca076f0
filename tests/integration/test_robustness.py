"""test_robustness.py - clients and disks that misbehave.

- A slow disk: an LD_PRELOAD shim (built here with cc) makes fdatasync take
  2 s while smtpd_timeout is 1 s. The session waiting for its queue commit
  must not time out under the worker's feet: the client gets its 250, the
  server stays up, and ASan finds no use-after-free.
- A client that sends commands but never reads the replies must not make the
  server buffer replies without bound.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import Conn, Server

SHIM = r'''
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>
int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	const char *s = getenv("RG_TEST_SLOW_SYNC");
	if (s)
		sleep((unsigned)atoi(s));
	return real(fd);
}
'''


def vm_rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


@unittest.skipUnless(shutil.which('cc'), 'no C compiler for the slow-disk shim')
class SlowDisk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-shim-')
        os.chmod(cls.tmp, 0o755)
        src = os.path.join(cls.tmp, 'slow.c')
        cls.shim = os.path.join(cls.tmp, 'slow.so')
        with open(src, 'w') as f:
            f.write(SHIM)
        subprocess.run(['cc', '-shared', '-fPIC', '-o', cls.shim, src, '-ldl'], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_timeout_while_the_queue_commits(self):
        saved = dict(os.environ)
        os.environ.update({'LD_PRELOAD': self.shim, 'RG_TEST_SLOW_SYNC': '2',
                           'ASAN_OPTIONS': os.environ.get('ASAN_OPTIONS', '') +
                           ':verify_asan_link_order=0'})
        try:
            srv = Server(overrides={'smtpd_timeout': '1s'})
        finally:
            os.environ.clear()
            os.environ.update(saved)
        with srv:
            with Conn(srv.port, timeout=10) as c:
                for line in ('EHLO client.example.org', 'MAIL FROM:<a@example.org>',
                             'RCPT TO:<postmaster@localhost>'):
                    self.assertEqual(c.cmd(line)[0], 250)
                self.assertEqual(c.cmd('DATA')[0], 354)
                c.send(b'Subject: slow disk\r\n\r\nbody\r\n.\r\n')
                code, text = c.reply()
                self.assertEqual(code, 250, text)
                self.assertTrue(text.startswith('2.0.0 Ok: queued as '), text)
            self.assertTrue(srv.alive())
            # the next client is served normally by the same process
            with Conn(srv.port, timeout=10) as c:
                self.assertEqual(c.cmd('NOOP')[0], 250)


class ClientThatNeverReads(unittest.TestCase):
    def test_replies_are_not_buffered_without_bound(self):
        with Server(overrides={'smtpd_timeout': '5s'}) as srv:
            before = vm_rss_kib(srv.proc.pid)
            s = socket.socket()
            s.bind(('127.0.0.9', 0))
            s.connect(('127.0.0.1', srv.port))
            s.setblocking(False)
            sent, chunk = 0, b'EHLO client.example.org\r\n' * 4000  # ~100 KB a write
            deadline = time.time() + 3
            while time.time() < deadline and sent < 64 * 1024 * 1024:
                try:
                    sent += s.send(chunk)
                except BlockingIOError:
                    time.sleep(0.01)
            after = vm_rss_kib(srv.proc.pid)
            s.close()
            # the server stops reading once unread replies pile up, so the
            # client's sends block; the server's memory stays small
            self.assertLess(sent, 16 * 1024 * 1024, 'server kept reading commands')
            self.assertLess(after - before, 16 * 1024, 'RSS grew by %d KiB' % (after - before))


if __name__ == '__main__':
    unittest.main()
