"""test_demo.py - relayguard demo plays the open-relay attack on loopback and the fix.

The demo is run as a user would run it (`relayguard demo --html out.html`, here with
--keep so the lab's Maildirs and logs can be read afterwards); each step's outcome is
checked in what it printed *and* in what really happened (the victim's Maildir, the
relay's log). The HTML page is opened in headless Chromium and must render the four
steps. Ctrl-C (SIGINT) must stop every process the demo started and remove its
directory. Needs dnsmasq (dnsmasq-base) and, for the page, chromium.
"""
import glob
import os
import select
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
from dnslab import require_dnsmasq

CHROMIUM = shutil.which('chromium')


def lab_processes(path):
    """PIDs of processes whose command line names path (the demo's lab directory)."""
    pids = []
    for cmdline in glob.glob('/proc/[0-9]*/cmdline'):
        try:
            with open(cmdline, 'rb') as f:
                if path.encode() in f.read():
                    pids.append(int(cmdline.split('/')[2]))
        except OSError:
            pass
    return pids


def run_demo(args, env_tmp, timeout=120):
    env = dict(os.environ, TMPDIR=env_tmp)
    start = time.time()
    p = subprocess.run([harness.binary(), 'demo'] + args, capture_output=True, text=True,
                       timeout=timeout, env=env, stdin=subprocess.DEVNULL, errors='replace')
    return p, time.time() - start


def section(out, title):
    """The lines of one step (from its heading to the next)."""
    m = re.search(r'^== %s.*?(?=^== |^demo: )' % re.escape(title), out, re.S | re.M)
    return m.group(0) if m else ''


