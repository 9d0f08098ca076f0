"""test_dovecot_client.py - relayguard's Dovecot auth client (src/auth/dovecot.c).

Runs the client through its driver, build/tools[-asan]/dovecot_auth_check
(the one matching RELAYGUARD_BIN), against
  - a real Dovecot auth service (dovecot_lab.Dovecot), and
  - FakeAuth, a Python auth server that misbehaves on purpose.
What a user of SMTP AUTH would see is the status: OK (with Dovecot's name for
the user), FAILED (535) or TEMPFAIL (454), never a hang or a crash.
"""
import base64
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest

import dovecot_lab
import harness

HANDSHAKE = (b'VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n'
             b'SPID\t4242\nCUID\t7\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n')
USERS = {
    'alice@example.com': 'alice-secret',                       # SHA512-CRYPT
    'bob@example.com': ('b0b pass', 'BLF-CRYPT'),
    'carol@example.com': ('plain-text', 'PLAIN'),
    'dave@example.com': ('sp ace:"q\'\\%\x7f\xe4\u20ac', 'SHA512-CRYPT'),
    'erin@example.com': 'tab\there',  # Dovecot refuses TAB, CR, LF, \x01 in passwords
}


def driver():
    """build/tools/dovecot_auth_check beside build/relayguard, tools-asan beside -asan."""
    b = harness.binary()
    sub = 'tools-asan' if os.path.basename(b).endswith('-asan') else 'tools'
    return os.path.join(os.path.dirname(b), sub, 'dovecot_auth_check')


def run_driver(testcase, path, pairs, args=(), timeout=120):
    """Run the driver; assert it exited 0 with no sanitizer report; its result lines."""
    cmd = [driver()] + list(args) + [path] + [x for pair in pairs for x in pair]
    out = subprocess.run(cmd, capture_output=True, timeout=timeout)
    err = out.stderr.decode('utf-8', 'replace')
    testcase.assertEqual(harness.sanitizer_report(err), [], err[-3000:])
    testcase.assertEqual(out.returncode, 0, 'driver exit status; stderr:\n' + err[-3000:])
    return out.stdout.decode('utf-8', 'replace').splitlines()


def status(line):
    return line.split(' ', 1)[0]


class DriverPresent(unittest.TestCase):
    def setUp(self):
        if not os.access(driver(), os.X_OK):
            self.fail('driver %s not built (make tools)' % driver())


# -- a real Dovecot --------------------------------------------------------

