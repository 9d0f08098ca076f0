"""test_install.py - make install / uninstall, the installed defaults, the systemd unit.

make install DESTDIR=tmp lays out the tree an operator gets; the installed
binary (the one under test: INSTALL_BIN) knows it is installed and defaults
to the system's directories, while the build tree's keeps ./var. The unit
must pass systemd-analyze verify, and its exposure score is printed (and
bounded) from systemd-analyze security --offline=yes. Its hardening is applied
without systemd: the capability bounding set with setpriv, the system call
filter by tracing every call the server makes (strace).
"""
import glob
import os
import re
import pwd
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

from harness import REPO, binary, free_port, require, run_cli

INSTALLED_PATHS = {
    'queue_directory': '/var/spool/relayguard',
    'virtual_mailbox_base': '/var/mail/vhosts',
    'data_directory': '/var/lib/relayguard',
}


def make(*args):
    p = subprocess.run(['make', '--no-print-directory', '-C', REPO, 'INSTALL_BIN=' + binary()]
                       + list(args), capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError('make %s failed:\n%s%s' % (' '.join(args), p.stdout, p.stderr))
    return p.stdout


def settings(text):
    """name -> value of 'name = value' lines (relayguard config output)."""
    out = {}
    for line in text.splitlines():
        if ' = ' in line and not line.startswith('#'):
            k, v = line.split(' = ', 1)
            out[k] = v
    return out


def tree_size(top):
    total = 0
    for d, _, files in os.walk(top):
        for f in files:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


class Install(unittest.TestCase):
    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix='relayguard-install-')
        self.addCleanup(shutil.rmtree, self.dest, ignore_errors=True)

    def path(self, p):
        return os.path.join(self.dest, p.lstrip('/'))

    def mode(self, p):
        return stat.S_IMODE(os.stat(self.path(p)).st_mode)

    def test_install_tree_and_uninstall(self):
        make('install', 'DESTDIR=' + self.dest)
        self.assertEqual(self.mode('/usr/local/sbin/relayguard'), 0o755)
        self.assertEqual(self.mode('/etc/relayguard/main.cf'), 0o644)
        unit = self.path('/usr/local/lib/systemd/system/relayguard.service')
        with open(unit) as f:
            text = f.read()
        self.assertIn('ExecStart=/usr/local/sbin/relayguard serve -c /etc/relayguard/main.cf',
                      text)
        self.assertNotRegex(text, r'@[A-Z]+@')  # every placeholder filled in
        for d in INSTALLED_PATHS.values():
            self.assertTrue(os.path.isdir(self.path(d)), d)
        # manual pages: whatever doc/ has, in the section its suffix names
        for page in glob.glob(os.path.join(REPO, 'doc', '*.[58]')):
            sec = page[-1]
            dst = self.path('/usr/local/share/man/man%s/%s' % (sec, os.path.basename(page)))
            self.assertTrue(os.path.isfile(dst), dst)
            self.assertEqual(stat.S_IMODE(os.stat(dst).st_mode), 0o644)
        self.assertFalse(os.path.lexists(self.path('/usr/sbin/sendmail')),
                         'sendmail only with INSTALL_SENDMAIL=yes')
        size = tree_size(self.dest)
        sys.stderr.write('\n  install size: %d bytes (%.1f MiB) for %s\n'
                         % (size, size / 1048576.0, os.path.basename(binary())))
        # an administrator's main.cf survives a second install and uninstall
        with open(self.path('/etc/relayguard/main.cf'), 'a') as f:
            f.write('mynetworks = 127.0.0.1/32\n')
        out = make('install', 'DESTDIR=' + self.dest)
        self.assertIn('kept', out)
        with open(self.path('/etc/relayguard/main.cf')) as f:
            self.assertIn('mynetworks = 127.0.0.1/32', f.read())
        make('uninstall', 'DESTDIR=' + self.dest)
        left = sorted(os.path.relpath(os.path.join(d, f), self.dest)
                      for d, _, fs in os.walk(self.dest) for f in fs)
        self.assertEqual(left, ['etc/relayguard/main.cf'])

    def test_install_strip_ships_a_stripped_binary_that_runs(self):
        make('install-strip', 'DESTDIR=' + self.dest)
        installed = self.path('/usr/local/sbin/relayguard')
        self.assertEqual(self.mode('/usr/local/sbin/relayguard'), 0o755)
        self.assertLess(os.path.getsize(installed), os.path.getsize(binary()))
        sections = subprocess.run(['readelf', '-S', installed], capture_output=True,
                                  text=True, check=True).stdout
        self.assertNotIn('.debug_info', sections)
        self.assertNotIn('.symtab', sections)
        p = subprocess.run([installed, '--help'], capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('relayguard', p.stdout + p.stderr)

    def test_sendmail_link_only_when_asked(self):
        make('install', 'DESTDIR=' + self.dest, 'INSTALL_SENDMAIL=yes', 'PREFIX=/usr')
        link = self.path('/usr/sbin/sendmail')
        self.assertTrue(os.path.islink(link))
        self.assertEqual(os.readlink(link), '/usr/sbin/relayguard')
        self.assertTrue(os.path.isfile(self.path('/usr/lib/systemd/system/relayguard.service')))
        make('uninstall', 'DESTDIR=' + self.dest, 'PREFIX=/usr')
        self.assertFalse(os.path.lexists(link))
        self.assertFalse(os.path.exists(self.path('/usr/sbin/relayguard')))

    def test_sendmail_goes_to_usr_sbin_and_never_replaces_another_mta(self):
        # a /usr/local install still answers at /usr/sbin/sendmail, where cron and PHP look
        make('install', 'DESTDIR=' + self.dest, 'INSTALL_SENDMAIL=yes')
        link = self.path('/usr/sbin/sendmail')
        self.assertEqual(os.readlink(link), '/usr/local/sbin/relayguard')
        make('uninstall', 'DESTDIR=' + self.dest)
        self.assertFalse(os.path.lexists(link))
        # another MTA's sendmail stays, and the install says why it failed
        with open(link, 'w') as f:
            f.write('#!/bin/sh\n')
        out = subprocess.run(['make', '-s', '-C', REPO, 'install', 'DESTDIR=' + self.dest,
                              'INSTALL_SENDMAIL=yes', 'INSTALL_BIN=' + binary()],
                             capture_output=True, text=True, timeout=300)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn('exists and is not relayguard; not replaced', out.stderr)
        with open(link) as f:
            self.assertEqual(f.read(), '#!/bin/sh\n')

    def test_example_main_cf_is_all_comments_and_tells_the_defaults(self):
        make('install', 'DESTDIR=' + self.dest)
        cf = self.path('/etc/relayguard/main.cf')
        with open(cf) as f:
            lines = f.read().splitlines()
        for n, line in enumerate(lines, 1):
            self.assertTrue(line == '' or line.startswith('#'), 'line %d: %r' % (n, line))
        p = subprocess.run([self.path('/usr/local/sbin/relayguard'), 'config', '-c', cf],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.splitlines()[0], '# relayguard config: read %s' % cf)
        effective = settings(p.stdout)
        # two kinds of line, and the header says which is which: '#name = value'
        # is the default (what runs while it stays a comment), '# e.g. name =
        # value' an example that is not the default
        header = '\n'.join(lines[:20])
        self.assertIn("'#name = value'", header)
        self.assertIn("'# e.g. name = value'", header)
        defaults, examples = set(), set()
        for line in lines:
            m = re.match(r'^#([a-z_0-9]+) = ?(.*)$', line)
            e = re.match(r'^# e\.g\. ([a-z_0-9]+) = ?(.*)$', line)
            if m:
                self.assertNotIn(m.group(1), defaults, 'a second default line: %s' % line)
                defaults.add(m.group(1))
                self.assertIn(m.group(1), effective, 'not a parameter: %s' % line)
                self.assertEqual(effective[m.group(1)], m.group(2), line)
            elif e:
                examples.add(e.group(1))
                self.assertIn(e.group(1), effective, 'not a parameter: %s' % line)
                self.assertNotEqual(effective[e.group(1)], e.group(2),
                                    'an example that is the default: %s' % line)
            else:
                self.assertNotRegex(line, r'^#\s*e\.g\.', 'a malformed example line')
        self.assertGreater(len(defaults), 15)
        self.assertTrue({'myhostname', 'mydomain', 'smtpd_listen', 'mydestination',
                         'smtpd_tls_cert_file', 'smtpd_tls_key_file',
                         'smtpd_sasl_path'} <= examples, examples)

    def test_installed_binary_uses_the_system_paths(self):
        make('install', 'DESTDIR=' + self.dest)
        installed = self.path('/usr/local/sbin/relayguard')
        p = subprocess.run([installed, 'config'], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        first = p.stdout.splitlines()[0]
        if os.path.exists('/etc/relayguard/main.cf'):  # this machine has one installed
            self.assertEqual(first, '# relayguard config: read /etc/relayguard/main.cf')
        else:
            self.assertEqual(first, '# relayguard config: no file read; the embedded '
                                    'default (installed paths)')
            got = settings(p.stdout)
            for k, v in INSTALLED_PATHS.items():
                self.assertEqual(got[k], v, k)
        # the same binary run from the build tree keeps ./var
        p = run_cli(['config'])
        self.assertEqual(p.stdout.splitlines()[0], '# relayguard config: no file read; the '
                                                   'embedded default (build tree paths)')
        got = settings(p.stdout)
        self.assertEqual(got['queue_directory'], './var/queue')
        self.assertEqual(got['virtual_mailbox_base'], './var/mail')
        self.assertEqual(got['data_directory'], './var/data')


class Unit(unittest.TestCase):
    def setUp(self):
        require(shutil.which('systemd-analyze') is not None, 'systemd',
                'systemd-analyze checks the unit')
        self.dest = tempfile.mkdtemp(prefix='relayguard-unit-')
        self.addCleanup(shutil.rmtree, self.dest, ignore_errors=True)
        # installed for real under a temporary prefix, so ExecStart= names a binary
        make('install', 'PREFIX=%s/usr' % self.dest, 'SYSCONFDIR=%s/etc' % self.dest,
             'SPOOLDIRS=')
        self.unit = os.path.join(self.dest, 'usr/lib/systemd/system/relayguard.service')

    def test_verify(self):
        # --man=no: the manual pages are not installed where man(1) looks
        p = subprocess.run(['systemd-analyze', 'verify', '--man=no', self.unit],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stderr.strip(), '')

    def test_security_exposure(self):
        p = subprocess.run(['systemd-analyze', 'security', '--offline=yes', self.unit],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r'Overall exposure level for relayguard.service: ([0-9.]+) (\w+)',
                      p.stdout + p.stderr)
        self.assertIsNotNone(m, p.stdout + p.stderr)
        sys.stderr.write('\n  systemd-analyze security: %s %s\n' % (m.group(1), m.group(2)))
        # root at start (ports, chown) costs points; everything else is locked down
        self.assertLessEqual(float(m.group(1)), 3.0, p.stdout)
        for line in ('NoNewPrivileges=', 'ProtectSystem=', 'ProtectHome=', 'PrivateTmp=',
                     'SystemCallFilter=~@clock', 'RestrictAddressFamilies=~AF_PACKET'):
            passed = [l for l in p.stdout.splitlines() if line in l]
            self.assertTrue(passed and passed[0].lstrip().startswith('\u2713'), line)


def unit_capabilities():
    """The CapabilityBoundingSet= of the unit, as setpriv's +cap names."""
    with open(os.path.join(REPO, 'etc', 'relayguard.service.in')) as f:
        for line in f:
            if line.startswith('CapabilityBoundingSet='):
                return [c[len('CAP_'):].lower() for c in line.split('=', 1)[1].split()]
    raise AssertionError('no CapabilityBoundingSet= in the unit')


def low_port():
    """A free port below 1024 on 127.0.0.1 (binding it needs CAP_NET_BIND_SERVICE)."""
    for port in range(1000, 1024):
        with socket.socket() as s:
            try:
                s.bind(('127.0.0.1', port))
                return port
            except OSError:
                continue
    raise AssertionError('no free port in 1000-1023 on 127.0.0.1')


class Capabilities(unittest.TestCase):
    """The unit's capability bounding set and NoNewPrivileges, applied with
    setpriv (systemd is not PID 1 here): exactly enough to bind a port below
    1024, hand the directories to mail_owner and drop to it, at the first
    start and at the next one; one capability less and it cannot."""

    def setUp(self):
        require(os.geteuid() == 0, 'root (make check as root)',
                'the bounding set only matters for a server started as root')
        require(shutil.which('setpriv') is not None, 'util-linux', 'setpriv applies the set')
        self.dir = tempfile.mkdtemp(prefix='relayguard-caps-')
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.port = low_port()
        self.cf = os.path.join(self.dir, 'main.cf')
        with open(self.cf, 'w') as f:
            f.write('smtpd_listen = 127.0.0.1:%d\nsubmission_listen =\nsubmissions_listen =\n'
                    'smtpd_tls_security_level = none\nmynetworks = 127.0.0.1/32\n'
                    'queue_directory = %s/queue\nvirtual_mailbox_base = %s/mail\n'
                    'default_transport = error:4.3.2 off in this test\n'
                    % (self.port, self.dir, self.dir))

    def serve(self, caps):
        """Start under the bounding set caps; returns the process once it listens."""
        bounding = ','.join(['-all'] + ['+' + c for c in caps])
        log = open(os.path.join(self.dir, 'log'), 'w')
        proc = subprocess.Popen(['setpriv', '--bounding-set', bounding, '--inh-caps=-all',
                                 '--no-new-privs', binary(), 'serve', '-c', self.cf],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + 10
        while time.time() < deadline and proc.poll() is None:
            # the SMTP listener's line, logged after the signal handlers are in place
            # ("control-listening" comes before them: a SIGTERM then kills it at once)
            if ' info listening address=' in self.log():
                return proc
            time.sleep(0.05)
        proc.wait(10)
        return proc

    def log(self):
        with open(os.path.join(self.dir, 'log')) as f:
            return f.read()

    def stop(self, proc):
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(15), 0, self.log())

    def deliver(self):
        with smtplib.SMTP('127.0.0.1', self.port, timeout=5) as c:
            c.sendmail('sender@example.org', ['postmaster@localhost'],
                       'Subject: caps\r\n\r\nhello\r\n')

    def test_unit_set_is_enough_twice(self):
        caps = unit_capabilities()
        for start in ('first', 'second'):
            proc = self.serve(caps)
            self.assertIsNone(proc.poll(), '%s start failed:\n%s' % (start, self.log()))
            self.deliver()
            self.stop(proc)
        box = os.path.join(self.dir, 'mail', 'localhost', 'postmaster', 'new')
        self.assertEqual(len(os.listdir(box)), 2)
        self.assertEqual(pwd.getpwuid(os.stat(box).st_uid).pw_name, 'relayguard')

    def test_each_capability_is_needed(self):
        caps = unit_capabilities()
        rows = [('net_bind_service', 'first', 'cannot listen on 127.0.0.1:%d' % self.port),
                ('chown', 'first', 'user relayguard cannot write'),
                ('dac_override', 'second', 'Permission denied')]
        for cap, start, error in rows:
            with self.subTest(without=cap):
                shutil.rmtree(os.path.join(self.dir, 'queue'), ignore_errors=True)
                shutil.rmtree(os.path.join(self.dir, 'mail'), ignore_errors=True)
                if start == 'second':  # a first start with everything, then without cap
                    self.stop(self.serve(caps))
                proc = self.serve([c for c in caps if c != cap])
                if proc.poll() is None:
                    self.stop(proc)
                    self.fail('started without CAP_%s:\n%s' % (cap.upper(), self.log()))
                self.assertNotEqual(proc.returncode, 0)
                self.assertIn(error, self.log())


def syscall_set(name, cache={}):
    """The system calls of a systemd-analyze syscall-filter group (or one call)."""
    if not name.startswith('@'):
        return {name}
    if name not in cache:
        out = subprocess.run(['systemd-analyze', 'syscall-filter', name], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        names = set()
        for line in out.stdout.splitlines()[1:]:
            line = line.strip()
            if line and not line.startswith('#'):
                names |= syscall_set(line)
        cache[name] = names
    return cache[name]


def unit_syscalls():
    """What the unit's SystemCallFilter= lines allow, as systemd combines them: the
    first line is the allow list, later ones take away (~) or add, in order."""
    allowed = None
    with open(os.path.join(REPO, 'etc', 'relayguard.service.in')) as f:
        for line in f:
            if not line.startswith('SystemCallFilter='):
                continue
            value = line.split('=', 1)[1].strip()
            names = set()
            for word in value.lstrip('~').split():
                names |= syscall_set(word)
            if allowed is None:
                allowed = names
            elif value.startswith('~'):
                allowed -= names
            else:
                allowed |= names
    assert allowed, 'no SystemCallFilter= in the unit'
    return allowed


class SyscallFilter(unittest.TestCase):
    """The unit's SystemCallFilter= (EPERM for anything else) against the calls
    the server makes, traced with strace (systemd is not PID 1 here): started as
    root, the drop to mail_owner, a self-signed certificate, STARTTLS, local
    delivery, a deferral, the sendmail pickup socket, a metrics scrape, a SIGHUP
    reload and a SIGTERM stop. A call outside the filter would fail under the
    unit with EPERM."""

    def setUp(self):
        require(os.geteuid() == 0, 'root (make check as root)', 'the drop to mail_owner')
        require(shutil.which('strace') is not None, 'strace', 'strace lists the calls')
        require(shutil.which('systemd-analyze') is not None, 'systemd',
                'systemd-analyze lists the filter groups')
        self.dir = tempfile.mkdtemp(prefix='relayguard-syscalls-')
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.port, self.mport = free_port(), free_port()
        self.cf = os.path.join(self.dir, 'main.cf')
        with open(self.cf, 'w') as f:
            f.write('smtpd_listen = 127.0.0.1:%d\nsubmission_listen =\nsubmissions_listen =\n'
                    'mynetworks = 127.0.0.1/32\nmyhostname = mx.example.com\n'
                    'queue_directory = %s/queue\nvirtual_mailbox_base = %s/mail\n'
                    'data_directory = %s/data\nmetrics_listen = 127.0.0.1:%d\n'
                    'default_transport = error:4.3.2 off in this test\n'
                    % (self.port, self.dir, self.dir, self.dir, self.mport))

    def log(self):
        with open(os.path.join(self.dir, 'log')) as f:
            return f.read()

    def wait_log(self, text, proc):
        deadline = time.time() + 20
        while text not in self.log():
            self.assertTrue(time.time() < deadline and proc.poll() is None,
                            'no %r:\n%s' % (text, self.log()))
            time.sleep(0.05)

    def exercise(self, proc):
        """What a running server does, once each."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP('127.0.0.1', self.port, timeout=10) as c:
            c.starttls(context=context)
            c.sendmail('a@example.org', ['postmaster@localhost'], 'Subject: 1\r\n\r\nhi\r\n')
            c.sendmail('a@example.org', ['b@example.net'], 'Subject: 2\r\n\r\nhi\r\n')
        self.wait_log('deferred queue=', proc)
        p = subprocess.run([binary(), 'sendmail', '-C', self.cf, 'postmaster@localhost'],
                           input=b'Subject: 3\n\nhi\n', capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % self.mport,
                                    timeout=10) as r:
            self.assertEqual(r.status, 200)
        os.kill(self.server_pid(), signal.SIGHUP)
        self.wait_log('reloaded config=', proc)

    def server_pid(self):
        """The traced server's pid (strace's child, whose signals strace does not pass on)."""
        with open(os.path.join(self.dir, 'trace')) as f:
            return int(f.readline().split()[0])

    def test_every_call_the_server_makes_is_allowed(self):
        trace = os.path.join(self.dir, 'trace')
        log = open(os.path.join(self.dir, 'log'), 'w')
        tracer = subprocess.Popen(['strace', '-f', '-qq', '-o', trace, binary(), 'serve',
                                   '-c', self.cf], stdout=log, stderr=log,
                                  stdin=subprocess.DEVNULL)
        log.close()
        try:
            self.wait_log(' info listening address=', tracer)
            self.exercise(tracer)
        finally:
            os.kill(self.server_pid(), signal.SIGTERM)  # the stop is traced too
            tracer.wait(30)
        self.assertIn('stopped', self.log())
        used = set()
        with open(trace) as f:
            for line in f:
                m = re.match(r'^\d+\s+([a-z0-9_]+)\(', line)
                if m:
                    used.add(m.group(1))
        self.assertIn('setuid', used)  # the drop was traced
        self.assertEqual(sorted(used - unit_syscalls()), [],
                         'calls outside the unit\'s SystemCallFilter= (EPERM under systemd)')


if __name__ == '__main__':
    unittest.main()
