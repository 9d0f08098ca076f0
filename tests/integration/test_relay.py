"""test_relay.py - relayguard must never relay for an untrusted client.

127.0.0.9 is outside mynetworks (see harness.Server); 127.0.0.1 is inside.
"""
import time
import os
import unittest

import harness

from harness import (HOSTNAME, TRUSTED, UNTRUSTED, Conn, Server, ipv6_available,
                     smtp_session, swaks)


def relay_denied(rcpt):
    return (554, '5.7.1 <%s>: Relay access denied' % rcpt)


def user_unknown(rcpt):
    return (550, '5.1.1 <%s>: Recipient address rejected: User unknown in local '
                 'recipient table' % rcpt)


SYNTAX = (501, '5.1.3 Bad recipient address syntax')  # prefix of the text


class ServerPerClass(harness.ServerPerClass):
    def assertNothingQueued(self):
        s = self.server
        self.assertEqual(s.queue_files('active'), [], 'queue active/ not empty')
        self.assertEqual(s.queue_files('deferred'), [], 'queue deferred/ not empty')
        self.assertEqual(s.queue_files('tmp'), [], 'queue tmp/ not empty')
        self.assertEqual(s.all_mail(), [], 'something was delivered')
        self.assertNotIn(' queued ', s.log(), 'the log shows a queued message')


class ClassicAttack(ServerPerClass):
    """The session from docs/open-relay-attack.md, verbatim."""

    def test_classic_attack_raw(self):
        mark = self.server.mark()
        replies = smtp_session(self.server.port, [
            'HELO attacker.com',
            'MAIL FROM:<ceo@paypal.com>',
            'RCPT TO:<victim@gmail.com>',
            'DATA',
            'This is a fake email.',
            '.',
            'QUIT',
        ], source=UNTRUSTED)
        self.assertEqual(replies[0][0], 220)
        self.assertEqual(replies[1], (250, HOSTNAME))
        self.assertEqual(replies[2], (250, '2.1.0 Ok'))
        self.assertEqual(replies[3], relay_denied('victim@gmail.com'))
        self.assertEqual(replies[4], (554, '5.5.1 Error: no valid recipients'))
        # the would-be message text is taken as (unknown) commands, never as mail
        self.assertEqual(replies[5][0], 500)
        self.assertEqual(replies[6][0], 500)
        self.assertEqual(replies[7], (221, '2.0.0 Bye'))
        log = self.server.wait_log('disconnect', since=mark)
        self.assertIsNotNone(log, 'no disconnect in the log')
        lines = [l for l in log.splitlines() if 'Relay access denied' in l]
        self.assertEqual(len(lines), 1, 'expected one "Relay access denied" log line:\n' + log)
        line = lines[0]
        for want in ('client=127.0.0.9', 'helo=attacker.com',
                     'restriction=reject_unauth_destination', 'to=<victim@gmail.com>',
                     'from=<ceo@paypal.com>', 'result=reject'):
            self.assertIn(want, line)
        self.assertNothingQueued()

    def test_classic_attack_swaks_quit_after_rcpt(self):
        rc, out = swaks(self.server.port, ['--helo', 'attacker.com', '--from', 'ceo@paypal.com',
                                           '--to', 'victim@gmail.com', '--quit-after', 'RCPT'])
        self.assertIn('554 5.7.1 <victim@gmail.com>: Relay access denied', out)
        self.assertNotEqual(rc, 0, out)
        self.assertNothingQueued()

    def test_classic_attack_swaks_full_message(self):
        rc, out = swaks(self.server.port, ['--helo', 'attacker.com', '--from', 'ceo@paypal.com',
                                           '--to', 'victim@gmail.com',
                                           '--body', 'This is a fake email.'])
        self.assertIn('554 5.7.1 <victim@gmail.com>: Relay access denied', out)
        self.assertNotIn('queued as', out)
        self.assertEqual(rc, 24, 'swaks should report "RCPT failed" (24):\n' + out)
        self.assertNothingQueued()

    def test_classic_attack_over_ehlo(self):
        replies = smtp_session(self.server.port, [
            'EHLO attacker.com', 'MAIL FROM:<ceo@paypal.com> BODY=8BITMIME',
            'RCPT TO:<victim@gmail.com>', 'QUIT'])
        self.assertEqual(replies[3], relay_denied('victim@gmail.com'))
        self.assertNothingQueued()


