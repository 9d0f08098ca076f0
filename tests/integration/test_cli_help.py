"""test_cli_help.py - every command and subcommand answers -h and --help.

relayguard(8) promises that every command takes -h or --help and prints a
short summary: on standard output, exit 0 (a usage error is standard error and
64). The table is built from the code and the page, not written here, so a
new command (a strcmp(cmd, "NAME") in main.c) or a new subcommand (an
".It Cm NAME" under its ".Ss" in relayguard.8) is checked without editing
this file.
"""
import os
import re
import subprocess
import unittest

from harness import REPO, binary

PAGE8 = os.path.join(REPO, 'doc', 'relayguard.8')
MAIN_C = os.path.join(REPO, 'src', 'cli', 'main.c')


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def commands():
    """The commands main.c dispatches (as test_manual finds them)."""
    found = re.findall(r'strcmp\(cmd, "([a-z][a-z-]*)"\) == 0', read(MAIN_C))
    return sorted(set(c for c in found if c not in ('help', 'version')))


def subcommands():
    """{command: [subcommand...]}: the ".It Cm WORD" items of each ".Ss command"."""
    out = {}
    for section in read(PAGE8).split('\n.Ss ')[1:]:
        name, body = section.split('\n', 1)
        subs = re.findall(r'^\.It Cm ([a-z][a-z-]*)', body, re.M)
        if subs:
            out[name.strip()] = sorted(set(subs))
    return out


def invocations():
    """Every command and every subcommand, each with -h and with --help."""
    subs = subcommands()
    for cmd in commands():
        for flag in ('-h', '--help'):
            yield [cmd, flag]
            for sub in subs.get(cmd, []):
                yield [cmd, sub, flag]


class EveryCommandHelp(unittest.TestCase):

    def test_the_table_is_not_empty(self):
        """the enumeration finds what it must (so the test below cannot pass empty)"""
        cmds = commands()
        for c in ('serve', 'config', 'queue', 'dkim', 'lockout', 'tls-memory', 'sendmail'):
            self.assertIn(c, cmds)
        subs = subcommands()
        self.assertIn('keygen', subs.get('dkim', []))
        self.assertIn('list', subs.get('lockout', []))
        self.assertIn('list', subs.get('tls-memory', []))
        self.assertIn('check', subs.get('spf', []))
        self.assertIn('show', subs.get('queue', []))

    def test_help_is_stdout_and_exit_0(self):
        for args in invocations():
            with self.subTest(' '.join(args)):
                p = subprocess.run([binary()] + args, capture_output=True, text=True,
                                   timeout=30, stdin=subprocess.DEVNULL)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertTrue(p.stdout.strip(), 'nothing on standard output')
                self.assertIn('usage:', p.stdout)
                self.assertEqual(p.stderr, '')

    def test_help_wins_over_a_bad_option_before_it(self):
        for args in (['config', '--man', '--help'], ['serve', '--bogus', '-h'],
                     ['explain', '--bogus', '--help'], ['demo', '--bogus', '-h'],
                     ['passwd', '--bogus', '--help'], ['dkim', 'keygen', '--bogus', '-h']):
            with self.subTest(' '.join(args)):
                p = subprocess.run([binary()] + args, capture_output=True, text=True,
                                   timeout=30, stdin=subprocess.DEVNULL)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn('usage:', p.stdout)

    def test_usage_errors_stay_stderr_and_64(self):
        for args in (['dkim', 'keygen', '--bogus'], ['spf', 'check'], ['lockout', 'list', 'x'],
                     ['tls-memory', 'list', '--bogus'], ['tls-report', 'send'],
                     ['queue', 'list', '--bogus'], ['config', '--man', 'x']):
            with self.subTest(' '.join(args)):
                p = subprocess.run([binary()] + args, capture_output=True, text=True,
                                   timeout=30, stdin=subprocess.DEVNULL)
                self.assertEqual(p.returncode, 64, p.stdout + p.stderr)
                self.assertTrue(p.stderr.strip())


if __name__ == '__main__':
    unittest.main()
