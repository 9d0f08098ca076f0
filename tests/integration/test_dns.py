"""test_dns.py - client names from a real DNS server (dnsmasq on loopback).

dnsmasq serves a test zone: 127.0.0.9 <-> mx1.example.test (PTR and A agree),
127.0.0.10 has a PTR to liar.example.test that has no A record (so the name is
not verified), 127.0.0.11 has no PTR. The server must name verified clients in
Received: and the logs, call the others "unknown", and still greet when the
DNS server does not answer at all.
"""
import socket
import unittest

import dnslab
from harness import Conn, Server, smtp_client


class VerifiedClientNames(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = dnslab.DnsLab(
            hosts={'mx1.example.test': ['127.0.0.9']},  # A and PTR
            extra=['--ptr-record=10.0.0.127.in-addr.arpa,liar.example.test'])
        cls.dns.start()
        try:
            cls.server = Server(overrides={'dns_servers': cls.dns.servers})
        except BaseException:
            cls.dns.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.server.cleanup()
        cls.dns.cleanup()

    def deliver_from(self, source):
        before = len(self.server.maildir('localhost', 'postmaster'))
        with smtp_client(self.server.port, source=source) as c:
            c.sendmail('a@example.org', ['postmaster@localhost'],
                       b'Subject: dns\r\n\r\nbody\r\n')
        self.server.wait_maildir('localhost', 'postmaster', count=before + 1)
        names = sorted(self.server.maildir('localhost', 'postmaster'))
        return self.server.read_mail('localhost', 'postmaster', names[-1])

    def test_verified_name_in_received_and_log(self):
        mail = self.deliver_from('127.0.0.9')
        received = mail[mail.index(b'\nReceived: '):].split(b'\n\t')[0]
        self.assertIn(b'(mx1.example.test [127.0.0.9])', received)
        self.server.wait_log(r'connect .*client=127\.0\.0\.9 name=mx1\.example\.test')

    def test_ptr_without_matching_a_is_unknown(self):
        with Conn(self.server.port, source='127.0.0.10') as c:
            self.assertEqual(c.cmd('NOOP')[0], 250)
        self.server.wait_log(r'connect .*client=127\.0\.0\.10 name=unknown')
        self.assertNotIn('liar.example.test', self.server.log())

    def test_no_ptr_is_unknown(self):
        with Conn(self.server.port, source='127.0.0.11') as c:
            self.assertEqual(c.cmd('NOOP')[0], 250)
        self.server.wait_log(r'connect .*client=127\.0\.0\.11 name=unknown')


class SilentDnsServer(unittest.TestCase):
    def test_greeting_comes_even_when_dns_never_answers(self):
        # a UDP socket that never replies: lookups time out, the client is "unknown"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
            sink.bind(('127.0.0.1', 0))
            port = sink.getsockname()[1]
            with Server(overrides={'dns_servers': '127.0.0.1:%d' % port}) as srv:
                with Conn(srv.port, source='127.0.0.9', timeout=20) as c:
                    self.assertEqual(c.cmd('NOOP')[0], 250)
                srv.wait_log(r'connect .*client=127\.0\.0\.9 name=unknown')


if __name__ == '__main__':
    unittest.main()
