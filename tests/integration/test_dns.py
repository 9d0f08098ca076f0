"""test_dns.py - client names from a real DNS server (dnsmasq on loopback).

dnsmasq serves a test zone: 127.0.0.9 <-> mx1.example.test (PTR and A agree),
127.0.0.10 has a PTR to liar.example.test that has no A record (so the name is
not verified), 127.0.0.11 has no PTR. The server must name verified clients in
Received: and the logs, call the others "unknown", and still greet when the
DNS server does not answer at all.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Conn, Server, free_port, smtp_client

DNSMASQ = shutil.which('dnsmasq') or '/usr/sbin/dnsmasq'


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@harness.requires(os.path.exists(DNSMASQ), 'dnsmasq-base', 'a DNS server on loopback (dnsmasq)')
class VerifiedClientNames(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-dns-')
        cls.dns_port = free_udp_port()
        cls.dns = subprocess.Popen(
            [DNSMASQ, '--keep-in-foreground', '--port=%d' % cls.dns_port,
             '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts',
             '--host-record=mx1.example.test,127.0.0.9',
             '--ptr-record=10.0.0.127.in-addr.arpa,liar.example.test',
             '--pid-file=' + os.path.join(cls.tmp, 'pid'),
             '--log-facility=' + os.path.join(cls.tmp, 'log'), '--user=root'],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)
        if cls.dns.poll() is not None:
            raise RuntimeError('dnsmasq did not start: %s' % cls.dns.stderr.read())
        cls.server = Server(overrides={'dns_servers': '127.0.0.1:%d' % cls.dns_port})

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.server.cleanup()
        cls.dns.terminate()
        cls.dns.wait(5)
        shutil.rmtree(cls.tmp, ignore_errors=True)

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
        self.assertIn(b'(mx1.example.test [127.0.0.9])', mail.split(b'\n\t')[0])
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