# (description, HELO name, MAIL FROM path, RCPT TO path, expected reply)
# An expected reply of SYNTAX means: code 501, text starts with SYNTAX[1].
TRICKS = [
    ('percent hack', 'attacker.example', 'a@attacker.example',
     'u%victim.example@localhost', 'relay'),
    ('percent hack, own IP literal', 'attacker.example', 'a@attacker.example',
     'u%victim.example@[127.0.0.1]', 'relay'),
    ('double percent hack', 'attacker.example', 'a@attacker.example',
     'u%victim.example%localhost@localhost', 'relay'),
    ('percent hack, trailing dot on our domain', 'attacker.example', 'a@attacker.example',
     'u%victim.example@localhost.', 'relay'),
    ('multiple @', 'attacker.example', 'a@attacker.example',
     'u@victim.example@localhost', 'relay'),
    ('quoted @ in local part', 'attacker.example', 'a@attacker.example',
     '"u@victim.example"@localhost', 'relay'),
    ('quoted percent, unqualified', 'attacker.example', 'a@attacker.example',
     '"u%victim.example"', 'relay'),
    ('quoted @, unqualified', 'attacker.example', 'a@attacker.example',
     '"u@victim.example"', 'relay'),
    ('quoted @, own IP literal', 'attacker.example', 'a@attacker.example',
     '"u@victim.example"@[127.0.0.1]', 'relay'),
    ('quoted, escaped @', 'attacker.example', 'a@attacker.example',
     '"u\\@victim.example"@localhost', 'relay'),
    ('bang path', 'attacker.example', 'a@attacker.example', 'victim.example!u', 'relay'),
    ('bang path at our domain', 'attacker.example', 'a@attacker.example',
     'victim.example!u@localhost', 'relay'),
    ('double bang path', 'attacker.example', 'a@attacker.example',
     'localhost!victim.example!u', 'relay'),
    ('source route', 'attacker.example', 'a@attacker.example',
     '@localhost:u@victim.example', 'relay'),
    ('source route, two hops', 'attacker.example', 'a@attacker.example',
     '@a.example,@localhost:u@victim.example', 'relay'),
    ('source route to a percent hack', 'attacker.example', 'a@attacker.example',
     '@localhost:u%victim.example@localhost', 'relay'),
    ('malformed source route (no colon)', 'attacker.example', 'a@attacker.example',
     '@localhost,u@victim.example', 'syntax'),
    ('IPv4 literal', 'attacker.example', 'a@attacker.example', 'u@[192.0.2.1]', 'relay'),
    ('IPv6 literal', 'attacker.example', 'a@attacker.example', 'u@[IPv6:2001:db8::1]',
     'relay'),
    ('bare numeric domain', 'attacker.example', 'a@attacker.example', 'u@192.0.2.1',
     'relay'),
    ('trailing @', 'attacker.example', 'a@attacker.example', 'victim@example.net@',
     'syntax'),
    ('trailing dot', 'attacker.example', 'a@attacker.example', 'victim@example.net.',
     'relay'),
    ('mixed case', 'attacker.example', 'a@attacker.example', 'Victim@EXAMPLE.NET', 'relay'),
    ('mixed case percent hack', 'attacker.example', 'a@attacker.example',
     'u%Victim.Example@LocalHost', 'relay'),
    ('unqualified', 'attacker.example', 'a@attacker.example', 'victim', 'relay'),
    ('null sender', 'attacker.example', '', 'victim@example.net', 'relay'),
    ('local-looking sender', 'attacker.example', 'postmaster@localhost',
     'victim@example.net', 'relay'),
    ('sender in our own hostname', 'attacker.example', 'postmaster@' + HOSTNAME,
     'victim@example.net', 'relay'),
    ('HELO localhost', 'localhost', 'a@attacker.example', 'victim@example.net', 'relay'),
    ('HELO own hostname', HOSTNAME, 'a@attacker.example', 'victim@example.net', 'relay'),
    ('HELO own IP literal', '[127.0.0.1]', 'a@attacker.example', 'victim@example.net',
     'relay'),
    ('unknown local user', 'attacker.example', 'a@attacker.example', 'victim@localhost',
     'unknown'),
    ('unknown local user at own IP literal', 'attacker.example', 'a@attacker.example',
     'victim@[127.0.0.1]', 'unknown'),
]


