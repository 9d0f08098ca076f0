"""test_outbound.py - relayguard delivers to other servers: MX routing, per-recipient
results, bounces, retries, loops, transport_maps, relayhost with AUTH.

Everything is real and on loopback: a dnsmasq (dnslab.py) serves the *.test zones,
the sender is one relayguard, the receivers are other relayguard instances listening
on 127.0.0.2x at the port the sender delivers to (smtp_tcp_port). Mail comes from a
trusted client (127.0.0.1); bounces go back to postmaster@localhost on the sender.
"""
import email
import email.policy
import os
import re
import socket
import time
import unittest

import tempfile
import threading

import fakesmtp
from dnslab import DnsLab, require_dnsmasq
from harness import Server, smtp_session, free_port, run_cli, TRUSTED
from test_msa import make_passwd

QUEUED = re.compile(r'^2\.0\.0 Ok: queued as ([0-9A-F]{16})$')
RECEIVER_IP = '127.0.0.21'
LATER_IP = '127.0.0.24'   # nothing listens there until a test starts a receiver
DEAD_IP = '127.0.0.25'    # never listens: connection refused
SENDER_NAME = 'mx.relayguard.test'
USERS = ('alice@dest.test', 'bob@dest.test', 'carol@two.test', 'dave@special.test',
         'erin@later.test')


