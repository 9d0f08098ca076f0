"""test_accept_flow.py - delivery at acceptance and in-flow control.

Delivery at acceptance: a message whose recipients are all local is in its
Maildirs when the client reads the 250, and never in the queue; anything
else (a remote recipient, NOTIFY=SUCCESS, direct_local_delivery = no) goes
through the queue. A failure part-way queues the message and the queued
delivery writes no second copy.

In-flow control: while more messages wait for delivery than
in_flow_backlog_limit, a newly queued message's 250 waits (up to
in_flow_delay) for one of them to leave; local mail, delivered at
acceptance, does not wait.
"""
import os
import signal
import subprocess
import threading
import time
import unittest

import fakesmtp
import harness
from harness import Conn, Server, smtp_session
from test_outbound import send


def at_acceptance(server, qid):
    """Did the server log qid as delivered before its 250 (no queue file)?"""
    return server.wait_log(r'queued .*queue=%s .*delivery="at acceptance"' % qid,
                           timeout=1) is not None


def queue_cmd(server, *args):
    return subprocess.run([harness.binary(), 'queue'] + list(args) + ['-c', server.config_path],
                          capture_output=True, text=True, timeout=20)


class DeliveryAtAcceptance(unittest.TestCase):
    def setUp(self):
        users = ', '.join(['postmaster', 'alice', 'bob'] + ['u%d' % i for i in range(7)])
        self.s = Server(overrides={'local_recipient_maps': 'inline:{%s}' % users,
                                   'queue_run_delay': '1s', 'minimal_backoff_time': '1s',
                                   'maximal_backoff_time': '1s'})
        self.addCleanup(self.s.cleanup)
        self.addCleanup(self.s.stop)

    def test_copy_is_in_the_maildir_when_the_250_arrives(self):
        qid = send(self.s, ['alice@localhost', 'bob@localhost'], 'Subject: now\n\nhi')
        # no waiting: the 250 came after the copies were durable
        self.assertEqual(len(self.s.maildir('localhost', 'alice')), 1)
        self.assertEqual(len(self.s.maildir('localhost', 'bob')), 1)
        self.assertEqual(self.s.queue_files('active') + self.s.queue_files('deferred'), [])
        self.assertTrue(at_acceptance(self.s, qid), self.s.tail(10))
        log = self.s.wait_log(r'delivered queue=%s .*to=<bob@localhost>' % qid)
        self.assertIsNotNone(log, self.s.tail(10))
        self.assertRegex(log, r'delivered queue=%s to=<alice@localhost> relay=local .*'
                              r'dsn=2\.0\.0 status=sent mailbox=' % qid)
        data = self.s.read_mail('localhost', 'alice', self.s.maildir('localhost', 'alice')[0])
        self.assertTrue(data.startswith(b'Return-Path: <postmaster@localhost>\n'
                                        b'Delivered-To: alice@localhost\nReceived: '), data[:200])
        self.assertIn(qid.encode(), data)

    def test_a_remote_recipient_sends_the_message_through_the_queue(self):
        qid = send(self.s, ['alice@localhost', 'victim@example.net'], 'Subject: mixed\n\nhi')
        self.assertIsNotNone(self.s.wait_log(r'delivered queue=%s ' % qid), self.s.tail(10))
        self.assertFalse(at_acceptance(self.s, qid))
        self.assertIsNotNone(self.s.wait_log(r'deferred queue=%s .*victim' % qid))
        self.assertEqual(len(self.s.maildir('localhost', 'alice')), 1)

    def test_notify_success_goes_through_the_queue_and_is_reported(self):
        qid = send(self.s, ['alice@localhost'], 'Subject: dsn\n\nhi', sender='bob@localhost',
                   rcpt_params={'alice@localhost': 'NOTIFY=SUCCESS'})
        self.assertFalse(at_acceptance(self.s, qid))
        self.assertEqual(len(self.s.wait_maildir('localhost', 'alice')), 1)
        # the success report reaches the sender
        self.assertEqual(len(self.s.wait_maildir('localhost', 'bob')), 1, self.s.tail(20))

    def block(self, user):
        """A file where user's Maildir should be: no copy can be written there."""
        send(self.s, ['postmaster@localhost'], 'Subject: first\n\nmakes mail/localhost/')
        blocker = self.s.maildir_path('localhost', user)
        with open(blocker, 'w') as f:
            f.write('not a directory\n')
        os.chmod(blocker, 0o644)
        return blocker

    def test_a_failure_part_way_queues_and_delivers_each_copy_once(self):
        blocker = self.block('bob')
        qid = send(self.s, ['alice@localhost', 'bob@localhost'], 'Subject: part\n\nhi')
        self.assertIsNotNone(self.s.wait_log(r'direct-delivery-failed .*queue=%s .*'
                                             r'action="queued for delivery instead"' % qid),
                             self.s.tail(10))
        self.assertIsNotNone(self.s.wait_log(r'deferred queue=%s to=<bob@localhost>' % qid),
                             self.s.tail(10))
        # alice's copy, written before bob's failed, was taken back; the queue delivers it
        self.assertIsNotNone(self.s.wait_log(r'delivered queue=%s to=<alice@localhost>' % qid),
                             self.s.tail(10))
        os.unlink(blocker)
        self.assertEqual(queue_cmd(self.s, 'flush').returncode, 0)
        self.assertIsNotNone(self.s.wait_log(r'delivered queue=%s to=<bob@localhost>' % qid,
                                             timeout=10), self.s.tail(10))
        self.assertEqual(len(self.s.maildir('localhost', 'alice')), 1)
        self.assertEqual(len(self.s.maildir('localhost', 'bob')), 1)
        self.assertEqual(self.s.wait_queue_empty('deferred'), [])

    def test_a_refused_message_leaves_no_copy_behind(self):
        """Delivery at acceptance fails part-way and the queue cannot take the
        message either: the client hears 451 and will send it again, so the
        copy already written must go, or the retry would duplicate it."""
        self.block('bob')
        active = os.path.join(self.s.queue_dir, 'active')
        os.chmod(active, 0o500)
        self.addCleanup(os.chmod, active, 0o700)
        r = smtp_session(self.s.port, ['EHLO app.example.org', 'MAIL FROM:<postmaster@localhost>',
                                       'RCPT TO:<alice@localhost>', 'RCPT TO:<bob@localhost>',
                                       'DATA', 'Subject: refused', '', 'hi', '.', 'QUIT'],
                         source=harness.TRUSTED)
        self.assertEqual(r[6][0], 451, r)
        self.assertEqual(self.s.maildir('localhost', 'alice'), [])

    def test_a_large_fan_out_is_queued_not_delivered_before_the_250(self):
        # nine mailboxes: more than the commit threads should write for one client
        rcpts = ['alice@localhost', 'bob@localhost'] + ['u%d@localhost' % i for i in range(7)]
        qid = send(self.s, rcpts, 'Subject: fan-out\n\nhi')
        self.assertIsNotNone(self.s.wait_log(r'delivered queue=%s ' % qid, count=9),
                             self.s.tail(10))
        self.assertFalse(at_acceptance(self.s, qid))