class RelayTricks(ServerPerClass):
    """Every routing trick from 127.0.0.9 is refused, and nothing is ever queued."""

    def expected(self, kind, rcpt):
        if kind == 'relay':
            return relay_denied(rcpt)
        if kind == 'unknown':
            return user_unknown(rcpt)
        return SYNTAX

    def test_tricks(self):
        for desc, helo, sender, rcpt, kind in TRICKS:
            with self.subTest(desc, rcpt=rcpt):
                replies = smtp_session(self.server.port, [
                    'HELO ' + helo, 'MAIL FROM:<%s>' % sender, 'RCPT TO:<%s>' % rcpt,
                    'DATA', 'QUIT'])
                self.assertEqual(replies[1], (250, HOSTNAME))
                self.assertEqual(replies[2], (250, '2.1.0 Ok'))
                want = self.expected(kind, rcpt)
                got = replies[3]
                if kind == 'syntax':
                    self.assertEqual(got[0], want[0], got)
                    self.assertTrue(got[1].startswith(want[1]), got)
                else:
                    self.assertEqual(got, want)
                self.assertEqual(replies[4], (554, '5.5.1 Error: no valid recipients'))
                self.assertEqual(replies[5], (221, '2.0.0 Bye'))
        self.assertNothingQueued()

    def test_tricks_in_one_session(self):
        """The same tricks one after another in one ESMTP transaction."""
        rows = [r for r in TRICKS if r[1] == 'attacker.example' and r[2] == 'a@attacker.example']
        with Conn(self.server.port) as c:
            self.assertEqual(c.cmd('EHLO attacker.example')[0], 250)
            self.assertEqual(c.cmd('MAIL FROM:<a@attacker.example>'), (250, '2.1.0 Ok'))
            errors = 1
            for desc, _h, _s, rcpt, kind in rows:
                if errors >= 19:  # stay under smtpd_hard_error_limit (20)
                    c.cmd('RSET')
                    break
                with self.subTest(desc, rcpt=rcpt):
                    got = c.cmd('RCPT TO:<%s>' % rcpt)
                    errors += 1
                    want = self.expected(kind, rcpt)
                    if kind == 'syntax':
                        self.assertEqual(got[0], want[0], got)
                    else:
                        self.assertEqual(got, want)
            self.assertEqual(c.cmd('QUIT'), (221, '2.0.0 Bye'))
        self.assertNothingQueued()

    def test_tricks_with_swaks(self):
        for rcpt in ('u%victim.example@localhost', 'victim.example!u@localhost',
                     'u@victim.example@localhost', 'u@[192.0.2.1]', 'Victim@EXAMPLE.NET'):
            with self.subTest(rcpt=rcpt):
                rc, out = swaks(self.server.port, ['--helo', 'attacker.example',
                                                   '--from', 'a@attacker.example',
                                                   '--to', rcpt, '--quit-after', 'RCPT'])
                self.assertIn('554 5.7.1 <%s>: Relay access denied' % rcpt, out)
                self.assertNotEqual(rc, 0)
        self.assertNothingQueued()

    def test_other_loopback_address_is_untrusted(self):
        """Only 127.0.0.1/32 is in mynetworks: 127.0.0.10 is refused like 127.0.0.9."""
        replies = smtp_session(self.server.port, [
            'HELO attacker.example', 'MAIL FROM:<a@attacker.example>',
            'RCPT TO:<victim@example.net>', 'QUIT'], source='127.0.0.10')
        self.assertEqual(replies[3], relay_denied('victim@example.net'))


class LocalRecipients(ServerPerClass):
    def test_unknown_local_user(self):
        replies = smtp_session(self.server.port, [
            'HELO client.example.org', 'MAIL FROM:<a@example.org>',
            'RCPT TO:<nobody@localhost>', 'QUIT'])
        self.assertEqual(replies[3], user_unknown('nobody@localhost'))

    def test_postmaster_accepted_from_untrusted(self):
        for rcpt in ('postmaster@localhost', 'postmaster', 'POSTMASTER@LocalHost',
                     'postmaster@[127.0.0.1]'):
            with self.subTest(rcpt=rcpt):
                replies = smtp_session(self.server.port, [
                    'HELO client.example.org', 'MAIL FROM:<a@example.org>',
                    'RCPT TO:<%s>' % rcpt, 'RSET', 'QUIT'])
                self.assertEqual(replies[3], (250, '2.1.5 Ok'))

    def test_null_sender_to_postmaster(self):
        replies = smtp_session(self.server.port, [
            'HELO client.example.org', 'MAIL FROM:<>', 'RCPT TO:<postmaster>', 'RSET', 'QUIT'])
        self.assertEqual(replies[3], (250, '2.1.5 Ok'))


