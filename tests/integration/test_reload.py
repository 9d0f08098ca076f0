"""test_reload.py - running under systemd: sd_notify states and SIGHUP reloads.

The notify tests play systemd's part: a unix datagram socket in a temporary
directory, named to the server in NOTIFY_SOCKET, receives READY=1 (once the
listeners accept and the queue is recovered), RELOADING=1 / READY=1 around a
SIGHUP and STOPPING=1 at SIGTERM. The reload tests change the file under a
running server: new sessions get the new policy, an open session keeps the
one it started with, and a broken file or one the relay self-test refuses
is not taken.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from fakesmtp import FakeSMTP, Policy
from harness import (TRUSTED, UNTRUSTED, Conn, Server, binary, free_port,
                     sanitizer_report)

RELAY_DENIED = 554


def rewrite(srv, changes):
    """Set (or with None remove) parameters in the server's main.cf."""
    with open(srv.config_path) as f:
        lines = f.read().splitlines()
    out, seen = [], set()
    for line in lines:
        name = line.split('=', 1)[0].strip()
        if name in changes:
            seen.add(name)
            if changes[name] is not None:
                out.append('%s = %s' % (name, changes[name]))
            continue
        out.append(line)
    out += ['%s = %s' % (k, v) for k, v in changes.items() if k not in seen and v is not None]
    tmp = srv.config_path + '.new'
    with open(tmp, 'w') as f:  # renamed into place, as editors and config tools do
        f.write('\n'.join(out) + '\n')
    os.rename(tmp, srv.config_path)


def write_table(path, text):
    """A table file, readable by the server after it dropped privileges."""
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def hup(srv, expect=r'info reloaded config='):
    """SIGHUP, then wait for the outcome's log line; returns the log after the signal."""
    mark = srv.mark()
    srv.proc.send_signal(signal.SIGHUP)
    text = srv.wait_log(expect, since=mark, timeout=10)
    if text is None:
        raise AssertionError('no %r after SIGHUP:\n%s' % (expect, srv.log_since(mark)))
    return text


def open_session(port, source):
    c = Conn(port, source=source)
    assert c.greeting[0] == 220, c.greeting
    assert c.cmd('EHLO client.example.org')[0] == 250
    assert c.cmd('MAIL FROM:<sender@example.org>')[0] == 250
    return c


def rcpt_code(conn, rcpt='someone@example.net'):
    return conn.cmd('RCPT TO:<%s>' % rcpt)[0]


def new_session_rcpt(port, source, rcpt='someone@example.net'):
    with open_session(port, source) as c:
        return rcpt_code(c, rcpt)