class DemoRun(unittest.TestCase):
    """One demo run, read step by step."""

    @classmethod
    def setUpClass(cls):
        require_dnsmasq()
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-demo-test-')
        os.chmod(cls.tmp, 0o755)
        cls.html = os.path.join(cls.tmp, 'out.html')
        cls.keep = os.path.join(cls.tmp, 'keep')
        cls.proc, cls.seconds = run_demo(['--html', cls.html, '--keep', cls.keep], cls.tmp)
        cls.out = cls.proc.stdout
        labs = glob.glob(os.path.join(cls.keep, 'relayguard-demo-*'))
        cls.lab = labs[0] if len(labs) == 1 else None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def victim_mail(self):
        files = sorted(glob.glob(os.path.join(self.lab, 'mx/mail/gmail.example/victim/new/*')))
        texts = []
        for path in files:
            with open(path, errors='replace') as f:
                texts.append(f.read())
        return texts

    def test_exit_zero_every_step_as_expected(self):
        self.assertEqual(self.proc.returncode, 0, self.out + self.proc.stderr)
        self.assertNotIn('[FAILED]', self.out)
        self.assertRegex(self.out.splitlines()[-1],
                         r'^demo: every step had the expected outcome \(\d+\.\d s\)$')

    def test_under_a_minute(self):
        self.assertLess(self.seconds, 60, self.out)

    def test_setup_says_the_selftest_only_warns(self):
        setup = section(self.out, 'Set-up')
        self.assertIn('relay_selftest = warn', setup)
        self.assertIn('open-relay-risk', setup)
        self.assertIn('mynetworks = 0.0.0.0/0', setup)
        with open(os.path.join(self.lab, 'relay.cf')) as f:
            self.assertIn('relay_selftest = warn', f.read())

    def test_step1_the_attack_is_accepted(self):
        s = section(self.out, 'Step 1')
        for line in ('C: HELO attacker.example', 'C: MAIL FROM:<ceo@paypal.example>',
                     'C: RCPT TO:<victim@gmail.example>', 'C: DATA',
                     'C: From: "PayPal CEO" <ceo@paypal.example>'):
            self.assertIn(line, s)
        self.assertRegex(s, r'C: RCPT TO:<victim@gmail.example>\n  S: relay: 250 2\.1\.5')
        self.assertRegex(s, r'C: \.\n  S: relay: 250 2\.0\.0 Ok: queued as [0-9A-F]{16}')
        self.assertIn('connect from 127.0.0.66 to 127.0.0.25:', s)

    def test_step2_delivered_with_the_relay_to_blame(self):
        s = section(self.out, 'Step 2')
        self.assertRegex(s, r'delivered queue=\w+ to=<victim@gmail.example> '
                            r'relay=mx\.gmail\.example\[127\.0\.0\.26\]:\d+ .*status=sent')
        self.assertIn('> Received: from mail.relay.example (mail.relay.example [127.0.0.25])',
                      s)
        # what the victim really has: the attacker's message, the relay's address
        spoofed = [m for m in self.victim_mail() if 'ceo@paypal.example' in m]
        self.assertEqual(len(spoofed), 1)
        self.assertRegex(spoofed[0], r'(?m)^Received: from mail\.relay\.example '
                                     r'\(mail\.relay\.example \[127\.0\.0\.25\]\)')
        self.assertIn('From: "PayPal CEO" <ceo@paypal.example>', spoofed[0])
        # the recipient's own checks (message authentication has landed): they
        # fail, and could not stop the relay from sending it
        header = re.sub(r'\n[ \t]+', ' ', spoofed[0].split('\n\n')[0])  # unfolded
        self.assertRegex(header, r'(?m)^Authentication-Results: mx\.gmail\.example; '
                                 r'spf=fail smtp\.mailfrom=ceo@paypal\.example;.* dmarc=fail')
        self.assertIn('> Authentication-Results: mx.gmail.example; spf=fail', s)

    def test_step3_probe_and_audit_say_open(self):
        s = section(self.out, 'Step 3')
        self.assertIn('$ relayguard probe --source 127.0.0.66', s)
        self.assertRegex(s, r'plain\s+relay-accepted\s+<relaytest@example.net>')
        self.assertIn('verdict: OPEN RELAY', s)
        self.assertIn('$ relayguard audit -c relay.cf', s)
        self.assertIn('[open] mynetworks-covers-internet', s)
        self.assertIn('= verdict: open', s)
        self.assertEqual(s.count('(exit status 1)'), 2)

    def test_step4_fixed_refused_closed_and_submission_delivered(self):
        s = section(self.out, 'Step 4')
        self.assertRegex(s, r'info reloaded config=\S+/relay\.cf')
        self.assertIn('S: relay: 554 5.7.1 <victim@gmail.example>: Relay access denied', s)
        self.assertNotIn('C: DATA\n  S: relay: 354', s.split('The legitimate path')[0])
        self.assertIn('verdict: closed (no test relayed)', s)
        self.assertIn('= verdict: closed', s)
        self.assertEqual(s.count('(exit status 0)'), 2)
        self.assertIn('S: relay: 235 2.7.0 Authentication successful', s)
        self.assertIn('connect from 127.0.0.77 to 127.0.0.25:', s)
        mail = self.victim_mail()
        self.assertEqual(len(mail), 2, 'the spoofed message and alice\'s, nothing more')
        alice = [m for m in mail if 'From: Alice <alice@relay.example>' in m]
        self.assertEqual(len(alice), 1)
        self.assertIn('[127.0.0.25]', alice[0])
        with open(os.path.join(self.lab, 'relay.cf')) as f:
            cf = f.read()
        self.assertIn('mynetworks = 127.0.0.1/32', cf)
        self.assertIn('smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,'
                      ' reject_unauth_destination', cf)

    def test_everything_stopped_and_no_sanitizer_report(self):
        self.assertEqual(lab_processes(self.lab), [])
        logs = ''
        for path in glob.glob(os.path.join(self.lab, '*.log')):
            with open(path, errors='replace') as f:
                logs += f.read()
        self.assertEqual(harness.sanitizer_report(self.out + self.proc.stderr + logs), [])

    def test_html_is_self_contained_and_escaped(self):
        with open(self.html, encoding='utf-8') as f:
            page = f.read()
        self.assertNotRegex(page, r'(src|href)\s*=\s*"(https?:)?//')
        self.assertNotIn('<ceo@paypal.example>', page)
        self.assertIn('&lt;ceo@paypal.example&gt;', page)
        self.assertIn('&quot;PayPal CEO&quot;', page)
        self.assertIn('<svg id="hops"', page)

    @harness.requires(CHROMIUM is not None, 'chromium', 'headless Chromium renders the page')
    def test_html_renders_the_four_steps_in_chromium(self):
        profile = tempfile.mkdtemp(prefix='chromium-', dir=self.tmp)
        p = subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu',
                            '--user-data-dir=' + profile, '--dump-dom', 'file://' + self.html],
                           capture_output=True, text=True, timeout=120, errors='replace')
        dom = p.stdout
        self.assertIn('</html>', dom, p.stderr[-2000:])
        for n, title in ((1, "the attacker's session"),
                         (2, 'the relay forwards it; the victim receives it'),
                         (3, 'probe and audit the relay'),
                         (4, 'the fix, reloaded; the attack again')):
            with self.subTest(step=n):
                m = re.search(r'<section id="step%d">(.*?)</section>' % n, dom, re.S)
                self.assertIsNotNone(m)
                self.assertIn('<h2>Step %d: %s</h2>' % (n, title), m.group(1))
        self.assertIn('Relay access denied', dom)
        self.assertRegex(dom, r'<svg[^>]*id="hops"')
        self.assertRegex(dom, r'<p id="outcome" class="ok">')