class TrustedClientRelays(ServerPerClass):
    def test_trusted_client_relays_and_mail_waits_in_deferred(self):
        s = self.server
        mark = s.mark()
        replies = smtp_session(s.port, [
            'HELO app.example.org', 'MAIL FROM:<app@example.org>',
            'RCPT TO:<victim@example.net>', 'DATA', 'Subject: relayed', '', 'hello', '.',
            'QUIT'], source=TRUSTED)
        self.assertEqual(replies[3], (250, '2.1.5 Ok'))
        self.assertEqual(replies[4][0], 354)
        self.assertEqual(replies[5][0], 250)
        self.assertRegex(replies[5][1], r'^2\.0\.0 Ok: queued as [0-9A-F]{16}$')
        qid = replies[5][1].rsplit(' ', 1)[1]
        log = s.wait_log(r'deferred queue=%s .*outbound delivery is off in this test' % qid,
                         since=mark)
        self.assertIsNotNone(log, 'no "deferred" line for %s in the log:\n' % qid + s.tail())
        for _ in range(100):
            if s.queue_files('deferred'):
                break
            time.sleep(0.05)
        self.assertEqual(s.queue_files('deferred'), [qid])
        self.assertEqual(s.wait_queue_empty('active'), [])
        self.assertEqual(s.all_mail(), [])
        rcpt_lines = [l for l in log.splitlines() if ' rcpt ' in l]
        self.assertTrue(any('restriction=permit_mynetworks' in l and 'result=accept' in l
                            for l in rcpt_lines), log)


class OpenRelayConfig(ServerPerClass):
    # a deliberate open relay: the start-up self-test would refuse it
    overrides = {'mynetworks': '0.0.0.0/0', 'relay_selftest': 'warn'}

    def test_warning_at_start(self):
        warnings = [l for l in self.server.log_lines() if 'open relay' in l]
        self.assertTrue(warnings, 'no "open relay" warning at start:\n' + self.server.tail())
        self.assertTrue(any('warning' in l for l in warnings), warnings)

    def test_untrusted_client_may_relay(self):
        replies = smtp_session(self.server.port, [
            'HELO attacker.example', 'MAIL FROM:<a@attacker.example>',
            'RCPT TO:<victim@example.net>', 'RSET', 'QUIT'])
        self.assertEqual(replies[3], (250, '2.1.5 Ok'))



class OpenAccessTable(unittest.TestCase):
    """check_client_access OK for the whole Internet in the relay list is an
    open relay too: it starts (the operator asked for it) but says so."""

    def test_warning_and_relay(self):
        srv = Server(start=False)
        table = os.path.join(srv.dir, 'access.cidr')
        with open(table, 'w') as f:
            f.write('0.0.0.0/0 OK\n')
        os.chmod(table, 0o644)
        with open(srv.config_path, 'a') as f:
            f.write('smtpd_relay_restrictions = permit_mynetworks, check_client_access '
                    'cidr:%s, reject_unauth_destination\n' % table)
            f.write('relay_selftest = warn\n')  # deliberately open: start anyway
        with srv.start():
            risk = [l for l in srv.log_lines() if 'open-relay-risk' in l]
            self.assertTrue(any('check_client_access' in l and 'open relay' in l for l in risk),
                            srv.tail())
            replies = smtp_session(srv.port, ['HELO attacker.example',
                                              'MAIL FROM:<a@attacker.example>',
                                              'RCPT TO:<victim@example.net>', 'QUIT'])
            self.assertEqual(replies[3], (250, '2.1.5 Ok'))


class RelayDomains(ServerPerClass):
    """relay_domains are authorised destinations; nothing else is."""
    overrides = {'relay_domains': 'relay.test, .parent.test',
                 'relay_recipient_maps': 'inline:{known@relay.test, @x.parent.test}'}

    ROWS = [
        ('known@relay.test', (250, '2.1.5 Ok')),
        ('KNOWN@Relay.Test', (250, '2.1.5 Ok')),
        ('anyone@x.parent.test', (250, '2.1.5 Ok')),
        ('other@relay.test', (550, '5.1.1 <other@relay.test>: Recipient address rejected: '
                                   'User unknown in relay recipient table')),
        ('u@x.relay.test', relay_denied('u@x.relay.test')),          # no ".relay.test"
        ('u@parent.test', relay_denied('u@parent.test')),            # only subdomains
        ('u@relay.test.example', relay_denied('u@relay.test.example')),
        ('u@notrelay.test', relay_denied('u@notrelay.test')),
        ('u%victim.example@relay.test', relay_denied('u%victim.example@relay.test')),
        ('@relay.test:u@victim.example', relay_denied('@relay.test:u@victim.example')),
        ('victim.example!known@relay.test', relay_denied('victim.example!known@relay.test')),
        ('"known@victim.example"@relay.test', relay_denied('"known@victim.example"@relay.test')),
    ]

    def test_relay_domains_from_untrusted(self):
        for rcpt, want in self.ROWS:
            with self.subTest(rcpt=rcpt):
                r = smtp_session(self.server.port, [
                    'HELO c.example.org', 'MAIL FROM:<a@example.org>',
                    'RCPT TO:<%s>' % rcpt, 'RSET', 'QUIT'])
                self.assertEqual(r[3], want)

    def test_accepted_relay_mail_waits_in_deferred(self):
        s = self.server
        r = smtp_session(s.port, ['HELO c.example.org', 'MAIL FROM:<a@example.org>',
                                  'RCPT TO:<known@relay.test>', 'DATA', 'Subject: r', '',
                                  'x', '.', 'QUIT'])
        self.assertEqual(r[5][0], 250, r)
        qid = r[5][1].rsplit(' ', 1)[1]
        deadline = time.time() + 5
        while qid not in s.queue_files('deferred') and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn(qid, s.queue_files('deferred'))
        self.assertEqual(s.all_mail(), [])


