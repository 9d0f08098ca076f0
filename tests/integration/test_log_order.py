"""test_log_order.py - a reply never leaves before the log lines that record it.

The event loop holds its log lines while it hands back a batch of finished
jobs (log_hold) and writes them in one go. The 250 after DATA goes out in
that batch: had it left before the held "queued" line was written, a server
killed right after the 250 (SIGKILL, the OOM killer, a crash in a later job
of the same batch) would leave the client with a 250 for a message the log
never mentions.

An LD_PRELOAD shim (built here with cc) kills the server with SIGKILL the
moment a "queued as" reply has been handed to the socket; the log must
already name that message.
"""
import shutil
import time
import unittest

import harness
from harness import Conn

SHIM = r'''
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static void die_after_250(const void *buf, size_t n)
{
	if (memmem(buf, n, "250 2.0.0 Ok: queued as ", 24) != NULL)
		kill(getpid(), SIGKILL);
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	static ssize_t (*real)(int, const void *, size_t, int);
	if (!real)
		real = (ssize_t (*)(int, const void *, size_t, int))dlsym(RTLD_NEXT, "send");
	ssize_t w = real(fd, buf, n, flags);
	if (w > 0)
		die_after_250(buf, (size_t)w);
	return w;
}

ssize_t writev(int fd, const struct iovec *v, int cnt)
{
	static ssize_t (*real)(int, const struct iovec *, int);
	if (!real)
		real = (ssize_t (*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
	ssize_t w = real(fd, v, cnt);
	for (int i = 0; w > 0 && i < cnt; i++)
		die_after_250(v[i].iov_base, v[i].iov_len);
	return w;
}
'''


@harness.requires(shutil.which('cc'), 'gcc and libc6-dev', 'a C compiler for the shim')
class LogBeforeReply(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shim = harness.build_shim(cls, SHIM, 'die')

    def server(self, overrides):
        srv = harness.preloaded_server(self.shim, overrides=overrides)
        self.addCleanup(srv.cleanup)
        self.addCleanup(srv.kill9)
        return srv

    def send_and_die(self, srv, rcpt):
        """One message; its 250 (the server dies right after sending it)."""
        with Conn(srv.port, source=harness.TRUSTED, timeout=10) as c:
            for line in ('EHLO app.example.org', 'MAIL FROM:<postmaster@localhost>',
                         'RCPT TO:<%s>' % rcpt):
                self.assertEqual(c.cmd(line)[0], 250)
            self.assertEqual(c.cmd('DATA')[0], 354)
            # nothing pipelined after the dot: unread input would turn the
            # kill's close into a reset that could swallow the 250
            c.send(b'Subject: last words\r\n\r\nhi\r\n.\r\n')
            code, text = c.reply()
        self.assertEqual(code, 250, text)
        deadline = time.time() + 10
        while srv.proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        self.assertEqual(srv.proc.returncode, -9, 'the shim did not kill the server')
        return text.split()[-1]

    def test_delivered_at_acceptance_is_logged_before_its_250(self):
        srv = self.server({'local_recipient_maps': 'inline:{postmaster, alice}'})
        qid = self.send_and_die(srv, 'alice@localhost')
        self.assertRegex(srv.log(), r'queued .*queue=%s .*delivery="at acceptance"' % qid)
        self.assertRegex(srv.log(), r'delivered queue=%s to=<alice@localhost>' % qid)

    def test_queued_is_logged_before_its_250(self):
        srv = self.server({'direct_local_delivery': 'no'})
        qid = self.send_and_die(srv, 'postmaster@localhost')
        self.assertRegex(srv.log(), r'queued .*queue=%s ' % qid)


if __name__ == '__main__':
    unittest.main()
