"""test_cli_messages.py - what the small commands say to a person.

A usage error names what is wrong (explain's missing option, lockout clear's
address that is not one: exit 64); an empty TLS memory says so instead of
printing nothing; `queue show` has the next retry and each pending
recipient's last reply, as `queue list --json` has them.
"""
import time
import unittest

import harness
from harness import Server, run_cli
from test_queue_cli import queue_cli, send

EXIT_USAGE = 64


class UsageErrorsNameTheProblem(unittest.TestCase):

    def test_explain_names_the_missing_option(self):
        for args, missing in ((['--client', '192.0.2.1', '--from', 'a@example.org'], '--to'),
                              (['--from', 'a@example.org', '--to', 'b@example.net'],
                               '--client'),
                              ([], '--client, --from, --to')):
            with self.subTest(missing):
                p = run_cli(['explain'] + args)
                self.assertEqual(p.returncode, EXIT_USAGE, p.stderr)
                self.assertIn('missing %s' % missing, p.stderr)
                self.assertEqual(p.stdout, '')

    def test_lockout_clear_of_something_not_an_address_is_a_usage_error(self):
        p = run_cli(['lockout', 'clear', 'foo'])
        self.assertEqual(p.returncode, EXIT_USAGE, p.stdout + p.stderr)
        self.assertIn('"foo" is not an IP address', p.stderr)


class WithServer(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = Server()

    @classmethod
    def tearDownClass(cls):
        harness.stop_server(cls.srv)

    def test_empty_tls_memory_says_so(self):
        p = run_cli(['tls-memory', 'list', '-c', self.srv.config_path])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('the TLS downgrade memory is empty', p.stdout)

    def test_show_has_the_next_try_and_the_last_reply(self):
        qid = send(self.srv, rcpts=('bob@example.net',))
        off = harness.OUTBOUND_OFF.split(' ', 1)[1]  # the reply the harness's transport gives
        deadline = time.time() + 5
        while True:
            p = queue_cli(self.srv, 'show', qid)
            self.assertEqual(p.returncode, 0, p.stderr)
            if 'last reply' in p.stdout or time.time() > deadline:
                break
            time.sleep(0.05)
        lines = p.stdout.splitlines()
        self.assertRegex(p.stdout, r'\nnext try: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} '
                                   r'[+-]\d{4} \(in \d+ min\)\n')
        i = lines.index(next(l for l in lines if l.startswith('recipient: <bob@example.net>')))
        self.assertRegex(lines[i + 1], r'^  attempts: 1, the last ')
        self.assertEqual(lines[i + 2], '  last reply: %s' % off)


if __name__ == '__main__':
    unittest.main()
