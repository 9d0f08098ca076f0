"""test_outbound_tls.py - outbound TLS that an attacker on the path cannot strip
(issue 14): the downgrade memory, DANE, MTA-STS, TLS-RPT.

Real components on loopback: dnsmasq (dnslab.py) serves the *.test names, the
receivers are scripted SMTP servers (fakesmtp.py) with certificates from a test
CA the test makes (tlslab.py), the sender is relayguard trusting that CA.
"""
import email
import email.policy
import gzip
import http.server
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import fakesmtp
import harness
import test_abuse  # its Redis (a module attribute, so its tests are not collected twice)
from danelab import DaneLab, spki_sha256, cert_sha256, require_dane_tools
from dnslab import DnsLab, require_dnsmasq
from harness import Server, run_cli, require
from test_outbound import send, free_port_on
from tlslab import TestCA

MX_IP = '127.0.0.41'


class Receiver(fakesmtp.Policy):
    """Takes every recipient of fake.test; offers STARTTLS while starttls is True."""
    starttls = True

    def rcpt(self, sess, path):
        return '250 2.1.5 Ok'


def start_receiver_lab(test):
    """test.tmp, test.ca (a test CA), test.policy and test.rcv (a Receiver at
    MX_IP with a certificate for mx.fake.test), test.dns (fake.test's MX)."""
    test.tmp = tempfile.mkdtemp(prefix='relayguard-outtls-')
    test.addCleanup(shutil.rmtree, test.tmp, True)
    os.chmod(test.tmp, 0o755)  # the server reads the CA as mail_owner
    test.ca = TestCA(test.tmp)
    test.policy = Receiver()
    test.rcv = fakesmtp.FakeSMTP(test.policy, certs=test.ca.issue('mx.fake.test'), host=MX_IP)
    test.addCleanup(test.rcv.stop)
    test.dns = DnsLab(mx={'fake.test': [(10, 'mx.fake.test')]}, hosts={'mx.fake.test': [MX_IP]})
    test.addCleanup(test.dns.cleanup)
    test.dns.start()


class DowngradeMemory(unittest.TestCase):
    """A receiver that first offers STARTTLS with a certificate the sender can
    verify, then stops offering it (what an attacker deleting 250-STARTTLS does)."""

    def setUp(self):
        require_dnsmasq()
        start_receiver_lab(self)
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

    def test_a_memory_full_of_expired_domains_still_learns(self):
        """100000 domains last seen long ago (the memory's limit) in the file:
        they are past smtp_tls_memory_lifetime and go at start-up, so
        fake.test is learnt and a later stripped STARTTLS is refused."""
        self.snd.stop()
        path = os.path.join(self.snd.queue_dir, 'tls-memory')
        with open(path, 'w') as f:
            f.write('# relayguard tls-memory 1\n' + ''.join(
                'd%d.filler.test plain 1000 1000\n' % i for i in range(100000)))
        st = os.stat(self.snd.queue_dir)
        os.chown(path, st.st_uid, st.st_gid)
        self.snd.start()
        qid = send(self.snd, ['a@fake.test'], 'Subject: one\n\nfirst')
        self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s .*status=sent' % qid),
                             self.snd.tail(20))
        self.assertRegex(self.memory('list').stdout, r'(?m)^fake\.test verified since')
        self.snd.stop()  # no cached connection: the next mail opens a new session
        self.policy.starttls = False
        self.snd.start()
        qid = send(self.snd, ['b@fake.test'], 'Subject: two\n\nsecond')
        log = self.snd.wait_log(r'(deferred|delivered) queue=%s ' % qid, timeout=10)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'deferred queue=%s .*dsn=4\.7\.5' % qid)
        self.assertEqual(self.plain_mail_commands(), [])

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
        self.snd.stop()  # no cached TLS connection: the next delivery sees no STARTTLS
        self.policy.starttls = False
        self.snd.start()
        qid = send(self.snd, ['b@fake.test'], 'Subject: two\n\nsecond')
        log = self.snd.wait_log(r'delivered queue=%s ' % qid)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'delivered queue=%s .*tls=none' % qid)

    def test_a_domain_without_mta_sts_is_asked_once(self):
        """MTA-STS is on by default: the missing _mta-sts record is remembered
        for its negative TTL, not asked again for every message."""
        for n in range(2):
            time.sleep(3.5 * n)  # the cached connection (2 s) closes: a new delivery pass
            qid = send(self.snd, ['a@fake.test'], 'Subject: %d\n\nhi' % n)
            self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s ' % qid),
                                 self.snd.tail(20))
            # its own connection, so its own routing (a reused one skips it)
            self.assertIsNotNone(self.snd.wait_log(r'smtp-connected queue=%s ' % qid))
        asked = re.findall(r'query\[TXT\] _mta-sts\.fake\.test ', self.dns.log())
        self.assertEqual(len(asked), 1, self.dns.log())

    def test_forget_unknown_domain_and_bad_arguments(self):
        p = self.memory('forget', 'nothing.test')
        self.assertEqual(p.returncode, 1)
        self.assertIn('nothing.test is not remembered', p.stderr)
        p = self.memory('forget', 'bad..name')
        self.assertEqual(p.returncode, 64)
        p = self.memory('list')
        self.assertEqual((p.returncode, p.stdout), (0, 'no destination domain remembered: the TLS downgrade memory is empty\n'), p.stderr)

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
        self.assertEqual(p.stdout, 'no destination domain remembered: the TLS downgrade memory is empty\n')