def free_port_on(*hosts):
    """A port free on every one of hosts."""
    for _ in range(50):
        port = free_port(hosts[0])
        ok = True
        for h in hosts[1:]:
            s = socket.socket()
            try:
                s.bind((h, port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    raise RuntimeError('no common free port')


def receiver(ip, port, **overrides):
    params = {
        'myhostname': 'mx.dest.test',
        'smtpd_listen': '%s:%d' % (ip, port),
        'mydestination': 'dest.test two.test special.test later.test',
        'local_recipient_maps': 'inline:{%s}' % ', '.join(USERS),
    }
    params.update(overrides)
    return Server(overrides=params)


def send(server, rcpts, body, sender='postmaster@localhost', mail_params='', rcpt_params=None):
    """Queue a message through a trusted session; rcpt_params: {rcpt: 'NOTIFY=...'}."""
    rcpt_params = rcpt_params or {}
    lines = ['EHLO app.example.org', ('MAIL FROM:<%s> %s' % (sender, mail_params)).rstrip()]
    lines += [('RCPT TO:<%s> %s' % (r, rcpt_params.get(r, ''))).rstrip() for r in rcpts]
    stuffed = ['.' + l if l.startswith('.') else l for l in body.split('\n')]
    lines += ['DATA'] + stuffed + ['.', 'QUIT']
    replies = smtp_session(server.port, lines, source=TRUSTED)
    final = replies[4 + len(rcpts)]
    m = QUEUED.match(final[1]) if final[0] == 250 else None
    if m is None:
        raise AssertionError('not queued: %r' % (replies,))
    return m.group(1)


def in_deferred(server, qid, timeout=5):
    """Is qid in deferred/ (the file moves just after the deferral is logged)?"""
    deadline = time.time() + timeout
    while qid not in server.queue_files('deferred') and time.time() < deadline:
        time.sleep(0.05)
    return qid in server.queue_files('deferred')


def parse_dsn(data):
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == 'multipart/report', msg.get_content_type()
    status = [p for p in msg.walk() if p.get_content_type() == 'message/delivery-status']
    assert status, 'no message/delivery-status part'
    # the per-message block and then one block per recipient
    blocks = status[0].get_payload()
    return msg, blocks


class Outbound(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_dnsmasq()
        cls.port = free_port_on(RECEIVER_IP, LATER_IP, DEAD_IP, '127.0.0.26')
        cls.dns = DnsLab(
            mx={'dest.test': [(10, 'mx.dest.test')],
                'two.test': [(10, 'dead.two.test'), (20, 'mx.dest.test')],
                'later.test': [(10, 'mx.later.test')],
                'loop.test': [(10, SENDER_NAME)],
                'backup.test': [(10, 'mx1.broken.test'), (20, SENDER_NAME)],
                'noaddr.test': [(10, 'ghost.noaddr.test')]},
            hosts={'mx.dest.test': [RECEIVER_IP], 'dead.two.test': [DEAD_IP],
                   'mx.later.test': [LATER_IP], SENDER_NAME: ['127.0.0.26']},
            null_mx=['nullmx.test'],
            servfail=['broken.test'])
        # class cleanups run even when a later step of setUpClass fails
        cls.addClassCleanup(cls.dns.cleanup)
        cls.dns.start()
        cls.rcv = receiver(RECEIVER_IP, cls.port)
        cls.addClassCleanup(cls.rcv.cleanup)
        cls.addClassCleanup(cls.rcv.stop)
        cls.snd = Server(overrides={
            'default_transport': 'smtp',
            'dns_servers': cls.dns.servers,
            'smtpd_peername_lookup': 'no',
            'smtp_tcp_port': str(cls.port),
            'minimal_backoff_time': '1s',
            'maximal_backoff_time': '2s',
            'queue_run_delay': '1s',
            'transport_maps': 'inline:{special.test=smtp:[%s]:%d}' % (RECEIVER_IP, cls.port),
        })
        cls.addClassCleanup(cls.snd.cleanup)
        cls.addClassCleanup(cls.snd.stop)

    def delivered(self, user, domain, marker, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for name in self.rcv.maildir(domain, user):
                data = self.rcv.read_mail(domain, user, name)
                if marker.encode() in data:
                    return data
            time.sleep(0.05)
        self.fail('%s@%s did not get %s\nsender:\n%s\nreceiver:\n%s'
                  % (user, domain, marker, self.snd.tail(30), self.rcv.tail(20)))

    def bounce_for(self, qid, timeout=10):
        """The DSN about queue id qid in the sender's postmaster Maildir."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for name in self.snd.maildir('localhost', 'postmaster'):
                data = self.snd.read_mail('localhost', 'postmaster', name)
                if ('X-Relayguard-Queue-ID: %s' % qid).encode() in data:
                    return data
            time.sleep(0.05)
        self.fail('no bounce for %s:\n%s' % (qid, self.snd.tail(30)))

    def test_delivered_through_mx_byte_for_byte(self):
        body = ('Subject: outbound one\nX-Marker: m-one\n\n.leading dot\n..two dots\n'
                'last line')
        qid = send(self.snd, ['alice@dest.test'], body)
        data = self.delivered('alice', 'dest.test', 'm-one')
        text = data.decode()
        # the receiver's Received: first, then ours, then the message as sent
        self.assertRegex(text, r'^Return-Path: |^Received: ')
        self.assertIn('by %s (relayguard) with ESMTP id %s' % (SENDER_NAME, qid), text)
        self.assertTrue(data.endswith(b'X-Marker: m-one\n\n.leading dot\n..two dots\n'
                                      b'last line\n'), data[-120:])
        log = self.snd.wait_log(r'delivered queue=%s to=<alice@dest.test> relay=mx\.dest\.test'
                                r'\[127\.0\.0\.21\]:%d .*dsn=2\.0\.0 status=sent' % (qid, self.port))
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertEqual(self.snd.wait_queue_empty('active'), [])
        self.assertNotIn(qid, self.snd.queue_files('deferred'))

    def test_one_of_three_recipients_refused_bounces_alone(self):
        qid = send(self.snd, ['alice@dest.test', 'nobody@dest.test', 'bob@dest.test'],
                   'Subject: mixed\nX-Marker: m-mixed\n\nhello')
        self.delivered('alice', 'dest.test', 'm-mixed')
        self.delivered('bob', 'dest.test', 'm-mixed')
        msg, blocks = parse_dsn(self.bounce_for(qid))
        self.assertEqual(msg['Subject'], 'Undelivered Mail Returned to Sender')
        rcpts = [b for b in blocks[1:]]
        self.assertEqual(len(rcpts), 1, blocks)
        self.assertEqual(rcpts[0]['Final-Recipient'], 'rfc822; nobody@dest.test')
        self.assertEqual(rcpts[0]['Action'], 'failed')
        self.assertEqual(rcpts[0]['Status'], '5.1.1')
        self.assertIn('550', rcpts[0]['Diagnostic-Code'])
        self.assertIn('mx.dest.test', rcpts[0]['Remote-MTA'])
        self.assertIsNotNone(self.snd.wait_log(r'bounced queue=%s to=<nobody@dest.test>' % qid))

    def test_next_mx_when_the_first_refuses_connections(self):
        send(self.snd, ['carol@two.test'], 'Subject: two\nX-Marker: m-two\n\nhi')
        self.delivered('carol', 'two.test', 'm-two')

    def test_transport_maps_next_hop(self):
        qid = send(self.snd, ['dave@special.test'], 'Subject: s\nX-Marker: m-special\n\nhi')
        self.delivered('dave', 'special.test', 'm-special')
        self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s .*relay=127\.0\.0\.21'
                                               % qid))

    def test_null_mx_bounces(self):
        qid = send(self.snd, ['someone@nullmx.test'], 'Subject: null\n\nhi')
        _msg, blocks = parse_dsn(self.bounce_for(qid))
        self.assertEqual(blocks[1]['Status'], '5.1.10')

    def test_no_such_domain_bounces(self):
        qid = send(self.snd, ['someone@nosuchdomain.test'], 'Subject: nx\n\nhi')
        _msg, blocks = parse_dsn(self.bounce_for(qid))
        self.assertEqual(blocks[1]['Status'], '5.1.2')

    def test_mx_without_address_bounces(self):
        qid = send(self.snd, ['someone@noaddr.test'], 'Subject: noaddr\n\nhi')
        _msg, blocks = parse_dsn(self.bounce_for(qid))
        self.assertTrue(blocks[1]['Status'].startswith('5.'), blocks[1]['Status'])

    def test_mx_pointing_at_myself_is_a_loop(self):
        qid = send(self.snd, ['someone@loop.test'], 'Subject: loop\n\nhi')
        _msg, blocks = parse_dsn(self.bounce_for(qid))
        self.assertEqual(blocks[1]['Status'], '5.4.6')
        self.assertIn('loops back to myself', blocks[1]['Diagnostic-Code'])

    def test_we_are_backup_mx_and_the_primary_does_not_resolve(self):
        """The better MX cannot be looked up right now and the next one is
        ourselves: defer (it is not a loop yet), never bounce."""
        mark = self.snd.mark()
        qid = send(self.snd, ['someone@backup.test'], 'Subject: backup\n\nhi')
        log = self.snd.wait_log(r'deferred queue=%s .*dsn=4\.4\.3' % qid, since=mark)
        self.assertIsNotNone(log, self.snd.tail(20))
        self.assertNotRegex(self.snd.log_since(mark), r'bounced queue=%s' % qid)

    def test_dns_servfail_defers_and_never_bounces(self):
        mark = self.snd.mark()
        qid = send(self.snd, ['someone@broken.test'], 'Subject: servfail\n\nhi')
        self.assertIsNotNone(self.snd.wait_log(r'deferred queue=%s .*dsn=4\.4\.3' % qid,
                                               since=mark), self.snd.tail(20))
        # retried (backoff 1-2 s), still deferred, no bounce
        self.assertIsNotNone(self.snd.wait_log(r'deferred queue=%s ' % qid, since=mark,
                                               count=2, timeout=10), self.snd.tail(20))
        self.assertTrue(in_deferred(self.snd, qid), self.snd.tail(20))
        self.assertNotRegex(self.snd.log_since(mark), r'bounced queue=%s' % qid)
        self.snd.wait_log(r'x^', timeout=0)  # keep the id in deferred/ for the CLI tests

    def test_deferred_while_the_receiver_is_down_then_delivered(self):
        mark = self.snd.mark()
        qid = send(self.snd, ['erin@later.test'], 'Subject: later\nX-Marker: m-later\n\nhi')
        self.assertIsNotNone(self.snd.wait_log(r'deferred queue=%s .*dsn=4\.4\.1' % qid,
                                               since=mark), self.snd.tail(20))
        self.assertTrue(in_deferred(self.snd, qid), self.snd.tail(20))
        # a restart keeps it; then the receiver comes up and the retry delivers it
        self.snd.restart()
        later = receiver(LATER_IP, self.port, myhostname='mx.later.test')
        try:
            deadline = time.time() + 15
            got = []
            while time.time() < deadline and not got:
                got = later.maildir('later.test', 'erin')
                time.sleep(0.1)
            self.assertEqual(len(got), 1, self.snd.tail(30))
            self.assertIn(b'm-later', later.read_mail('later.test', 'erin', got[0]))
            self.assertIsNotNone(self.snd.wait_log(r'delivered queue=%s ' % qid))
        finally:
            later.stop()
            later.cleanup()


class OutboundRelayhost(unittest.TestCase):
    """A smarthost that wants AUTH over STARTTLS: a relayguard submission port."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='relayguard-out-')
        os.chmod(self.tmp, 0o755)
        passwd = os.path.join(self.tmp, 'users')
        make_passwd(passwd, {'alice@dest.test': ('SHA512-CRYPT', 'alice-secret')})
        port = free_port(RECEIVER_IP)
        self.sub_port = free_port(RECEIVER_IP)
        self.hub = receiver(RECEIVER_IP, port, submission_listen='%s:%d' % (RECEIVER_IP, self.sub_port),
                            smtpd_sasl_auth_enable='yes', smtpd_sasl_path=passwd,
                            smtpd_sasl_failure_delay='0')
        self.addCleanup(self.hub.cleanup)
        self.addCleanup(self.hub.stop)

    def sender(self, password, **more):
        table = os.path.join(self.tmp, 'sasl_passwd')
        with open(table, 'w') as f:
            f.write('[%s]:%d alice@dest.test:%s\n' % (RECEIVER_IP, self.sub_port, password))
        o = {'default_transport': 'smtp', 'smtpd_peername_lookup': 'no',
             'relayhost': '[%s]:%d' % (RECEIVER_IP, self.sub_port),
             'smtp_sasl_auth_enable': 'yes', 'smtp_sasl_password_maps': table,
             'smtp_tls_security_level': 'encrypt', 'minimal_backoff_time': '1s',
             'queue_run_delay': '1s'}
        o.update(more)
        s = Server(overrides=o)
        self.addCleanup(s.cleanup)
        self.addCleanup(s.stop)
        return s

    def test_auth_over_starttls_to_the_relayhost(self):
        s = self.sender('alice-secret')
        qid = send(s, ['bob@dest.test'], 'Subject: via hub\nX-Marker: m-hub\n\nhi',
                   sender='alice@dest.test')
        files = self.hub.wait_maildir('dest.test', 'bob', timeout=10)
        self.assertEqual(len(files), 1, s.tail(20) + '\n---\n' + self.hub.tail(20))
        data = self.hub.read_mail('dest.test', 'bob', files[0])
        self.assertIn(b'm-hub', data)
        # the hub saw an authenticated, encrypted submission (RFC 3848: ESMTPSA)
        self.assertIn(b'with ESMTPSA', data)
        log = s.wait_log(r'smtp-connected queue=%s relay=127\.0\.0\.21\[127\.0\.0\.21\]:%d '
                         r'tls="TLSv1\.[23] .*" auth="PLAIN as alice@dest\.test"'
                         % (qid, self.sub_port))
        self.assertIsNotNone(log, s.tail(20))
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s .*status=sent' % qid))

    def test_wrong_password_defers_and_keeps_the_mail(self):
        s = self.sender('wrong')
        qid = send(s, ['bob@dest.test'], 'Subject: denied\n\nhi', sender='alice@dest.test')
        log = s.wait_log(r'deferred queue=%s .*535' % qid)
        self.assertIsNotNone(log, s.tail(20))
        self.assertEqual(self.hub.maildir('dest.test', 'bob'), [])
        self.assertTrue(in_deferred(s, qid), s.tail(20))

    def test_no_credentials_without_tls(self):
        """smtp_tls_security_level = none: AUTH would go in clear text, so it is not
        sent (smtp_sasl_security_options keeps noplaintext) and the hub refuses."""
        s = self.sender('alice-secret', smtp_tls_security_level='none')
        qid = send(s, ['bob@dest.test'], 'Subject: clear\n\nhi', sender='alice@dest.test')
        log = s.wait_log(r'(deferred|bounced) queue=%s ' % qid)
        self.assertIsNotNone(log, s.tail(20))
        self.assertNotIn('AUTH PLAIN', self.hub.log())
        self.assertEqual(self.hub.maildir('dest.test', 'bob'), [])


class OutboundCrash(unittest.TestCase):
    """kill -9 while a delivery is in flight: after the restart the message is
    delivered again (a duplicate is allowed, a loss never)."""

    def test_kill9_during_data_then_delivered_after_restart(self):
        got_data = threading.Event()

        class Stall(fakesmtp.Policy):
            def rcpt(self, sess, path):
                return '250 2.1.5 Ok'

            def data_end(self, sess, body):
                got_data.set()
                return fakesmtp.SILENT  # the final reply never comes

        stall = fakesmtp.FakeSMTP(Stall())
        port = stall.port
        s = Server(overrides={'default_transport': 'smtp', 'smtpd_peername_lookup': 'no',
                              'transport_maps': 'inline:{dest.test=smtp:[127.0.0.1]:%d}' % port,
                              'minimal_backoff_time': '1s', 'queue_run_delay': '1s'})
        self.addCleanup(s.cleanup)
        qid = send(s, ['alice@dest.test'], 'Subject: crash\nX-Marker: m-crash\n\nhi')
        self.assertTrue(got_data.wait(10), s.tail(20))
        s.kill9()
        stall.stop()
        # the real receiver takes over the same address and port
        rcv = receiver('127.0.0.1', port)
        self.addCleanup(rcv.cleanup)
        self.addCleanup(rcv.stop)
        s.start()
        files = rcv.wait_maildir('dest.test', 'alice', timeout=15)
        self.assertEqual(len(files), 1, s.tail(30))
        self.assertIn(b'm-crash', rcv.read_mail('dest.test', 'alice', files[0]))
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s ' % qid))
        s.stop()


class OutboundQueueCli(unittest.TestCase):
    """The queue CLI against a live server with deferred outbound mail."""

    def test_list_shows_the_last_error_and_flush_delivers(self):
        port = free_port(RECEIVER_IP)
        s = Server(overrides={'default_transport': 'smtp', 'smtpd_peername_lookup': 'no',
                              'transport_maps': 'inline:{dest.test=smtp:[%s]:%d}'
                                                % (RECEIVER_IP, port),
                              'minimal_backoff_time': '1h', 'queue_run_delay': '1h'})
        self.addCleanup(s.cleanup)
        self.addCleanup(s.stop)
        qid = send(s, ['alice@dest.test'], 'Subject: cli\nX-Marker: m-cli\n\nhi')
        self.assertIsNotNone(s.wait_log(r'deferred queue=%s ' % qid), s.tail(20))
        self.assertTrue(in_deferred(s, qid), s.tail(20))
        p = run_cli(['queue', 'list', '-c', s.config_path])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(qid, p.stdout)
        self.assertIn('alice@dest.test', p.stdout)
        self.assertRegex(p.stdout, r'\(.*127\.0\.0\.21.*(refused|Connection)')
        rcv = receiver(RECEIVER_IP, port)
        self.addCleanup(rcv.cleanup)
        self.addCleanup(rcv.stop)
        p = run_cli(['queue', 'flush', qid, '-c', s.config_path])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        files = rcv.wait_maildir('dest.test', 'alice', timeout=10)
        self.assertEqual(len(files), 1, s.tail(20))
        self.assertEqual(s.wait_queue_empty('deferred'), [])


class Scripted(fakesmtp.Policy):
    """A receiver whose replies each test sets: per recipient, at the end of
    data, and to RSET."""
    def __init__(self, rcpt=None, data_end='250 2.0.0 Ok: queued', rset='250 2.0.0 Ok',
                 slow=0.0):
        self.rcpt_replies = rcpt or {}
        self.end = data_end
        self.rset = rset
        self.slow = slow  # seconds before the reply to the end of data

    def rcpt(self, sess, path):
        return self.rcpt_replies.get(path, '250 2.1.5 Ok')

    def data_end(self, sess, body):
        time.sleep(self.slow)
        return self.end

    def other(self, sess, verb, line):
        if verb == 'RSET':
            return self.rset
        return super().other(sess, verb, line)


class OutboundFaults(unittest.TestCase):
    """Receivers that misbehave in the ways a hostile review found."""

    def sender(self, port, **more):
        o = {'default_transport': 'smtp', 'smtpd_peername_lookup': 'no',
             'transport_maps': 'inline:{fake.test=smtp:[127.0.0.1]:%d}' % port,
             'smtp_tls_security_level': 'none',
             'minimal_backoff_time': '1s', 'queue_run_delay': '1s'}
        o.update(more)
        s = Server(overrides=o)
        self.addCleanup(s.cleanup)
        self.addCleanup(s.stop)
        return s

    def fake(self, policy):
        f = fakesmtp.FakeSMTP(policy)
        self.addCleanup(f.stop)
        return f

    def test_each_recipient_keeps_its_own_fate_when_the_data_is_refused(self):
        """A 450 at RCPT stays a deferral and a 550 at RCPT a bounce, whatever
        the end of data says to the others."""
        f = self.fake(Scripted(rcpt={'grey@fake.test': '450 4.2.0 greylisted',
                                     'gone@fake.test': '550 5.1.1 no such user'},
                               data_end='554 5.7.1 content refused'))
        s = self.sender(f.port, minimal_backoff_time='1h')
        qid = send(s, ['grey@fake.test', 'ok@fake.test', 'gone@fake.test'], 'Subject: f\n\nhi')
        self.assertIsNotNone(s.wait_log(r'bounced queue=%s to=<gone@fake\.test>' % qid),
                             s.tail(20))
        log = s.wait_log(r'deferred queue=%s to=<grey@fake\.test> .*dsn=4\.2\.0' % qid)
        self.assertIsNotNone(log, s.tail(20))
        self.assertRegex(log, r'bounced queue=%s to=<ok@fake\.test> .*dsn=5\.7\.1' % qid)
        self.assertRegex(log, r'bounced queue=%s to=<gone@fake\.test> .*dsn=5\.1\.1' % qid)
        self.assertNotRegex(log, r'bounced queue=%s to=<grey' % qid)

    def test_backoff_holds_when_another_recipient_is_done(self):
        """One recipient delivered, one greylisted: the next try waits for
        minimal_backoff_time (the file's mtime), not for the next queue scan."""
        f = self.fake(Scripted(rcpt={'grey@fake.test': '450 4.2.0 greylisted'}))
        s = self.sender(f.port, minimal_backoff_time='1h', queue_run_delay='1s')
        mark = s.mark()
        qid = send(s, ['grey@fake.test', 'ok@fake.test'], 'Subject: b\n\nhi')
        self.assertIsNotNone(s.wait_log(r'deferred queue=%s ' % qid, since=mark), s.tail(20))
        time.sleep(4)  # four queue scans
        text = s.log_since(mark)
        self.assertEqual(len(re.findall(r'deferred queue=%s ' % qid, text)), 1, text)
        self.assertEqual(len(re.findall(r'delivered queue=%s ' % qid, text)), 1, text)
        path = os.path.join(s.queue_dir, 'deferred', qid)
        self.assertGreater(os.stat(path).st_mtime, time.time() + 3000)  # the next try

    def test_source_address_is_smtp_bind_address(self):
        f = self.fake(Scripted())
        s = self.sender(f.port, smtp_bind_address='127.0.0.7')
        qid = send(s, ['a@fake.test'], 'Subject: bind\n\nhi')
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s ' % qid), s.tail(20))
        self.assertEqual([x['peer'] for x in f.sessions], ['127.0.0.7'])

    def test_message_larger_than_the_next_hops_size_bounces_without_sending(self):
        class Small(Scripted):
            def ehlo(self, sess, verb, arg):
                return super().ehlo(sess, verb, arg) + '\n250 SIZE 100'
        f = self.fake(Small())
        s = self.sender(f.port)
        qid = send(s, ['a@fake.test'], 'Subject: big\n\n' + 'x' * 500)
        log = s.wait_log(r'bounced queue=%s .*dsn=5\.3\.4' % qid)
        self.assertIsNotNone(log, s.tail(20))
        self.assertFalse(any(c.startswith('MAIL') for c in f.all_commands()), f.all_commands())

    def test_a_full_active_set_drains_without_waiting_for_the_next_scan(self):
        """qmgr_message_active_limit 2 and ten messages: those that did not fit
        wait on disk and are fetched as soon as room is made, not after
        queue_run_delay (an hour here)."""
        f = self.fake(Scripted(slow=0.3))  # so that messages pile up
        s = self.sender(f.port, qmgr_message_active_limit='2', queue_run_delay='1h')
        ids = [send(s, ['m%d@fake.test' % i], 'Subject: %d\n\nhi' % i) for i in range(10)]
        for qid in ids:
            self.assertIsNotNone(s.wait_log(r'delivered queue=%s ' % qid, timeout=15),
                                 s.tail(30))
        self.assertEqual(s.wait_queue_empty('active'), [])

    def test_stale_cached_connection_is_replaced(self):
        """The receiver closes a connection with 421 at RSET (one message per
        connection): the next message goes over a new connection, not deferred."""
        f = self.fake(Scripted(rset='421 4.7.0 one message per connection'))
        s = self.sender(f.port)
        q1 = send(s, ['a@fake.test'], 'Subject: one\n\nhi')
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s ' % q1), s.tail(20))
        q2 = send(s, ['b@fake.test'], 'Subject: two\n\nhi')
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s ' % q2), s.tail(20))
        self.assertNotRegex(s.log(), r'deferred queue=%s ' % q2)


class DsnAware(Scripted):
    """A next hop that offers DSN (RFC 3461)."""
    def ehlo(self, sess, verb, arg):
        return super().ehlo(sess, verb, arg) + '\n250 DSN'


class OutboundDsn(unittest.TestCase):
    """RFC 3461: NOTIFY=, RET=, ENVID=, ORCPT= are honoured and passed on."""

    def setUp(self):
        self.fake_policy = Scripted(rcpt={'gone@fake.test': '550 5.1.1 no such user'})
        self.f = fakesmtp.FakeSMTP(self.fake_policy)
        self.addCleanup(self.f.stop)
        self.s = Server(overrides={
            'default_transport': 'smtp', 'smtpd_peername_lookup': 'no',
            'transport_maps': 'inline:{fake.test=smtp:[127.0.0.1]:%d}' % self.f.port,
            'smtp_tls_security_level': 'none', 'minimal_backoff_time': '1s',
            'queue_run_delay': '1s'})
        self.addCleanup(self.s.cleanup)
        self.addCleanup(self.s.stop)

    def reports(self, qid, count=1, timeout=10):
        """DSNs about qid in postmaster@localhost's Maildir (at least count)."""
        deadline = time.time() + timeout
        while True:
            found = []
            for name in self.s.maildir('localhost', 'postmaster'):
                data = self.s.read_mail('localhost', 'postmaster', name)
                if ('X-Relayguard-Queue-ID: %s' % qid).encode() in data:
                    found.append(data)
            if len(found) >= count or time.time() > deadline:
                return found
            time.sleep(0.05)

    def test_ehlo_offers_dsn_and_bad_values_are_refused(self):
        r = smtp_session(self.s.port, ['EHLO a.example.org', 'MAIL FROM:<a@localhost> RET=ALL',
                                       'MAIL FROM:<a@localhost> RET=HDRS ENVID=x+0Dy',
                                       'MAIL FROM:<a@localhost> RET=HDRS RET=FULL',
                                       'MAIL FROM:<a@localhost> RET=HDRS ENVID=QQ1',
                                       'RCPT TO:<x@fake.test> NOTIFY=NEVER,SUCCESS',
                                       'RCPT TO:<x@fake.test> ORCPT=bogus',
                                       'RCPT TO:<x@fake.test> NOTIFY=SUCCESS NOTIFY=DELAY',
                                       'RCPT TO:<x@fake.test> NOTIFY=success,failure '
                                       'ORCPT=rfc822;x+2By@fake.test', 'QUIT'],
                         source=TRUSTED)
        self.assertIn('DSN', r[1][1].split('\n'))
        self.assertEqual(r[2][0], 501, r[2])
        self.assertEqual(r[3][0], 501, r[3])
        self.assertEqual(r[4][0], 501, r[4])
        self.assertEqual(r[5][0], 250, r[5])
        self.assertEqual([x[0] for x in r[6:9]], [501, 501, 501], r[6:9])
        self.assertEqual(r[9][0], 250, r[9])

    def test_notify_never_suppresses_the_bounce(self):
        qid = send(self.s, ['gone@fake.test'], 'Subject: never\n\nhi',
                   rcpt_params={'gone@fake.test': 'NOTIFY=NEVER'})
        self.assertIsNotNone(self.s.wait_log(r'bounced queue=%s ' % qid), self.s.tail(20))
        time.sleep(1)
        self.assertEqual(self.reports(qid, timeout=1), [])
        self.assertEqual(self.s.wait_queue_empty('deferred'), [])

    def test_ret_hdrs_envid_orcpt_in_the_bounce(self):
        qid = send(self.s, ['gone@fake.test'], 'Subject: hdrs\n\nsecret body',
                   mail_params='RET=HDRS ENVID=QQ314159',
                   rcpt_params={'gone@fake.test': 'ORCPT=rfc822;orig+2Bgone@example.com'})
        got = self.reports(qid)
        self.assertEqual(len(got), 1, self.s.tail(20))
        msg, blocks = parse_dsn(got[0])
        self.assertEqual(blocks[0]['Original-Envelope-Id'], 'QQ314159')
        self.assertEqual(blocks[1]['Original-Recipient'], 'rfc822; orig+gone@example.com')
        types = [p.get_content_type() for p in msg.walk()]
        self.assertIn('text/rfc822-headers', types)
        self.assertNotIn('message/rfc822', types)
        self.assertNotIn(b'secret body', got[0])

    def test_long_orcpt_is_taken_and_returned_within_a_bound(self):
        # RFC 3461 3 (6): a server offering DSN takes RCPT lines 500 octets longer
        # than RFC 5321's 512 (NOTIFY=, ORCPT=); (5): MAIL lines 100 longer (RET=,
        # ENVID=), and RFC 4954 another 500 for AUTH=. Longer lines stay refused.
        orig = 'list-' + 'x' * 463 + '@example.com'
        self.assertEqual(len(orig), 480)
        param = 'NOTIFY=FAILURE ORCPT=rfc822;' + orig
        self.assertGreater(len('RCPT TO:<gone@fake.test> %s\r\n' % param), 512)
        qid = send(self.s, ['gone@fake.test'], 'Subject: long\n\nhi',
                   mail_params='RET=HDRS ENVID=' + 'E' * 100,
                   rcpt_params={'gone@fake.test': param})
        got = self.reports(qid)
        self.assertEqual(len(got), 1, self.s.tail(20))
        _msg, blocks = parse_dsn(got[0])
        self.assertEqual(blocks[0]['Original-Envelope-Id'], 'E' * 100)
        self.assertEqual(blocks[1]['Original-Recipient'], 'rfc822; ' + orig)
        rcpt_1100 = 'RCPT TO:<x@fake.test> ORCPT=rfc822;' + 'y' * (1100 - 39) + '@z'
        mail_1112 = 'MAIL FROM:<a@localhost> AUTH=' + 'a' * (1112 - 31)
        r = smtp_session(self.s.port, ['EHLO a.example.org', mail_1112,
                                       mail_1112 + 'a', 'MAIL FROM:<a@localhost>',
                                       rcpt_1100, 'RCPT TO:<x@fake.test>', 'QUIT'],
                         source=TRUSTED)
        self.assertEqual((len(mail_1112) + 2, len(rcpt_1100) + 2), (1112, 1100))
        # at the MAIL limit: read whole (AUTH= is not offered here, so refused as such)
        self.assertEqual(r[2][0], 555, r[2])
        self.assertEqual(r[3], (500, '5.5.2 Error: line too long (the limit is 1112 octets)'))
        self.assertEqual(r[4][0], 250, r[4])
        self.assertEqual(r[5], (500, '5.5.2 Error: line too long (the limit is 1012 octets)'))
        self.assertEqual(r[6][0], 250, r[6])  # the session goes on

    def test_notify_success_relayed_to_a_hop_without_dsn(self):
        qid = send(self.s, ['ok@fake.test'], 'Subject: ok\n\nhi',
                   rcpt_params={'ok@fake.test': 'NOTIFY=SUCCESS'})
        got = self.reports(qid)
        self.assertEqual(len(got), 1, self.s.tail(20))
        _msg, blocks = parse_dsn(got[0])
        self.assertEqual(blocks[1]['Action'], 'relayed')
        self.assertEqual(blocks[1]['Final-Recipient'], 'rfc822; ok@fake.test')

    def test_notify_success_delivered_here(self):
        qid = send(self.s, ['postmaster@localhost'], 'Subject: local\n\nhi',
                   sender='someone@localhost',
                   rcpt_params={'postmaster@localhost': 'NOTIFY=SUCCESS'})
        # the report goes to someone@localhost: not a user here, so look in the log
        log = self.s.wait_log(r'dsn-queued queue=%s ' % qid)
        self.assertIsNotNone(log, self.s.tail(20))

    def test_one_delay_warning_after_delay_warning_time(self):
        self.fake_policy.rcpt_replies['grey@fake.test'] = '450 4.2.0 greylisted'
        self.s.stop()
        with open(self.s.config_path, 'a') as f:
            f.write('delay_warning_time = 1s\n')
        self.s.start()
        mark = self.s.mark()
        qid = send(self.s, ['grey@fake.test'], 'Subject: slow\n\nhi')
        got = self.reports(qid)
        self.assertEqual(len(got), 1, self.s.tail(20))
        msg, blocks = parse_dsn(got[0])
        self.assertEqual(msg['Subject'], 'Delayed Mail (still being retried)')
        self.assertEqual(blocks[1]['Action'], 'delayed')
        self.assertIn('greylisted', blocks[1]['Diagnostic-Code'])
        # later retries send no second warning
        self.assertIsNotNone(self.s.wait_log(r'deferred queue=%s ' % qid, since=mark, count=3,
                                             timeout=15), self.s.tail(20))
        self.assertEqual(len(self.reports(qid, count=2, timeout=1)), 1)

    def test_parameters_passed_to_a_hop_that_offers_dsn(self):
        self.f.policy = DsnAware()
        qid = send(self.s, ['ok@fake.test'], 'Subject: pass\n\nhi',
                   mail_params='RET=HDRS ENVID=QQ+2B1',
                   rcpt_params={'ok@fake.test': 'NOTIFY=SUCCESS,FAILURE '
                                                'ORCPT=rfc822;first@example.com'})
        self.assertIsNotNone(self.s.wait_log(r'delivered queue=%s ' % qid), self.s.tail(20))
        cmds = ' | '.join(self.f.all_commands())
        self.assertRegex(cmds, r'MAIL FROM:<postmaster@localhost>.* RET=HDRS ENVID=QQ\+2B1')
        self.assertRegex(cmds, r'RCPT TO:<ok@fake\.test> NOTIFY=SUCCESS,FAILURE '
                               r'ORCPT=rfc822;first@example\.com')
        time.sleep(1)
        self.assertEqual(self.reports(qid, timeout=1), [])  # the next hop reports, not us


class OutboundLoopByAddress(unittest.TestCase):
    """An MX whose address and port are one of our own listeners is a loop even
    when its name is not ours."""

    def test_own_address_and_port(self):
        require_dnsmasq()
        with DnsLab(mx={'self.test': [(10, 'other-name.self.test')]},
                    hosts={'other-name.self.test': ['127.0.0.1']}) as dns:
            s = Server(start=False, overrides={'default_transport': 'smtp',
                                               'dns_servers': dns.servers,
                                               'smtpd_peername_lookup': 'no'})
            with open(s.config_path, 'a') as f:
                f.write('smtp_tcp_port = %d\n' % s.port)
            s.start()
            try:
                qid = send(s, ['x@self.test'], 'Subject: self\n\nhi')
                log = s.wait_log(r'bounced queue=%s .*dsn=5\.4\.6' % qid)
                self.assertIsNotNone(log, s.tail(20))
                self.assertIn('mail for self.test loops back to myself', log)
            finally:
                s.stop()
                s.cleanup()


if __name__ == '__main__':
    unittest.main()