class RealDovecot(DriverPresent):
    @classmethod
    def setUpClass(cls):
        reason = dovecot_lab.skip_reason()
        harness.require(reason is None, dovecot_lab.PACKAGE, reason)
        cls.dv = dovecot_lab.Dovecot(users=USERS)

    @classmethod
    def tearDownClass(cls):
        cls.dv.cleanup()

    def check(self, pairs, args=(), path=None):
        return run_driver(self, path or self.dv.socket_path, pairs, args)

    def test_right_password_each_scheme(self):
        for path in (self.dv.socket_path, self.dv.inet):
            with self.subTest(path=path):
                got = self.check([('alice@example.com', 'alice-secret'),
                                  ('bob@example.com', 'b0b pass'),
                                  ('carol@example.com', 'plain-text')], path=path)
                self.assertEqual(got, ['OK user=alice@example.com', 'OK user=bob@example.com',
                                       'OK user=carol@example.com'])

    def test_user_is_dovecots_canonical_name(self):
        got = self.check([('ALICE@Example.COM', 'alice-secret')])
        self.assertEqual(got, ['OK user=alice@example.com'])

    def test_wrong_password_and_unknown_user_look_the_same(self):
        got = self.check([('alice@example.com', 'alice-secreT'),
                          ('nobody@example.com', 'alice-secret'),
                          ('alice@example.com', '')])
        self.assertEqual([status(x) for x in got], ['FAILED'] * 3, got)
        self.assertEqual(got[0], got[1], 'unknown user must not be told apart')

    def test_odd_bytes_in_password_round_trip(self):
        good = USERS['dave@example.com'][0]
        got = self.check([('dave@example.com', good), ('dave@example.com', good[:-1])])
        self.assertEqual(got[0], 'OK user=dave@example.com')
        self.assertEqual(status(got[1]), 'FAILED')

    def test_password_dovecot_calls_illegal_fails_without_asking(self):
        # Dovecot 2.3 fails such a password and then stalls its auth process
        # for seconds, for every client; relayguard answers FAILED itself.
        got = self.check([('erin@example.com', 'tab\there'), ('alice@example.com', 'alice-secret')])
        self.assertEqual(status(got[0]), 'FAILED')
        self.assertEqual(got[1], 'OK user=alice@example.com')
        self.assertNotIn('illegal chars', self.dv.log())

    def test_many_concurrent_requests(self):
        pairs = [('alice@example.com', 'alice-secret'), ('carol@example.com', 'wrong'),
                 ('carol@example.com', 'plain-text')]
        got = self.check(pairs, args=['-n', '150'])
        self.assertEqual(len(got), 450)
        want = ['OK user=alice@example.com', 'FAILED', 'OK user=carol@example.com'] * 150
        self.assertEqual([g if g.startswith('OK') else status(g) for g in got], want)

    def test_lip_rip_and_cancel_are_accepted(self):
        got = self.check([('alice@example.com', 'alice-secret')] * 4,
                         args=['-l', '127.0.0.1', '-r', '127.0.0.9', '-c', '2'])
        self.assertEqual(got, ['CANCELLED'] * 2 + ['OK user=alice@example.com'] * 2)


