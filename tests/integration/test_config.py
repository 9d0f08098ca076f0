"""test_config.py - the command line: config checking, errors, help, JSON logs."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from harness import Server, binary, free_port, run_cli, smtp_session

EXIT_USAGE = 64
EXIT_CONFIG = 78


class ConfigFiles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='relayguard-cfg-')
        os.chmod(cls.dir, 0o755)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def base(self, port):
        return ('smtpd_listen = 127.0.0.1:%d\n'
                'queue_directory = %s/queue\n'
                'virtual_mailbox_base = %s/mail\n' % (port, self.dir, self.dir))

    def test_effective_values_with_expansion(self):
        path = self.write('ok.cf', '# a comment\nmydomain = example.com\n'
                                   'myhostname = mx.$mydomain\n'
                                   'mynetworks = 127.0.0.1/32,\n    [::1]/128\n')
        p = run_cli(['config', '-c', path])
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertIn('myhostname = mx.example.com', lines)
        self.assertIn('mydomain = example.com', lines)
        self.assertIn('myorigin = mx.example.com', lines)          # default $myhostname
        self.assertIn('smtpd_banner = mx.example.com ESMTP relayguard', lines)
        self.assertTrue(any(l.startswith('mynetworks = 127.0.0.1/32') and '[::1]/128' in l
                            for l in lines), p.stdout)
        self.assertTrue(any(l.startswith('smtpd_relay_restrictions = ') and
                            'reject_unauth_destination' in l for l in lines))

    def test_default_configuration(self):
        p = run_cli(['config'])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('mynetworks = 127.0.0.0/8 [::1]/128', p.stdout.splitlines())

    def test_open_mynetworks_fails_the_check_as_serve_refuses_it(self):
        """config -c FILE is the check before a reload (postfix check): a file the
        relay self-test of serve refuses exits 78 with serve's open-relay lines."""
        path = self.write('open.cf', 'mynetworks = 0.0.0.0/0\n')
        p = run_cli(['config', '-c', path], timeout=30)
        self.assertEqual(p.returncode, EXIT_CONFIG, p.stderr)
        tricks = [l for l in p.stderr.splitlines() if ' fatal open-relay ' in l]
        self.assertTrue(any('plain (third-party relay)' in l and
                            'accepted by permit_mynetworks' in l for l in tricks), p.stderr)
        self.assertIn('relay-selftest-failed tricks=%d' % len(tricks), p.stderr)
        self.assertIn('relayguard serve would not start', p.stderr)
        self.assertNotIn('mynetworks = 0.0.0.0/0', p.stdout)

    def test_open_mynetworks_with_selftest_warn_or_off_passes(self):
        """relay_selftest = warn (or off) starts it, so the check passes: exit 0, the
        tricks as warnings (warn) or the notice that the test is off."""
        for mode, word in (('warn', 'open-relay-risk selftest=relayed'),
                           ('off', 'relay-selftest-off')):
            with self.subTest(mode):
                path = self.write('open-%s.cf' % mode,
                                  'mynetworks = 0.0.0.0/0\nrelay_selftest = %s\n' % mode)
                p = run_cli(['config', '-c', path], timeout=30)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn(word, p.stderr)
                self.assertNotIn(' fatal ', p.stderr)
                self.assertIn('open relay', p.stderr)  # the broad-mynetworks warning
                self.assertIn('mynetworks = 0.0.0.0/0', p.stdout.splitlines())

    BAD = [
        ('unknown parameter', 'mydomain = example.com\n\nmynetwork = 10.0.0.0/8\n', 3,
         ['unknown parameter "mynetwork"', 'did you mean "mynetworks"']),
        ('bad CIDR prefix', 'mynetworks = 127.0.0.1/32 10.0.0.0/33\n', 1,
         ['mynetworks', '10.0.0.0/33']),
        ('not an address', 'mydomain = example.com\nmynetworks = 10.0.0.x/8\n', 2,
         ['mynetworks', '10.0.0.x/8']),
        ('host bits set', 'mynetworks = 10.0.0.1/8\n', 1, ['mynetworks', '10.0.0.0/8']),
        ('bad number', 'smtpd_recipient_limit = lots\n', 1,
         ['smtpd_recipient_limit', '"lots"']),
        ('bad duration', 'smtpd_timeout = 5 minutes\n', 1, ['smtpd_timeout']),
        ('unknown restriction',
         'smtpd_relay_restrictions = permit_mynetworks,\n  reject_unauth_destinatio\n', 1,
         ['unknown restriction "reject_unauth_destinatio"']),
        ('a Postfix restriction relayguard lacks',
         'smtpd_sender_restrictions = check_sender_access hash:/etc/postfix/access\n', 1,
         ['"check_sender_access" is a Postfix restriction relayguard does not support yet '
          '(see README, Known limitations)']),
        ('open relay by restrictions', '# relay for everybody\nsmtpd_relay_restrictions = '
         'permit\n', 2, ['open relay', 'reject_unauth_destination']),
        ('open relay: only permits',
         'smtpd_relay_restrictions = permit_mynetworks, permit_auth_destination\n', 1,
         ['reject_unauth_destination']),
        ('not name = value', 'mydomain example.com\n', 1, []),
        ('in_flow_delay over Postfix\'s 10s', 'in_flow_delay = 99s\n', 1,
         ['in_flow_delay', 'out of range (0..10)']),
        ('shared_state naming a host', '\nshared_state = redis://redis.example:6379/0\n', 2,
         ['shared_state', 'host names are not looked up']),
    ]

    def test_config_errors(self):
        for desc, text, line, words in self.BAD:
            with self.subTest(desc):
                path = self.write('bad.cf', text)
                p = run_cli(['config', '-c', path])
                self.assertEqual(p.returncode, EXIT_CONFIG, p.stdout + p.stderr)
                first = p.stderr.splitlines()[0] if p.stderr else ''
                self.assertTrue(first.startswith('%s:%d: ' % (path, line)),
                                'expected "%s:%d: ...", got %r' % (path, line, p.stderr))
                for w in words:
                    self.assertIn(w, p.stderr)

    def test_serve_refuses_bad_config(self):
        for desc, text, line, words in self.BAD:
            with self.subTest(desc):
                port = free_port()
                path = self.write('bad-serve.cf', self.base(port) + text)
                p = run_cli(['serve', '-c', path], timeout=10)
                self.assertEqual(p.returncode, EXIT_CONFIG, p.stderr)
                self.assertIn('%s:%d: ' % (path, line + 3), p.stderr)
                for w in words:
                    self.assertIn(w, p.stderr)
                with socket.socket() as s:
                    s.settimeout(1)
                    self.assertNotEqual(s.connect_ex(('127.0.0.1', port)), 0,
                                        'something listens on the port')

    def test_missing_file(self):
        path = os.path.join(self.dir, 'does-not-exist.cf')
        for cmd in ('config', 'serve'):
            with self.subTest(cmd):
                p = run_cli([cmd, '-c', path])
                self.assertEqual(p.returncode, EXIT_CONFIG, p.stderr)
                self.assertIn(path, p.stderr)


