"""test_inflow_load.py - in-flow control under sustained load (issue 11, part 3).

Delivery stalls (a peer on loopback holds every final reply) while SESSIONS
clients send as fast as the server answers for SECONDS. Nothing is delivered,
so every accepted message adds to the backlog. With in_flow_delay on, each 250
past in_flow_backlog_limit waits for the full delay, so the queue's depth stays
within LIMIT + SESSIONS x (SECONDS / delay + 1) and `relayguard queue status`
reports it; with in_flow_delay = 0 the same clients in the same time put far
more in the queue (the contrast shows that the load could have passed the bound).
"""
import re
import threading
import time
import unittest

import fakesmtp
import harness
from harness import Conn, Server
import test_accept_flow as flow

SESSIONS = 6
SECONDS = 3.0
LIMIT = 5
DELAY = 2  # in_flow_delay, seconds


def blast(port, stop, counts, i):
    """One client: messages to the stalled destination until STOP."""
    try:
        with Conn(port, source=harness.TRUSTED, timeout=15) as c:
            c.cmd('EHLO app.example.org')
            n = 0
            while not stop.is_set():
                for line, want in (('MAIL FROM:<postmaster@localhost>', 250),
                                   ('RCPT TO:<u%d-%d@slow.test>' % (i, n), 250),
                                   ('DATA', 354)):
                    if c.cmd(line)[0] != want:
                        return
                c.send(b'Subject: load\r\n\r\nhi\r\n.\r\n')
                if c.reply()[0] != 250:
                    return
                n += 1
                counts[i] = n
    except OSError:
        pass


class InFlowUnderLoad(unittest.TestCase):
    def load(self, delay):
        """Accepted messages and the queue status after SECONDS of load."""
        policy = flow.Hold()
        peer = fakesmtp.FakeSMTP(policy)
        self.addCleanup(peer.stop)
        self.addCleanup(policy.release.set)
        srv = Server(overrides={
            'default_transport': 'smtp', 'smtpd_peername_lookup': 'no',
            'transport_maps': 'inline:{slow.test=smtp:[127.0.0.1]:%d}' % peer.port,
            'in_flow_backlog_limit': str(LIMIT), 'in_flow_delay': '%ds' % delay})
        self.addCleanup(srv.cleanup)
        self.addCleanup(srv.stop)
        stop = threading.Event()
        counts = [0] * SESSIONS
        threads = [threading.Thread(target=blast, args=(srv.port, stop, counts, i))
                   for i in range(SESSIONS)]
        for t in threads:
            t.start()
        time.sleep(SECONDS)
        status = flow.queue_cmd(srv, 'status')
        stop.set()
        policy.release.set()  # the waiting 250s and the stalled deliveries end
        for t in threads:
            t.join(30)
        self.assertEqual(status.returncode, 0, status.stderr)
        return sum(counts), status.stdout, srv

    def test_backlog_stays_bounded_and_reported_while_delivery_stalls(self):
        bound = LIMIT + SESSIONS * (int(SECONDS / DELAY) + 2)
        accepted, status, srv = self.load(DELAY)
        self.assertLessEqual(accepted, bound, status)
        self.assertGreater(accepted, LIMIT, status)
        m = re.search(r'^backlog: (\d+) \(in_flow_backlog_limit %d\)$' % LIMIT, status, re.M)
        self.assertIsNotNone(m, status)
        self.assertLessEqual(int(m.group(1)), bound, status)
        self.assertRegex(status, r'in-flow: behind for \d+s: [1-9]\d* 250s waiting now')
        self.assertIsNotNone(srv.wait_log(r'in-flow-delay backlog=\d+ limit=%d' % LIMIT))
        # without in-flow control the same load queues far more
        unbounded, status, _srv = self.load(0)
        self.assertGreater(unbounded, 2 * bound, status)


if __name__ == '__main__':
    unittest.main()
