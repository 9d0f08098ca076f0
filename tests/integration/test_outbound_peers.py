"""test_outbound_peers.py - relayguard's outbound delivery to real MTAs:
Postfix, Exim and OpenSMTPD from the peer lab (tests/peers/lab.py) as the
final destination of lab.test, each delivering into the lab's local sink.

The message must arrive byte for byte (a line starting with a dot included)
under the receiving MTA's own Received: line and ours, with the envelope
unchanged; a recipient the peer does not know comes back as a bounce.
"""
import os
import sys
import unittest

import harness
from harness import Server, smtp_session, TRUSTED

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'peers'))
import lab  # noqa: E402

# a complete header, so that no peer adds Message-ID/Date/From of its own
BODY = ['From: <app@example.org>', 'To: <someone@lab.test>', 'Date: Fri, 4 Dec 2026 12:00:00 +0000',
        'Message-ID: <MARK@example.org>', 'Subject: to a real MTA', 'X-Marker: MARK', '',
        '.a line with a leading dot', 'the end']


class ToPeers:
    kind = None

    def setUp(self):
        ok, why = lab.available(self.kind)
        harness.require(ok, lab.PACKAGES[self.kind], why)
        self.peer = lab.Peer(self.kind, 'secure')
        self.addCleanup(self.peer.close)
        self.s = Server(overrides={
            'default_transport': 'smtp', 'smtpd_peername_lookup': 'no',
            'transport_maps': 'inline:{lab.test=smtp:[%s]:%d}' % (self.peer.host, self.peer.port),
            'minimal_backoff_time': '1s', 'queue_run_delay': '1s'})
        self.addCleanup(self.s.cleanup)
        self.addCleanup(self.s.stop)

    def send(self, rcpt, marker):
        body = [l.replace('MARK', marker) for l in BODY]
        stuffed = ['.' + l if l.startswith('.') else l for l in body]
        r = smtp_session(self.s.port, ['EHLO app.example.org', 'MAIL FROM:<app@example.org>',
                                       'RCPT TO:<%s>' % rcpt, 'DATA'] + stuffed + ['.', 'QUIT'],
                         source=TRUSTED)
        self.assertEqual(r[5][0], 250, r)
        return r[5][1].rsplit(' ', 1)[1]

    def test_delivered_byte_for_byte(self):
        marker = 'out-%s' % self.kind
        qid = self.send('someone@lab.test', marker)
        hits = self.peer.local_sink.find(marker, 30)
        self.assertEqual(len(hits), 1, self.s.tail(20) + '\n' + self.peer.log()[-2000:])
        msg = hits[0]
        self.assertEqual(msg['mail_from'], 'app@example.org')
        self.assertEqual(msg['rcpts'], ['someone@lab.test'])
        data = msg['data'].replace(b'\r\n', b'\n')
        self.assertIn(b'by mx.relayguard.test (relayguard) with ESMTP id %s' % qid.encode(), data)
        want = '\n'.join(l.replace('MARK', marker) for l in BODY) + '\n'
        self.assertTrue(data.endswith(want.encode()), data[-400:])
        log = self.s.wait_log(r'delivered queue=%s .*relay=%s\[%s\]:%d .*status=sent'
                              % (qid, self.peer.host, self.peer.host, self.peer.port))
        self.assertIsNotNone(log, self.s.tail(20))


class ToPostfix(ToPeers, unittest.TestCase):
    kind = 'postfix'


class ToExim(ToPeers, unittest.TestCase):
    kind = 'exim'


class ToOpenSMTPD(ToPeers, unittest.TestCase):
    kind = 'opensmtpd'


if __name__ == '__main__':
    unittest.main()
