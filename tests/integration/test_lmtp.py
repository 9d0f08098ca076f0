"""test_lmtp.py - delivery to Dovecot over LMTP (issue 12, the Mailcow wiring).

relayguard is the MTA for example.test with mailbox_transport = lmtp:unix:...
or lmtp:inet:127.0.0.1:PORT pointing at a real Dovecot (dovecot-lmtpd) on
loopback; what it delivers is read back from Dovecot's mailbox with doveadm
fetch. A user Dovecot does not know is bounced to the sender (whose bounce
goes over LMTP too), a Dovecot that is down defers the mail until a queue
flush after it is back, and mail never lands in relayguard's own Maildirs
(no delivery at acceptance when the mailbox transport is LMTP).

The per-recipient 4xx after the data (a full mailbox of one recipient) and
connection reuse are shown against a scripted LMTP server (fakesmtp.py),
where the replies can be chosen.
"""
import os
import re
import threading
import time
import unittest
import urllib.request

import dovecot_lmtp_lab
import harness
from fakesmtp import FakeSMTP, Policy
from harness import Server, TRUSTED, smtp_session

SKIP = dovecot_lmtp_lab.skip_reason()
QUEUED = re.compile(r'^2\.0\.0 Ok: queued as ([0-9A-F]{16})$')


def send(server, rcpts, body, sender='carol@example.test', rcpt_params=''):
    """Queue a message through a trusted session; returns its queue id."""
    lines = ['EHLO app.example.org', 'MAIL FROM:<%s>' % sender]
    lines += [('RCPT TO:<%s> %s' % (r, rcpt_params)).rstrip() for r in rcpts]
    lines += ['DATA'] + body.split('\n') + ['.', 'QUIT']
    replies = smtp_session(server.port, lines, source=TRUSTED)
    final = replies[4 + len(rcpts)]
    m = QUEUED.match(final[1]) if final[0] == 250 else None
    if m is None:
        raise AssertionError('not queued: %r' % (replies,))
    return m.group(1)


def lmtp_server(transport, **more):
    params = {
        'myhostname': 'mx.example.test', 'mydestination': 'example.test',
        'local_recipient_maps': '',  # Dovecot decides who exists
        'mailbox_transport': transport,
        'minimal_backoff_time': '1s', 'maximal_backoff_time': '2s',
        'queue_run_delay': '300s',   # retries only when a test flushes
    }
    params.update(more)
    return Server(overrides=params)


def flush(server):
    out = harness.run_cli(['queue', 'flush', '-c', server.config_path])
    assert out.returncode == 0, out.stdout + out.stderr


def in_deferred(server, qid, timeout=5):
    deadline = time.time() + timeout
    while qid not in server.queue_files('deferred') and time.time() < deadline:
        time.sleep(0.05)
    return qid in server.queue_files('deferred')


