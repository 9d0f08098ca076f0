"""test_virtual.py - aliases and hosted domains, Postfix style (issue 12).

One relayguard hosts three kinds of domain: ourdomain.test (mydestination, with
/etc/aliases-style alias_maps), alias.test (virtual_alias_domains: every address
is an alias, with a catch-all) and hosted.test (virtual_mailbox_domains: per-user
Maildirs under virtual_mailbox_base from virtual_mailbox_maps). Some aliases
forward to friend@outside.test: that mail is queued and delivered through the
test DNS (dnslab.py: outside.test's MX is a second relayguard on 127.0.0.41).
Every message comes from an untrusted client (127.0.0.9), as a stranger's
would: our users receive, nobody relays.
"""
import os
import re
import shutil
import tempfile
import time
import unittest

from dnslab import DnsLab, require_dnsmasq
from harness import Server, Conn, run_cli, UNTRUSTED
from test_outbound import free_port_on
from test_probe import probe, tests_by_id

RECEIVER_IP = '127.0.0.41'
OUTSIDE = 'friend@outside.test'

ALIASES = """# /etc/aliases for ourdomain.test (and localhost)
postmaster: alice
team: alice,
  bob
fwd: friend@outside.test
"""

VIRTUAL = """info@alias.test      carol@hosted.test, dave@hosted.test
fwd@alias.test       friend@outside.test
@alias.test          carol@hosted.test
ghost@alias.test     nobody@hosted.test
loop1@alias.test     loop2@alias.test
loop2@alias.test     loop1@alias.test
"""

VMAILBOX = """carol@hosted.test    hosted.test/carol/
dave@hosted.test     hosted.test/dave/
"""


def write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


