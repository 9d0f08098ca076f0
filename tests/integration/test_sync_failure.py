"""test_sync_failure.py - a Maildir whose directory sync fails never earns a 250 of its own.

Delivery at acceptance answers 250 only once every new/ directory holding a
copy is synced; concurrent deliveries share one fsync per round
(dirsync_then), and a commit thread whose copy another thread's round
covers goes back to work, its 250 left to that round. An LD_PRELOAD shim
(built here with cc) makes every fsync of a Maildir new/ directory fail
with EIO. Then every waiter of every round must hear of the failure:
sessions sending at once each get a 250 only because the message was
queued instead ("direct-delivery-failed ... queued for delivery instead"),
none is logged as delivered at acceptance, and the copies already linked
are taken back: once the disk recovers, the queue delivers every copy
exactly once.
"""
import re
import shutil
import subprocess
import threading
import unittest

import harness
from harness import smtp_session

SHIM = r'''
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	struct stat st;
	char proc[64], path[4096];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, path, sizeof(path) - 1);
	path[n > 0 ? n : 0] = '\0';
	int r = real(fd);
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && n > 4 &&
	    strcmp(path + n - 4, "/new") == 0) {
		usleep(20000); /* long enough for the rounds to overlap */
		errno = EIO;
		return -1;
	}
	return r;
}
'''

USERS = ['u0', 'u1', 'u2', 'u3']


@harness.requires(shutil.which('cc'), 'gcc and libc6-dev', 'a C compiler for the shim')
class MaildirSyncFails(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shim = harness.build_shim(cls, SHIM, 'eio')

    def setUp(self):
        self.s = harness.preloaded_server(self.shim, overrides={
            'local_recipient_maps': 'inline:{%s}' % ', '.join(USERS + ['postmaster']),
            'queue_run_delay': '1h', 'minimal_backoff_time': '1h',
            'maximal_backoff_time': '1h'})
        self.addCleanup(self.s.cleanup)
        self.addCleanup(self.s.stop)

    def send(self, k, replies):
        rcpts = [USERS[k % 4], USERS[(k + 1) % 4]]
        lines = ['EHLO app.example.org', 'MAIL FROM:<postmaster@localhost>']
        lines += ['RCPT TO:<%s@localhost>' % r for r in rcpts]
        lines += ['DATA', 'Subject: %d' % k, '', 'text %d' % k, '.', 'QUIT']
        replies[k] = smtp_session(self.s.port, lines, source=harness.TRUSTED, timeout=30)[6]

    def test_every_waiter_hears_of_the_failed_sync(self):
        replies = {}
        threads = [threading.Thread(target=self.send, args=(k, replies)) for k in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = []
        for k, (code, text) in sorted(replies.items()):
            self.assertEqual(code, 250, (k, text))
            ids.append(re.search(r'queued as (\S+)', text).group(1))
        log = self.s.log()
        for qid in ids:
            self.assertRegex(log, r'direct-delivery-failed queue=%s .*Input/output error.*'
                                  r'action="queued for delivery instead"' % qid)
            self.assertNotRegex(log, r'queued .*queue=%s .*delivery="at acceptance"' % qid)
        # each message waits in the queue (its queued delivery failed the same way)
        self.assertEqual(self.s.wait_queue_empty('active', timeout=10), [])
        self.assertEqual(sorted(self.s.queue_files('deferred')), sorted(ids))
        self.assertNotIn('direct-copy-not-removed', log)
        # the disk recovers (a restart without the shim): every copy once,
        # none twice (a copy of the delivery at acceptance left behind would be)
        self.s.stop()
        self.s.start()
        flush = subprocess.run([harness.binary(), 'queue', 'flush', '-c', self.s.config_path],
                               capture_output=True, text=True, timeout=20)
        self.assertEqual(flush.returncode, 0, flush.stderr)
        self.assertEqual(self.s.wait_queue_empty('deferred', timeout=20), [], self.s.tail(20))
        texts = []
        for u in USERS:
            for name in self.s.maildir('localhost', u):
                body = self.s.read_mail('localhost', u, name)
                texts.append((u, re.search(rb'\ntext (\d+)', body).group(1).decode()))
        want = sorted((USERS[i % 4], str(k)) for k in range(12) for i in (k, k + 1))
        self.assertEqual(sorted(texts), want)

if __name__ == '__main__':
    unittest.main()