class DovecotGoesAway(DriverPresent):
    def setUp(self):
        super().setUp()
        reason = dovecot_lab.skip_reason()
        harness.require(reason is None, dovecot_lab.PACKAGE, reason)
        self.dv = dovecot_lab.Dovecot(users=USERS)
        self.addCleanup(self.dv.cleanup)

    def interactive(self, path):
        p = subprocess.Popen([driver(), '-t', '5', '-i', path], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def reap():  # a failed assertion leaves it waiting on stdin: end it, by PID
            if p.poll() is None:
                p.kill()
                p.wait()
        self.addCleanup(reap)

        def ask(user, password):
            p.stdin.write(('%s\t%s\n' % (user, password)).encode())
            p.stdin.flush()
            return p.stdout.readline().decode().strip()

        def finish():
            p.stdin.close()
            rc = p.wait(60)
            err = p.stderr.read().decode('utf-8', 'replace')
            p.stdout.close()
            p.stderr.close()
            self.assertEqual(harness.sanitizer_report(err), [], err)
            self.assertEqual(rc, 0, err)
        return ask, finish

    def test_stopped_tempfails_then_restart_reconnects(self):
        for path in (self.dv.socket_path, self.dv.inet):
            with self.subTest(path=path):
                if not self.dv.alive():
                    self.dv.start()
                ask, finish = self.interactive(path)
                self.assertEqual(ask('alice@example.com', 'alice-secret'), 'OK user=alice@example.com')
                self.dv.stop()
                self.assertEqual(status(ask('alice@example.com', 'alice-secret')), 'TEMPFAIL')
                self.dv.start()
                self.assertEqual(ask('alice@example.com', 'alice-secret'), 'OK user=alice@example.com')
                # Restarted while the client sat on an open, now stale, connection.
                self.dv.stop()
                self.dv.start()
                self.assertEqual(ask('bob@example.com', 'b0b pass'), 'OK user=bob@example.com')
                finish()


# -- a fake auth server ----------------------------------------------------

def tab_escape(s):
    return (s.replace('\x01', '\x011').replace('\t', '\x01t').replace('\r', '\x01r')
            .replace('\n', '\x01n'))


class FakeAuth:
    """A unix-socket (or TCP) server speaking just enough of the auth protocol.

    mode picks the behaviour; every AUTH line received is kept in self.auth
    as a dict (id, mech, params, flags, and the decoded PLAIN triple).
    """

    def __init__(self, mode, family=socket.AF_UNIX):
        self.mode = mode
        self.dir = tempfile.mkdtemp(prefix='relayguard-fakeauth-')
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_UNIX:
            self.path = os.path.join(self.dir, 'auth')
            self.sock.bind(self.path)
        else:
            self.sock.bind(('::1', 0))
            self.path = 'inet:[::1]:%d' % self.sock.getsockname()[1]
        self.sock.listen(16)
        self.auth = []
        self.lines = []
        self.connections = 0
        self.conns = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass
        self.thread.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            self._handle(c)
        except OSError:
            pass

    def _lines(self, c):
        buf = b''
        while True:
            data = c.recv(65536)
            if not data:
                return
            buf += data
            while b'\n' in buf:
                line, buf = buf.split(b'\n', 1)
                with self.lock:
                    self.lines.append(line)
                yield line

    def _record(self, line):
        f = line.decode('utf-8', 'surrogateescape').split('\t')
        req = {'id': f[1], 'mech': f[2], 'params': {}, 'flags': set()}
        for x in f[3:]:
            if '=' in x:
                k, v = x.split('=', 1)
                req['params'][k] = v
            else:
                req['flags'].add(x)
        raw = base64.b64decode(req['params'].get('resp', ''))
        req['plain'] = raw.split(b'\0')
        with self.lock:
            self.auth.append(req)
        return req

    def _handle(self, c):
        m = self.mode
        if m == 'garbage':
            c.sendall(b'\x00\xff\xfeHELLO this is not dovecot\n')
        elif m == 'not_version':
            c.sendall(b'SPID\t1\nDONE\n')
        elif m == 'bad_major':
            c.sendall(HANDSHAKE.replace(b'VERSION\t1\t2', b'VERSION\t2\t0'))
        elif m == 'close_mid':
            c.sendall(b'VERSION\t1\t2\nMECH\tPLAIN\tplaintext\n')
            c.close()
            return
        elif m == 'long_line':
            c.sendall(b'VERSION\t1\t2\n' + b'A' * 40000)
        elif m == 'no_plain':
            c.sendall(HANDSHAKE.replace(b'MECH\tPLAIN\tplaintext\n', b''))
        elif m in ('silent', 'silent_handshake'):
            pass
        else:
            c.sendall(HANDSHAKE)
        if m == 'silent_handshake':
            for _ in self._lines(c):
                pass
            return
        for line in self._lines(c):
            if not line.startswith(b'AUTH\t'):
                continue
            req = self._record(line)
            reply = self._reply(req)
            if reply is not None:
                c.sendall(reply.encode('utf-8', 'surrogateescape'))
            if m == 'reply_then_close':
                c.close()
                return

    def _reply(self, req):
        m, rid = self.mode, req['id']
        plain = req['plain']
        user = plain[1].decode('utf-8', 'surrogateescape') if len(plain) > 1 else ''
        if m == 'echo':
            return 'OK\t%s\tuser=%s\n' % (rid, tab_escape(user))
        if m == 'check_password':
            ok = len(plain) == 3 and plain[2] == self.password
            return ('OK\t%s\tuser=%s\n' if ok else 'FAIL\t%s\tuser=%s\n') % (rid, tab_escape(user))
        if m == 'temp':
            return 'FAIL\t%s\tuser=%s\ttemp\treason=Internal\x01tfailure\n' % (rid, user)
        if m == 'temp_code':
            return 'FAIL\t%s\tcode=temp_fail\n' % rid
        if m == 'fail_reason':
            return 'FAIL\t%s\tuser=%s\tcode=pass_expired\treason=Password expired\n' % (rid, user)
        if m == 'cont':
            return 'CONT\t%s\t\n' % rid
        if m == 'ok_without_user':
            return 'OK\t%s\n' % rid
        if m == 'unknown_id_first':
            return 'FAIL\t987654\nCANCELLED\t%s\nOK\t%s\tuser=%s\n' % (rid, rid, user)
        if m == 'bad_id':
            return 'OK\tnot-a-number\tuser=x\n'
        if m == 'nul_user':
            return 'OK\t%s\tuser=ev\x010il\n' % rid
        if m == 'lf_user':
            return 'OK\t%s\tuser=ev\x01nX-Injected: 1\n' % rid
        if m == 'reply_then_close':
            return 'OK\t%s\tuser=%s\n' % (rid, user)
        return None  # no_plain, silent after handshake: never answer


class FakeServer(DriverPresent):
    def fake(self, mode, family=socket.AF_UNIX):
        f = FakeAuth(mode, family)
        self.addCleanup(f.close)
        return f

    def check(self, fake, pairs, args=('-t', '2')):
        return run_driver(self, fake.path, pairs, list(args))

    def test_misbehaving_servers_tempfail(self):
        for mode in ('garbage', 'not_version', 'bad_major', 'close_mid', 'long_line', 'no_plain',
                     'silent', 'silent_handshake', 'cont', 'temp', 'temp_code',
                     'ok_without_user', 'bad_id', 'nul_user', 'lf_user'):
            with self.subTest(mode=mode):
                got = self.check(self.fake(mode), [('alice@example.com', 'pw')] * 3)
                self.assertEqual([status(x) for x in got], ['TEMPFAIL'] * 3, got)

    def test_tempfail_reasons_name_the_problem(self):
        cases = {'no_plain': 'PLAIN', 'silent': 'handshake', 'silent_handshake': 'handshake',
                 'bad_major': 'version', 'temp': 'Internal\\x09failure',
                 'cont': 'continue'}
        for mode, word in cases.items():
            with self.subTest(mode=mode):
                got = self.check(self.fake(mode), [('alice@example.com', 'pw')])
                self.assertIn(word, got[0])

    def test_no_answer_after_handshake_times_out(self):
        f = self.fake('never_reply')  # a full handshake, then no reply ever
        got = self.check(f, [('alice@example.com', 'pw')] * 2)
        self.assertEqual(got, ['TEMPFAIL reason=dovecot did not answer in time'] * 2)

    def test_fail_is_failed_with_reason(self):
        got = self.check(self.fake('fail_reason'), [('alice@example.com', 'pw')])
        self.assertEqual(got, ['FAILED reason=Password expired'])

    def test_close_after_a_reply(self):
        # The reply counts; the request still open fails (it has no stale
        # connection to blame: it was made on this one).
        got = self.check(self.fake('reply_then_close'), [('alice@example.com', 'pw'),
                                                          ('bob@example.com', 'pw')])
        self.assertEqual(got, ['OK user=alice@example.com',
                               'TEMPFAIL reason=connection closed by dovecot'])

    def test_replies_for_unknown_ids_are_ignored(self):
        got = self.check(self.fake('unknown_id_first'), [('alice@example.com', 'pw')] * 2)
        self.assertEqual(got, ['OK user=alice@example.com'] * 2)

    def test_request_on_the_wire(self):
        f = self.fake('echo')
        got = self.check(f, [('alice@example.com', 'pw1')],
                       args=['-l', '127.0.0.1', '-r', '127.0.0.9', '-s'])
        self.assertEqual(got, ['OK user=alice@example.com'])
        self.assertEqual(f.lines[0], b'VERSION\t1\t2')
        self.assertTrue(f.lines[1].startswith(b'CPID\t'), f.lines[1])
        req = f.auth[0]
        self.assertEqual(req['mech'], 'PLAIN')
        self.assertEqual(req['params']['service'], 'smtp')
        self.assertEqual(req['params']['lip'], '127.0.0.1')
        self.assertEqual(req['params']['rip'], '127.0.0.9')
        self.assertEqual(req['flags'], {'nologin', 'secured'})
        self.assertEqual(req['plain'], [b'', b'alice@example.com', b'pw1'])
        run_driver(self, f.path, [('alice@example.com', 'pw1')])
        self.assertNotIn('secured', f.auth[1]['flags'])
        self.assertNotIn('rip', f.auth[1]['params'])

    def test_odd_bytes_round_trip(self):
        f = self.fake('check_password')
        password = b' sp\x02ace \x7f\xff\xfe\\%"\':end '
        f.password = password
        user = b'od d"\xc3\xa4user@example.com'
        cmd = [driver(), '-t', '2', f.path, user, password, user, b'other']
        out = subprocess.run(cmd, capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.decode().splitlines(),
                         ['OK user=od d"\xe4user@example.com',
                          'FAILED reason=dovecot: authentication failed'])
        self.assertEqual(f.auth[0]['plain'], [b'', user, password])

    def test_user_names_with_control_bytes(self):
        # Sent intact (base64); but a name Dovecot calls canonical goes into
        # headers and logs, so one with control bytes is not taken.
        f = self.fake('echo')
        user = 'tab\tuser\x01@example.com'
        got = self.check(f, [(user, 'pw')])
        self.assertEqual(f.auth[0]['plain'], [b'', user.encode(), b'pw'])
        self.assertEqual(got, ['TEMPFAIL reason=dovecot said OK for a user name with control bytes'])

    def test_password_with_tab_is_refused_locally(self):
        f = self.fake('echo')
        for password in ('a\tb', 'a\nb', 'a\rb', 'a\x01b'):
            with self.subTest(password=password):
                got = self.check(f, [('alice@example.com', password)])
                self.assertEqual(status(got[0]), 'FAILED')
        self.assertEqual(f.auth, [], 'such a password never reaches Dovecot')

    def test_many_requests_share_one_connection(self):
        f = self.fake('echo')
        got = self.check(f, [('u%d@example.com' % i, 'pw') for i in range(300)])
        self.assertEqual(got, ['OK user=u%d@example.com' % i for i in range(300)])
        self.assertEqual(f.connections, 1)
        self.assertEqual(len(set(r['id'] for r in f.auth)), 300, 'request ids are unique')

    def test_in_flight_requests_are_bounded(self):
        got = self.check(self.fake('echo'), [('alice@example.com', 'pw')], args=['-n', '1100'])
        self.assertEqual(got.count('OK user=alice@example.com'), 1024)
        self.assertEqual(got[1024:], ['TEMPFAIL reason=too many dovecot requests in flight'] * 76)

    def test_ipv6_inet_path(self):
        harness.require(harness.ipv6_available(), '::1 on the loopback interface (sysctl net.ipv6.conf.lo.disable_ipv6=0)', 'an IPv6 Dovecot listener')
        f = self.fake('echo', socket.AF_INET6)
        self.assertEqual(self.check(f, [('alice@example.com', 'pw')]), ['OK user=alice@example.com'])

    def test_nothing_listening_tempfails(self):
        d = tempfile.mkdtemp(prefix='relayguard-fakeauth-')
        self.addCleanup(shutil.rmtree, d, True)
        closed = harness.free_port()
        for path in (os.path.join(d, 'no-such-socket'), 'inet:127.0.0.1:%d' % closed):
            with self.subTest(path=path):
                got = run_driver(self, path, [('alice@example.com', 'pw')] * 2)
                self.assertEqual([status(x) for x in got], ['TEMPFAIL'] * 2, got)
                self.assertIn('cannot connect', got[0])

    def test_host_names_are_refused(self):
        out = subprocess.run([driver(), 'inet:localhost:12345', 'a', 'b'], capture_output=True,
                             timeout=30)
        self.assertEqual(out.returncode, 2)
        self.assertIn(b'not a numeric IP address', out.stderr)
        for bad in ('inet:127.0.0.1', 'inet:127.0.0.1:0', 'inet:[::1', 'inet:1.2.3.4:99999', ''):
            with self.subTest(path=bad):
                out = subprocess.run([driver(), bad, 'a', 'b'], capture_output=True, timeout=30)
                self.assertEqual(out.returncode, 2, out)


if __name__ == '__main__':
    unittest.main()
