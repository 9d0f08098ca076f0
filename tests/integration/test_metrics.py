"""metrics_listen: Prometheus text over HTTP, checked by promtool and by value."""
import os
import shutil
import subprocess
import tempfile
import unittest
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

    def test_other_paths_and_methods_are_refused(self):
        with self.assertRaises(urllib.error.HTTPError) as e:
            scrape(self.mport, '/')
        self.assertEqual(e.exception.code, 404)
        with self.assertRaises(urllib.error.HTTPError) as e:
            scrape(self.mport, '/metrics', method='POST')
        self.assertEqual(e.exception.code, 405)
        self.assertEqual(scrape(self.mport, '/metrics?x=1')[0], 200)


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
