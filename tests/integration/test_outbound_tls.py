"""test_outbound_tls.py - outbound TLS that an attacker on the path cannot strip
(issue 14): the downgrade memory.

Real components on loopback: dnsmasq (dnslab.py) serves the *.test names, the
receivers are scripted SMTP servers (fakesmtp.py) with certificates from a test
CA the test makes (tlslab.py), the sender is relayguard trusting that CA.
"""
import os
import re
import tempfile
import time
import unittest

import fakesmtp
from dnslab import DnsLab, require_dnsmasq
from harness import Server, run_cli
from test_outbound import send
from tlslab import TestCA

MX_IP = '127.0.0.41'


class Receiver(fakesmtp.Policy):
    """Takes every recipient of fake.test; offers STARTTLS while starttls is True."""
    starttls = True

    def rcpt(self, sess, path):
        return '250 2.1.5 Ok'


class DowngradeMemory(unittest.TestCase):
    """A receiver that first offers STARTTLS with a certificate the sender can
    verify, then stops offering it (what an attacker deleting 250-STARTTLS does)."""

    def setUp(self):
        require_dnsmasq()
        self.tmp = tempfile.mkdtemp(prefix='relayguard-outtls-')
        os.chmod(self.tmp, 0o755)  # the server reads the CA as mail_owner
        self.ca = TestCA(self.tmp)
        self.policy = Receiver()
        self.rcv = fakesmtp.FakeSMTP(self.policy, certs=self.ca.issue('mx.fake.test'),
                                     host=MX_IP)
        self.addCleanup(self.rcv.stop)
        self.dns = DnsLab(mx={'fake.test': [(10, 'mx.fake.test')]},
                          hosts={'mx.fake.test': [MX_IP]})
        self.addCleanup(self.dns.cleanup)
        self.dns.start()
        self.snd = Server(overrides={
            'default_transport': 'smtp', 'dns_servers': self.dns.servers,
            'smtpd_peername_lookup': 'no', 'smtp_tcp_port': str(self.rcv.port),
            'smtp_tls_CAfile': self.ca.cert, 'minimal_backoff_time': '1s',
            'maximal_backoff_time': '2s', 'queue_run_delay': '1s'})
        self.addCleanup(self.snd.cleanup)
        self.addCleanup(self.snd.stop)

    def memory(self, *args):
        p = run_cli(['tls-memory'] + list(args) + ['-c', self.snd.config_path])
        return p

    def plain_mail_commands(self):
        """MAIL commands the receiver got outside TLS."""
        with self.rcv.lock:
            return [c for s in self.rcv.sessions if not s['tls'] for c in s['commands']
                    if c.upper().startswith('MAIL')]

    def test_verified_tls_then_no_starttls_is_deferred_not_sent_in_clear(self):
        qid = send(self.snd, ['a@fake.test'], 'Subject: one\n\nfirst')
        self.assertIsNotNone(self.snd.wait_log(
            r'smtp-connected queue=%s .*tls="TLSv1\.[23] .* verified"' % qid), self.snd.tail(20))
        self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s .*status=sent' % qid))
        p = self.memory('list')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r'(?m)^fake\.test verified since \S+ last \S+$')
        # the memory is on disk with the queue, and survives a restart
        self.snd.stop()
        with open(os.path.join(self.snd.queue_dir, 'tls-memory')) as f:
            self.assertRegex(f.read(), r'(?m)^fake\.test verified \d+ \d+$')
        self.policy.starttls = False
        self.snd.start()
        mark = self.snd.mark()
        qid = send(self.snd, ['b@fake.test'], 'Subject: two\n\nsecond')
        log = self.snd.wait_log(r'deferred queue=%s .*dsn=4\.7\.5' % qid, since=mark)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'tls-downgrade-refused queue=%s domain=fake\.test' % qid)
        self.assertIn('TLS downgrade refused: fake.test has offered verified TLS since', log)
        self.assertEqual(self.plain_mail_commands(), [])
        # the operator decides the domain really dropped TLS: the next try goes
        p = self.memory('forget', 'fake.test')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('forgot fake.test', p.stdout)
        self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s .*status=sent' % qid,
                                               since=mark, timeout=10), self.snd.tail(20))
        self.assertEqual(len(self.plain_mail_commands()), 1)
        p = self.memory('list')
        self.assertRegex(p.stdout, r'(?m)^fake\.test plain since')

    def test_unverified_tls_is_remembered_but_does_not_block(self):
        """Only verified TLS raises the bar: a self-signed receiver that drops
        STARTTLS still gets its mail (opportunistic, as before)."""
        self.rcv.stop()
        self.rcv = fakesmtp.FakeSMTP(self.policy, certs=fakesmtp.make_cert(self.tmp),
                                     host=MX_IP)
        self.addCleanup(self.rcv.stop)
        self.snd.stop()
        with open(self.snd.config_path, 'a') as f:
            f.write('smtp_tcp_port = %d\n' % self.rcv.port)
        self.snd.start()
        qid = send(self.snd, ['a@fake.test'], 'Subject: one\n\nfirst')
        self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s ' % qid), self.snd.tail(20))
        self.assertRegex(self.memory('list').stdout, r'(?m)^fake\.test tls since')
        time.sleep(2.5)  # the cached TLS connection expires
        self.policy.starttls = False
        qid = send(self.snd, ['b@fake.test'], 'Subject: two\n\nsecond')
        self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s ' % qid), self.snd.tail(20))

    def test_forget_unknown_domain_and_bad_arguments(self):
        p = self.memory('forget', 'nothing.test')
        self.assertEqual(p.returncode, 1)
        self.assertIn('nothing.test is not remembered', p.stderr)
        p = self.memory('forget', 'bad..name')
        self.assertEqual(p.returncode, 64)
        p = self.memory('list')
        self.assertEqual((p.returncode, p.stdout), (0, ''), p.stderr)

    def test_list_and_forget_without_a_running_server(self):
        qid = send(self.snd, ['a@fake.test'], 'Subject: one\n\nfirst')
        self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s ' % qid), self.snd.tail(20))
        self.snd.stop()
        p = self.memory('list')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r'(?m)^fake\.test verified ')
        p = self.memory('forget', 'fake.test')
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.memory('list')
        self.assertEqual(p.stdout, '')


if __name__ == '__main__':
    unittest.main()
