"""metrics_listen: Prometheus text over HTTP, checked by promtool and by value."""
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import http.client
import urllib.error
import urllib.request

import harness
from harness import Conn, Server

PROMTOOL = shutil.which('promtool')


def scrape(port, path='/metrics', method='GET'):
    req = urllib.request.Request('http://127.0.0.1:%d%s' % (port, path), method=method)
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.headers.get('Content-Type'), r.read().decode()


def value(text, series):
    """The value of one exact series line (name{labels}), or None."""
    for line in text.splitlines():
        if line.startswith(series + ' '):
            return float(line.split()[-1])
    return None


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mport = harness.free_port()
        cls.srv = Server(overrides={'metrics_listen': '127.0.0.1:%d' % cls.mport})

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()

    def test_families_are_there_before_anything_happens(self):
        status, ctype, text = scrape(self.mport)
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith('text/plain; version=0.0.4'), ctype)
        for family in ('relayguard_connections_total', 'relayguard_rcpt_total',
                       'relayguard_accept_seconds', 'relayguard_queue_messages'):
            self.assertIn('# TYPE %s ' % family, text)
        self.assertIsNotNone(self.srv.wait_log(r'metrics-listening address=127\.0\.0\.1:%d'
                                               % self.mport))

    @harness.requires(PROMTOOL is not None, 'prometheus', 'promtool check metrics')
    def test_promtool_accepts_the_output(self):
        with Conn(self.srv.port) as c:  # something to count
            c.cmd('EHLO c.example.org')
            c.cmd('MAIL FROM:<a@example.org>')
            c.cmd('RCPT TO:<victim@gmail.example>')
        text = scrape(self.mport)[2]
        out = subprocess.run([PROMTOOL, 'check', 'metrics'], input=text, capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_connections_and_deliveries_are_counted(self):
        before = scrape(self.mport)[2]
        conns = value(before, 'relayguard_connections_total') or 0
        local = value(before, 'relayguard_delivery_attempts_total{status="delivered",'
                              'transport="local"}') or 0
        with harness.smtp_client(self.srv.port) as c:
            c.sendmail('a@example.org', ['postmaster@localhost'],
                       b'Subject: counted\r\n\r\nhello\r\n')
        self.srv.wait_maildir('localhost', 'postmaster', count=1)
        text = scrape(self.mport)[2]
        self.assertEqual(value(text, 'relayguard_connections_total'), conns + 1)
        self.assertEqual(value(text, 'relayguard_delivery_attempts_total{status="delivered",'
                                     'transport="local"}'), local + 1)
        self.assertIsNotNone(value(text, 'relayguard_queue_messages{state="active"}'))
        self.assertGreaterEqual(value(text, 'relayguard_delivery_seconds_count'), 1)

    def test_relay_denials_commands_and_messages_are_counted(self):
        denied = 'relayguard_rcpt_total{result="reject",restriction="reject_unauth_destination"}'
        before = scrape(self.mport)[2]
        with Conn(self.srv.port) as c:  # a stranger tries to relay
            c.cmd('EHLO c.example.org')
            c.cmd('MAIL FROM:<ceo@paypal.example>')
            code, _ = c.cmd('RCPT TO:<victim@gmail.example>')
            self.assertEqual(code, 554)
            c.cmd('QUIT')
        with harness.smtp_client(self.srv.port) as c:
            c.sendmail('a@example.org', ['postmaster@localhost'],
                       b'Subject: counted\r\n\r\n' + b'x' * 1000 + b'\r\n')
        text = scrape(self.mport)[2]

        def delta(series):
            return (value(text, series) or 0) - (value(before, series) or 0)
        self.assertEqual(delta(denied), 1)
        self.assertEqual(delta('relayguard_commands_total{verb="RCPT"}'), 2)
        self.assertEqual(delta('relayguard_commands_total{verb="QUIT"}'), 2)
        self.assertEqual(delta('relayguard_messages_total{result="accepted"}'), 1)
        self.assertGreater(delta('relayguard_message_bytes_total'), 1000)
        self.assertEqual(delta('relayguard_accept_seconds_count'), 1)
        self.assertEqual(delta('relayguard_sessions_open'), 0)

    def test_tls_handshakes_are_counted_by_version(self):
        series = 'relayguard_tls_handshakes_total{version="TLSv1.3"}'
        before = value(scrape(self.mport)[2], series) or 0
        with Conn(self.srv.port) as c:
            c.cmd('EHLO c.example.org')
            self.assertEqual(c.cmd('STARTTLS')[0], 220)
            c.starttls()
            c.cmd('EHLO c.example.org')
        deadline = time.time() + 5
        while time.time() < deadline and (value(scrape(self.mport)[2], series) or 0) == before:
            time.sleep(0.05)
        self.assertEqual(value(scrape(self.mport)[2], series), before + 1)

    def test_other_paths_and_methods_are_refused(self):
        with self.assertRaises(urllib.error.HTTPError) as e:
            scrape(self.mport, '/')
        self.assertEqual(e.exception.code, 404)
        with self.assertRaises(urllib.error.HTTPError) as e:
            scrape(self.mport, '/metrics', method='POST')
        self.assertEqual(e.exception.code, 405)
        self.assertEqual(scrape(self.mport, '/metrics?x=1')[0], 200)


class ConnectionCap(unittest.TestCase):
    """libevent 2.1's HTTP server has no connection limit of its own: the
    endpoint keeps 32 connections and closes any more at once, so a local
    client cannot take the descriptors the SMTP listeners need; once they
    go, scrapes work again (every way a connection ends uncounts it)."""
    CAP = 32

    def scrape_soon(self, port):
        deadline = time.time() + 5
        while True:
            try:
                return scrape(port)[0]
            except (OSError, http.client.HTTPException):
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def test_connections_beyond_the_cap_are_closed_and_scrapes_go_on(self):
        mport = harness.free_port()
        with Server(overrides={'metrics_listen': '127.0.0.1:%d' % mport}) as srv:
            self.assertEqual(self.scrape_soon(mport), 200)
            held = []
            try:
                for _ in range(self.CAP + 8):
                    held.append(socket.create_connection(('127.0.0.1', mport), timeout=5))
                time.sleep(0.5)
                readable = select.select(held, [], [], 1.0)[0]  # only an end is readable
                for s in readable:
                    try:
                        self.assertEqual(s.recv(100), b'')
                    except ConnectionResetError:
                        pass
                self.assertEqual(len(readable), 8, 'connections closed at once')
                self.assertTrue(all(s in held[self.CAP:] for s in readable))
                with self.assertRaises((OSError, http.client.HTTPException)):
                    scrape(mport)  # the 33rd: closed too, while 32 are held
                srv.wait_log('metrics-connection-limit')
            finally:
                for s in held:
                    s.close()
            self.assertEqual(self.scrape_soon(mport), 200)
            for i in range(3 * self.CAP):  # each way of ending, more times than the cap
                with socket.create_connection(('127.0.0.1', mport), timeout=5) as s:
                    if i % 3 == 1:
                        s.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
                        self.assertTrue(s.recv(12).startswith(b'HTTP/1.1 200'))
                    elif i % 3 == 2:
                        s.sendall(b'GET /metr')
            self.assertEqual(self.scrape_soon(mport), 200)


class Failures(unittest.TestCase):
    """The families a quiet test server leaves at zero: AUTH successes and
    failures, lock-outs and the connections they refuse, connections over the
    per-client limit, messages refused at
    the end of DATA, deferrals (here by the tests' error: transport) and the
    deferred queue."""

    @classmethod
    def setUpClass(cls):
        from test_msa import make_passwd, msa_overrides
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-metrics-')
        os.chmod(cls.tmp, 0o755)
        passwd = os.path.join(cls.tmp, 'passwd')
        make_passwd(passwd, {'alice@example.com': ('SHA512-CRYPT', 'alice-secret')})
        cls.mport = harness.free_port()
        cls.srv = Server(overrides=msa_overrides(
            passwd, smtpd_sasl_failure_limit='2', smtpd_sasl_lockout_time='60s',
            metrics_listen='127.0.0.1:%d' % cls.mport, queue_run_delay='1s',
            smtpd_client_connection_count_limit='1'))

    @classmethod
    def tearDownClass(cls):
        harness.stop_server(cls.srv, cls.tmp)

    def test_auth_lockout_refusals_rejections_and_deferrals_are_counted(self):
        from test_msa import plain
        before = scrape(self.mport)[2]

        def delta(series):
            return (value(scrape(self.mport)[2], series) or 0) - (value(before, series) or 0)
        with Conn(self.srv.subs_port, source=harness.UNTRUSTED2, tls=True) as c:
            c.cmd('EHLO c.example.org')
            self.assertEqual(c.cmd('AUTH PLAIN ' + plain('alice@example.com',
                                                         'alice-secret'))[0], 235)
            # a message refused at the end of DATA (a bare LF in it)
            self.assertEqual(c.cmd('MAIL FROM:<alice@example.com>')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<postmaster@example.com>')[0], 250)
            self.assertEqual(c.cmd('DATA')[0], 354)
            self.assertEqual(c.cmd('Subject: bare\r\n\r\none\ntwo\r\n.')[0], 550)
            # a message for somebody else's domain: accepted, then deferred
            self.assertEqual(c.cmd('MAIL FROM:<alice@example.com>')[0], 250)
            self.assertEqual(c.cmd('RCPT TO:<friend@example.net>')[0], 250)
            self.assertEqual(c.cmd('DATA')[0], 354)
            self.assertEqual(c.cmd('Subject: later\r\n\r\nhello\r\n.')[0], 250)
        with Conn(self.srv.subs_port, tls=True) as c:  # 127.0.0.9: two failures lock it out
            c.cmd('EHLO c.example.org')
            self.assertEqual(c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'x'))[0], 535)
            self.assertEqual(c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'x'))[0], 421)
        with Conn(self.srv.port, greeting=False) as c:
            self.assertEqual(c.reply()[0], 421)
        with Conn(self.srv.port, source='127.0.0.11'):  # one connection per client
            with Conn(self.srv.port, source='127.0.0.11', greeting=False) as c:
                self.assertEqual(c.reply()[0], 421)
        self.assertEqual(delta('relayguard_auth_total{result="success"}'), 1)
        self.assertEqual(delta('relayguard_auth_total{result="failure"}'), 2)
        self.assertEqual(delta('relayguard_auth_lockouts_total'), 1)
        self.assertEqual(delta('relayguard_connections_refused_total{reason="lockout"}'), 1)
        self.assertEqual(delta('relayguard_connections_refused_total{reason="limit"}'), 1)
        self.assertEqual(delta('relayguard_sessions_open'), 0)
        self.assertEqual(delta('relayguard_messages_total{result="rejected"}'), 1)
        self.assertEqual(delta('relayguard_messages_total{result="accepted"}'), 1)
        series = 'relayguard_delivery_attempts_total{status="deferred",transport="error"}'
        deadline = time.time() + 10
        while time.time() < deadline and (
                delta(series) < 1 or
                (value(scrape(self.mport)[2], 'relayguard_queue_messages{state="deferred"}')
                 or 0) < 1):
            time.sleep(0.1)
        self.assertEqual(delta(series), 1, scrape(self.mport)[2])
        self.assertEqual(value(scrape(self.mport)[2],
                               'relayguard_queue_messages{state="deferred"}'), 1)


class BadConfig(unittest.TestCase):
    def test_a_bad_address_is_a_file_line_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'main.cf')
            with open(path, 'w') as f:
                f.write('metrics_listen = localhost\n')
            out = harness.run_cli(['config', '-c', path])
            self.assertNotEqual(out.returncode, 0)
            self.assertIn('main.cf:1: metrics_listen: "localhost" is not address:port',
                          out.stderr)


if __name__ == '__main__':
    unittest.main()
