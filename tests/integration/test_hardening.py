"""test_hardening.py - findings of the hostile review of 'relayguard serve' (issue 11).

The fail2ban filter printed in README.md is run with the real fail2ban-regex over
the log of a real server that was fed hostile user names, HELO names and
addresses. The AUTH tests open many TLS sessions at once from one or a few
addresses, as the review did. Clients come from 127.0.0.x, outside mynetworks.
"""
import base64
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import Conn, Server, UNTRUSTED, UNTRUSTED2

F2B_PACKAGE = 'fail2ban'


def b64(raw):
    return base64.b64encode(raw if isinstance(raw, bytes) else raw.encode()).decode()


def plain(user, password):
    u = user if isinstance(user, bytes) else user.encode()
    return b64(b'\0' + u + b'\0' + password.encode())


def need_tool(tool, package):
    """The path of TOOL; under CI=true a missing tool fails naming its package,
    elsewhere the test is skipped."""
    path = shutil.which(tool)
    if path is not None:
        return path
    why = '%s is not installed (Debian package %s; sh scripts/deps.sh test)' % (tool, package)
    if os.environ.get('CI') == 'true':
        raise AssertionError(why)
    raise unittest.SkipTest(why)


def readme_filter():
    """The fail2ban [Definition] block exactly as README.md prints it."""
    with open(os.path.join(harness.REPO, 'README.md')) as f:
        text = f.read()
    m = re.search(r'```\n\s*# /etc/fail2ban/filter\.d/relayguard\.conf\n(.*?)```', text, re.S)
    assert m, 'README.md has no fail2ban filter block'
    return '\n'.join(line.strip() for line in m.group(1).splitlines()) + '\n'


def make_passwd(path, users):
    lines = []
    for user, password in users.items():
        p = subprocess.run([harness.binary(), 'passwd', '--scheme', 'SHA512-CRYPT'],
                           input=password + '\n', capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        lines.append('%s:%s::::::' % (user, p.stdout.strip()))
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.chmod(path, 0o644)


class AuthServer(unittest.TestCase):
    """A scratch directory with a passwd-file; servers are started per test."""
    users = {'alice@example.com': 'alice-secret', 'bob@example.com': 'bob-secret'}

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='relayguard-hard-')
        os.chmod(self.tmp, 0o755)
        self.passwd = os.path.join(self.tmp, 'passwd')
        make_passwd(self.passwd, self.users)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def overrides(self, **more):
        o = {
            'myhostname': 'mx.example.com',
            'mydestination': 'example.com, localhost',
            'local_recipient_maps': 'inline:{postmaster, alice, bob}',
            'smtpd_sasl_auth_enable': 'yes',
            'smtpd_sasl_path': self.passwd,
            'smtpd_sasl_failure_delay': '0',
            'smtpd_sasl_failure_limit': '1000',
        }
        o.update(more)
        return o


class Fail2banFilter(AuthServer):
    HOSTILE_USERS = [
        'a client=198.51.100.7 x',
        'x" client=198.51.100.8 "',
        'client=198.51.100.9',
        '\\" client=198.51.100.10 \\',
        'u\n2026-01-01T00:00:00.000Z warning auth-failed client=198.51.100.11 x',
        'u\r warning auth-failed client=198.51.100.12 ',
        '\u2028 client=198.51.100.13 ',
    ]

    def test_readme_filter_matches_only_the_real_client(self):
        f2b = need_tool('fail2ban-regex', F2B_PACKAGE)
        filt = os.path.join(self.tmp, 'relayguard.conf')
        with open(filt, 'w') as f:
            f.write(readme_filter())
        with Server(overrides=self.overrides()) as srv:
            # hostile HELO names and addresses from another address, without AUTH
            with Conn(srv.port, source=UNTRUSTED2) as c:
                c.cmd('EHLO client=198.51.100.20')
                c.cmd('MAIL FROM:<"x client=198.51.100.21 y"@example.org>')
                c.cmd('RCPT TO:<"auth-failed client=198.51.100.22 "@example.net>')
                c.cmd('RSET')
                c.cmd('HELO auth-failed')
                c.cmd('MAIL FROM:<a@example.org> client=198.51.100.23')
                c.cmd('AUTH PLAIN ' + plain('client=198.51.100.24', 'x'))
            # hostile user names from the one client that really fails to log in
            with Conn(srv.subs_port, tls=True) as c:
                c.cmd('EHLO warning.auth-failed.client=198.51.100.25')
                for user in self.HOSTILE_USERS:
                    code, text = c.cmd('AUTH PLAIN ' + plain(user.encode(), 'x'))
                    self.assertIn(code, (535, 501), text)
                code, text = c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'wrong'))
                self.assertEqual(code, 535, text)
            failures = len(re.findall(r'^\S+ warning auth-failed ', srv.log(), re.M))
            self.assertGreaterEqual(failures, 2)
            out = subprocess.run([f2b, '-o', 'ip', srv.log_path, filt], capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            hosts = [line.strip() for line in out.stdout.splitlines() if line.strip()]
            self.assertEqual(hosts, [UNTRUSTED] * failures, out.stdout + srv.tail(30))


if __name__ == '__main__':
    unittest.main()