class Reload(unittest.TestCase):
    def test_new_mynetworks_for_new_sessions_old_for_open_ones(self):
        with Server() as srv:  # mynetworks = 127.0.0.1/32 [::1]/128
            before = open_session(srv.port, UNTRUSTED)
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED), RELAY_DENIED)
            rewrite(srv, {'mynetworks': '127.0.0.1/32 127.0.0.9/32 [::1]/128'})
            log = hup(srv)
            self.assertRegex(log, r'info reloaded config=%s' % re.escape(srv.config_path))
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED), 250)  # now trusted
            self.assertEqual(rcpt_code(before), RELAY_DENIED)  # started before: old policy
            # its message goes through on the configuration it started with; another
            # reload meanwhile, and the old one is released only after it ends
            self.assertEqual(rcpt_code(before, 'postmaster@localhost'), 250)
            self.assertEqual(before.cmd('DATA')[0], 354)
            before.send('Subject: across a reload\r\n\r\nhello\r\n')
            hup(srv)
            self.assertEqual(before.cmd('.')[0], 250)
            self.assertEqual(before.cmd('QUIT')[0], 221)
            before.close()
            srv.wait_maildir('localhost', 'postmaster')
            hup(srv)

    def test_changed_restriction_applies_to_new_sessions(self):
        with Server() as srv:
            before = open_session(srv.port, TRUSTED)
            rewrite(srv, {'smtpd_relay_restrictions': 'reject_unauth_destination'})
            hup(srv)
            self.assertEqual(new_session_rcpt(srv.port, TRUSTED), RELAY_DENIED)
            self.assertEqual(rcpt_code(before), 250)  # permit_mynetworks still, for it
            self.assertEqual(new_session_rcpt(srv.port, TRUSTED, 'postmaster@localhost'), 250)
            before.close()
            # the replaced configuration went with its session: repeated reloads
            # do not pile them up (ASan's leak check at exit covers the frees)
            for _ in range(3):
                hup(srv)
            self.assertEqual(new_session_rcpt(srv.port, TRUSTED), RELAY_DENIED)

    def test_an_open_session_keeps_only_its_own_configuration(self):
        """A session holds the configuration it started under, not every one a
        reload installs while it is open: each holds a copy of every table, and
        a client that keeps its connection for hours must not make each reload
        cost the server another copy of them."""
        with Server() as srv:
            c = open_session(srv.port, TRUSTED)
            for i in range(4):
                rewrite(srv, {'mydestination': 'localhost, gen%d.test' % i})
                log = hup(srv)
                # the start-up configuration (the session's) and nothing else
                self.assertIn('replaced_in_use=1', log, log)
            # the session still works on its own configuration
            self.assertEqual(rcpt_code(c, 'postmaster@localhost'), 250)
            self.assertEqual(c.cmd('QUIT')[0], 221)
            c.close()
            time.sleep(0.3)  # its end is seen and its configuration collected
            self.assertIn('replaced_in_use=0', hup(srv))

    def test_broken_file_is_refused_and_the_old_one_kept(self):
        with Server() as srv:
            rewrite(srv, {'mynetworks': '127.0.0.1/32 127.0.0.9/32 10.0.0.x/8'})
            with open(srv.config_path) as f:
                line = 1 + [l.startswith('mynetworks') for l in f].index(True)
            log = hup(srv, r'reload-refused')
            self.assertIn('reload refused: %s:%d: mynetworks' % (srv.config_path, line), log)
            self.assertIn('10.0.0.x/8', log)
            self.assertNotIn('reloaded config=', log)
            # still serving, on the old policy: 127.0.0.9 is not trusted
            self.assertTrue(srv.alive())
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED), RELAY_DENIED)
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'postmaster@localhost'), 250)
            # fixed, the next reload takes it
            rewrite(srv, {'mynetworks': '127.0.0.1/32 127.0.0.9/32'})
            hup(srv)
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED), 250)

    def test_selftest_refuses_an_open_relay_on_reload(self):
        with Server() as srv:
            # loads (a warning only), but every stranger is "mynetworks"
            rewrite(srv, {'mynetworks': '0.0.0.0/0'})
            log = hup(srv, r'reload-refused')
            self.assertRegex(log, r'open-relay trick=')  # the trick lines, as at start
            self.assertRegex(log, r'relay-selftest-failed tricks=\d+')
            self.assertIn('reload refused: %s: the relay self-test' % srv.config_path, log)
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED), RELAY_DENIED)
            self.assertTrue(srv.alive())

    def test_selftest_warn_takes_an_open_relay_loudly_on_reload(self):
        with Server() as srv:
            rewrite(srv, {'mynetworks': '0.0.0.0/0', 'relay_selftest': 'warn'})
            log = hup(srv)
            self.assertRegex(log, r'open-relay-risk selftest=relayed')
            self.assertTrue(any('plain (third-party relay)' in l and 'open-relay-risk' in l
                                for l in log.splitlines()), log)
            self.assertNotIn('reload-refused', log)
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED), 250)  # as it warned

    def test_changed_listener_needs_a_restart(self):
        with Server() as srv:
            other = free_port()
            rewrite(srv, {'smtpd_listen': '127.0.0.1:%d' % other,
                          'mynetworks': '127.0.0.1/32 127.0.0.9/32'})
            log = hup(srv)
            self.assertRegex(log, r'warning reload-needs-restart param=smtpd_listen ')
            self.assertNotIn('param=mynetworks', log)
            # the listener is kept; the rest of the file applies
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED), 250)
            with self.assertRaises(OSError):
                socket.create_connection(('127.0.0.1', other), timeout=1).close()

    def test_values_only_a_restart_changes_stay_as_they_run(self):
        no_tls = {'smtpd_tls_security_level': 'none', 'submission_listen': '',
                  'submissions_listen': ''}
        with Server(overrides=no_tls) as srv:
            rewrite(srv, {'myhostname': 'other.relayguard.test',
                          'smtpd_tls_security_level': 'may'})
            log = hup(srv)
            self.assertRegex(log, r'reload-needs-restart param=myhostname ')
            self.assertRegex(log, r'reload-needs-restart param=smtpd_tls_security_level ')
            with Conn(srv.port, source=UNTRUSTED) as c:
                code, text = c.cmd('EHLO client.example.org')
                self.assertEqual(code, 250)
                self.assertTrue(text.startswith(srv.hostname), text)  # the running name
                self.assertNotIn('STARTTLS', text)  # no certificate was loaded at start


    def test_a_table_only_a_restart_changes_keeps_its_running_lines(self):
        """smtp_tls_policy_maps belongs to the SMTP client, built once: its file
        edited under the same value is named for a restart, and the rest of
        the file (a new hosted user) is applied."""
        srv = Server(start=False)
        tls, vmailbox = (os.path.join(srv.dir, n) for n in ('tls_policy', 'vmailbox'))
        write_table(tls, 'example.net may\n')
        write_table(vmailbox, 'alice@hosted.test hosted.test/alice/\n')
        rewrite(srv, {'smtp_tls_policy_maps': 'texthash:' + tls,
                      'virtual_mailbox_domains': 'hosted.test',
                      'virtual_mailbox_maps': 'texthash:' + vmailbox})
        with srv:
            srv.start()
            write_table(tls, 'example.net encrypt\n')
            write_table(vmailbox, 'alice@hosted.test hosted.test/alice/\n'
                                  'bob@hosted.test hosted.test/bob/\n')
            log = hup(srv)
            self.assertRegex(log, r'reload-needs-restart param=smtp_tls_policy_maps ')
            self.assertNotIn('param=virtual_mailbox_maps', log)
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'bob@hosted.test'), 250)

    def test_a_value_naming_a_parameter_only_a_restart_changes_uses_the_running_one(self):
        """smtpd_banner = $myhostname ESMTP ... reloads, myhostname does not: a
        new session was greeted with the file's new name and answered EHLO
        with the running one."""
        with Server() as srv:
            running = srv.hostname
            rewrite(srv, {'myhostname': 'renamed.example.net'})
            self.assertRegex(hup(srv), r'reload-needs-restart param=myhostname ')
            with Conn(srv.port, source=UNTRUSTED) as c:
                self.assertIn(running, c.greeting[1])
                self.assertNotIn('renamed', c.greeting[1])
                code, text = c.cmd('EHLO client.example.org')
                self.assertEqual(code, 250)
                self.assertIn(running, text)


