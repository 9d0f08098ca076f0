"""test_delivery_review.py - findings of the review of the Maildir write (O_TMPFILE
linked into new/): a mailbox whose new/ was replaced by a symbolic link gets
nothing written through it; the message waits in the queue and lands once the
mailbox is repaired."""
import os
import pwd
import re
import shutil
import tempfile
import time
import unittest

from harness import Server, smtp_session

QUEUED = re.compile(r'^2\.0\.0 Ok: queued as ([0-9A-F]{16})$')


def give_to_mail_owner(path):
    """Started as root, the server runs as mail_owner (relayguard): the link's
    target must be writable by it, or the test could not fail."""
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam('relayguard')
    os.chown(path, pw.pw_uid, pw.pw_gid)


def files_under(top):
    """Every file (not directory) below top."""
    found = []
    for root, _dirs, files in os.walk(top):
        found += [os.path.join(root, f) for f in files]
    return found


class SymlinkedNewDir(unittest.TestCase):
    """Whoever can write in a mailbox turns new/ into a link to a directory the
    server may write (here one mail_owner owns): the copy used to be written
    and linked there, under a name the server chose."""

    def setUp(self):
        self.outside = tempfile.mkdtemp(prefix='relayguard-review-outside-')
        for sub in ('', 'tmp', 'new', 'cur'):
            p = os.path.join(self.outside, sub)
            os.makedirs(p, exist_ok=True)
            give_to_mail_owner(p)
        self.server = Server(start=False, overrides={'minimal_backoff_time': '1s',
                                                     'queue_run_delay': '1s'})

    def tearDown(self):
        try:
            self.server.stop()
        finally:
            self.server.cleanup()
            shutil.rmtree(self.outside, ignore_errors=True)

    def test_nothing_written_through_a_linked_new_dir(self):
        s = self.server
        box = s.maildir_path('localhost', 'postmaster')
        for sub in ('tmp', 'cur'):
            os.makedirs(os.path.join(box, sub), mode=0o700)
        link = os.path.join(box, 'new')
        os.symlink(self.outside, link)
        s.start()
        r = smtp_session(s.port, ['HELO c.example.org', 'MAIL FROM:<a@example.org>',
                                  'RCPT TO:<postmaster@localhost>', 'DATA',
                                  'Subject: linked', '', 'linked', '.', 'QUIT'])
        self.assertEqual(r[5][0], 250, r)
        qid = QUEUED.match(r[5][1]).group(1)
        self.assertIsNotNone(s.wait_log('deferred queue=%s .*local delivery failed' % qid),
                             s.tail())
        self.assertEqual(files_under(self.outside), [],
                         'a copy was written through the link new/ -> %s' % self.outside)
        # repaired: the message waited in the queue and lands in the mailbox proper
        os.unlink(link)
        os.mkdir(link, 0o700)
        give_to_mail_owner(link)
        files = s.wait_maildir('localhost', 'postmaster', timeout=10)
        self.assertEqual(len(files), 1, s.tail())
        self.assertTrue(s.read_mail('localhost', 'postmaster', files[0]).endswith(b'\n\nlinked\n'))
        self.assertEqual(files_under(self.outside), [])


if __name__ == '__main__':
    unittest.main()