@harness.requires(test_abuse.REDIS is not None, 'redis-server', 'a real Redis for shared_state')
class SharedDowngradeMemory(unittest.TestCase):
    """Two senders sharing one Redis (shared_state): what A learnt about a
    domain's TLS protects B's mail too, though B never delivered there."""

    def setUp(self):
        require_dnsmasq()
        self.redis = test_abuse.Redis()
        self.addCleanup(self.redis.cleanup)
        start_receiver_lab(self)
        o = {'default_transport': 'smtp', 'dns_servers': self.dns.servers,
             'smtpd_peername_lookup': 'no', 'smtp_tcp_port': str(self.rcv.port),
             'smtp_tls_CAfile': self.ca.cert, 'minimal_backoff_time': '1s',
             'maximal_backoff_time': '2s', 'queue_run_delay': '1s',
             'smtp_tls_memory_lifetime': '2d',
             'shared_state': 'redis://127.0.0.1:%d/0' % self.redis.port}
        self.a, self.b = Server(overrides=o), Server(overrides=o)
        for srv in (self.a, self.b):
            self.addCleanup(srv.cleanup)
            self.addCleanup(srv.stop)

    def memory(self, srv):
        p = run_cli(['tls-memory', 'list', '-c', srv.config_path])
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def wait_memory(self, srv, pattern):
        deadline = time.time() + 10
        while time.time() < deadline:
            if re.search(pattern, self.memory(srv)):
                return
            time.sleep(0.1)
        self.fail('%s never in %r' % (pattern, self.memory(srv)))

    def publish(self, text):
        test_abuse.redis_cmd(self.redis.port, 'PUBLISH', 'rg:lockout:0', text)

    def test_a_raise_on_one_host_refuses_a_downgrade_on_another(self):
        for bad in ('tls evil.test plain', 'tls bad..name.test verified',
                    'tls evil.test verified extra', 'tls evil\r\n.test verified',
                    'tls evil.test Verified', 'tls ' + 'x' * 700 + ' verified'):
            self.publish(bad)  # ignored: B remembers none of them
        qid = send(self.a, ['a@fake.test'], 'Subject: one\n\nfirst')
        self.assertIsNotNone(self.a.wait_log(
            r'smtp-connected queue=%s .*tls="TLSv1\.[23] .* verified"' % qid), self.a.tail(20))
        self.assertIsNotNone(self.a.wait_log(r'delivered queue=%s .*status=sent' % qid))
        # B hears it, and so would a host that was down: the key outlives the message
        self.assertIsNotNone(self.b.wait_log(
            r'tls-memory-shared domain=fake\.test level=verified'), self.b.tail(20))
        self.assertRegex(self.memory(self.b), r'\Afake\.test verified since \S+ last \S+\n\Z')
        self.assertEqual(test_abuse.redis_cmd(self.redis.port, 'GET', 'rg:tls:fake.test'),
                         b'$8\r\nverified\r\n')
        ttl = int(test_abuse.redis_cmd(self.redis.port, 'TTL', 'rg:tls:fake.test')[1:])
        self.assertTrue(0 < ttl <= 2 * 86400, ttl)
        # a lower level from Redis lowers nothing (sync.test: everything before it was read)
        self.publish('tls fake.test tls')
        self.publish('tls sync.test tls')
        self.wait_memory(self.b, r'(?m)^sync\.test tls since')
        self.assertRegex(self.memory(self.b), r'(?m)^fake\.test verified since')
        # B never delivered to fake.test, yet a stripped STARTTLS is refused
        self.policy.starttls = False
        qid = send(self.b, ['b@fake.test'], 'Subject: two\n\nsecond')
        log = self.b.wait_log(r'deferred queue=%s .*dsn=4\.7\.5' % qid)
        self.assertIsNotNone(log, self.b.tail(20))
        self.assertRegex(log, r'tls-downgrade-refused queue=%s domain=fake\.test' % qid)
        with self.rcv.lock:
            plain = [c for s in self.rcv.sessions if not s['tls'] for c in s['commands']
                     if c.upper().startswith('MAIL')]
        self.assertEqual(plain, [])
        # what B heard is kept with its queue like anything it learnt itself
        self.b.stop()
        with open(os.path.join(self.b.queue_dir, 'tls-memory')) as f:
            self.assertRegex(f.read(), r'(?m)^fake\.test verified \d+ \d+$')


