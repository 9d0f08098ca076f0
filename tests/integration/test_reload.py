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
import time
import unittest

from harness import TRUSTED, UNTRUSTED, Conn, Server, binary, free_port

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


    def test_a_table_only_a_restart_changes_is_not_half_applied(self):
        """virtual_mailbox_maps is built once for delivery: a reload that gave new
        sessions bob's new entry had them take his mail with 250, and delivery,
        still on the running table, bounce it."""
        hosted = {'virtual_mailbox_domains': 'hosted.test',
                  'virtual_mailbox_maps': 'inline:{ alice@hosted.test=hosted.test/alice/ }'}
        with Server(overrides=hosted) as srv:
            rewrite(srv, {'virtual_mailbox_maps': 'inline:{ alice@hosted.test=hosted.test/'
                                                  'alice/, bob@hosted.test=hosted.test/bob/ }',
                          'mynetworks': '127.0.0.1/32 127.0.0.9/32'})
            log = hup(srv)
            self.assertRegex(log, r'reload-needs-restart param=virtual_mailbox_maps ')
            self.assertNotIn('param=mynetworks', log)
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'bob@hosted.test'), 550)
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'alice@hosted.test'), 250)
            # what does reload still applies
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED), 250)

    def test_a_table_file_only_a_restart_changes_is_not_half_applied(self):
        """The same with the table in a file, as most are written: the value
        (texthash:/path) did not change, its lines did. New sessions read the
        file again and took bob's mail with 250 that delivery, on the table
        read at start, bounced."""
        srv = Server(start=False)
        table = os.path.join(srv.dir, 'vmailbox')
        with open(table, 'w') as f:
            f.write('alice@hosted.test hosted.test/alice/\n')
        os.chmod(table, 0o644)
        rewrite(srv, {'virtual_mailbox_domains': 'hosted.test',
                      'virtual_mailbox_maps': 'texthash:' + table})
        with srv:
            srv.start()
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'bob@hosted.test'), 550)
            with open(table, 'a') as f:
                f.write('bob@hosted.test hosted.test/bob/\n')
            self.assertRegex(hup(srv), r'reload-needs-restart param=virtual_mailbox_maps ')
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'bob@hosted.test'), 550)
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'alice@hosted.test'), 250)

    def test_reloads_in_a_row_with_a_table_only_a_restart_changes(self):
        """A reload after one that kept the running table read that table's
        file again, so a reload that changed nothing about the table was
        refused once the file it was read from at start was gone."""
        srv = Server(start=False)
        old, new = (os.path.join(srv.dir, n) for n in ('vmailbox.old', 'vmailbox.new'))
        for path in (old, new):
            with open(path, 'w') as f:
                f.write('alice@hosted.test hosted.test/alice/\n')
            os.chmod(path, 0o644)
        rewrite(srv, {'virtual_mailbox_domains': 'hosted.test',
                      'virtual_mailbox_maps': 'texthash:' + old})
        with srv:
            srv.start()
            rewrite(srv, {'virtual_mailbox_maps': 'texthash:' + new})
            self.assertRegex(hup(srv), r'reload-needs-restart param=virtual_mailbox_maps ')
            os.unlink(old)
            rewrite(srv, {'mynetworks': '127.0.0.1/32 127.0.0.9/32'})
            hup(srv)
            self.assertEqual(new_session_rcpt(srv.port, '127.0.0.9'), 250)
            self.assertEqual(new_session_rcpt(srv.port, UNTRUSTED, 'alice@hosted.test'), 250)

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