class Virtual(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_dnsmasq()
        cls.tables = tempfile.mkdtemp(prefix='relayguard-virtual-')
        cls.addClassCleanup(shutil.rmtree, cls.tables, True)
        os.chmod(cls.tables, 0o755)
        cls.port = free_port_on(RECEIVER_IP)
        cls.dns = DnsLab(mx={'outside.test': [(10, 'mx.outside.test')]},
                         hosts={'mx.outside.test': [RECEIVER_IP]})
        cls.addClassCleanup(cls.dns.cleanup)
        cls.dns.start()
        cls.rcv = Server(overrides={
            'myhostname': 'mx.outside.test',
            'smtpd_listen': '%s:%d' % (RECEIVER_IP, cls.port),
            'mydestination': 'outside.test',
            'local_recipient_maps': 'inline:{%s}' % OUTSIDE,
        })
        cls.addClassCleanup(cls.rcv.cleanup)
        cls.addClassCleanup(cls.rcv.stop)
        cls.srv = Server(overrides={
            'myhostname': 'mx.ourdomain.test',
            'mydestination': 'localhost ourdomain.test',
            'myorigin': 'ourdomain.test',
            'local_recipient_maps': 'inline:{ alice, bob, postmaster }',
            'alias_maps': write(cls.tables, 'aliases', ALIASES),
            'virtual_alias_domains': 'alias.test',
            'virtual_alias_maps': 'texthash:' + write(cls.tables, 'virtual', VIRTUAL),
            'virtual_mailbox_domains': 'hosted.test',
            'virtual_mailbox_maps': 'texthash:' + write(cls.tables, 'vmailbox', VMAILBOX),
            'recipient_delimiter': '+',
            'default_transport': 'smtp',
            'dns_servers': cls.dns.servers,
            'smtpd_peername_lookup': 'no',
            'smtp_tcp_port': str(cls.port),
            'queue_run_delay': '1s',
            'minimal_backoff_time': '1s',
        })
        cls.addClassCleanup(cls.srv.cleanup)
        cls.addClassCleanup(cls.srv.stop)

    # -- helpers ------------------------------------------------------------
    def send(self, rcpts, marker, source=UNTRUSTED):
        """One message from a stranger; returns the RCPT replies (DATA only if one took)."""
        with Conn(self.srv.port, source=source) as c:
            self.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
            self.assertEqual(c.cmd('MAIL FROM:<someone@example.org>')[0], 250)
            replies = [c.cmd('RCPT TO:<%s>' % r) for r in rcpts]
            if any(r[0] == 250 for r in replies):
                self.assertEqual(c.cmd('DATA')[0], 354)
                reply = c.cmd('Subject: %s\r\nX-Marker: %s\r\n\r\nhello\r\n.' % (marker, marker))
                self.assertEqual(reply[0], 250, reply)
            c.cmd('QUIT')
        return replies

    def mail_with(self, server, domain, user, marker, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for name in server.maildir(domain, user):
                data = server.read_mail(domain, user, name)
                if marker.encode() in data:
                    return data
            time.sleep(0.05)
        self.fail('%s@%s did not get %s\n%s' % (user, domain, marker, server.tail(30)))

    def no_mail_with(self, marker):
        for path in self.srv.all_mail() + self.rcv.all_mail():
            with open(path, 'rb') as f:
                self.assertNotIn(marker.encode(), f.read(), path)

    # -- hosted domains -----------------------------------------------------
    def test_hosted_users_get_their_own_maildirs(self):
        replies = self.send(['carol@hosted.test', 'dave+news@hosted.test'], 'm-hosted')
        self.assertEqual([r[0] for r in replies], [250, 250], replies)
        carol = self.mail_with(self.srv, 'hosted.test', 'carol', 'm-hosted')
        dave = self.mail_with(self.srv, 'hosted.test', 'dave', 'm-hosted')
        self.assertIn(b'Delivered-To: carol@hosted.test', carol)
        # user+tag is delivered to user, and says which address it came to
        self.assertIn(b'Delivered-To: dave+news@hosted.test', dave)
        self.assertFalse(os.path.exists(self.srv.maildir_path('hosted.test', 'dave+news')))

    def test_unknown_user_of_a_hosted_domain_is_rejected_at_rcpt(self):
        replies = self.send(['nobody@hosted.test', 'nobody@ourdomain.test'], 'm-unknown')
        self.assertEqual(replies[0], (550, '5.1.1 <nobody@hosted.test>: Recipient address '
                                           'rejected: User unknown in virtual mailbox table'))
        self.assertEqual(replies[1][0], 550, replies)
        self.assertIn('User unknown in local recipient table', replies[1][1])

    # -- aliases ------------------------------------------------------------
    def test_alias_to_two_local_users(self):
        replies = self.send(['team@ourdomain.test'], 'm-team')
        self.assertEqual(replies[0][0], 250, replies)
        self.mail_with(self.srv, 'ourdomain.test', 'alice', 'm-team')
        self.mail_with(self.srv, 'ourdomain.test', 'bob', 'm-team')
        self.assertEqual(self.srv.maildir('ourdomain.test', 'team'), [])
        log = self.srv.wait_log(r'expand .*to=<team@ourdomain\.test> recipients=2')
        self.assertIsNotNone(log, self.srv.tail(20))

    def test_catch_all_and_exact_alias_of_a_virtual_alias_domain(self):
        # an exact entry beats the catch-all; carol is listed twice and gets one copy
        replies = self.send(['anything@alias.test', 'info@alias.test'], 'm-catch')
        self.assertEqual([r[0] for r in replies], [250, 250], replies)
        self.mail_with(self.srv, 'hosted.test', 'carol', 'm-catch')
        self.mail_with(self.srv, 'hosted.test', 'dave', 'm-catch')
        time.sleep(0.3)
        copies = [n for n in self.srv.maildir('hosted.test', 'carol')
                  if b'm-catch' in self.srv.read_mail('hosted.test', 'carol', n)]
        self.assertEqual(len(copies), 1)

    def test_alias_to_a_missing_mailbox_bounces_to_the_aliased_sender(self):
        # accepted (ghost@alias.test is an alias), bounced at delivery (nobody has no
        # mailbox), and the bounce to team@ourdomain.test reaches alice and bob
        with Conn(self.srv.port, source=UNTRUSTED) as c:
            self.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
            self.assertEqual(c.cmd('MAIL FROM:<team@ourdomain.test>')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<ghost@alias.test>')[0], 250)
            self.assertEqual(c.cmd('DATA')[0], 354)
            self.assertEqual(c.cmd('Subject: m-ghost\r\n\r\nhello\r\n.')[0], 250)
            c.cmd('QUIT')
        for user in ('alice', 'bob'):
            dsn = self.mail_with(self.srv, 'ourdomain.test', user, 'm-ghost')
            self.assertIn(b'Final-Recipient: rfc822; nobody@hosted.test', dsn)
            self.assertIn(b'Original-Recipient: rfc822; ghost@alias.test', dsn)
            self.assertIn(b'Status: 5.1.1', dsn)
        self.assertEqual(self.srv.maildir('hosted.test', 'nobody'), [])

    def test_alias_loop_is_a_temporary_error(self):
        replies = self.send(['loop1@alias.test'], 'm-loop')
        self.assertEqual(replies[0][0], 451, replies)
        self.assertIn('4.3.0 <loop1@alias.test>: Temporary lookup failure: alias loop',
                      replies[0][1])

    # -- forwarding outside: for our users, by the queue ----------------------
    def test_forward_to_an_outside_address_is_delivered(self):
        mark = self.srv.mark()
        replies = self.send(['fwd@ourdomain.test', 'fwd@alias.test'], 'm-forward')
        self.assertEqual([r[0] for r in replies], [250, 250], replies)
        data = self.mail_with(self.rcv, 'outside.test', OUTSIDE.split('@')[0], 'm-forward')
        self.assertIn(b'Delivered-To: friend@outside.test', data)
        log = self.srv.wait_log(r'delivered queue=\S+ to=<friend@outside\.test> '
                                r'relay=mx\.outside\.test', timeout=10)
        self.assertIsNotNone(log, self.srv.tail(30))
        # both aliases name the same outside address: queued once
        self.assertRegex(self.srv.log_since(mark), r'queued .*nrcpt=1\b')
        self.assertRegex(self.srv.log_since(mark),
                         r'expand to=<fwd@ourdomain\.test> recipients=1 outside=yes')
        self.assertEqual(self.srv.maildir('ourdomain.test', 'fwd'), [])

    # -- strangers cannot relay through any of it ---------------------------
    def test_routed_forms_through_aliases_are_relay_access_denied(self):
        forms = [OUTSIDE, 'friend%outside.test@ourdomain.test',
                 'fwd%ourdomain.test@ourdomain.test', 'friend%outside.test@alias.test',
                 'fwd%alias.test@alias.test', 'friend%outside.test@hosted.test',
                 '@ourdomain.test:friend@outside.test', '@alias.test:fwd@alias.test',
                 'outside.test!friend@alias.test', 'alias.test!fwd@ourdomain.test',
                 '"friend@outside.test"@alias.test', '"fwd@alias.test"@ourdomain.test',
                 'friend@outside.test@hosted.test']
        replies = self.send(forms, 'm-relay')
        for form, reply in zip(forms, replies):
            self.assertEqual(reply, (554, '5.7.1 <%s>: Relay access denied' % form), form)
        self.no_mail_with('m-relay')

    def test_probe_battery_finds_no_relay(self):
        for domain in ('ourdomain.test', 'alias.test', 'hosted.test'):
            rc, objs, _ = probe(['--domain', domain, '--victim', OUTSIDE,
                                 '127.0.0.1:%d' % self.srv.port])
            self.assertEqual(rc, 0, (domain, objs))
            self.assertEqual(objs[0]['verdict'], 'closed', domain)
            self.assertEqual(objs[0]['relayed'], [], domain)
            denied = [t for t, v in tests_by_id(objs[0]).items() if v['verdict'] == 'denied']
            self.assertGreaterEqual(len(denied), 20, (domain, objs[0]['tests']))
        # the probe stops at RCPT: nothing of it was queued for anyone
        self.assertEqual(self.srv.queue_files('active') + self.srv.queue_files('deferred'), [])

    # -- the operator's view -----------------------------------------------
    def test_explain_shows_the_expansion(self):
        p = run_cli(['explain', '-c', self.srv.config_path, '--client', UNTRUSTED,
                     '--from', 'someone@example.org', '--to', 'info@alias.test'])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('expansion: info@alias.test -> carol@hosted.test, dave@hosted.test '
                      '(virtual_alias_maps)', p.stdout)
        self.assertIn('delivers to: carol@hosted.test, dave@hosted.test\n', p.stdout)
        p = run_cli(['explain', '-c', self.srv.config_path, '--client', UNTRUSTED,
                     '--from', 'someone@example.org', '--to', 'fwd@ourdomain.test'])
        self.assertIn('delivers to: friend@outside.test (forwarded outside', p.stdout)

    def test_audit_sees_aliases_forwarding_outside(self):
        p = run_cli(['audit', '-c', self.srv.config_path])
        self.assertIn('alias-forward-outside: alias_maps %s: fwd goes to friend@outside.test'
                      % os.path.join(self.tables, 'aliases'), p.stdout)
        self.assertIn('alias-forward-outside: virtual_alias_maps texthash:%s: fwd@alias.test '
                      'goes to friend@outside.test' % os.path.join(self.tables, 'virtual'),
                      p.stdout)
        # forwarding is no relay: the stranger row stays closed
        self.assertNotIn('[open]', p.stdout)


class AliasFileErrors(unittest.TestCase):
    """What the first version cannot do is refused at start, with file:line."""

    def config_errors(self, aliases_text):
        tmp = tempfile.mkdtemp(prefix='relayguard-virtual-cfg-')
        self.addCleanup(shutil.rmtree, tmp, True)
        aliases = write(tmp, 'aliases', aliases_text)
        cf = write(tmp, 'main.cf', 'alias_maps = %s\n' % aliases)
        p = run_cli(['config', '-c', cf])
        return p.returncode, p.stderr, aliases, cf

    def test_pipe_file_and_include_are_refused_with_file_and_line(self):
        cases = [
            ('ok: alice\nbackup: /var/backups/mail\n', ':2: "/var/backups/mail": delivery to '
             'a file (/path) is not supported in this version'),
            ('ok: alice\n\nlist: alice,\n  "|/usr/bin/procmail"\n', ':3: ""|/usr/bin/procmail"": '
             'delivery to a command (|command) is not supported in this version'),
            ('staff: :include:/etc/mail/staff\n', ':1: ":include:/etc/mail/staff": :include: '
             'files are not supported'),
        ]
        for text, want in cases:
            rc, err, aliases, cf = self.config_errors(text)
            self.assertEqual(rc, 78, err)
            self.assertIn('%s:1: alias_maps: %s%s' % (cf, aliases, want), err)


if __name__ == '__main__':
    unittest.main()