@harness.requires(SKIP is None, dovecot_lmtp_lab.PACKAGE, SKIP)
class DovecotLMTPDelivery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dv = dovecot_lmtp_lab.DovecotLMTP(users=[
            'alice@example.test', 'bob@example.test', 'carol@example.test',
            'dave@example.test', 'erin@example.test', 'frank@hosted.test'])
        cls.mport = harness.free_port()
        cls.unix = lmtp_server('lmtp:unix:' + cls.dv.socket_path,
                               metrics_listen='127.0.0.1:%d' % cls.mport,
                               virtual_mailbox_domains='box.test',
                               virtual_mailbox_maps='inline:{ grace@box.test=box.test/grace/ }')
        cls.inet = lmtp_server('lmtp:' + cls.dv.inet)
        # a hosted domain (virtual_mailbox_domains) whose mail Dovecot stores, as
        # Mailcow wires it: relayguard knows the users, Dovecot the mailboxes (so
        # the table's values are not paths: Postfix-style "OK" will do)
        cls.virtual = lmtp_server('', **{
            'virtual_mailbox_domains': 'hosted.test',
            'virtual_mailbox_maps': 'inline:{ frank@hosted.test=OK }',
            'virtual_transport': 'lmtp:unix:' + cls.dv.socket_path,
            'recipient_delimiter': '+'})

    @classmethod
    def tearDownClass(cls):
        for s in (cls.unix, cls.inet, cls.virtual):
            try:
                s.stop()
            finally:
                s.cleanup()
        cls.dv.cleanup()

    def wait_fetch(self, user, marker, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = [m for m in self.dv.fetch(user) if marker in m]
            if got:
                return got
            time.sleep(0.1)
        return []

    def lmtp_attempts(self, status):
        """relayguard_delivery_attempts_total{status=STATUS,transport="lmtp"} of self.unix."""
        series = ('relayguard_delivery_attempts_total{status="%s",transport="lmtp"}'
                  % status)
        url = 'http://127.0.0.1:%d/metrics' % self.mport
        with urllib.request.urlopen(url, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(series + ' '):
                    return float(line.split()[-1])
        return 0.0

    def test_unix_socket_delivery_read_back_with_doveadm(self):
        s = self.unix
        delivered = self.lmtp_attempts('delivered')
        qid = send(s, ['alice@example.test'], 'Subject: over lmtp\n\nmarker-unix-1')
        log = s.wait_log(r'delivered queue=%s to=<alice@example\.test> '
                         r'relay=lmtp:unix:%s .*dsn=2\.0\.0 status=sent '
                         r'reply="250 2\.0\.0 <alice@example\.test> .*Saved'
                         % (qid, re.escape(self.dv.socket_path)), timeout=10)
        self.assertIsNotNone(log, s.tail(20))
        got = self.wait_fetch('alice@example.test', 'marker-unix-1')
        self.assertEqual(len(got), 1, self.dv.log())
        self.assertIn('Subject: over lmtp', got[0])
        self.assertIn('Delivered-To: alice@example.test', got[0])
        self.assertIn('Return-Path: <carol@example.test>', got[0])
        # through the queue: nothing in relayguard's own Maildirs (but box.test's), no
        # direct delivery
        self.assertEqual([p for p in s.all_mail() if '/box.test/' not in p], [])
        self.assertEqual(s.wait_queue_empty('active'), [])
        # counted under the transport it went over
        self.assertEqual(self.lmtp_attempts('delivered'), delivered + 1)

    def test_virtual_transport_hands_hosted_domains_to_dovecot(self):
        s = self.virtual
        mark = s.mark()
        # the hosted user with an extension is known; a stranger to the map is not
        replies = smtp_session(s.port, ['EHLO app.example.org', 'MAIL FROM:<x@example.org>',
                                        'RCPT TO:<nobody@hosted.test>', 'QUIT'])
        self.assertEqual(replies[3][0], 550, replies)
        self.assertIn('User unknown in virtual mailbox table', replies[3][1])
        qid = send(s, ['frank+news@hosted.test'], 'Subject: hosted\n\nmarker-virtual-8')
        self.assertIsNotNone(
            s.wait_log(r'delivered queue=%s to=<frank\+news@hosted\.test> relay=lmtp:unix:%s '
                       % (qid, re.escape(self.dv.socket_path)), since=mark, timeout=10),
            s.tail(20))
        got = self.wait_fetch('frank@hosted.test', 'marker-virtual-8')
        self.assertEqual(len(got), 1, self.dv.log())
        self.assertEqual(s.all_mail(), [])  # not in relayguard's own Maildirs

    def test_mailbox_transport_is_not_for_hosted_domains(self):
        # mydestination goes to Dovecot; a hosted domain without virtual_transport
        # stays in relayguard's own Maildirs (Postfix: virtual_transport = virtual)
        s = self.unix
        mark = s.mark()
        qid = send(s, ['grace@box.test'], 'Subject: own\n\nmarker-own-9')
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s to=<grace@box\.test> relay=local '
                                        % qid, since=mark, timeout=10), s.tail(20))
        self.assertEqual(len(s.wait_maildir('box.test', 'grace')), 1)

    def test_inet_delivery_two_recipients_one_transaction(self):
        s = self.inet
        mark = s.mark()
        qid = send(s, ['bob@example.test', 'dave@example.test'], 'Subject: two\n\nmarker-inet-2')
        for user in ('bob', 'dave'):
            self.assertIsNotNone(
                s.wait_log(r'delivered queue=%s to=<%s@example\.test> '
                           r'relay=lmtp:inet:127\.0\.0\.1:%d ' % (qid, user, self.dv.port),
                           since=mark, timeout=10), s.tail(20))
            self.assertEqual(len(self.wait_fetch(user + '@example.test', 'marker-inet-2')), 1)
        self.assertEqual(s.all_mail(), [])

    def test_unknown_user_bounces_to_the_sender(self):
        s = self.unix
        mark = s.mark()
        qid = send(s, ['nosuchuser@example.test', 'erin@example.test'],
                   'Subject: half known\n\nmarker-bounce-3', sender='carol@example.test')
        self.assertIsNotNone(
            s.wait_log(r'bounced queue=%s to=<nosuchuser@example\.test> relay=lmtp:unix:.* '
                       r'dsn=5\.1\.1 status=bounced reply="550 5\.1\.1' % qid,
                       since=mark, timeout=10), s.tail(20))
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s to=<erin@example\.test>' % qid,
                                        since=mark), s.tail(20))
        # the bounce is mail for carol, delivered over LMTP as well
        dsn = self.wait_fetch('carol@example.test', 'nosuchuser@example.test')
        self.assertEqual(len(dsn), 1, s.tail(30))
        self.assertIn('multipart/report', dsn[0])
        self.assertIn('5.1.1', dsn[0])
        self.assertIn("User doesn't exist", dsn[0])
        self.assertEqual(len(self.wait_fetch('erin@example.test', 'marker-bounce-3')), 1)

    def test_notify_success_reports_delivered_not_relayed(self):
        s = self.inet
        mark = s.mark()
        qid = send(s, ['dave@example.test'], 'Subject: tell me\n\nmarker-success-7',
                   sender='erin@example.test', rcpt_params='NOTIFY=SUCCESS')
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s to=<dave@example\.test> '
                                        r'relay=lmtp:inet:' % qid, since=mark, timeout=10))
        report = self.wait_fetch('erin@example.test', 'dave@example.test')
        self.assertEqual(len(report), 1, s.tail(30))
        self.assertIn('Action: delivered', report[0])
        self.assertNotIn('Action: relayed', report[0])

    def test_dovecot_down_defers_then_a_flush_delivers(self):
        s = self.unix
        self.dv.stop()
        try:
            mark = s.mark()
            qid = send(s, ['alice@example.test'], 'Subject: later\n\nmarker-down-4')
            log = s.wait_log(r'deferred queue=%s to=<alice@example\.test> relay=lmtp:unix:.* '
                             r'dsn=4\.4\.1 status=deferred reply="connect to lmtp:unix:'
                             % qid, since=mark, timeout=10)
            self.assertIsNotNone(log, s.tail(20))
            self.assertTrue(in_deferred(s, qid), s.tail(20))
            self.assertNotRegex(s.log_since(mark), r'bounced queue=%s' % qid)
            self.assertGreaterEqual(self.lmtp_attempts('deferred'), 1)
        finally:
            self.dv.start()
        mark = s.mark()
        flush(s)
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s to=<alice@example\.test> '
                                        r'relay=lmtp:unix:' % qid, since=mark, timeout=10),
                             s.tail(20))
        self.assertEqual(len(self.wait_fetch('alice@example.test', 'marker-down-4')), 1)
        self.assertNotIn(qid, s.queue_files('deferred'))

    def test_a_bad_lmtp_destination_is_a_configuration_error(self):
        path = os.path.join(self.unix.dir, 'bad.cf')
        with open(path, 'w') as f:
            f.write('mailbox_transport = lmtp:inet:dovecot:24\n')
        out = harness.run_cli(['config', '-c', path])
        self.assertEqual(out.returncode, 78, out.stdout + out.stderr)
        self.assertIn('%s:1: mailbox_transport: "lmtp:inet:dovecot:24": not lmtp:unix:/path '
                      'or lmtp:inet:IP:port' % path, out.stderr)


