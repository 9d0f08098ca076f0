"""test_cli_admin.py - the Postfix administrator's commands.

`relayguard config NAME...` prints those parameters as postconf NAME does,
`config -n` the ones the file sets (postconf -n); an unknown name is a usage
error with the loader's "did you mean". `sendmail -bp` and a link named mailq
list the queue as `relayguard queue list` does; a link named newaliases says
that there is nothing to build. A misspelt command gets a "did you mean" too.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import REPO, TRUSTED, Server, binary, run_cli, smtp_client

MAIN_C = os.path.join(REPO, 'src', 'cli', 'main.c')
EXIT_USAGE = 64


def run(args, argv0=None):
    exe = argv0 or binary()
    return subprocess.run([exe] + list(args), capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


class ConfigQuery(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='relayguard-cliadm-')
        cls.cf = os.path.join(cls.dir, 'main.cf')
        with open(cls.cf, 'w') as f:
            f.write('# a comment\nmydomain = example.com\nmyhostname = mx.$mydomain\n'
                    'smtpd_recipient_limit = 50\n')

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_names_print_their_values_in_the_order_given(self):
        p = run_cli(['config', '-c', self.cf, 'myorigin', 'myhostname', 'mydomain'])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.splitlines(), ['myorigin = mx.example.com',
                                                 'myhostname = mx.example.com',
                                                 'mydomain = example.com'])

    def test_default_value_of_one_parameter(self):
        p = run_cli(['config', 'mynetworks'])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, 'mynetworks = 127.0.0.0/8 [::1]/128\n')

    def test_n_prints_only_what_the_file_sets(self):
        p = run_cli(['config', '-n', '-c', self.cf])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(p.stdout.splitlines()), ['mydomain = example.com',
                                                         'myhostname = mx.example.com',
                                                         'smtpd_recipient_limit = 50'])
        # with names: those of them the file sets
        p = run_cli(['config', '-n', '-c', self.cf, 'myorigin', 'mydomain'])
        self.assertEqual(p.stdout.splitlines(), ['mydomain = example.com'])

    def test_unknown_parameter_is_a_usage_error_with_a_hint(self):
        p = run_cli(['config', '-c', self.cf, 'myhostname', 'mynetwork'])
        self.assertEqual(p.returncode, EXIT_USAGE, p.stdout + p.stderr)
        self.assertEqual(p.stdout, '')
        self.assertIn('unknown parameter "mynetwork" (did you mean "mynetworks"?)', p.stderr)
        p = run_cli(['config', 'zzqqxxyyww'])
        self.assertEqual(p.returncode, EXIT_USAGE)
        self.assertIn('unknown parameter "zzqqxxyyww"', p.stderr)
        self.assertNotIn('did you mean', p.stderr)


def commands():
    """The commands main.c dispatches."""
    found = re.findall(r'strcmp\(cmd, "([a-z][a-z-]*)"\) == 0', open(MAIN_C).read())
    return sorted(set(c for c in found if c not in ('help', 'version')))


class UnknownCommand(unittest.TestCase):

    def test_misspelt_command_gets_a_hint(self):
        p = run_cli(['qeue'])
        self.assertEqual(p.returncode, EXIT_USAGE)
        self.assertIn('unknown command "qeue" (did you mean "queue"?)', p.stderr)
        p = run_cli(['frobnicate'])
        self.assertEqual(p.returncode, EXIT_USAGE)
        self.assertNotIn('did you mean', p.stderr)
        self.assertIn('try relayguard --help', p.stderr)

    def test_every_dispatched_command_is_suggested(self):
        cmds = commands()
        self.assertIn('tls-memory', cmds)
        for cmd in cmds:
            with self.subTest(cmd):
                p = run_cli([cmd + 'x'])
                self.assertEqual(p.returncode, EXIT_USAGE)
                self.assertIn('did you mean "%s"?' % cmd, p.stderr)


class MailqAndNewaliases(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = Server()
        cls.links = tempfile.mkdtemp(prefix='relayguard-links-')
        for name in ('mailq', 'newaliases'):
            os.symlink(binary(), os.path.join(cls.links, name))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()
        shutil.rmtree(cls.links, ignore_errors=True)

    def queue_one(self):
        with smtp_client(self.srv.port, source=TRUSTED) as c:
            c.ehlo('client.example.org')
            self.assertEqual(c.mail('alice@example.com')[0], 250)
            self.assertEqual(c.rcpt('bob@example.net')[0], 250)
            code, resp = c.data(b'Subject: mailq\r\n\r\nbody\r\n')
            self.assertEqual(code, 250, resp)
        qid = re.search(r'queued as ([0-9A-F]{16})', resp.decode()).group(1)
        deadline = time.time() + 5
        while qid not in self.srv.queue_files('deferred') and time.time() < deadline:
            time.sleep(0.02)
        return qid

    def test_bp_and_mailq_are_queue_list(self):
        qid = self.queue_one()
        want = run(['queue', 'list', '-c', self.srv.config_path])
        self.assertEqual(want.returncode, 0, want.stderr)
        self.assertIn(qid, want.stdout)
        for args, argv0 in ((['sendmail', '-bp', '-C', self.srv.config_path], None),
                            (['-C', self.srv.config_path], os.path.join(self.links, 'mailq'))):
            with self.subTest(argv0 or 'sendmail -bp'):
                p = run(args, argv0)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stdout, want.stdout)

    def test_newaliases_says_there_is_nothing_to_build(self):
        for args, argv0 in ((['sendmail', '-bi'], None),
                            ([], os.path.join(self.links, 'newaliases'))):
            with self.subTest(argv0 or 'sendmail -bi'):
                p = run(args, argv0)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(len(p.stdout.splitlines()), 1, p.stdout)
                self.assertIn('alias files', p.stdout)
                self.assertIn('no database to build', p.stdout)
                self.assertIn('systemctl reload relayguard', p.stdout)


if __name__ == '__main__':
    unittest.main()