class DemoLifecycle(unittest.TestCase):
    """Usage, no leftovers without --keep, and Ctrl-C."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='relayguard-demo-test-')
        os.chmod(self.tmp, 0o755)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_usage(self):
        p = harness.run_cli(['demo', '--bogus'])
        self.assertEqual(p.returncode, 64)
        self.assertIn('usage: relayguard demo', p.stderr)
        p = harness.run_cli(['demo', '--help'])
        self.assertEqual(p.returncode, 0)
        for opt in ('--html FILE', '--step', '--keep DIR'):
            self.assertIn(opt, p.stdout)

    def test_without_keep_nothing_is_left(self):
        require_dnsmasq()
        p, _ = run_demo([], self.tmp)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(os.listdir(self.tmp), [])

    def test_ctrl_c_stops_everything(self):
        require_dnsmasq()
        env = dict(os.environ, TMPDIR=self.tmp)
        proc = subprocess.Popen([harness.binary(), 'demo'], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                                text=True)
        seen = ''
        try:
            while 'the victim\'s MX is up' not in seen:   # its children are running now
                line = proc.stdout.readline()
                self.assertTrue(line, 'the demo ended before its MX was up:\n' + seen)
                seen += line
            lab = re.search(r'on loopback \((\S+)\)', seen).group(1)
            self.assertNotEqual(lab_processes(lab), [])
            proc.send_signal(signal.SIGINT)
            rest, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 130, seen + rest + err)
        self.assertIn('demo: interrupted (signal 2); everything it started has been stopped',
                      rest)
        self.assertEqual(lab_processes(lab), [])
        self.assertEqual(os.listdir(self.tmp), [])

    def test_kill_9_of_the_demo_still_stops_its_servers(self):
        """A demo killed outright (SIGKILL: no handler runs) still stops every
        process it started and removes its directory. PR_SET_PDEATHSIG alone is
        not enough: changing user (serve, dnsmasq) clears it."""
        require_dnsmasq()
        env = dict(os.environ, TMPDIR=self.tmp)
        proc = subprocess.Popen([harness.binary(), 'demo'], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                                text=True)
        seen = ''
        try:
            while 'the victim\'s MX is up' not in seen:
                line = proc.stdout.readline()
                self.assertTrue(line, 'the demo ended before its MX was up:\n' + seen)
                seen += line
            lab = re.search(r'on loopback \((\S+)\)', seen).group(1)
            children = lab_processes(lab)
            self.assertNotEqual(children, [])
            proc.kill()
            proc.wait()
            deadline = time.time() + 15
            while lab_processes(lab) and time.time() < deadline:
                time.sleep(0.2)
            left = lab_processes(lab)
        finally:
            for pid in lab_processes(lab) if 'lab' in dir() else []:
                if pid in children:
                    os.kill(pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(left, [], 'still running after kill -9 of the demo')
        deadline = time.time() + 20
        while os.listdir(self.tmp) and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(os.listdir(self.tmp), [], 'the lab directory is left behind')


class DemoStep(unittest.TestCase):
    """--step on a terminal: the demo waits for Enter before each step, and
    Ctrl-C while it waits still stops everything it started."""

    def setUp(self):
        require_dnsmasq()
        self.tmp = tempfile.mkdtemp(prefix='relayguard-demo-test-')
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        master, slave = os.openpty()  # stdin a terminal, as a person runs it
        self.addCleanup(os.close, master)
        self.tty = master
        self.proc = subprocess.Popen([harness.binary(), 'demo', '--step'], stdin=slave,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ, TMPDIR=self.tmp))
        os.close(slave)
        self.addCleanup(self.stop)
        self.out = ''

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()

    def read_until(self, text, timeout=60):
        """Output until TEXT (a prompt has no newline); False if it does not come."""
        deadline = time.time() + timeout
        while text not in self.out:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return False
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return False
            self.out += chunk.decode(errors='replace')
        return True

    def test_waits_for_enter_before_each_step(self):
        for n in range(1, 5):
            self.assertTrue(self.read_until('(press Enter for step %d)' % n), self.out)
            # it waits: nothing of the step until Enter
            self.assertFalse(self.read_until('== Step %d' % n, timeout=1.5), self.out)
            os.write(self.tty, b'\n')
            self.assertTrue(self.read_until('== Step %d' % n), self.out)
        self.assertTrue(self.read_until('demo: every step had the expected outcome'), self.out)
        self.assertEqual(self.proc.wait(timeout=30), 0, self.out)

    def test_ctrl_c_while_waiting_stops_everything(self):
        self.assertTrue(self.read_until('(press Enter for step 1)'), self.out)
        lab = re.search(r'on loopback \((\S+)\)', self.out).group(1)
        self.assertNotEqual(lab_processes(lab), [])
        self.proc.send_signal(signal.SIGINT)
        self.assertEqual(self.proc.wait(timeout=30), 130, self.out)
        self.read_until('never printed', timeout=1)
        self.assertIn('everything it started has been stopped', self.out)
        self.assertEqual(lab_processes(lab), [])
        self.assertEqual(os.listdir(self.tmp), [])


if __name__ == '__main__':
    unittest.main()