def send(port, rcpts, marker, sender='someone@example.org', source=UNTRUSTED):
    """One message in its own session; returns the RCPT replies (DATA only if one took)."""
    with Conn(port, source=source) as c:
        assert c.cmd('EHLO client.example.org')[0] == 250
        assert c.cmd('MAIL FROM:<%s>' % sender)[0] == 250
        replies = [c.cmd('RCPT TO:<%s>' % r) for r in rcpts]
        if any(r[0] == 250 for r in replies):
            assert c.cmd('DATA')[0] == 354
            reply = c.cmd('Subject: %s\r\nX-Marker: %s\r\n\r\nhello\r\n.' % (marker, marker))
            assert reply[0] == 250, reply
        c.cmd('QUIT')
    return replies


def mail_with(srv, domain, user, marker, timeout=10):
    """The message in domain/user's Maildir that carries marker (None: none came)."""
    deadline = time.time() + timeout
    while True:
        for name in srv.maildir(domain, user):
            data = srv.read_mail(domain, user, name)
            if marker.encode() in data:
                return data
        if time.time() > deadline:
            return None
        time.sleep(0.05)


def error_lines(log):
    """Lines logged at level error or fatal (or by a sanitizer)."""
    return [l for l in log.splitlines()
            if re.search(r'^\S+ (error|fatal) ', l) or sanitizer_report(l)]


