"""test_probe.py - relayguard probe against scripted fake servers and relayguard serve.

Every probe runs with --source 127.0.0.9 against 127.0.0.1 and reports what
an operator would read: the exit status, the target verdict, each test's
verdict and the transcript.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from fakesmtp import OWN, FakeSMTP, Policy, domain_of, make_cert

UNTRUSTED = harness.UNTRUSTED
RELAY_TESTS = ('plain', 'null-sender', 'sender-ip')
# the fake end-of-data sequences of the smuggle-* tests
SMUGGLE_EOD = {
    'smuggle-lf-lf': '\n.\n', 'smuggle-crlf-lf': '\r\n.\n', 'smuggle-lf-crlf': '\n.\r\n',
    'smuggle-cr-crlf': '\r.\r\n', 'smuggle-crlf-cr': '\r\n.\r', 'smuggle-lf-cr': '\n.\r',
    'smuggle-cr-lf': '\r.\n', 'smuggle-cr-cr': '\r.\r', 'smuggle-nul': '\r\n\0.\r\n',
    'smuggle-crlf-crcrlf': '\r\n.\r\r\n', 'smuggle-crcrlf': '\r\r\n.\r\r\n',
}


def probe(args, timeout=60, source=UNTRUSTED):
    """Run relayguard probe --json; returns (exit status, [target objects], stderr)."""
    src = ['--source', source] if source else []
    p = subprocess.run([harness.binary(), 'probe', '--json'] + src + list(args),
                       capture_output=True, text=True, timeout=timeout, errors='replace')
    objs = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    found = harness.sanitizer_report(p.stderr)
    if found:
        raise AssertionError('sanitizer report in probe output:\n' + p.stderr[-3000:])
    return p.returncode, objs, p.stderr


def tests_by_id(obj):
    return {t['id']: t for t in obj['tests']}


def target(port):
    return '127.0.0.1:%d' % port


class FakeServerCase(unittest.TestCase):
    def fake(self, policy, **kw):
        srv = FakeSMTP(policy, **kw)
        self.addCleanup(srv.stop)
        return srv


class SecureServer(FakeServerCase):
    def test_secure_server_is_closed(self):
        srv = self.fake(Policy())
        rc, objs, _ = probe([target(srv.port)])
        self.assertEqual(rc, 0)
        t = objs[0]
        self.assertEqual(t['verdict'], 'closed')
        self.assertEqual(t['relayed'], [])
        self.assertEqual(t['domain'], 'fake.test')  # the banner name's parent took postmaster@
        self.assertEqual(t['banner'], '220 mx.fake.test ESMTP fake')
        verdicts = {x['verdict'] for x in t['tests']}
        self.assertLessEqual(verdicts, {'denied', 'skipped'})
        plain = tests_by_id(t)['plain']
        self.assertEqual(plain['transcript'][-4:], [
            {'c': 'RCPT TO:<relaytest@example.net>'},
            {'s': '554 5.7.1 <relaytest@example.net>: Relay access denied'},
            {'c': 'RSET'}, {'s': '250 2.0.0 Ok'}])
        # each test is its own transaction: as many MAIL commands as tests that got that far
        mails = [c for c in srv.all_commands() if c.startswith('MAIL FROM')]
        self.assertGreaterEqual(len(mails), 30)
        self.assertNotIn('DATA', srv.all_commands())  # safe by default

    def test_connections_are_renewed_before_error_limits(self):
        srv = self.fake(Policy())
        probe([target(srv.port)])
        self.assertGreater(len(srv.sessions), 5)
        self.assertLessEqual(max(s['rejections'] for s in srv.sessions), 4)

    def test_domain_option_and_victim(self):
        srv = self.fake(Policy())
        rc, objs, _ = probe(['--domain', 'fake.test', '--victim', 'someone@example.com',
                             '--only', 'plain,percent-domain', target(srv.port)])
        self.assertEqual(rc, 0)
        t = tests_by_id(objs[0])
        self.assertEqual(set(t), {'plain', 'percent-domain'})
        self.assertEqual(t['plain']['rcpt_to'], 'someone@example.com')
        self.assertEqual(t['percent-domain']['rcpt_to'], 'someone%example.com@fake.test')

    def test_multiline_denial_is_read_to_the_end(self):
        class MultiLine(Policy):
            def rcpt(self, sess, path):
                if self.local(path):
                    return super().rcpt(sess, path)
                return ('550 5.7.1 Relaying denied\n550 5.7.1 see the policy page\n'
                        '550 5.7.1 go away')
        srv = self.fake(MultiLine())
        rc, objs, _ = probe(['--only', 'plain,null-sender', target(srv.port)])
        self.assertEqual(rc, 0)
        plain = tests_by_id(objs[0])['plain']
        self.assertEqual(plain['verdict'], 'denied')
        self.assertIn({'s': '550-5.7.1 Relaying denied\n550-5.7.1 see the policy page\n'
                            '550 5.7.1 go away'}, plain['transcript'])
        # the RSET after it got its own reply, not a leftover line
        self.assertEqual(plain['transcript'][-1], {'s': '250 2.0.0 Ok'})

    def test_helo_fallback_when_ehlo_is_refused(self):
        class NoEhlo(Policy):
            def ehlo(self, sess, verb, arg):
                if verb == 'EHLO':
                    return '500 5.5.1 Command unrecognized'
                return '250 mx.fake.test'
        srv = self.fake(NoEhlo())
        rc, objs, _ = probe(['--only', 'plain,helo-localhost', target(srv.port)])
        self.assertEqual(rc, 0, objs)
        self.assertIn('HELO probe.example.org', srv.all_commands())
        self.assertEqual(tests_by_id(objs[0])['plain']['verdict'], 'denied')

    def test_auth_before_tls_is_a_warning_not_a_relay(self):
        class PlainAuth(Policy):
            def other(self, sess, verb, line):
                if verb == 'AUTH':
                    return '535 5.7.8 Error: authentication failed'
                return super().other(sess, verb, line)
        srv = self.fake(PlainAuth())
        rc, objs, _ = probe(['--only', 'auth-before-tls,plain', target(srv.port)])
        self.assertEqual(rc, 0)
        t = tests_by_id(objs[0])
        self.assertEqual(t['auth-before-tls']['verdict'], 'warning')
        self.assertTrue(any('smtpd_tls_auth_only' in a for a in objs[0]['advice']))

    def test_3xx_at_mail_is_not_a_relay(self):
        class Continue(Policy):
            def mail(self, sess, path):
                return '334 go on'
        srv = self.fake(Continue())
        rc, objs, _ = probe(['--only', 'plain,null-sender', target(srv.port)])
        self.assertEqual(rc, 2, objs)
        self.assertEqual(objs[0]['verdict'], 'inconclusive')
        self.assertEqual(objs[0]['relayed'], [])
        plain = tests_by_id(objs[0])['plain']
        self.assertEqual(plain['verdict'], 'inconclusive')
        self.assertIn('334 at MAIL FROM', plain['note'])
        self.assertNotIn('RCPT TO:<relaytest@example.net>', srv.all_commands())

    def test_auth_334_is_cancelled_not_a_relay(self):
        class AskMore(Policy):
            def ehlo(self, sess, verb, arg):
                r = super().ehlo(sess, verb, arg)
                return r + '\n250 AUTH PLAIN' if verb == 'EHLO' else r
            def other(self, sess, verb, line):
                if verb == 'AUTH':
                    return '334 '
                if line == '*':
                    return '501 5.7.0 Authentication cancelled'
                return super().other(sess, verb, line)
        srv = self.fake(AskMore())
        rc, objs, _ = probe(['--only', 'auth-before-tls,plain', target(srv.port)])
        self.assertNotEqual(objs[0]['verdict'], 'open', objs)
        self.assertNotEqual(rc, 1)
        t = tests_by_id(objs[0])['auth-before-tls']
        self.assertNotIn(t['verdict'], ('relay-accepted', 'relay-confirmed'))
        self.assertIn({'c': '*'}, t['transcript'])
        self.assertIn('*', srv.all_commands())  # RFC 4954: the exchange was cancelled


class OpenServers(FakeServerCase):
    def test_accept_everything_then_drop(self):
        class Dropper(Policy):
            def before_command(self, sess, line):
                return None if len(sess['commands']) > 6 else False

            def rcpt(self, sess, path):
                return '250 2.1.5 Ok'
        srv = self.fake(Dropper())
        rc, objs, _ = probe([target(srv.port)])
        self.assertEqual(rc, 1)
        t = objs[0]
        self.assertEqual(t['verdict'], 'open')
        self.assertIn('plain', t['relayed'])
        by = tests_by_id(t)
        self.assertEqual(by['plain']['verdict'], 'relay-accepted')
        self.assertEqual(by['percent-ip']['verdict'], 'accepted-ambiguous')
        self.assertNotIn('error', {x['verdict'] for x in t['tests']})
        self.assertTrue(any('reject_unauth_destination' in a for a in t['advice']))

    def test_greylisting_then_accept_is_a_relay(self):
        class Greylist(Policy):
            seen = set()

            def rcpt(self, sess, path):
                if self.local(path):
                    return super().rcpt(sess, path)
                if path in self.seen:
                    return '250 2.1.5 Ok'
                self.seen.add(path)
                return '450 4.2.0 <%s>: Recipient address rejected: Greylisted' % path
        srv = self.fake(Greylist())
        rc, objs, _ = probe(['--retry-after', '0.2', '--only', 'plain,ipv4-literal',
                             target(srv.port)])
        self.assertEqual(rc, 1)
        plain = tests_by_id(objs[0])['plain']
        self.assertEqual(plain['verdict'], 'relay-accepted')
        self.assertIn('retry', plain['note'])
        self.assertEqual(sum(1 for c in srv.all_commands()
                             if c == 'RCPT TO:<relaytest@example.net>'), 2)

    def test_ambiguous_forms_only_are_suspicious_until_settled(self):
        class LocalPercent(Policy):
            """Like OpenSMTPD: %, ! and quoted forms at its own names are delivered locally."""

            def rcpt(self, sess, path):
                if domain_of(path) in OWN:
                    return '250 2.1.5 Ok'
                return super().rcpt(sess, path)

            def data_end(self, sess, body):
                fd, _ = tempfile.mkstemp(dir=self.local_dir, prefix='msg')
                with os.fdopen(fd, 'w') as f:
                    f.write(body)
                return '250 2.0.0 Ok: delivered locally'
        pol = LocalPercent()
        pol.local_dir = tempfile.mkdtemp(prefix='probe-local-')
        self.addCleanup(shutil.rmtree, pol.local_dir, True)
        srv = self.fake(pol)
        only = 'plain,percent-ip,bang-host,quoted-at-domain,backscatter'
        rc, objs, _ = probe(['--only', only, target(srv.port)])
        self.assertEqual(rc, 3)
        t = objs[0]
        self.assertEqual(t['verdict'], 'suspicious')
        by = tests_by_id(t)
        self.assertEqual(by['percent-ip']['verdict'], 'accepted-ambiguous')
        self.assertEqual(by['backscatter']['verdict'], 'warning')
        self.assertEqual(by['plain']['verdict'], 'denied')
        # --confirm-data with the server's own mailboxes settles it: delivered locally
        canary = tempfile.mkdtemp(prefix='probe-canary-')
        self.addCleanup(shutil.rmtree, canary, True)
        rc, objs, _ = probe(['--only', only, '--confirm-data', '--canary-dir', canary,
                             '--local-dir', pol.local_dir, '--canary-wait', '2',
                             target(srv.port)])
        self.assertEqual(rc, 0, objs)
        by = tests_by_id(objs[0])
        self.assertEqual(by['percent-ip']['verdict'], 'delivered-locally')
        self.assertEqual(by['bang-host']['verdict'], 'delivered-locally')
        self.assertEqual(objs[0]['verdict'], 'closed')
        self.assertTrue(any('X-Relayguard-Probe: ' + by['percent-ip']['token'] in m
                            for s in srv.sessions for m in s['messages']))

    def test_tokens_match_whole_and_local_delivery_does_not_hide_a_relay(self):
        class OpenDelivering(Policy):
            """Accepts every recipient; 'plain' reaches the canary, 'null-sender' is
            delivered to the server's own mailboxes, nothing else arrives anywhere."""
            def rcpt(self, sess, path):
                return '250 2.1.5 Ok'

            def data_end(self, sess, body):
                for test, where in (('plain', self.canary), ('null-sender', self.local_dir)):
                    if '(test %s)' % test in body:
                        fd, _ = tempfile.mkstemp(dir=where, prefix='msg')
                        with os.fdopen(fd, 'w') as f:
                            f.write(body)
                return '250 2.0.0 Ok: queued'
        pol = OpenDelivering()
        pol.canary = tempfile.mkdtemp(prefix='probe-canary-')
        pol.local_dir = tempfile.mkdtemp(prefix='probe-local-')
        for d in (pol.canary, pol.local_dir):
            self.addCleanup(shutil.rmtree, d, True)
        srv = self.fake(pol)
        # the whole battery: test 1 (null-sender) and tests 10..19 share a numeric prefix
        rc, objs, _ = probe(['--confirm-data', '--canary-dir', pol.canary, '--local-dir',
                             pol.local_dir, '--canary-wait', '1', target(srv.port)])
        self.assertEqual(rc, 1, objs)
        t = objs[0]
        self.assertEqual(t['verdict'], 'open')
        by = tests_by_id(t)
        ids = [x['id'] for x in t['tests']]
        self.assertGreater(len(ids), 19)
        self.assertEqual(by['plain']['verdict'], 'relay-confirmed')
        # an outside destination accepted: relaying, wherever the message went
        self.assertEqual(by['null-sender']['verdict'], 'relay-accepted')
        self.assertIn('delivered locally', by['null-sender']['note'])
        # tests 10..19 were found nowhere: their tokens only start like test 1's
        for i in range(10, 20):
            self.assertNotIn(by[ids[i]]['verdict'], ('delivered-locally', 'relay-confirmed'),
                             ids[i])
        self.assertEqual(by['mixed-case']['verdict'], 'relay-accepted')
        self.assertEqual(by['percent-ip']['verdict'], 'not-relayed')
        tokens = [x['token'] for x in t['tests'] if 'token' in x]
        self.assertEqual(len({len(k) for k in tokens}), 1, tokens)  # fixed width

    def test_several_targets_worst_exit_wins(self):
        secure = self.fake(Policy())

        class Open(Policy):
            def rcpt(self, sess, path):
                return '250 2.1.5 Ok'
        opened = self.fake(Open())
        rc, objs, _ = probe(['--only', 'plain', target(secure.port), target(opened.port),
                             '127.0.0.1:1'])
        self.assertEqual(rc, 1)
        verdicts = {o['port']: o['verdict'] for o in objs}
        self.assertEqual(verdicts, {secure.port: 'closed', opened.port: 'open', 1: 'unreachable'})


