"""test_manual.py - the manual pages say what the binary does: relayguard.conf(5)
is exactly what `relayguard config --man` generates from the parameter table,
relayguard(8) names every command main.c dispatches and every option the
commands take, both pages are mandoc-lint clean, README names every parameter,
and each `relayguard COMMAND --help` is short and points to the pages."""
import os
import re
import shutil
import subprocess
import unittest

import harness
from harness import REPO, binary

CONF5 = os.path.join(REPO, 'doc', 'relayguard.conf.5')
PAGE8 = os.path.join(REPO, 'doc', 'relayguard.8')
MAIN_C = os.path.join(REPO, 'src', 'cli', 'main.c')
MANDOC = shutil.which('mandoc')


def run(*args):
    return subprocess.run([binary()] + list(args), capture_output=True, text=True, timeout=30)


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def parameters():
    """Every parameter, as `relayguard config` prints the default configuration."""
    p = run('config')
    assert p.returncode == 0, p.stderr
    return [line.split(' = ', 1)[0] for line in p.stdout.splitlines() if not line.startswith('#')]


def commands():
    """The commands main.c dispatches: strcmp(cmd, "NAME") == 0."""
    found = re.findall(r'strcmp\(cmd, "([a-z][a-z-]*)"\) == 0', read(MAIN_C))
    return [c for c in found if c not in ('help', 'version')]


def long_options():
    """Every --option named in a command's usage text (src/cli, src/probe/cli.c)."""
    opts = set()
    files = [os.path.join(REPO, 'src', 'cli', f) for f in os.listdir(os.path.join(REPO, 'src', 'cli'))
             if f.endswith('.c')] + [os.path.join(REPO, 'src', 'probe', 'cli.c')]
    for path in files:
        for usage in re.findall(r'usage[a-z_]*\[\] =((?:\s*"(?:[^"\\\n]|\\.)*")+)\s*;', read(path)):
            opts.update(re.findall(r'(?<![\w-])--([a-z][a-z-]*)', usage))
    return opts


class GeneratedPage(unittest.TestCase):

    def test_checked_in_page_is_the_generated_one(self):
        p = run('config', '--man')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(read(CONF5), p.stdout,
                         'doc/relayguard.conf.5 differs from the parameter table: run make man')

    def test_every_parameter_has_an_entry(self):
        page = read(CONF5)
        names = parameters()
        self.assertGreater(len(names), 100)
        for name in names:
            with self.subTest(name):
                self.assertRegex(page, r'\n\.It Va %s Pq ' % re.escape(name))
                self.assertIn('\n.Dl "%s = ' % name, page)

    def test_readme_names_every_parameter(self):
        readme = read(os.path.join(REPO, 'README.md'))
        self.assertTrue('relayguard.conf(5)' in readme, 'README points to the page')
        for name in parameters():
            with self.subTest(name):
                self.assertRegex(readme, r'`%s[` ]' % re.escape(name),
                                 '%s is not in README.md' % name)


class CommandPage(unittest.TestCase):

    def test_every_dispatched_command_is_documented(self):
        page = read(PAGE8)
        cmds = commands()
        self.assertIn('serve', cmds)
        self.assertIn('tls-report', cmds)
        for cmd in cmds:
            with self.subTest(cmd):
                self.assertIn('\n.Ss %s\n' % cmd, page)
                self.assertIn('\n.Cm %s\n' % cmd, page.split('.Sh DESCRIPTION')[0])

    def test_every_option_is_documented(self):
        page = read(PAGE8)
        opts = long_options()
        self.assertIn('log-format', opts)
        self.assertIn('smuggle', opts)
        for opt in sorted(opts):
            with self.subTest(opt):
                self.assertRegex(page, r'\bFl -%s\b' % re.escape(opt))

    def test_help_is_short_and_points_to_the_pages(self):
        for cmd in commands():
            with self.subTest(cmd):
                p = run(cmd, '--help')
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertLessEqual(len(p.stdout.splitlines()), 50, p.stdout)
                self.assertIn('relayguard(8)', p.stdout)
                self.assertIn('relayguard.conf(5)', p.stdout)
        self.assertIn('relayguard(8)', run('--help').stdout)


@harness.requires(MANDOC is not None, 'mandoc', 'mandoc -T lint checks the manual pages')
class Lint(unittest.TestCase):

    def lint(self, path):
        p = subprocess.run([MANDOC, '-T', 'lint', path], capture_output=True, text=True,
                           timeout=30)
        # an Xr to a page that is not installed here (postconf(5), the other
        # relayguard page before `make install`) is the only message allowed
        return [l for l in (p.stdout + p.stderr).splitlines()
                if l and 'referenced manual not found' not in l]

    def test_pages_are_lint_clean(self):
        for path in (CONF5, PAGE8):
            with self.subTest(os.path.basename(path)):
                self.assertEqual(self.lint(path), [])

    def test_pages_render(self):
        for path, words in ((CONF5, ['smtpd_relay_restrictions', 'Postfix:', 'Example:']),
                            (PAGE8, ['tls-memory', 'EXIT STATUS'])):
            p = subprocess.run([MANDOC, '-T', 'ascii', path], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            text = re.sub('.\x08', '', p.stdout)  # no bold/underline overstrikes
            for w in words:
                self.assertTrue(w in text, '%s: %s not rendered' % (path, w))

    def test_backslashes_render_as_written(self):
        # in roff a backslash starts an escape: \n reads a number register and
        # \t, \r are a tab and a reverse line feed, so a shell example with
        # printf '...\n' must be written \en to show a backslash
        src = read(PAGE8)
        for m in re.finditer(r'\\[nrt]', src):
            line = src.count('\n', 0, m.start()) + 1
            self.fail('relayguard.8:%d: "%s" is a roff escape; write \\e%s' %
                      (line, m.group(0), m.group(0)[1]))
        p = subprocess.run([MANDOC, '-T', 'ascii', PAGE8], capture_output=True, text=True,
                           timeout=30)
        text = re.sub('.\x08', '', p.stdout)
        examples = text[text.index('EXAMPLES'):]
        self.assertIn("printf 'To: admin@example.com\\nSubject: backup\\n\\ndone\\n' |",
                      examples)
        self.assertIn("--client 192.0.2.1 \\\n", examples)  # a continued shell line


if __name__ == '__main__':
    unittest.main()