class QuotaPolicy(Policy):
    """An LMTP server: one reply per recipient after the data, chosen by name.

    full@ is over quota (452 4.2.2) until `room` is set; gone@ is refused
    after the data (550 5.2.1); everybody else is saved."""
    banner = '220 lmtp.example.test LMTP fake'

    def __init__(self):
        self.room = False
        self.mute = False  # answer for the first recipient only, then nothing
        self.extra = False  # one reply more than there are recipients (a broken server)
        self.rcpts = {}
        self.lock = threading.Lock()

    def other(self, sess, verb, line):
        if verb == 'LHLO':
            return '250 lmtp.example.test\n250 PIPELINING\n250 ENHANCEDSTATUSCODES'
        return super().other(sess, verb, line)

    def mail(self, sess, path):
        sess['rcpts'] = []
        return '250 2.1.0 OK'

    def rcpt(self, sess, path):
        sess.setdefault('rcpts', []).append(path)
        return '250 2.1.5 OK'

    def data_end(self, sess, body):
        out = []
        for r in sess['rcpts']:
            if r.startswith('full@') and not self.room:
                out.append('452 4.2.2 <%s> Quota exceeded (mailbox for user is full)' % r)
            elif r.startswith('gone@'):
                out.append('550 5.2.1 <%s> Mailbox disabled' % r)
            else:
                out.append('250 2.0.0 <%s> Saved' % r)
        if self.mute:
            out = out[:1]
        if self.extra:
            out.append('250 2.0.0 <nobody@example.test> Saved')
        return ''.join(line + '\r\n' for line in out).encode()