class ReloadTables(unittest.TestCase):
    """Address tables, hosted domains and routing: a reload applies them to
    new sessions and to every delivery routed after it, as `postfix reload`
    does; the old configuration lives on only for what still uses it."""

    def server(self, **params):
        """A server whose table files live in its directory (self.table(name))."""
        srv = Server(start=False)
        self.addCleanup(srv.cleanup)
        self.srv = srv
        rewrite(srv, {k: v.replace('@TABLES@', srv.dir) for k, v in params.items()})
        return srv

    def table(self, name, text):
        """(Re)write a table file atomically, as an editor would."""
        path = os.path.join(self.srv.dir, name)
        write_table(path + '.new', text)
        os.rename(path + '.new', path)
        return path

    def assert_mail(self, domain, user, marker):
        data = mail_with(self.srv, domain, user, marker)
        self.assertIsNotNone(data, '%s@%s did not get %s\n%s'
                             % (user, domain, marker, self.srv.tail(30)))
        return data

    def test_new_hosted_domain_and_user_take_mail_after_reload(self):
        srv = self.server(virtual_mailbox_domains='hosted.test',
                          virtual_mailbox_maps='texthash:@TABLES@/vmailbox')
        self.table('vmailbox', 'alice@hosted.test hosted.test/alice/\n')
        with srv:
            srv.start()
            code, text = send(srv.port, ['bob@hosted.test'], 'm-before')[0]
            self.assertEqual(code, 550, text)
            self.assertIn('5.1.1', text)
            self.assertEqual(send(srv.port, ['carol@new.test'], 'm-before')[0][0], RELAY_DENIED)
            self.assertEqual(send(srv.port, ['postmaster@other.test'], 'm-before')[0][0],
                             RELAY_DENIED)
            # one user and one domain more, and a domain for local mail
            self.table('vmailbox', 'alice@hosted.test hosted.test/alice/\n'
                                   'bob@hosted.test hosted.test/bob/\n'
                                   'carol@new.test new.test/carol/\n')
            rewrite(srv, {'virtual_mailbox_domains': 'hosted.test, new.test',
                          'mydestination': 'localhost, other.test'})
            log = hup(srv)
            self.assertNotIn('reload-needs-restart', log)
            replies = send(srv.port, ['bob@hosted.test', 'carol@new.test',
                                      'postmaster@other.test'], 'm-after')
            self.assertEqual([r[0] for r in replies], [250, 250, 250], replies)
            self.assert_mail('hosted.test', 'bob', 'm-after')
            self.assert_mail('new.test', 'carol', 'm-after')
            self.assert_mail('other.test', 'postmaster', 'm-after')
            self.assertIsNone(mail_with(srv, 'hosted.test', 'bob', 'm-before', timeout=0))

    def test_queued_delivery_uses_the_reloaded_tables(self):
        """The same through the queue manager (no delivery at acceptance): the
        qmgr and the local transport route with the new generation."""
        srv = self.server(virtual_mailbox_domains='hosted.test',
                          virtual_mailbox_maps='texthash:@TABLES@/vmailbox',
                          direct_local_delivery='no')
        self.table('vmailbox', 'alice@hosted.test hosted.test/alice/\n')
        with srv:
            srv.start()
            self.table('vmailbox', 'alice@hosted.test hosted.test/alice/\n'
                                   'dave@new.test new.test/dave/\n')
            rewrite(srv, {'virtual_mailbox_domains': 'hosted.test new.test'})
            hup(srv)
            mark = srv.mark()
            self.assertEqual(send(srv.port, ['dave@new.test'], 'm-queued')[0][0], 250)
            self.assert_mail('new.test', 'dave', 'm-queued')
            self.assertNotIn('at acceptance', srv.log_since(mark))

    def test_edited_alias_file_forwards_to_the_new_target(self):
        srv = self.server(mydestination='localhost, ourdomain.test',
                          local_recipient_maps='inline:{ alice, bob, postmaster }',
                          alias_maps='@TABLES@/aliases')
        self.table('aliases', 'postmaster: alice\ninfo: alice\n')
        with srv:
            srv.start()
            self.assertEqual(send(srv.port, ['info@ourdomain.test'], 'm-old-alias')[0][0], 250)
            self.assert_mail('ourdomain.test', 'alice', 'm-old-alias')
            self.table('aliases', 'postmaster: alice\ninfo: bob\n')  # main.cf untouched
            log = hup(srv)
            self.assertNotIn('reload-needs-restart', log)
            self.assertEqual(send(srv.port, ['info@ourdomain.test'], 'm-new-alias')[0][0], 250)
            self.assert_mail('ourdomain.test', 'bob', 'm-new-alias')
            self.assertIsNone(mail_with(srv, 'ourdomain.test', 'alice', 'm-new-alias',
                                        timeout=0.5))

    def test_removed_domain_is_relaying_for_a_stranger(self):
        srv = self.server(mydestination='localhost, gone.test')
        with srv:
            srv.start()
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'postmaster@gone.test'), 250)
            rewrite(srv, {'mydestination': 'localhost'})
            hup(srv)
            with open_session(srv.port, UNTRUSTED) as c:
                code, text = c.cmd('RCPT TO:<postmaster@gone.test>')
            self.assertEqual(code, RELAY_DENIED, text)
            self.assertIn('5.7.1', text)
            # still ours: localhost
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'postmaster@localhost'), 250)

    def test_broken_table_refuses_the_reload_and_the_old_one_works(self):
        srv = self.server(virtual_mailbox_domains='hosted.test',
                          virtual_mailbox_maps='texthash:@TABLES@/vmailbox')
        path = self.table('vmailbox', 'alice@hosted.test hosted.test/alice/\n')
        with srv:
            srv.start()
            with open(srv.config_path) as f:
                line = 1 + [l.startswith('virtual_mailbox_maps') for l in f].index(True)
            # a bad line: a mailbox that is not a Maildir (dir/user/)
            self.table('vmailbox', 'alice@hosted.test hosted.test/alice/\n'
                                   'bob@hosted.test hosted.test/bob\n')
            log = hup(srv, r'reload-refused')
            self.assertIn('reload refused: %s:%d: virtual_mailbox_maps: texthash:%s: '
                          'bob@hosted.test' % (srv.config_path, line, path), log)
            self.assertNotIn('reloaded config=', log)
            # a file that cannot be read
            os.unlink(path)
            log = hup(srv, r'reload-refused')
            self.assertIn('reload refused: %s:%d: virtual_mailbox_maps: ' % (srv.config_path, line),
                          log)
            self.assertIn(path, log)
            # the running tables: alice has her mailbox, bob has none
            self.assertEqual(send(srv.port, ['alice@hosted.test'], 'm-still')[0][0], 250)
            self.assert_mail('hosted.test', 'alice', 'm-still')
            self.assertEqual(send(srv.port, ['bob@hosted.test'], 'm-still')[0][0], 550)
            self.assertTrue(srv.alive())

    def test_alias_forwarding_outside_is_taken_an_open_relay_is_not(self):
        """The self-test judges the reloaded tables as at start: a forward for an
        address of ours is legitimate (anyone may write to it), mynetworks for
        the world is an open relay and refuses the whole reload."""
        srv = self.server(virtual_mailbox_domains='hosted.test',
                          virtual_mailbox_maps='inline:{ alice@hosted.test=hosted.test/alice/ }',
                          virtual_alias_maps='texthash:@TABLES@/virtual')
        self.table('virtual', 'info@hosted.test alice@hosted.test\n')
        with srv:
            srv.start()
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'fwd@hosted.test'), 550)
            self.table('virtual', 'info@hosted.test alice@hosted.test\n'
                                  'fwd@hosted.test friend@outside.example\n')
            rewrite(srv, {'mynetworks': '0.0.0.0/0'})
            self.assertRegex(hup(srv, r'reload-refused'), r'relay-selftest-failed')
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'fwd@hosted.test'), 550)
            rewrite(srv, {'mynetworks': '127.0.0.1/32 [::1]/128'})
            log = hup(srv)
            self.assertNotIn('reload-refused', log)
            mark = srv.mark()
            self.assertEqual(send(srv.port, ['fwd@hosted.test'], 'm-fwd')[0][0], 250)
            self.assertIsNotNone(srv.wait_log(
                r'expand to=<fwd@hosted\.test> recipients=1 outside=yes', since=mark), srv.tail())
            # the forward goes by the (test's) default transport, like any outside mail
            self.assertIsNotNone(srv.wait_log(r'deferred queue=\S+ to=<friend@outside\.example>',
                                              since=mark), srv.tail())
            # and a stranger still cannot relay there directly
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'friend@outside.example'),
                             RELAY_DENIED)

    def test_edited_transport_maps_routes_new_mail_the_new_way(self):
        fake = FakeSMTP(Policy())
        self.addCleanup(fake.stop)
        srv = self.server(transport_maps='texthash:@TABLES@/transport')
        self.table('transport', 'fake.test error:5.7.1 first route\n')
        with srv:
            srv.start()
            mark = srv.mark()
            send(srv.port, ['postmaster@fake.test'], 'm-route-1', sender='postmaster@localhost',
                 source=TRUSTED)
            self.assertIsNotNone(srv.wait_log(r'bounced queue=\S+ to=<postmaster@fake\.test> .*'
                                              r'first route', since=mark), srv.tail())
            self.table('transport', 'fake.test smtp:[127.0.0.1]:%d\n' % fake.port)
            self.assertNotIn('reload-needs-restart', hup(srv))
            mark = srv.mark()
            send(srv.port, ['postmaster@fake.test'], 'm-route-2', sender='postmaster@localhost',
                 source=TRUSTED)
            self.assertIsNotNone(srv.wait_log(r'delivered queue=\S+ to=<postmaster@fake\.test> '
                                              r'relay=', since=mark, timeout=10), srv.tail())
            bodies = b''.join(b for sess in fake.sessions for b in sess.get('bodies', []))
            self.assertIn(b'm-route-2', bodies)
            self.assertNotIn(b'm-route-1', bodies)

    def test_mail_queued_before_the_reload_is_routed_with_the_new_one(self):
        """Postfix semantics: a message waiting in the queue is routed at its next
        attempt with the configuration current then."""
        srv = self.server(transport_maps='texthash:@TABLES@/transport',
                          minimal_backoff_time='1s', maximal_backoff_time='1s',
                          queue_run_delay='1s')
        self.table('transport', 'later.test error:4.3.2 not yet\n')
        with srv:
            srv.start()
            mark = srv.mark()
            send(srv.port, ['bob@later.test'], 'm-waiting', sender='postmaster@localhost',
                 source=TRUSTED)
            self.assertIsNotNone(srv.wait_log(r'deferred queue=\S+ to=<bob@later\.test>',
                                              since=mark), srv.tail())
            self.table('transport', 'later.test local\n')
            hup(srv)
            self.assert_mail('later.test', 'bob', 'm-waiting')


