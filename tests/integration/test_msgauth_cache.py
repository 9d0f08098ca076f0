"""test_msgauth_cache.py - SPF, DKIM and DMARC answers come from relayguard's
DNS cache for their TTL, and only for their TTL.

A dnsmasq lab (dnslab.py) with a TTL of 2 seconds publishes paypal.example's
SPF record, DKIM key and DMARC record, and logs every question it is asked.
The first signed message makes relayguard ask for each record once; a second
one at once asks nothing (the answers, and the "no such record" answers, are
cached); a third after the TTL asks again. A SERVFAIL is never remembered:
every message asks again.
"""
import re
import subprocess
import tempfile
import time
import unittest

import dnslab
import harness
import signlab
from harness import Conn, Server
from test_dkim_interop import record_of
from test_msgauth import message, stuffed

TTL = 2
SENDER_IP = '127.0.0.50'
KEY_NAME = 'pp._domainkey.paypal.example'


class MsgAuthCache(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        dnslab.require_dnsmasq()
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-msgauth-cache-')
        out = subprocess.run([harness.binary(), 'dkim', 'keygen', '--domain', 'paypal.example',
                              '--selector', 'pp', '--out', cls.tmp],
                             capture_output=True, text=True, check=True)
        txt = {'paypal.example': ['v=spf1 ip4:127.0.0.50 -all'],
               '_dmarc.paypal.example': ['v=DMARC1; p=reject'],
               KEY_NAME: [record_of(out.stdout)[0]],
               'broken.example': ['v=spf1 include:x.broken.test -all']}
        cls.dns = dnslab.DnsLab(txt=txt, ttl=TTL, servfail=['broken.test'])
        cls.dns.start()
        cls.msg = subprocess.run(
            [harness.binary(), 'dkim', 'sign', '--domain', 'paypal.example', '--selector', 'pp',
             '--key', '%s/paypal.example.pp.pem' % cls.tmp],
            input=message(), capture_output=True, check=True).stdout
        cls.srv = Server(overrides={'myhostname': 'mx.relayguard.test',
                                    'dns_servers': cls.dns.servers,
                                    'mydestination': 'example.net', 'local_recipient_maps': '',
                                    'smtpd_peername_lookup': 'no'})

    @classmethod
    def tearDownClass(cls):
        signlab.stop_lab(cls)

    def send(self, sender='ceo@paypal.example'):
        """The end-of-DATA reply; the checks' log lines are in by then."""
        mark = self.srv.mark()
        with Conn(self.srv.port, source=SENDER_IP) as c:
            self.assertEqual(c.cmd('EHLO mail.paypal.example')[0], 250)
            self.assertEqual(c.cmd('MAIL FROM:<%s>' % sender)[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<bob@example.net>')[0], 250)
            self.assertEqual(c.cmd('DATA')[0], 354)
            c.send(stuffed(self.msg))
            reply = c.reply()
        return reply, self.srv.log_since(mark)

    def asked(self, since, name, qtype='TXT'):
        """How often relayguard asked the lab for name since a log position."""
        pat = r'query\[%s\] %s from 127\.0\.0\.1' % (qtype, re.escape(name))
        return len(re.findall(pat, self.dns.log()[since:]))

    def test_second_message_asks_nothing_until_the_ttl_runs_out(self):
        time.sleep(TTL + 1)  # nothing cached by another test
        names = ('paypal.example', KEY_NAME, '_dmarc.paypal.example')
        first = len(self.dns.log())
        reply, log = self.send()
        self.assertEqual(reply[0], 250, reply)
        self.assertRegex(log, r'spf.*result=pass')
        self.assertRegex(log, r'dkim.*result=pass')
        self.assertRegex(log, r'dmarc.*result=pass')
        self.assertEqual([self.asked(first, n) for n in names], [1, 1, 1], self.dns.log()[first:])

        second = len(self.dns.log())
        reply, log = self.send()
        self.assertEqual(reply[0], 250, reply)
        self.assertRegex(log, r'dkim.*result=pass')
        self.assertRegex(log, r'dmarc.*result=pass')
        self.assertEqual([self.asked(second, n) for n in names], [0, 0, 0],
                         'cached answers were asked for again:\n' + self.dns.log()[second:])

        time.sleep(TTL + 1)
        third = len(self.dns.log())
        reply, log = self.send()
        self.assertEqual(reply[0], 250, reply)
        self.assertRegex(log, r'dmarc.*result=pass')
        self.assertEqual([self.asked(third, n) for n in names], [1, 1, 1],
                         'after the TTL each record is asked for again')

    def test_no_record_is_cached_too(self):
        # ceo@nodmarc.example: no SPF record, no DMARC record, no _dmarc of the
        # organisational domain either; the second message asks nothing
        first = len(self.dns.log())
        self.send(sender='ceo@nodmarc.example')
        self.assertEqual(self.asked(first, 'nodmarc.example'), 1)
        second = len(self.dns.log())
        self.send(sender='ceo@nodmarc.example')
        self.assertEqual(self.asked(second, 'nodmarc.example'), 0,
                         'NXDOMAIN is remembered:\n' + self.dns.log()[second:])

    def test_servfail_is_never_cached(self):
        # broken.example's SPF record includes a name whose server fails:
        # every message asks for it again (temperror each time)
        for _ in range(2):
            since = len(self.dns.log())
            reply, log = self.send(sender='ceo@broken.example')
            self.assertRegex(log, r'spf.*result=temperror')
            self.assertGreaterEqual(self.asked(since, 'x.broken.test'), 1,
                                    'a SERVFAIL was remembered:\n' + self.dns.log()[since:])


if __name__ == '__main__':
    unittest.main()