class Dane(unittest.TestCase):
    """DANE (RFC 7672) against Debian's unbound validating signed test zones:
    each domain has its own MX host on its own loopback address, all receivers
    on one port (the TLSA name has it: _PORT._tcp.mx...)."""
    IPS = {'ok': '127.0.0.51', 'wrong': '127.0.0.52', 'ta': '127.0.0.53',
           'plain': '127.0.0.54', 'bogus': '127.0.0.55', 'big': '127.0.0.58',
           'strip': '127.0.0.59'}

    @classmethod
    def setUpClass(cls):
        require_dane_tools()
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-dane-')
        os.chmod(cls.tmp, 0o755)
        ca = TestCA(cls.tmp)
        cls.port = free_port_on(*cls.IPS.values())
        names = {'ok': 'mx.dane.test', 'wrong': 'mx.wrong.dane.test', 'ta': 'mx.ta.dane.test',
                 'plain': 'mx.plain.test', 'bogus': 'mx.bogus.dane.test',
                 'big': 'mx.big.dane.test', 'strip': 'mx.strip.dane.test'}
        certs = {k: fakesmtp.make_cert(tempfile.mkdtemp(dir=cls.tmp)) for k in names}
        leaf, key = ca.issue(names['ta'])
        certs['ta'] = (ca.chain(leaf), key)  # DANE-TA: the chain must carry the CA
        cls.rcv = {}
        for k, ip in cls.IPS.items():
            cls.rcv[k] = fakesmtp.FakeSMTP(Receiver(), certs=certs[k], host=ip, port=cls.port)
            cls.addClassCleanup(cls.rcv[k].stop)
        tlsa = '_%d._tcp.mx' % cls.port
        signed = [
            '@ MX 10 mx', 'mx A ' + cls.IPS['ok'],
            '%s TLSA 3 1 1 %s' % (tlsa, spki_sha256(certs['ok'][0])),
            'wrong MX 10 mx.wrong', 'mx.wrong A ' + cls.IPS['wrong'],
            '%s.wrong TLSA 3 1 1 %s' % (tlsa, '00' * 32),
            'ta MX 10 mx.ta', 'mx.ta A ' + cls.IPS['ta'],
            '%s.ta TLSA 2 0 1 %s' % (tlsa, cert_sha256(ca.cert)),
            'bogus MX 10 mx.bogus', 'mx.bogus A ' + cls.IPS['bogus'],
            '%s.bogus TLSA 3 1 1 %s' % (tlsa, spki_sha256(certs['bogus'][0])),
            # a 2100-byte full-certificate record (3 0 0) that matches nothing
            'big MX 10 mx.big', 'mx.big A ' + cls.IPS['big'],
            '%s.big TLSA 3 0 0 30%s' % (tlsa, 'ab' * 2099),
            'strip MX 10 mx.strip', 'mx.strip A ' + cls.IPS['strip'],
            '%s.strip TLSA 3 1 1 %s' % (tlsa, spki_sha256(certs['strip'][0])),
        ]
        unsigned = ['@ MX 10 mx', 'mx A ' + cls.IPS['plain'],
                    '%s TLSA 3 1 1 %s' % (tlsa, '00' * 32)]  # never trusted: not signed
        cls.rcv['strip'].policy.starttls = False  # an attacker deletes 250-STARTTLS
        cls.lab = DaneLab(signed={'dane.test': signed}, unsigned={'plain.test': unsigned},
                          bogus=['%s.bogus.dane.test' % tlsa])
        cls.addClassCleanup(cls.lab.cleanup)
        cls.lab.start()
        # smtp_dns_support_level = dnssec makes dane the default level
        cls.snd = Server(overrides={
            'default_transport': 'smtp', 'dns_servers': cls.lab.servers,
            'smtp_dns_support_level': 'dnssec', 'smtpd_peername_lookup': 'no',
            'smtp_tcp_port': str(cls.port), 'smtp_tls_CAfile': ca.cert,
            'minimal_backoff_time': '1h', 'queue_run_delay': '1h'})
        cls.addClassCleanup(cls.snd.cleanup)
        cls.addClassCleanup(cls.snd.stop)

    def mail_commands(self, key):
        r = self.rcv[key]
        with r.lock:
            return [c for s in r.sessions for c in s['commands'] if c.upper().startswith('MAIL')]

    def test_tlsa_matches_delivered_dane_verified(self):
        qid = send(self.snd, ['a@dane.test'], 'Subject: dane\n\nhi')
        log = self.snd.wait_log(r'delivered queue=%s .*status=sent' % qid)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'dane queue=%s relay=mx\.dane\.test\[127\.0\.0\.51\]:%d '
                              r'result="TLSA records validated: DANE required"' % (qid, self.port))
        self.assertRegex(log, r'delivered queue=%s .*tls="TLSv1\.[23] \S+ dane verified"' % qid)

    def test_dane_ta_with_the_issuing_ca(self):
        """Usage 2 (DANE-TA), selector 0, matching 1: the CA's certificate in DNS."""
        qid = send(self.snd, ['a@ta.dane.test'], 'Subject: ta\n\nhi')
        log = self.snd.wait_log(r'delivered queue=%s .*status=sent' % qid)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'delivered queue=%s .*tls="TLSv1\.[23] \S+ dane verified"' % qid)

    def test_tlsa_mismatch_is_deferred_and_nothing_sent(self):
        qid = send(self.snd, ['a@wrong.dane.test'], 'Subject: wrong\n\nhi')
        log = self.snd.wait_log(r'deferred queue=%s .*dsn=4\.7\.5' % qid)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertIn('DANE: mx.wrong.dane.test[127.0.0.52]:%d did not match its TLSA records'
                      % self.port, log)
        self.assertEqual(self.mail_commands('wrong'), [])

    def test_tlsa_lookup_failure_defers_without_connecting(self):
        """A bogus TLSA answer (SERVFAIL from the validator): RFC 7672 2.2, no delivery."""
        qid = send(self.snd, ['a@bogus.dane.test'], 'Subject: bogus\n\nhi')
        log = self.snd.wait_log(r'deferred queue=%s .*dsn=4\.7\.5' % qid, timeout=15)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertIn('DANE: TLSA lookup for mx.bogus.dane.test', log)
        self.assertEqual(self.rcv['bogus'].sessions, [])

    def test_big_tlsa_record_is_used_not_skipped(self):
        """A record larger than any fixed buffer still counts: the peer does not
        match it, so no mail (once it was skipped: unauthenticated TLS, delivered)."""
        mark = self.snd.mark()
        qid = send(self.snd, ['a@big.dane.test'], 'Subject: big\n\nhi')
        log = self.snd.wait_log(r'(deferred|delivered) queue=%s ' % qid, since=mark, timeout=15)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'deferred queue=%s .*dsn=4\.7\.5' % qid)
        self.assertIn('did not match its TLSA records', log)
        self.assertEqual(self.mail_commands('big'), [])

    def test_stripped_starttls_is_deferred_as_not_offered_not_as_mismatch(self):
        mark = self.snd.mark()
        qid = send(self.snd, ['a@strip.dane.test'], 'Subject: strip\n\nhi')
        log = self.snd.wait_log(r'(deferred|delivered) queue=%s ' % qid, since=mark, timeout=15)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'deferred queue=%s .*dsn=4\.7\.5' % qid)
        self.assertIn('TLS is required, but was not offered', log)
        self.assertNotIn('did not match its TLSA records', log)
        self.assertEqual(self.mail_commands('strip'), [])

    def test_unsigned_zone_is_opportunistic(self):
        """The same wrong TLSA as wrong.dane.test, but unsigned: not DANE."""
        qid = send(self.snd, ['a@plain.test'], 'Subject: plain\n\nhi')
        log = self.snd.wait_log(r'delivered queue=%s .*status=sent' % qid)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'dane queue=%s .*result="MX records not DNSSEC-validated: '
                              r'opportunistic TLS"' % qid)
        self.assertRegex(log, r'delivered queue=%s .*tls="TLSv1\.[23] \S+ unverified' % qid)