class CommandLine(unittest.TestCase):
    def test_main_help(self):
        for args in (['--help'], ['-h']):
            with self.subTest(args=args):
                p = run_cli(args)
                self.assertEqual(p.returncode, 0)
                for word in ('serve', 'config', '--help', '--version'):
                    self.assertIn(word, p.stdout)

    def test_serve_help(self):
        p = run_cli(['serve', '--help'])
        self.assertEqual(p.returncode, 0)
        for opt in ('-c', '--config', '--log-format', 'json', '--debug', '--help'):
            self.assertIn(opt, p.stdout)

    def test_config_help(self):
        p = run_cli(['config', '--help'])
        self.assertEqual(p.returncode, 0)
        for opt in ('-c', '--config', '--help'):
            self.assertIn(opt, p.stdout)

    def test_version(self):
        p = run_cli(['--version'])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r'^relayguard \d+\.\d+')

    def test_usage_errors(self):
        for args in ([], ['frobnicate'], ['serve', '--bogus'], ['config', '--bogus'],
                     ['serve', '-c'], ['serve', '--log-format', 'xml'],
                     ['config', '--log-format', 'json'], ['config', '--debug']):
            with self.subTest(args=args):
                p = run_cli(args)
                self.assertEqual(p.returncode, EXIT_USAGE, p.stdout + p.stderr)
                self.assertTrue(p.stderr.strip(), 'no message on standard error')


class JsonLog(unittest.TestCase):
    def test_json_log_lines(self):
        with Server(args=['--log-format', 'json']) as s:
            mark = s.mark()
            smtp_session(s.port, ['HELO attacker.example', 'MAIL FROM:<a@attacker.example>',
                                  'RCPT TO:<victim@example.net>',
                                  'RCPT TO:<postmaster@localhost>', 'QUIT'])
            self.assertIsNotNone(s.wait_log('"disconnect"', since=mark))
            events = []
            for line in s.log_lines():
                try:
                    events.append(json.loads(line))
                except ValueError:
                    self.fail('not a JSON line: %r' % line)
            for e in events:
                self.assertIn('event', e)
                self.assertIn('time', e)
                self.assertIn('level', e)
            names = [e['event'] for e in events]
            self.assertIn('listening', names)
            connects = [e for e in events if e['event'] == 'connect']
            self.assertTrue(connects)
            self.assertEqual(connects[-1].get('client'), '127.0.0.9')
            rcpts = [e for e in events if e['event'] == 'rcpt']
            self.assertEqual(len(rcpts), 2, rcpts)
            self.assertEqual(rcpts[0].get('result'), 'reject')
            self.assertEqual(rcpts[0].get('restriction'), 'reject_unauth_destination')
            self.assertEqual(rcpts[0].get('to'), '<victim@example.net>')
            self.assertEqual(rcpts[0].get('helo'), 'attacker.example')
            self.assertIn('Relay access denied', rcpts[0].get('reply', ''))
            self.assertEqual(rcpts[1].get('result'), 'accept')

    def test_debug_logs_state_changes(self):
        with Server(args=['--debug']) as s:
            smtp_session(s.port, ['HELO c.example.org', 'QUIT'])
            self.assertIsNotNone(s.wait_log(r'debug state'), s.tail())


if __name__ == '__main__':
    unittest.main()