class SlowPeer(Policy):
    """The next hop of peer@alias.test: takes each message after a while."""

    def data_end(self, sess, body):
        time.sleep(0.2)
        return super().data_end(sess, body)


class ReloadUnderLoad(unittest.TestCase):
    """SIGHUPs in a loop, each swapping every reloadable table for another
    version, while clients send and the server delivers: every message
    reaches the right Maildirs (and the peer an alias forwards to) exactly
    once, and no replaced configuration is freed while a session, a queued
    message, a delivery or a bounce still reads it (the ASan build is the
    check: the harness fails a run whose log holds a sanitizer report). The
    peer answers each message slowly, so queue passes stay in flight across
    several reloads after their session has ended: only their own
    reference keeps their configuration then."""

    MESSAGES = 40        # one session each
    SESSION_MESSAGES = 8   # one long session, across the first reloads

    def versions(self, v):
        """The tables and domains of version v ('a' or 'b'): what the test's
        mail needs is in both, the rest differs (so each reload builds new
        tables and domains, and frees the old ones)."""
        fill = lambda fmt: ''.join(fmt.format(v=v, k=k) for k in range(20))
        return {
            'aliases': 'postmaster: alice\ninfo: carol\n' + fill('f{v}{k}: bob\n'),
            'vmailbox': 'dave@hosted.test hosted.test/dave/\n'
                        + fill('u{v}{k}@hosted.test hosted.test/u{v}{k}/\n'),
            'virtual': 'team@alias.test dave@hosted.test, bob@ourdomain.test\n'
                       'ghost@alias.test nobody@hosted.test\n'
                       'peer@alias.test postmaster@fake.test\n'
                       + fill('v{v}{k}@alias.test carol@ourdomain.test, w{v}{k}@ourdomain.test\n'),
            'transport': 'x%s.test error:5.7.1 version %s\n' % (v, v)
                         + 'fake.test smtp:[127.0.0.1]:%d\n' % self.peer.port,
            'mydestination': 'localhost, ourdomain.test, extra-%s.test' % v,
            'recipient_delimiter': '+' if v == 'a' else '+-',
        }

    def install(self, srv, v):
        t = self.versions(v)
        for name in ('aliases', 'vmailbox', 'virtual', 'transport'):
            path = os.path.join(srv.dir, name)
            write_table(path + '.new', t[name])
            os.rename(path + '.new', path)  # never half a file under a reload
        rewrite(srv, {'mydestination': t['mydestination'],
                      'recipient_delimiter': t['recipient_delimiter']})

    def message(self, conn, marker, rcpts):
        self.assertEqual(conn.cmd('MAIL FROM:<postmaster@localhost>')[0], 250)
        for r in rcpts:
            code, text = conn.cmd('RCPT TO:<%s>' % r)
            self.assertEqual(code, 250, '%s: %s' % (r, text))
        self.assertEqual(conn.cmd('DATA')[0], 354)
        reply = conn.cmd('Subject: %s\r\nX-Marker: %s\r\n\r\nhello\r\n.' % (marker, marker))
        self.assertEqual(reply[0], 250, reply)

    def client(self, port, sent, failures):
        """One session per message; every fifth also bounces (ghost has no mailbox)."""
        try:
            for i in range(self.MESSAGES):
                rcpts = ['info@ourdomain.test', 'team@alias.test', 'peer@alias.test']
                if i % 5 == 0:
                    rcpts.append('ghost@alias.test')
                with Conn(port, source=UNTRUSTED) as c:
                    self.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
                    self.message(c, 'm-one-%d' % i, rcpts)
                    c.cmd('QUIT')
                sent.append(('m-one-%d' % i, i % 5 == 0))
        except Exception as e:  # reported by the main thread
            failures.append(e)

    def long_session(self, port, sent, failures):
        try:
            with Conn(port, source=UNTRUSTED) as c:
                self.assertEqual(c.cmd('EHLO client.example.org')[0], 250)
                for i in range(self.SESSION_MESSAGES):
                    self.message(c, 'm-long-%d' % i, ['info@ourdomain.test', 'team@alias.test',
                                                      'peer@alias.test'])
                    sent.append(('m-long-%d' % i, False))
                    time.sleep(0.05)
                c.cmd('QUIT')
        except Exception as e:
            failures.append(e)

    def markers(self, srv, domain, user):
        found = []
        for name in srv.maildir(domain, user):
            m = re.search(rb'X-Marker: (m-\S+)', srv.read_mail(domain, user, name))
            found.append(m.group(1).decode() if m else name)
        return sorted(found)

    def wait_for(self, srv, domain, user, want, timeout=30):
        deadline = time.time() + timeout
        while len(srv.maildir(domain, user)) < len(want) and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.markers(srv, domain, user), sorted(want),
                         '%s@%s\n%s' % (user, domain, srv.tail(40)))

    def peer_got(self, markers, timeout=30):
        """Each marker reached the peer exactly once."""
        deadline = time.time() + timeout
        while True:
            bodies = [b for sess in list(self.peer.sessions) for b in list(sess['bodies'])]
            got = sorted(m.group(1).decode() for b in bodies
                         for m in [re.search(rb'X-Marker: (m-\S+)', b)] if m)
            if len(got) >= len(markers) or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(got, sorted(markers))

    def run_load(self, direct):
        self.peer = FakeSMTP(SlowPeer())
        self.addCleanup(self.peer.stop)
        srv = Server(start=False, overrides={
            'local_recipient_maps': 'inline:{ alice, bob, carol, postmaster }',
            'direct_local_delivery': direct,
        })
        self.addCleanup(srv.cleanup)
        tables = {n: os.path.join(srv.dir, n) for n in ('aliases', 'vmailbox', 'virtual',
                                                         'transport')}
        rewrite(srv, {'alias_maps': tables['aliases'],
                      'virtual_mailbox_domains': 'hosted.test',
                      'virtual_mailbox_maps': 'texthash:' + tables['vmailbox'],
                      'virtual_alias_domains': 'alias.test',
                      'virtual_alias_maps': 'texthash:' + tables['virtual'],
                      'transport_maps': 'texthash:' + tables['transport']})
        self.install(srv, 'a')
        with srv:
            srv.start()
            sent, failures = [], []
            threads = [threading.Thread(target=self.client, args=(srv.port, sent, failures)),
                       threading.Thread(target=self.long_session,
                                        args=(srv.port, sent, failures))]
            for t in threads:
                t.start()
            reloads = 0
            while any(t.is_alive() for t in threads) or reloads < 6:
                self.install(srv, 'ab'[reloads % 2])
                hup(srv)
                reloads += 1
            for t in threads:
                t.join()
            if failures:
                raise failures[0]
            markers = [m for m, _ in sent]
            self.assertEqual(len(markers), self.MESSAGES + self.SESSION_MESSAGES)
            for domain, user in (('ourdomain.test', 'carol'), ('ourdomain.test', 'bob'),
                                 ('hosted.test', 'dave')):
                self.wait_for(srv, domain, user, markers)
            self.peer_got(markers)
            # the bounces of ghost@alias.test go to the sender: postmaster -> alice
            self.wait_for(srv, 'localhost', 'alice', [m for m, bounced in sent if bounced])
            self.assertEqual(srv.maildir('hosted.test', 'nobody'), [])
            self.assertEqual(srv.wait_queue_empty(timeout=10), [])
            # every session, commit, pass and bounce has let go of its configuration:
            # nothing keeps a replaced one (a reference never released would)
            time.sleep(0.3)
            self.assertIn('replaced_in_use=0', hup(srv))
            log = srv.log()
            self.assertGreaterEqual(log.count(' info reloaded config='), reloads)
            self.assertNotIn('reload-refused', log)
            self.assertNotIn('reload-needs-restart', log)
            self.assertEqual(error_lines(log), [])

    def test_reloads_while_mail_is_delivered_at_acceptance(self):
        self.run_load('yes')

    def test_reloads_while_mail_is_queued_and_delivered(self):
        self.run_load('no')