class DanePolicyMaps(unittest.TestCase):
    """dane for one destination through smtp_tls_policy_maps; may elsewhere."""

    def test_policy_map_dane_for_one_domain(self):
        require_dane_tools()
        tmp = tempfile.mkdtemp(prefix='relayguard-dane-')
        os.chmod(tmp, 0o755)
        port = free_port_on('127.0.0.56', '127.0.0.57')
        certs = fakesmtp.make_cert(tmp)
        rcv = [fakesmtp.FakeSMTP(Receiver(), certs=certs, host=ip, port=port)
               for ip in ('127.0.0.56', '127.0.0.57')]
        for r in rcv:
            self.addCleanup(r.stop)
        lab = DaneLab(signed={'dane.test': [
            'one MX 10 mx.one', 'mx.one A 127.0.0.56', '_%d._tcp.mx.one TLSA 3 1 1 %s'
            % (port, '00' * 32), 'two MX 10 mx.two', 'mx.two A 127.0.0.57',
            '_%d._tcp.mx.two TLSA 3 1 1 %s' % (port, '00' * 32)]})
        self.addCleanup(lab.cleanup)
        lab.start()
        snd = Server(overrides={
            'default_transport': 'smtp', 'dns_servers': lab.servers,
            'smtpd_peername_lookup': 'no', 'smtp_tcp_port': str(port),
            'smtp_tls_policy_maps': 'inline:{one.dane.test=dane}',
            'minimal_backoff_time': '1h', 'queue_run_delay': '1h'})
        self.addCleanup(snd.cleanup)
        self.addCleanup(snd.stop)
        q1 = send(snd, ['a@one.dane.test'], 'Subject: one\n\nhi')
        q2 = send(snd, ['a@two.dane.test'], 'Subject: two\n\nhi')
        self.assertIsNotNone(snd.wait_log(r'deferred queue=%s .*dsn=4\.7\.5' % q1), snd.tail(20))
        self.assertIsNotNone(snd.wait_log(r'delivered queue=%s .*status=sent' % q2), snd.tail(20))