class QueueFirst(unittest.TestCase):
    def test_direct_local_delivery_no_queues_local_mail(self):
        with Server(overrides={'direct_local_delivery': 'no'}) as s:
            qid = send(s, ['postmaster@localhost'], 'Subject: queued\n\nhi')
            self.assertIsNotNone(s.wait_log(r'delivered queue=%s ' % qid), s.tail(10))
            self.assertFalse(at_acceptance(s, qid))
            self.assertEqual(len(s.maildir('localhost', 'postmaster')), 1)


class Hold(fakesmtp.Policy):
    """Takes each message's text, then keeps the final reply until released."""

    def __init__(self):
        self.release = threading.Event()

    def data_end(self, sess, body):
        self.release.wait(30)
        return '250 2.0.0 Ok'


class InFlowCase(unittest.TestCase):
    """Delivery stuck on a slow peer (it holds each final reply): three
    deliveries in flight pass in_flow_backlog_limit (2)."""
    delay = None

    def setUp(self):
        self.policy = Hold()
        self.peer = fakesmtp.FakeSMTP(self.policy)
        self.addCleanup(self.peer.stop)
        self.addCleanup(self.policy.release.set)
        self.s = Server(overrides={
            'default_transport': 'smtp', 'smtpd_peername_lookup': 'no',
            'transport_maps': 'inline:{slow.test=smtp:[127.0.0.1]:%d}' % self.peer.port,
            'in_flow_backlog_limit': '2', 'in_flow_delay': self.delay,
            'local_recipient_maps': 'inline:{postmaster, alice}'})
        self.addCleanup(self.s.cleanup)
        self.addCleanup(self.s.stop)

    def timed_send(self, rcpt):
        t0 = time.monotonic()
        qid = send(self.s, [rcpt], 'Subject: flow\n\nhi')
        return qid, time.monotonic() - t0


