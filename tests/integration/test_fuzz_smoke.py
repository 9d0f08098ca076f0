"""test_fuzz_smoke.py - many mangled SMTP sessions from an untrusted client.

A fixed-seed generator (reproducible) mixes real commands, address tricks
and damage: bare CR/LF, NUL and 8-bit bytes, overlong lines, pipelined DATA
with dots in odd places, abrupt closes. Afterwards the server must still be
up and answer normally, no sanitizer may have complained (checked at stop),
and — the point of it all — nothing may be queued for a remote destination:
an untrusted client never gets a relay, however mangled its session.
"""
import random
import socket
import unittest

from harness import UNTRUSTED, Conn, ServerPerClass

TRICKS = [
    'victim@example.net', 'u%victim.example@localhost', 'victim.example!u@localhost',
    '"u@victim.example"@localhost', '@localhost:u@victim.example', 'u@[192.0.2.1]',
    'u@victim.example@localhost', 'victim@example.net.', 'VICTIM@EXAMPLE.NET', 'victim',
    '"u%victim.example"', 'u@[IPv6:2001:db8::1]', 'postmaster@localhost', 'postmaster',
    'u@192.0.2.1', 'victim@example.net@', '@localhost,u@victim.example', '',
]
VERBS = ['HELO', 'EHLO', 'MAIL FROM:', 'RCPT TO:', 'DATA', 'RSET', 'NOOP', 'VRFY', 'EXPN',
         'HELP', 'QUIT', 'STARTTLS', 'AUTH PLAIN', 'BDAT 10', 'GET /', 'XCLIENT ADDR=127.0.0.1']


def mangle(rng, line):
    """Damage a command line in one of several ways (or leave it alone)."""
    kind = rng.randrange(10)
    if kind == 0:
        pos = rng.randrange(len(line) + 1)
        return line[:pos] + rng.choice([b'\n', b'\r', b'\x00', b'\xff', b'\t']) + line[pos:]
    if kind == 1:
        return line + b'A' * rng.choice([300, 511, 600, 5000])
    if kind == 2:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    if kind == 3:
        return line.lower()
    return line


def command(rng):
    verb = rng.choice(VERBS)
    if verb in ('MAIL FROM:', 'RCPT TO:'):
        arg = '<%s>' % rng.choice(TRICKS)
        if rng.random() < 0.2:
            arg += rng.choice([' SIZE=100', ' BODY=8BITMIME', ' FOO=1', ' SIZE=99999999999'])
        return (verb + arg).encode()
    if verb in ('HELO', 'EHLO'):
        return ('%s %s' % (verb, rng.choice(['attacker.example', 'localhost', '[127.0.0.1]',
                                             'x' * 300, '']))).encode()
    return verb.encode()


def message(rng):
    lines = [b'Subject: fuzz', b'']
    for _ in range(rng.randrange(1, 8)):
        lines.append(rng.choice([b'.', b'..', b'.x', b'body', b'\x00\xff', b'a\nb',
                                 b'c\rd', b'.\n', b'\r\n.\r\n' * 0 + b'end']))
    return b'\r\n'.join(lines) + b'\r\n.\r\n'


def transaction(rng):
    """A mostly well-formed transaction full of tricks, with junk mixed in."""
    lines = [b'MAIL FROM:<%s>' % rng.choice(TRICKS[:16]).encode()]
    for _ in range(rng.randrange(1, 6)):
        lines.append(b'RCPT TO:<%s>' % rng.choice(TRICKS).encode())
        if rng.random() < 0.2:
            lines.append(command(rng))
    lines.append(b'DATA')
    return lines


def session_bytes(rng):
    lines = []
    if rng.random() < 0.9:
        lines.append(rng.choice([b'EHLO attacker.example', b'HELO localhost']))
    for _ in range(rng.randrange(1, 4)):
        lines.extend(transaction(rng) if rng.random() < 0.8 else [command(rng)])
    out = []
    for line in lines:
        if rng.random() < 0.15:
            line = mangle(rng, line)
        out.append(line + b'\r\n')
        if line == b'DATA':
            out.append(message(rng))
    if rng.random() < 0.5:
        out.append(b'QUIT\r\n')
    return b''.join(out)


class MangledSessions(ServerPerClass):
    overrides = {'smtpd_timeout': '3s', 'smtpd_client_connection_count_limit': '1000'}
    SESSIONS = 1000

    def test_no_relay_no_crash(self):
        rng = random.Random(20261127)
        for n in range(self.SESSIONS):
            data = session_bytes(rng)
            s = socket.socket()
            s.settimeout(5)
            s.bind((UNTRUSTED, 0))
            try:
                s.connect(('127.0.0.1', self.server.port))
                if rng.random() < 0.9:
                    s.sendall(data)
                else:
                    s.sendall(data[:rng.randrange(len(data) + 1)])  # cut short
                if rng.random() < 0.9:
                    # half-close: the server answers everything, then closes
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):
                        pass
                # else: close at once with replies unread (a reset)
            except OSError:
                pass  # the server may close first (421, error limit): that is fine
            finally:
                s.close()
        self.assertTrue(self.server.alive(), self.server.tail())
        with Conn(self.server.port) as c:
            self.assertEqual(c.cmd('NOOP')[0], 250)
        # untrusted client: nothing for a remote destination was ever queued
        self.assertEqual(self.server.queue_files('deferred'), [], self.server.tail())
        accepted = [l for l in self.server.log_lines()
                    if ' rcpt ' in l and 'result=accept' in l and 'class=local' not in l]
        self.assertEqual(accepted, [])
        # and the sessions really were carried out (a test that cannot fail is no test)
        rcpts = [l for l in self.server.log_lines() if ' rcpt ' in l]
        self.assertGreater(len(rcpts), self.SESSIONS // 2, 'too few RCPT decisions logged')
        self.assertTrue(any('Relay access denied' in l for l in rcpts))


if __name__ == '__main__':
    unittest.main()