class PolicyServer:
    """HTTPS on loopback serving /.well-known/mta-sts.txt (text/plain) with a
    certificate from the test CA; .policy is what it serves (None: 404)."""

    def __init__(self, ip, port, certs):
        self.policy = None
        self.hits = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.hits += 1
                body = owner.policy
                if self.path != '/.well-known/mta-sts.txt' or body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header('Content-Type', 'text/plain')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((ip, port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*certs)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def sts_policy(mode, mx, max_age=86400):
    return 'version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n' % (
        mode, ''.join('mx: %s\r\n' % m for m in mx), max_age)


class MtaSts(unittest.TestCase):
    """MTA-STS (RFC 8461): dnsmasq publishes _mta-sts.sts.test and the MX, a
    Python HTTPS server with a test-CA certificate serves the policy, the
    receiver has a test-CA certificate for mx.sts.test."""
    POLICY_IP, MX_IP = '127.0.0.61', '127.0.0.62'

    def setUp(self):
        require_dnsmasq()
        self.tmp = tempfile.mkdtemp(prefix='relayguard-sts-')
        os.chmod(self.tmp, 0o755)
        ca = TestCA(self.tmp)
        self.rcv = fakesmtp.FakeSMTP(Receiver(), certs=ca.issue('mx.sts.test'), host=self.MX_IP)
        self.addCleanup(self.rcv.stop)
        self.https_port = free_port_on(self.POLICY_IP)
        self.web = PolicyServer(self.POLICY_IP, self.https_port, ca.issue('mta-sts.sts.test'))
        self.addCleanup(self.web.stop)
        self.dns = DnsLab(mx={'sts.test': [(10, 'mx.sts.test')]},
                          hosts={'mx.sts.test': [self.MX_IP], 'mta-sts.sts.test': [self.POLICY_IP]})
        self.addCleanup(self.dns.cleanup)
        self.set_txt('1')
        self.snd = Server(overrides={
            'default_transport': 'smtp', 'dns_servers': self.dns.servers,
            'smtpd_peername_lookup': 'no', 'smtp_tcp_port': str(self.rcv.port),
            'smtp_tls_CAfile': ca.cert, 'smtp_mta_sts_CAfile': ca.cert,
            'smtp_mta_sts_https_port': str(self.https_port), 'smtp_mta_sts_recheck_time': '0',
            'smtp_tls_memory_lifetime': '0',  # MTA-STS alone decides here
            'minimal_backoff_time': '1h', 'queue_run_delay': '1h'})
        self.addCleanup(self.snd.cleanup)
        self.addCleanup(self.snd.stop)

    def set_txt(self, policy_id):
        """(Re)start dnsmasq publishing "v=STSv1; id=POLICY_ID;" (None: no record)."""
        self.dns.extra = [] if policy_id is None else [
            '--txt-record=_mta-sts.sts.test,v=STSv1; id=%s;' % policy_id]
        if self.dns.proc is not None:
            self.dns.restart()
        else:
            self.dns.start()

    def flush(self):
        p = run_cli(['queue', 'flush', '-c', self.snd.config_path])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_a_cache_full_of_expired_policies_still_takes_a_new_enforce(self):
        """100000 long-expired policies in the cache file (the cache's limit):
        they go at start-up, quickly, and sts.test's enforce policy applies:
        STARTTLS stripped, so nothing in clear."""
        self.snd.stop()
        path = os.path.join(self.snd.queue_dir, 'mta-sts')
        with open(path, 'w') as f:
            f.write('# relayguard mta-sts 1\n' + ''.join(
                'd%d.filler.test 1 enforce 1 1000 1000 mx.filler.test\n' % i
                for i in range(100000)))
        st = os.stat(self.snd.queue_dir)
        os.chown(path, st.st_uid, st.st_gid)
        t = time.time()
        self.snd.start()
        self.assertLess(time.time() - t, 30)
        self.rcv.policy.starttls = False
        self.web.policy = sts_policy('enforce', ['mx.sts.test'])
        qid = send(self.snd, ['a@sts.test'], 'Subject: sts\n\nhi')
        log = self.snd.wait_log(r'(deferred|delivered) queue=%s ' % qid, timeout=15)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'deferred queue=%s .*dsn=4\.7\.5' % qid)

    def test_enforce_refuses_a_certificate_naming_the_mx_only_in_its_cn(self):
        """RFC 8461 4.2 (RFC 6125): the MX name must be a subjectAltName."""
        ca = TestCA.__new__(TestCA)  # the setUp CA, from its files
        ca.dir = self.tmp
        ca.cert, ca.key = os.path.join(self.tmp, 'ca.pem'), os.path.join(self.tmp, 'ca-key.pem')
        base = os.path.join(self.tmp, 'cn-only')
        subprocess.run(['openssl', 'req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout',
                        base + '-key.pem', '-out', base + '.csr', '-subj', '/CN=mx.sts.test'],
                       check=True, capture_output=True)
        subprocess.run(['openssl', 'x509', '-req', '-in', base + '.csr', '-CA', ca.cert,
                        '-CAkey', ca.key, '-set_serial', '99', '-days', '2',
                        '-out', base + '.pem'], check=True, capture_output=True)
        self.rcv.stop()
        self.rcv = fakesmtp.FakeSMTP(Receiver(), certs=(base + '.pem', base + '-key.pem'),
                                     host=self.MX_IP, port=self.rcv.port)
        self.addCleanup(self.rcv.stop)
        self.web.policy = sts_policy('enforce', ['mx.sts.test'])
        qid = send(self.snd, ['a@sts.test'], 'Subject: sts\n\nhi')
        log = self.snd.wait_log(r'(deferred|delivered) queue=%s ' % qid, timeout=15)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'deferred queue=%s ' % qid)

    def test_enforce_with_matching_mx_and_verified_certificate(self):
        self.web.policy = sts_policy('enforce', ['mx.sts.test'])
        qid = send(self.snd, ['a@sts.test'], 'Subject: sts\n\nhi')
        log = self.snd.wait_log(r'delivered queue=%s .*status=sent' % qid)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'mta-sts-policy domain=sts\.test id=1 mode=enforce '
                              r'max_age=86400 mx=mx\.sts\.test')
        self.assertRegex(log, r'delivered queue=%s .*tls="TLSv1\.[23] \S+ verified"' % qid)

    def test_enforce_mx_not_in_policy_is_refused_then_policy_change_by_id(self):
        self.web.policy = sts_policy('enforce', ['*.elsewhere.test'])
        mark = self.snd.mark()
        qid = send(self.snd, ['a@sts.test'], 'Subject: sts\n\nhi')
        log = self.snd.wait_log(r'deferred queue=%s .*dsn=4\.7\.5' % qid, since=mark)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertIn('MTA-STS policy of sts.test (enforce, id 1): no MX host matches its mx '
                      'patterns (*.elsewhere.test)', log)
        self.assertRegex(log, r'mta-sts-mx-refused queue=%s domain=sts\.test mode=enforce id=1 '
                              % qid)
        self.assertEqual(self.rcv.sessions, [])
        # the same id: the cached policy, no new fetch even though the file changed
        hits = self.web.hits
        self.web.policy = sts_policy('enforce', ['mx.sts.test'])
        self.flush()
        self.assertIsNotNone(self.snd.wait_log(r'deferred queue=%s .*dsn=4\.7\.5' % qid,
                                               since=mark, count=2), self.snd.tail(20))
        self.assertEqual(self.web.hits, hits)
        # a new id: fetched again, and now the MX matches
        self.set_txt('2')
        self.flush()
        log = self.snd.wait_log(r'delivered queue=%s .*status=sent' % qid, since=mark)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'mta-sts-policy domain=sts\.test id=2 mode=enforce')
        self.assertEqual(self.web.hits, hits + 1)

    def test_enforce_refuses_a_certificate_that_does_not_verify(self):
        self.rcv.stop()
        self.rcv = fakesmtp.FakeSMTP(Receiver(), certs=fakesmtp.make_cert(self.tmp),
                                     host=self.MX_IP, port=self.rcv.port)
        self.addCleanup(self.rcv.stop)
        self.web.policy = sts_policy('enforce', ['mx.sts.test'])
        qid = send(self.snd, ['a@sts.test'], 'Subject: sts\n\nhi')
        log = self.snd.wait_log(r'deferred queue=%s .*dsn=4\.7\.5' % qid)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertIn('MTA-STS policy of sts.test (enforce, id 1) needs verified TLS', log)
        self.assertEqual([c for s in self.rcv.sessions for c in s['commands']
                          if c.startswith('MAIL')], [])

    def test_testing_mode_delivers_and_reports(self):
        self.web.policy = sts_policy('testing', ['*.elsewhere.test'])
        qid = send(self.snd, ['a@sts.test'], 'Subject: sts\n\nhi')
        log = self.snd.wait_log(r'delivered queue=%s .*status=sent' % qid)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'mta-sts-testing-failure queue=%s domain=sts\.test mode=testing '
                              r'id=1 .*detail="MX host mx\.sts\.test is not in the policy"' % qid)

    def test_cache_survives_restarts_and_expires(self):
        # max_age leaves room for two restarts on a busy machine; the wait below
        # is measured from the fetch time the cache file records
        self.web.policy = sts_policy('enforce', ['*.elsewhere.test'], max_age=10)
        qid = send(self.snd, ['a@sts.test'], 'Subject: sts\n\nhi')
        self.assertIsNotNone(self.snd.wait_log(r'deferred queue=%s .*dsn=4\.7\.5' % qid),
                             self.snd.tail(20))
        # no web server any more: the policy comes from the cache file after a restart
        self.web.stop()
        self.snd.stop()
        with open(os.path.join(self.snd.queue_dir, 'mta-sts')) as f:
            line = re.search(r'(?m)^sts\.test 1 enforce 10 (\d+) \d+ \*\.elsewhere\.test$',
                             f.read())
        self.assertIsNotNone(line)
        fetched = int(line.group(1))
        self.set_txt('3')  # a new id, but the fetch fails: the cached policy holds
        self.snd.start()
        mark = self.snd.mark()
        self.flush()
        log = self.snd.wait_log(r'deferred queue=%s .*dsn=4\.7\.5' % qid, since=mark)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertRegex(log, r'mta-sts-fetch-failed domain=sts\.test id=3 ')
        # after max_age the cached policy is gone: no policy, plain delivery rules
        time.sleep(max(0.0, fetched + 11 - time.time()))
        self.flush()
        self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s .*status=sent' % qid,
                                               since=mark), self.snd.tail(20))