class InFlow(InFlowCase):
    delay = '2s'

    def test_queued_mail_waits_while_delivery_is_behind(self):
        for i in range(3):  # three deliveries in flight: backlog 3 > 2
            _qid, took = self.timed_send('u%d@slow.test' % i)
        self.assertIsNotNone(self.s.wait_log(r'in-flow-delay backlog=3 limit=2'),
                             self.s.tail(10))
        _qid, took = self.timed_send('u9@slow.test')
        self.assertGreaterEqual(took, 1.5, 'the 250 did not wait for delivery')
        # the operator sees it
        status = queue_cmd(self.s, 'status')
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertIn('backlog: 4 (in_flow_backlog_limit 2)', status.stdout)
        self.assertRegex(status.stdout, r'in-flow: behind for \d+s: 0 250s waiting now, '
                                        r'[2-9] delayed')
        # local mail is delivered at acceptance: it adds no backlog and does not wait
        qid, _took = self.timed_send('alice@localhost')
        self.assertTrue(at_acceptance(self.s, qid))
        self.assertEqual(len(self.s.maildir('localhost', 'alice')), 1)
        # delivery catches up: the episode ends with its figures
        self.policy.release.set()
        log = self.s.wait_log(r'in-flow-resumed backlog=\d+ delayed=\d+ waited_full_delay=\d+',
                              timeout=15)
        self.assertIsNotNone(log, self.s.tail(10))
        _qid, took = self.timed_send('u10@slow.test')
        self.assertLess(took, 1.5, 'the 250 still waits after delivery caught up')
        self.assertIn('in-flow: delivery keeps up', queue_cmd(self.s, 'status').stdout)


class InFlowRelease(InFlowCase):
    """A long in_flow_delay: the waiting 250 goes out when a delivery ends,
    or at SIGTERM."""
    delay = '10s'

    def test_a_waiting_250_goes_out_when_a_delivery_finishes(self):
        t0 = time.monotonic()
        for i in range(2):
            self.timed_send('u%d@slow.test' % i)
        threading.Timer(1.0, self.policy.release.set).start()
        _qid, took = self.timed_send('u2@slow.test')  # backlog 3: it waits
        self.assertIsNotNone(self.s.wait_log(r'in-flow-delay '), self.s.tail(10))
        self.assertIsNotNone(self.s.wait_log(r'in-flow-resumed '), self.s.tail(10))
        self.assertLess(time.monotonic() - t0, 9, 'the 250 waited for the full in_flow_delay')

    def test_sigterm_releases_the_waiting_250(self):
        for i in range(2):
            self.timed_send('u%d@slow.test' % i)
        c = Conn(self.s.port, source=harness.TRUSTED, timeout=5)
        self.addCleanup(c.close)
        for line in ('EHLO app.example.org', 'MAIL FROM:<postmaster@localhost>',
                     'RCPT TO:<u9@slow.test>', 'DATA'):
            self.assertIn(c.cmd(line)[0], (250, 354))
        c.send(b'Subject: flow\r\n\r\nhi\r\n.\r\n')
        self.assertIsNotNone(self.s.wait_log(r'in-flow-delay ', count=1), self.s.tail(10))
        self.assertIsNotNone(self.s.wait_log(r' queued ', count=3), self.s.tail(10))
        self.s.proc.send_signal(signal.SIGTERM)
        # well before in_flow_delay (10s) is over, with the deliveries still stuck
        self.assertEqual(c.reply()[0], 250, self.s.tail(10))
        self.policy.release.set()


if __name__ == '__main__':
    unittest.main()