class ClientAccess(ServerPerClass):
    """check_client_access cidr: tables in smtpd_client_restrictions."""

    @classmethod
    def setUpClass(cls):
        import os
        import tempfile
        cls.tables = tempfile.mkdtemp(prefix='relayguard-cidr-')
        os.chmod(cls.tables, 0o755)
        path = os.path.join(cls.tables, 'clients.cidr')
        with open(path, 'w') as f:
            f.write('# blocked\n127.0.0.9/32 REJECT go away\n127.0.0.10 OK\n'
                    '127.0.0.11 450 try later\n')
        cls.overrides = {'smtpd_client_restrictions': 'check_client_access cidr:' + path}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        import shutil
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tables, ignore_errors=True)

    def rcpt(self, source, rcpt):
        return smtp_session(self.server.port, ['HELO c.example.org', 'MAIL FROM:<a@example.org>',
                                               'RCPT TO:<%s>' % rcpt, 'RSET', 'QUIT'],
                            source=source)[3]

    def test_reject(self):
        self.assertEqual(self.rcpt(UNTRUSTED, 'postmaster@localhost'),
                         (554, '5.7.1 <localhost[127.0.0.9]>: Client host rejected: go away'))

    def test_defer(self):
        r = self.rcpt('127.0.0.11', 'postmaster@localhost')
        self.assertEqual(r[0], 450, r)
        self.assertTrue(r[1].startswith('4.7.1 '), r)

    def test_ok_does_not_permit_relaying(self):
        """OK ends the client list only; the relay restrictions still apply."""
        self.assertEqual(self.rcpt('127.0.0.10', 'victim@example.net'),
                         relay_denied('victim@example.net'))
        self.assertEqual(self.rcpt('127.0.0.10', 'postmaster@localhost'), (250, '2.1.5 Ok'))


@harness.requires(ipv6_available(), '::1 on the loopback interface (sysctl net.ipv6.conf.lo.disable_ipv6=0)', 'an IPv6 listener')
class IPv6Listener(ServerPerClass):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(ipv6=True)

    def test_ipv6_loopback_client_is_trusted(self):
        s = self.server
        r = smtp_session(s.port6, ['EHLO c.example.org', 'MAIL FROM:<a@example.org>',
                                   'RCPT TO:<victim@example.net>', 'RSET', 'QUIT'],
                         source='::1', host='::1')
        self.assertEqual(r[0][0], 220)
        self.assertEqual(r[3], (250, '2.1.5 Ok'))
        self.assertIn('client=::1', s.log())

    def test_ipv4_untrusted_still_refused_with_ipv6_listener(self):
        r = smtp_session(self.server.port, ['HELO attacker.com', 'MAIL FROM:<ceo@paypal.com>',
                                            'RCPT TO:<victim@gmail.com>', 'QUIT'])
        self.assertEqual(r[3], relay_denied('victim@gmail.com'))

    def test_own_ipv6_literal_is_local(self):
        r = smtp_session(self.server.port, [
            'HELO c.example.org', 'MAIL FROM:<a@example.org>',
            'RCPT TO:<postmaster@[IPv6:::1]>', 'RCPT TO:<u%victim.example@[IPv6:::1]>',
            'RCPT TO:<u@[IPv6:2001:db8::1]>', 'RSET', 'QUIT'])
        self.assertEqual(r[3], (250, '2.1.5 Ok'))
        self.assertEqual(r[4], relay_denied('u%victim.example@[IPv6:::1]'))
        self.assertEqual(r[5], relay_denied('u@[IPv6:2001:db8::1]'))


if __name__ == '__main__':
    unittest.main()