# RFC 8460 4.4 (report JSON), as a JSON Schema; 4.3 result types.
RESULT_TYPES = ['starttls-not-supported', 'certificate-host-mismatch', 'certificate-expired',
                'certificate-not-trusted', 'validation-failure', 'tlsa-invalid', 'dnssec-invalid',
                'dane-required', 'sts-policy-fetch-error', 'sts-policy-invalid',
                'sts-webpki-invalid']
TLSRPT_SCHEMA = {
    'type': 'object',
    'required': ['organization-name', 'date-range', 'contact-info', 'report-id', 'policies'],
    'properties': {
        'organization-name': {'type': 'string'},
        'date-range': {'type': 'object', 'required': ['start-datetime', 'end-datetime'],
                       'properties': {'start-datetime': {'type': 'string', 'format': 'date-time'},
                                      'end-datetime': {'type': 'string', 'format': 'date-time'}}},
        'contact-info': {'type': 'string'},
        'report-id': {'type': 'string'},
        'policies': {'type': 'array', 'minItems': 1, 'items': {
            'type': 'object', 'required': ['policy', 'summary'],
            'properties': {
                'policy': {'type': 'object', 'required': ['policy-type', 'policy-domain'],
                           'properties': {
                               'policy-type': {'enum': ['tlsa', 'sts', 'no-policy-found']},
                               'policy-string': {'type': 'array', 'items': {'type': 'string'}},
                               'policy-domain': {'type': 'string'},
                               'mx-host': {'type': 'array', 'items': {'type': 'string'}}}},
                'summary': {'type': 'object', 'required': ['total-successful-session-count',
                                                           'total-failure-session-count'],
                            'properties': {
                                'total-successful-session-count': {'type': 'integer',
                                                                   'minimum': 0},
                                'total-failure-session-count': {'type': 'integer',
                                                                'minimum': 0}}},
                'failure-details': {'type': 'array', 'items': {
                    'type': 'object', 'required': ['result-type', 'failed-session-count'],
                    'properties': {
                        'result-type': {'enum': RESULT_TYPES},
                        'sending-mta-ip': {'type': 'string'},
                        'receiving-ip': {'type': 'string'},
                        'receiving-mx-hostname': {'type': 'string'},
                        'receiving-mx-helo': {'type': 'string'},
                        'failed-session-count': {'type': 'integer', 'minimum': 1},
                        'additional-information': {'type': 'string'},
                        'failure-reason-code': {'type': 'string'}}}}}}},
    },
}