class TemporaryFailures(FakeServerCase):
    def test_persistent_4_7_1_is_denied_temporary(self):
        class Defer(Policy):
            def rcpt(self, sess, path):
                if self.local(path):
                    return super().rcpt(sess, path)
                return '454 4.7.1 <%s>: Relay access denied' % path
        srv = self.fake(Defer())
        rc, objs, _ = probe(['--retry-after', '0.1', '--only', 'plain,bang-ip', target(srv.port)])
        self.assertEqual(rc, 0)
        plain = tests_by_id(objs[0])['plain']
        self.assertEqual(plain['verdict'], 'denied-temporary')
        self.assertIn('defers', plain['note'])
        self.assertTrue(any('defer_unauth_destination' in a for a in objs[0]['advice']))

    def test_a_target_waiting_to_retry_does_not_hold_a_concurrency_slot(self):
        order = []

        class Deferring(Policy):
            def greeting(self, sess):
                order.append(self.label)
                return super().greeting(sess)

            def rcpt(self, sess, path):
                if self.label == 'A' and not self.local(path):
                    return '454 4.7.1 <%s>: Relay access denied' % path
                return super().rcpt(sess, path)
        a, b = Deferring(), Deferring()
        a.label, b.label = 'A', 'B'
        sa, sb = self.fake(a), self.fake(b)
        rc, objs, _ = probe(['--concurrency', '1', '--lanes', '1', '--retry-after', '2',
                             '--only', 'plain', target(sa.port), target(sb.port)])
        self.assertEqual(rc, 0, objs)
        by_target = {x['target']: x for x in objs}
        self.assertEqual(tests_by_id(by_target[target(sa.port)])['plain']['verdict'],
                         'denied-temporary')
        self.assertEqual(tests_by_id(by_target[target(sb.port)])['plain']['verdict'], 'denied')
        # B was tested while A waited for its retry, not after it
        self.assertEqual(order, ['A', 'B', 'A'])

    def test_persistent_other_4xx_is_inconclusive(self):
        class Busy(Policy):
            def rcpt(self, sess, path):
                if self.local(path):
                    return super().rcpt(sess, path)
                return '451 4.3.0 Try again later'
        srv = self.fake(Busy())
        rc, objs, _ = probe(['--retry-after', '0.1', '--only', 'plain', target(srv.port)])
        self.assertEqual(rc, 2)
        self.assertEqual(objs[0]['verdict'], 'inconclusive')
        self.assertEqual(tests_by_id(objs[0])['plain']['verdict'], 'inconclusive')

    def test_421_mid_session_reconnects(self):
        class Closing(Policy):
            def before_command(self, sess, line):
                mails = sum(1 for c in sess['commands'] if c.startswith('MAIL'))
                if line.startswith('MAIL') and mails == 2:
                    return '421 4.7.0 mx.fake.test Error: too many errors'
                return False
        srv = self.fake(Closing())
        rc, objs, _ = probe([target(srv.port)])
        self.assertEqual(rc, 0, [x for x in objs[0]['tests'] if x['verdict'] != 'denied'])
        self.assertEqual(objs[0]['verdict'], 'closed')
        self.assertTrue(any(c.startswith('MAIL') for c in srv.all_commands()))

    def test_exim_style_drop_after_rejections(self):
        class Exim(Policy):
            def before_command(self, sess, line):
                if sess['rejections'] >= 3:
                    return None  # drops the session without a word
                return False
        srv = self.fake(Exim())
        rc, objs, _ = probe([target(srv.port)])
        self.assertEqual(rc, 0)
        self.assertEqual(objs[0]['verdict'], 'closed')
        self.assertEqual(len([x for x in objs[0]['tests'] if x['verdict'] == 'denied']),
                         len([x for x in objs[0]['tests'] if x['verdict'] != 'skipped']))

    def test_refused_sender_does_not_hide_the_rcpt_form(self):
        class SenderCheck(Policy):
            """Refuses IP-literal senders (as Exim's sender verification does) and
            accepts %-forms at its own address literal."""

            def mail(self, sess, path):
                if '@[' in path:
                    return '550 5.7.1 Sender verify failed'
                return '250 2.1.0 Ok'

            def rcpt(self, sess, path):
                if path.endswith('@[127.0.0.1]') and '%' in path:
                    return '250 2.1.5 Ok'
                return super().rcpt(sess, path)
        srv = self.fake(SenderCheck())
        rc, objs, _ = probe(['--only', 'percent-ip,sender-ip', target(srv.port)])
        self.assertEqual(rc, 3, objs)
        by = tests_by_id(objs[0])
        self.assertEqual(by['percent-ip']['verdict'], 'accepted-ambiguous')
        self.assertEqual(by['percent-ip']['mail_from'], 'relayprobe@example.net')
        self.assertIn('relayprobe@[127.0.0.1]> refused', by['percent-ip']['note'])
        # where the sender is the trick, a refusal is the answer
        self.assertEqual(by['sender-ip']['verdict'], 'denied')
        self.assertEqual(by['sender-ip']['mail_from'], 'relayprobe@[127.0.0.1]')

    def test_long_server_names_never_truncate_an_address(self):
        class LongName(Policy):
            def greeting(self, sess):
                return '220 %s ESMTP' % self.name
        def sent_paths(srv):
            return [c for c in srv.all_commands() if c.startswith(('MAIL FROM:', 'RCPT TO:'))]
        # a 247-byte name: the tests use the address literal instead
        pol = LongName()
        pol.name = ('a' * 60 + '.') * 3 + 'b' * 60 + '.test'
        srv = self.fake(pol)
        rc, objs, _ = probe([target(srv.port)])
        by = tests_by_id(objs[0])
        self.assertEqual(by['percent-host']['rcpt_to'], 'relaytest%example.net@[127.0.0.1]')
        self.assertEqual(by['route-host']['rcpt_to'], '@[127.0.0.1]:relaytest@example.net')
        sent = sent_paths(srv)
        for x in objs[0]['tests']:
            if x['verdict'] not in ('skipped', 'error'):
                self.assertIn('RCPT TO:<%s>' % x['rcpt_to'], sent, x['id'])
        self.assertEqual(rc, 0, [(x['id'], x['verdict']) for x in objs[0]['tests']])
        # a 190-byte name and a long --victim: what does not fit is not sent at all
        pol.name = ('a' * 60 + '.') * 3 + 'b' * 2 + '.test'
        srv = self.fake(pol)
        victim = 'v' * 120 + '@' + 'd' * 70 + '.example'
        rc, objs, _ = probe(['--victim', victim, target(srv.port)])
        by = tests_by_id(objs[0])
        self.assertEqual(by['route-multihop']['verdict'], 'error')
        self.assertIn('address too long', by['route-multihop']['note'])
        self.assertEqual(by['plain']['verdict'], 'denied')
        sent = sent_paths(srv)
        self.assertTrue(all(len(c.split(':', 1)[1]) <= 256 for c in sent),
                        max(sent, key=len))
        for x in objs[0]['tests']:
            if x['verdict'] not in ('skipped', 'error'):
                self.assertIn('RCPT TO:<%s>' % x['rcpt_to'], sent, x['id'])

    def test_reply_over_the_line_limit_says_so(self):
        class Endless(Policy):
            def rcpt(self, sess, path):
                if self.local(path):
                    return super().rcpt(sess, path)
                return '\n'.join(['554 5.7.1 denied, line %d' % i for i in range(600)])
        srv = self.fake(Endless())
        rc, objs, _ = probe(['--only', 'plain', target(srv.port)])
        plain = tests_by_id(objs[0])['plain']
        self.assertEqual(plain['verdict'], 'error')
        shown = [x['s'] for x in plain['transcript'] if 's' in x]
        self.assertTrue(any(x.startswith('(reply has more than 512 lines') for x in shown), shown)
        self.assertFalse(any('malformed' in x for x in shown), shown)

    def test_slow_reply_times_out(self):
        class Slow(Policy):
            def rcpt(self, sess, path):
                if self.local(path):
                    return super().rcpt(sess, path)
                time.sleep(2)
                return super().rcpt(sess, path)
        srv = self.fake(Slow())
        rc, objs, _ = probe(['--timeout', '0.5', '--only', 'plain', target(srv.port)])
        self.assertEqual(rc, 2)
        plain = tests_by_id(objs[0])['plain']
        self.assertEqual(plain['verdict'], 'timeout')
        self.assertEqual(objs[0]['verdict'], 'inconclusive')

    def test_late_refusal_of_the_proxy_header_shifts_no_reply(self):
        class LateProxyRefusal(Policy):
            """Refuses the PROXY header, but only after the probe stopped waiting."""
            def before_command(self, sess, line):
                if line.startswith('PROXY '):
                    time.sleep(1.5)
                    return '500 5.5.2 Error: command not recognized'
                return False
        srv = self.fake(LateProxyRefusal())
        rc, objs, _ = probe(['--timeout', '3', '--only', 'proxy-protocol,plain',
                             target(srv.port)])
        self.assertEqual(rc, 0, objs)
        self.assertEqual(objs[0]['verdict'], 'closed')
        t = tests_by_id(objs[0])['proxy-protocol']
        self.assertEqual(t['verdict'], 'denied', t)
        # the 500 was taken as the answer to EHLO: no HELO, MAIL or RCPT followed it
        proxy_sessions = [x for x in srv.sessions if x['commands'][:1] and
                          x['commands'][0].startswith('PROXY ')]
        self.assertEqual(len(proxy_sessions), 1)
        self.assertFalse(any(c.startswith(('HELO', 'MAIL', 'RCPT'))
                             for c in proxy_sessions[0]['commands']), proxy_sessions)

    def test_unreachable(self):
        port = harness.free_port()
        rc, objs, _ = probe([target(port)])
        self.assertEqual(rc, 2)
        self.assertEqual(objs[0]['verdict'], 'unreachable')
        self.assertIn('refused', objs[0]['error'])