class Notify(unittest.TestCase):
    """sd_notify: the datagrams a Type=notify unit's manager would get."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='relayguard-notify-')
        os.chmod(self.dir, 0o755)  # the server sends as mail_owner after the drop
        self.path = os.path.join(self.dir, 'notify')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.addCleanup(self.sock.close)

    def receive(self, want, timeout=10):
        """Datagrams until one holds the line want; returns them all."""
        got = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            got.append(msg)
            if want in msg.split('\n'):
                return got
        raise AssertionError('no %s within %ss; got %r' % (want, timeout, got))

    def _start_nowait(self, srv):
        """Start srv with NOTIFY_SOCKET set, without waiting for its log."""
        env = dict(os.environ, NOTIFY_SOCKET=self.path)
        logf = open(srv.log_path, 'ab')
        srv.proc = subprocess.Popen([binary(), 'serve', '-c', srv.config_path],
                                    stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                    cwd=srv.dir, env=env)
        logf.close()

    def test_ready_after_listening_reloading_and_stopping(self):
        srv = Server(start=False)
        try:
            self._start_nowait(srv)
            msgs = self.receive('READY=1')
            # at READY=1 the listeners already accept and the queue was recovered
            log = srv.log()
            self.assertIn('queue-recovery', log)
            self.assertIn('listening address=127.0.0.1:%d' % srv.port, log)
            with Conn(srv.port, source=UNTRUSTED, timeout=2) as c:
                self.assertEqual(c.greeting[0], 220)
            self.assertTrue(any('STATUS=' in m for m in msgs), msgs)
            # SIGHUP: RELOADING=1, then READY=1 again with the outcome in STATUS=
            srv.proc.send_signal(signal.SIGHUP)
            msgs = self.receive('READY=1')
            joined = '\n'.join(msgs)
            self.assertIn('RELOADING=1', joined)
            self.assertRegex(joined, r'MONOTONIC_USEC=\d+')
            self.assertIn('STATUS=configuration reloaded', joined)
            self.assertLess(joined.index('RELOADING=1'), joined.rindex('READY=1'))
            # SIGTERM: STOPPING=1, then a clean exit
            srv.proc.send_signal(signal.SIGTERM)
            self.receive('STOPPING=1')
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_refused_reload_still_reports_ready(self):
        srv = Server(start=False)
        try:
            self._start_nowait(srv)
            self.receive('READY=1')
            with open(srv.config_path, 'a') as f:
                f.write('no_such_parameter = 1\n')
            srv.proc.send_signal(signal.SIGHUP)
            msgs = self.receive('READY=1')
            self.assertIn('STATUS=reload refused', '\n'.join(msgs))
            srv.stop()
        finally:
            srv.cleanup()

    def test_nothing_sent_without_notify_socket(self):
        # the harness's servers run without NOTIFY_SOCKET: nothing arrives here
        with Server() as srv:
            srv.proc.send_signal(signal.SIGHUP)
            srv.wait_log(r'reloaded config=', timeout=10)
            self.sock.settimeout(0.3)
            with self.assertRaises(socket.timeout):
                self.sock.recv(4096)


if __name__ == '__main__':
    unittest.main()