class PerRecipientReplies(unittest.TestCase):
    """The replies after the final dot, one per recipient (fake LMTP server)."""

    def setUp(self):
        self.policy = QuotaPolicy()
        self.fake = FakeSMTP(self.policy)
        self.srv = lmtp_server('lmtp:inet:127.0.0.1:%d' % self.fake.port)

    def tearDown(self):
        try:
            self.srv.stop()
        finally:
            self.srv.cleanup()
            self.fake.stop()

    def test_one_recipient_over_quota_is_retried_alone(self):
        s = self.srv
        mark = s.mark()
        qid = send(s, ['ok@example.test', 'full@example.test', 'gone@example.test'],
                   'Subject: quota\n\nmarker-quota-5')
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s to=<ok@example\.test> '
                                        r'relay=lmtp:inet:127\.0\.0\.1:%d .*reply="250 2\.0\.0'
                                        % (qid, self.fake.port), since=mark, timeout=10),
                             s.tail(20))
        self.assertIsNotNone(s.wait_log(r'deferred queue=%s to=<full@example\.test> .*'
                                        r'dsn=4\.2\.2 status=deferred reply="452 4\.2\.2'
                                        % qid, since=mark), s.tail(20))
        self.assertIsNotNone(s.wait_log(r'bounced queue=%s to=<gone@example\.test> .*'
                                        r'dsn=5\.2\.1 status=bounced' % qid, since=mark),
                             s.tail(20))
        self.assertTrue(in_deferred(s, qid), s.tail(20))
        # gone@'s bounce is mail for carol@, delivered there too
        self.assertIsNotNone(s.wait_log(r'delivered queue=\w+ to=<carol@example\.test>',
                                        since=mark, timeout=10), s.tail(20))
        # room in the mailbox; the retry sends to full@ only
        self.policy.room = True
        time.sleep(1.1)  # past minimal_backoff_time
        n_before = len(self.fake.all_commands())
        mark = s.mark()
        flush(s)
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s to=<full@example\.test> '
                                        r'relay=lmtp:inet:' % qid, since=mark, timeout=10),
                             s.tail(20))
        retry = [c for c in self.fake.all_commands()[n_before:] if c.startswith('RCPT')]
        self.assertEqual(retry, ['RCPT TO:<full@example.test>'], retry)

    def test_timeout_after_the_first_reply_keeps_that_one_delivered(self):
        s = self.srv
        s.stop()
        with open(s.config_path, 'a') as f:
            f.write('smtp_data_done_timeout = 2s\n')
        s.start()
        self.policy.mute = True
        mark = s.mark()
        qid = send(s, ['ok@example.test', 'slow@example.test'], 'Subject: mute\n\nm-mute-6')
        self.assertIsNotNone(s.wait_log(r'deferred queue=%s to=<slow@example\.test> .*'
                                        r'dsn=4\.4\.2 status=deferred reply="conversation with '
                                        r'lmtp\[127\.0\.0\.1\]:%d timed out while sending end of '
                                        r'data -- message may be sent more than once'
                                        % (qid, self.fake.port), since=mark, timeout=10),
                             s.tail(20))
        # the recipient that had its reply is delivered, once: not retried with the other
        self.assertRegex(s.log_since(mark), r'delivered queue=%s to=<ok@example\.test> ' % qid)
        self.assertNotRegex(s.log_since(mark), r'deferred queue=%s to=<ok@' % qid)
        self.policy.mute = False
        time.sleep(1.1)
        n_before = len(self.fake.all_commands())
        mark = s.mark()
        flush(s)
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s to=<slow@example\.test> ' % qid,
                                        since=mark, timeout=10), s.tail(20))
        retry = [c for c in self.fake.all_commands()[n_before:] if c.startswith('RCPT')]
        self.assertEqual(retry, ['RCPT TO:<slow@example.test>'])

    def test_connection_reused_with_rset_between(self):
        s = self.srv
        mark = s.mark()
        a = send(s, ['ok@example.test'], 'Subject: one\n\nmarker-reuse-a')
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s ' % a, since=mark, timeout=10))
        b = send(s, ['ok2@example.test'], 'Subject: two\n\nmarker-reuse-b')
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s ' % b, since=mark, timeout=10))
        self.assertEqual(len(self.fake.sessions), 1, self.fake.all_commands())
        cmds = self.fake.sessions[0]['commands']
        self.assertEqual(cmds[0], 'LHLO mx.example.test')
        self.assertIn('RSET', cmds)  # the second transaction on the same connection
        self.assertNotIn('EHLO', ' '.join(cmds))

    def test_a_reply_too_many_does_not_answer_the_next_message(self):
        # A broken server answers one recipient twice. The stray reply would be
        # read as the next transaction's first one (RSET), shifting every reply
        # by one: the next message deferred for a '250' to DATA. The connection
        # is out of sync and must not be reused.
        s = self.srv
        self.policy.extra = True
        mark = s.mark()
        a = send(s, ['ok@example.test'], 'Subject: one\n\nmarker-extra-a')
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s ' % a, since=mark, timeout=10))
        self.policy.extra = False
        b = send(s, ['ok2@example.test'], 'Subject: two\n\nmarker-extra-b')
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s to=<ok2@example\.test> ' % b,
                                        since=mark, timeout=10), s.tail(20))
        self.assertNotRegex(s.log_since(mark), r'deferred queue=%s ' % b)
        self.assertEqual(len(self.fake.sessions), 2, self.fake.all_commands())


if __name__ == '__main__':
    unittest.main()