@harness.requires(shutil.which('openssl'), 'openssl', 'the openssl command')
class Tls(FakeServerCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='probe-tls-')
        cls.certs = make_cert(cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def test_starttls_when_asked(self):
        pol = Policy()
        pol.starttls = True
        srv = self.fake(pol, certs=self.certs)
        rc, objs, _ = probe(['--starttls', '--only', 'plain,xclient,auth-before-tls',
                             target(srv.port)])
        self.assertEqual(rc, 0, objs)
        self.assertEqual(objs[0]['tls'], 'starttls')
        for s in srv.sessions:
            mails = [c for c in s['commands'] if c.startswith('MAIL')]
            if 'AUTH' in ' '.join(s['commands']):
                self.assertFalse(s['tls'], 'auth-before-tls must stay in plain text')
            elif mails:
                self.assertTrue(s['tls'], s['commands'])
        xclient = tests_by_id(objs[0])['xclient']
        self.assertIn({'c': 'STARTTLS'}, xclient['transcript'])

    def test_no_starttls_unless_asked(self):
        pol = Policy()
        pol.starttls = True
        srv = self.fake(pol, certs=self.certs)
        rc, objs, _ = probe(['--only', 'plain', target(srv.port)])
        self.assertEqual(rc, 0)
        self.assertEqual(objs[0]['tls'], 'none')
        self.assertNotIn('STARTTLS', srv.all_commands())

    def test_implicit_tls(self):
        srv = self.fake(Policy(), implicit_tls=True, certs=self.certs)
        rc, objs, _ = probe(['--tls', '--only', 'plain,null-sender', target(srv.port)])
        self.assertEqual(rc, 0, objs)
        self.assertEqual(objs[0]['tls'], 'implicit')
        self.assertTrue(all(s['tls'] for s in srv.sessions))
        self.assertEqual(tests_by_id(objs[0])['plain']['verdict'], 'denied')


class Cli(unittest.TestCase):
    def test_list_names_every_nmap_test(self):
        p = harness.run_cli(['probe', '--list'])
        self.assertEqual(p.returncode, 0)
        for n in range(1, 17):
            self.assertRegex(p.stdout, r'smtp-open-relay #%d\b' % n)

    def test_usage_errors(self):
        for args in (['--port', '0', 'h'], ['bad host'], ['--only', 'nope', 'h'],
                     ['--victim', 'novictim', 'h'], ['--canary-dir', '/tmp', 'h'],
                     ['--tls', '--starttls', 'h'], ['--bogus', 'h'], [],
                     # zero tests would say "closed"; ':' makes no DNS name
                     ['--only', '', 'h'], ['--only', ',', 'h'], ['1.2.3.4:25:'],
                     ['--victim', 'v' * 128 + '@example.net', 'h']):
            p = harness.run_cli(['probe'] + args)
            self.assertEqual(p.returncode, 64, args)
        self.assertEqual(harness.run_cli(['probe', '--help']).returncode, 0)
        p = harness.run_cli(['probe', '--victim', 'v' * 128 + '@example.net', 'h'])
        self.assertIn('local part', p.stderr)

    def test_target_files_are_read_by_whole_lines(self):
        srv = FakeSMTP(Policy())
        self.addCleanup(srv.stop)
        d = tempfile.mkdtemp(prefix='probe-targets-')
        self.addCleanup(shutil.rmtree, d, True)
        empty = os.path.join(d, 'empty')
        open(empty, 'w').close()
        p = harness.run_cli(['probe', '-f', empty])
        self.assertEqual(p.returncode, 64)
        self.assertIn('no targets in ' + empty, p.stderr)
        # a comment line of 1037 bytes: its tail is still comment, not a target
        long_comment = os.path.join(d, 'comment')
        with open(long_comment, 'w') as f:
            f.write('#' + 'x' * 1022 + target(srv.port) + '\n')
        p = harness.run_cli(['probe', '--timeout', '1', '-f', long_comment])
        self.assertEqual(p.returncode, 64, p.stdout)
        self.assertIn('no targets in', p.stderr)
        self.assertEqual(srv.sessions, [])


class Smuggling(FakeServerCase):
    def test_split_here_or_at_the_next_hop_is_smuggling(self):
        class NextHopSplits(Policy):
            """Reads lines up to a bare LF, so it ends DATA at <LF>.<LF> itself (and
            answers the smuggled commands); writes each message it takes to the
            canary directory as a next hop that ends data at <CR>.<CR><LF> would
            receive it: split in two there."""
            def data_end(self, sess, body):
                for part in body.split('\r.\r\n'):
                    fd, _ = tempfile.mkstemp(dir=self.canary, prefix='msg')
                    with os.fdopen(fd, 'w', encoding='latin-1') as f:
                        f.write(part)
                return '250 2.0.0 Ok: queued'
        pol = NextHopSplits()
        pol.canary = tempfile.mkdtemp(prefix='probe-canary-')
        self.addCleanup(shutil.rmtree, pol.canary, True)
        srv = self.fake(pol)
        rc, objs, _ = probe(['--smuggle', '--only', 'smuggle-lf-lf,smuggle-cr-crlf,smuggle-crlf-cr',
                             '--confirm-data', '--canary-dir', pol.canary, '--canary-wait', '2',
                             target(srv.port)])
        self.assertEqual(rc, 4, objs)
        t = objs[0]
        self.assertEqual(t['verdict'], 'vulnerable')
        self.assertEqual(t['relayed'], [])
        by = tests_by_id(t)
        lf = by['smuggle-lf-lf']
        self.assertEqual(lf['verdict'], 'smuggling-accepted')
        self.assertEqual(lf['rcpt_to'], 'postmaster@fake.test')
        self.assertIn('replies 250 250 250 354 250', lf['note'])
        self.assertEqual(lf['smuggled_token'], lf['token'] + '-s')
        self.assertIn('arrived on its own', lf['note'])
        # the fake took the smuggled transaction as a second message of its own
        sess = [x for x in srv.sessions if any(lf['token'] + '-s' in m for m in x['messages'])]
        self.assertEqual(len(sess), 1)
        self.assertEqual([lf['token'] + '-s' in m for m in sess[0]['messages']], [False, True])
        self.assertEqual(sess[0]['commands'].count('RCPT TO:<postmaster@fake.test>'), 2)
        # one message here, two at the next hop: smuggling all the same
        cr = by['smuggle-cr-crlf']
        self.assertEqual(cr['verdict'], 'smuggling-accepted')
        self.assertIn('one message (250)', cr['note'])
        self.assertIn('the smuggled message (token %s-s) arrived on its own' % cr['token'],
                      cr['note'])
        # one message everywhere: not smuggled
        whole = by['smuggle-crlf-cr']
        self.assertEqual(whole['verdict'], 'not-smuggled')
        self.assertIn('arrived as one message', whole['note'])
        self.assertTrue(any('SMTP smuggling' in a for a in t['advice']), t['advice'])

    def test_only_with_confirm_data(self):
        srv = self.fake(Policy())
        p = harness.run_cli(['probe', '--smuggle', target(srv.port)])
        self.assertEqual(p.returncode, 64)
        self.assertIn('--smuggle needs --confirm-data', p.stderr)
        # named with --only but without --confirm-data: skipped, nothing sent
        rc, objs, _ = probe(['--only', 'plain,smuggle-lf-lf', target(srv.port)])
        self.assertEqual(rc, 0, objs)
        by = tests_by_id(objs[0])
        self.assertEqual(by['smuggle-lf-lf']['verdict'], 'skipped')
        self.assertIn('needs --confirm-data', by['smuggle-lf-lf']['note'])
        # never part of the default battery, even with --confirm-data
        rc, objs, _ = probe(['--confirm-data', target(srv.port)])
        self.assertEqual([x['id'] for x in objs[0]['tests'] if x['id'].startswith('smuggle')], [])
        self.assertEqual([c for x in srv.sessions for c in x['commands'] if c == 'DATA'], [])


class AgainstRelayguard(unittest.TestCase):
    def test_default_config_is_closed(self):
        with harness.Server() as srv:
            rc, objs, _ = probe([target(srv.port)])
            self.assertEqual(rc, 0, objs)
            self.assertEqual(objs[0]['verdict'], 'closed')
            self.assertEqual(objs[0]['relayed'], [])
            self.assertEqual(srv.queue_files('deferred'), [])

    def test_broad_mynetworks_is_open_and_confirmed_by_canary(self):
        with harness.Server(overrides={'mynetworks': '127.0.0.0/8',
                                       'mydestination': '$myhostname localhost'}) as srv:
            rc, objs, _ = probe([target(srv.port)])
            self.assertEqual(rc, 1)
            self.assertIn('plain', objs[0]['relayed'])
            self.assertEqual(srv.queue_files('deferred'), [])  # no DATA by default
            rc, objs, _ = probe(['--only', 'plain,percent-host,backscatter', '--confirm-data',
                                 '--canary-dir', os.path.join(srv.queue_dir, 'deferred'),
                                 '--local-dir', srv.mail_dir, '--canary-wait', '5',
                                 target(srv.port)])
            self.assertEqual(rc, 1)
            by = tests_by_id(objs[0])
            self.assertEqual(by['plain']['verdict'], 'relay-confirmed')
            self.assertEqual(by['percent-host']['verdict'], 'relay-confirmed')
            self.assertEqual(by['backscatter']['verdict'], 'denied')
            self.assertEqual(set(objs[0]['relayed']), {'plain', 'percent-host'})

    def test_from_loopback_says_the_address_is_trusted(self):
        # relayguard's default mynetworks covers 127.0.0.0/8: a probe from this
        # host relays, and the report says why before anything else, without
        # blaming the routing forms; it is still an open verdict, exit 1
        with harness.Server(overrides={'mynetworks': None}) as srv:
            rc, objs, _ = probe(['--only', 'plain,percent-host,backscatter', target(srv.port)],
                                source=None)
            self.assertEqual(rc, 1, objs)
            t = objs[0]
            self.assertEqual((t['verdict'], t['relayed'], t['loopback_trusted']),
                             ('open', ['plain'], True))
            self.assertTrue(t['advice'][0].startswith('the probe connected from a loopback '
                                                      'address, and even the plain case relayed: '
                                                      'the server trusts this address'),
                            t['advice'])
            self.assertIn('--source ADDR', t['advice'][0])
            self.assertFalse(any('sender-specified routing' in a for a in t['advice']),
                             t['advice'])
            self.assertEqual(tests_by_id(t)['percent-host']['verdict'], 'accepted-ambiguous')
            p = subprocess.run([harness.binary(), 'probe', '--only', 'plain', target(srv.port)],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 1)
            # the table: the reason right under the verdict, before the relays
            self.assertRegex(p.stdout, r'verdict: OPEN RELAY .*\n  - the probe connected from '
                                       r'a loopback address, and even the plain case relayed: '
                                       r'the server trusts this address.*\n  - relayed to ')

    def test_every_smuggling_variant_is_refused(self):
        """relayguard ends DATA only at <CR><LF>.<CR><LF> and refuses a message with
        a bare <CR> or <LF>: no variant gets a second message through."""
        with harness.Server() as srv:
            rc, objs, _ = probe(['--smuggle', '--confirm-data', '--domain', 'localhost',
                                 '--local-dir', srv.mail_dir, '--canary-wait', '3',
                                 target(srv.port)])
            self.assertEqual(rc, 0, objs)
            t = objs[0]
            self.assertEqual(t['verdict'], 'closed')
            by = tests_by_id(t)
            self.assertEqual(set(x for x in by if x.startswith('smuggle')), set(SMUGGLE_EOD))
            for tid in SMUGGLE_EOD:
                test = by[tid]
                replies = [x['s'] for x in test['transcript'] if 's' in x]
                # greeting, EHLO, MAIL, RCPT, then DATA
                self.assertEqual(replies[4], '354 End data with <CR><LF>.<CR><LF>', tid)
                self.assertNotIn('smuggled message was accepted', test['note'], tid)
                if tid == 'smuggle-nul':
                    # no bare CR or LF in it: one message, the NUL line in its body
                    self.assertEqual(test['verdict'], 'not-smuggled')
                    self.assertIn('arrived as one message', test['note'])
                    self.assertEqual(len(replies), 6, replies)
                    continue
                self.assertEqual(test['verdict'], 'denied', tid)
                self.assertEqual(replies[5:], ['550 5.5.2 Error: message contains a bare <CR> '
                                               'or <LF>; lines must end with <CR><LF> (message '
                                               'not accepted)'], tid)
            # nothing smuggled reached a mailbox: each token only in its carrier
            mails = []
            for root, _, files in os.walk(srv.mail_dir):
                for name in files:
                    with open(os.path.join(root, name), 'rb') as f:
                        mails.append(f.read())
            self.assertEqual(len(mails), 1)
            self.assertIn(by['smuggle-nul']['smuggled_token'].encode(), mails[0])
            # a refused carrier still names both tokens: they were sent
            self.assertEqual(by['smuggle-lf-lf']['smuggled_token'],
                             by['smuggle-lf-lf']['token'] + '-s')
            self.assertEqual(srv.queue_files('deferred'), [])

    @harness.requires(harness.ipv6_available(), '::1 on the loopback interface (sysctl net.ipv6.conf.lo.disable_ipv6=0)', 'an IPv6 target')
    def test_ipv6_target(self):
        with harness.Server(ipv6=True) as srv:
            # [::1] is in this server's mynetworks: an open relay for that client
            rc, objs, _ = probe(['--only', 'plain,percent-ip', '[::1]:%d' % srv.port6],
                                source=None)
            self.assertEqual(rc, 1, objs)
            self.assertEqual(objs[0]['address'], '::1')
            by = tests_by_id(objs[0])
            self.assertEqual(by['plain']['verdict'], 'relay-accepted')
            self.assertEqual(by['percent-ip']['rcpt_to'], 'relaytest%example.net@[IPv6:::1]')


DNSMASQ = shutil.which('dnsmasq') or '/usr/sbin/dnsmasq'


@harness.requires(os.path.exists(DNSMASQ), 'dnsmasq-base', 'a DNS server on loopback (dnsmasq)')
class TargetNames(unittest.TestCase):
    """Target names are resolved through c-ares on the probe's event loop; here
    from dnsmasq on 127.0.0.1, which knows mx.probe.test -> 127.0.0.1 and
    nothing else (--no-resolv: it asks nobody)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-probe-dns-')
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(('127.0.0.1', 0))
            cls.dns_port = s.getsockname()[1]
        cls.dns = subprocess.Popen(
            [DNSMASQ, '--keep-in-foreground', '--port=%d' % cls.dns_port,
             '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts',
             '--host-record=mx.probe.test,127.0.0.1',
             '--pid-file=' + os.path.join(cls.tmp, 'pid'),
             '--log-facility=' + os.path.join(cls.tmp, 'log'), '--log-queries', '--user=root'],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)
        if cls.dns.poll() is not None:
            raise RuntimeError('dnsmasq did not start: %s' % cls.dns.stderr.read())

    @classmethod
    def tearDownClass(cls):
        cls.dns.terminate()
        cls.dns.wait(5)
        cls.dns.stderr.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def dns_arg(self):
        return ['--dns-server', '127.0.0.1:%d' % self.dns_port]

    def test_name_resolved_through_dns(self):
        with harness.Server() as srv:
            rc, objs, _ = probe(self.dns_arg() + ['--only', 'plain',
                                                  'mx.probe.test:%d' % srv.port])
            self.assertEqual(rc, 0, objs)
            t = objs[0]
            self.assertEqual((t['host'], t['address'], t['verdict']),
                             ('mx.probe.test', '127.0.0.1', 'closed'))
            self.assertEqual(tests_by_id(t)['plain']['verdict'], 'denied')
        with open(os.path.join(self.tmp, 'log')) as f:
            self.assertIn('query[A] mx.probe.test from 127.0.0.1', f.read())

    def test_unknown_name_is_unreachable_and_others_still_run(self):
        with harness.Server() as srv:
            rc, objs, _ = probe(self.dns_arg() + ['--only', 'plain', 'nosuch.probe.test:25',
                                                  'mx.probe.test:%d' % srv.port])
            self.assertEqual(rc, 2)
            by_host = {o['host']: o for o in objs}
            self.assertEqual(by_host['nosuch.probe.test']['verdict'], 'unreachable')
            self.assertIn('cannot resolve nosuch.probe.test', by_host['nosuch.probe.test']['error'])
            self.assertEqual(by_host['mx.probe.test']['verdict'], 'closed')

    def test_bad_dns_server_option(self):
        p = harness.run_cli(['probe', '--dns-server', 'resolver.example', 'mx.probe.test'])
        self.assertEqual(p.returncode, 64)
        self.assertIn('--dns-server', p.stderr)


if __name__ == '__main__':
    unittest.main()