class TlsRpt(MtaSts):
    """TLS-RPT (RFC 8460) for the MTA-STS domain: the report goes, through the
    sender's own queue, to the rua= of _smtp._tls.sts.test: a relayguard
    receiver's Maildir."""
    REPORT_IP = '127.0.0.63'

    def setUp(self):
        try:
            import jsonschema  # noqa: F401
        except ImportError:
            require(False, 'python3-jsonschema', 'validating the report against RFC 8460 4.4')
        port = free_port_on(self.REPORT_IP)
        self.reports = Server(overrides={
            'myhostname': 'mx.report.test', 'smtpd_listen': '%s:%d' % (self.REPORT_IP, port),
            'mydestination': 'report.test', 'local_recipient_maps': 'inline:{tlsrpt@report.test}'})
        self.addCleanup(self.reports.cleanup)
        self.addCleanup(self.reports.stop)
        # one rua: dnsmasq makes each comma-separated part a string of its own
        # (lists of rua URIs are in the unit tables)
        self.extra_txt = ['--txt-record=_smtp._tls.sts.test,v=TLSRPTv1; '
                          'rua=mailto:tlsrpt@report.test']
        self.report_port = port
        super().setUp()
        self.snd.stop()
        with open(self.snd.config_path, 'a') as f:
            f.write('transport_maps = inline:{report.test=smtp:[%s]:%d}\n' % (self.REPORT_IP, port))
        self.snd.start()

    def set_txt(self, policy_id):
        self.dns.extra = ['--txt-record=_mta-sts.sts.test,v=STSv1; id=%s;' % policy_id] + \
            getattr(self, 'extra_txt', [])
        if self.dns.proc is not None:
            self.dns.restart()
        else:
            self.dns.start()

    def report_json(self):
        files = self.reports.wait_maildir('report.test', 'tlsrpt', timeout=15)
        self.assertEqual(len(files), 1, self.snd.tail(20) + '\n---\n' + self.reports.tail(10))
        msg = email.message_from_bytes(self.reports.read_mail('report.test', 'tlsrpt', files[0]),
                                       policy=email.policy.default)
        self.assertEqual(msg.get_content_type(), 'multipart/report')
        self.assertEqual(msg.get_param('report-type'), 'tlsrpt')
        self.assertEqual(msg['TLS-Report-Domain'], 'sts.test')
        self.assertRegex(msg['Subject'], r'^Report Domain: sts\.test Submitter: mx\.relayguard\.test '
                                         r'Report-ID: <.+>$')
        parts = [p for p in msg.walk() if p.get_content_type() == 'application/tlsrpt+gzip']
        self.assertEqual(len(parts), 1)
        return json.loads(gzip.decompress(parts[0].get_payload(decode=True)))

    def test_report_arrives_and_validates(self):
        import jsonschema
        self.web.policy = sts_policy('testing', ['*.elsewhere.test'])
        qid = send(self.snd, ['a@sts.test'], 'Subject: sts\n\nhi')
        self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s .*status=sent' % qid),
                             self.snd.tail(20))
        p = run_cli(['tls-report', 'send', '--now', '-c', self.snd.config_path])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('1 TLS report on the way', p.stdout)
        report = self.report_json()
        jsonschema.validate(report, TLSRPT_SCHEMA,
                            format_checker=jsonschema.FormatChecker())
        self.assertEqual(report['organization-name'], 'mx.relayguard.test')
        policy = report['policies'][0]
        self.assertEqual(policy['policy']['policy-type'], 'sts')
        self.assertEqual(policy['policy']['policy-domain'], 'sts.test')
        self.assertEqual(policy['policy']['policy-string'],
                         ['version: STSv1', 'mode: testing', 'mx: *.elsewhere.test',
                          'max_age: 86400'])
        self.assertEqual(policy['summary'], {'total-successful-session-count': 1,
                                             'total-failure-session-count': 1})
        self.assertEqual(policy['failure-details'],
                         [{'result-type': 'validation-failure',
                           'receiving-mx-hostname': 'mx.sts.test', 'failed-session-count': 1}])
        # the counts start again: nothing more to report
        p = run_cli(['tls-report', 'send', '--now', '-c', self.snd.config_path])
        self.assertIn('0 TLS reports on the way', p.stdout)

    def test_no_rua_record_drops_the_report(self):
        self.extra_txt = []
        self.set_txt('1')
        self.web.policy = sts_policy('enforce', ['mx.sts.test'])
        qid = send(self.snd, ['a@sts.test'], 'Subject: sts\n\nhi')
        self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s ' % qid), self.snd.tail(20))
        p = run_cli(['tls-report', 'send', '--now', '-c', self.snd.config_path])
        self.assertIn('1 TLS report on the way', p.stdout)
        self.assertIsNotNone(self.snd.wait_log(r'tls-report-dropped domain=sts\.test reason="no '
                                               r'_smtp\._tls TXT record with rua=mailto:"'),
                             self.snd.tail(20))

    # the MtaSts tests are not run again here
    test_enforce_with_matching_mx_and_verified_certificate = None
    test_enforce_mx_not_in_policy_is_refused_then_policy_change_by_id = None
    test_enforce_refuses_a_certificate_that_does_not_verify = None
    test_testing_mode_delivers_and_reports = None
    test_cache_survives_restarts_and_expires = None


if __name__ == '__main__':
    unittest.main()
