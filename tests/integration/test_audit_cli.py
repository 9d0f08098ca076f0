"""test_audit_cli.py - relayguard audit and explain as a user runs them: exit
codes, the JSON, the text an operator reads."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import harness
from harness import REPO, binary

FIXTURES = os.path.join(REPO, 'tests', 'audit', 'postfix')


def run(*args):
    p = subprocess.run([binary()] + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


class AuditCli(unittest.TestCase):

    def config(self, text):
        f = tempfile.NamedTemporaryFile('w', suffix='.cf', delete=False)
        self.addCleanup(os.unlink, f.name)
        f.write(text)
        f.close()
        return f.name

    def test_exit_codes(self):
        for fixture, code in (('debian-default', 0), ('open-mynetworks', 1),
                              ('policy-service', 2), ('docker-mynetworks', 3)):
            with self.subTest(fixture):
                rc, out, _ = run('audit', '--postfix', os.path.join(FIXTURES, fixture))
                self.assertEqual(rc, code, out)
        self.assertEqual(run('audit', '--postfix', '/nonexistent-dir')[0], 78)
        self.assertEqual(run('audit', '--bogus')[0], 64)
        self.assertEqual(run('audit', '-c', self.config('mynetworks = 10.0.0.0/33\n'))[0], 78)

    def test_relayguard_open_config_text(self):
        rc, out, _ = run('audit', '-c', self.config('mynetworks = 0.0.0.0/0\n'))
        self.assertEqual(rc, 1)
        self.assertIn('service smtpd_listen 127.0.0.1:2525, [::1]:2525: open', out)
        self.assertIn('[open] mynetworks-covers-internet', out)
        self.assertTrue(out.rstrip().endswith('verdict: open'))

    def test_json_is_one_object(self):
        rc, out, _ = run('audit', '--json', '--postfix', os.path.join(FIXTURES, 'mailcow'))
        obj = json.loads(out)
        self.assertEqual((rc, obj['verdict'], obj['exit']), (3, 'suspicious', 3))
        names = [s['name'] for s in obj['services']]
        self.assertEqual(names, ['master.cf smtpd (pass)', 'master.cf submission (inet)',
                                 'master.cf smtps (inet)', 'master.cf 588 (inet)'])

    def test_explain(self):
        rc, out, _ = run('explain', '--client', '203.0.113.9', '--from', 'a@example.net',
                         '--to', 'victim%example.net@localhost', '--json')
        obj = json.loads(out)
        self.assertEqual(rc, 1)
        self.assertEqual(obj['reply'],
                         '554 5.7.1 <victim%example.net@localhost>: Relay access denied')
        self.assertEqual(obj['recipient']['domain'], 'example.net')
        self.assertTrue(obj['recipient']['routed'])
        self.assertEqual([s['result'] for s in obj['steps']], ['DUNNO', 'DUNNO', 'REJECT'])
        rc, out, _ = run('explain', '--client', '127.0.0.1', '--from', 'a@example.net',
                         '--to', 'victim@example.net')
        self.assertEqual(rc, 0)
        self.assertIn('decided by: permit_mynetworks in smtpd_relay_restrictions', out)
        # on submission the session refuses at MAIL, before AUTH, with 530
        rc, out, _ = run('explain', '--client', '203.0.113.9', '--port', 'submission',
                         '--from', 'a@example.net', '--to', 'victim@example.net')
        self.assertEqual(rc, 1)
        self.assertIn('decided by: reject in submission_client_restrictions (at MAIL FROM)',
                      out)
        self.assertIn('reply:     530 5.7.0 Authentication required', out)
        self.assertEqual(run('explain', '--client', 'nonsense', '--from', 'a@b.example',
                             '--to', 'c@d.example')[0], 64)
        self.assertEqual(run('explain', '--from', 'a@b.example')[0], 64)

    def test_explain_login_and_helo(self):
        # AUTH is off by default: a login the server would never accept is not
        # assumed; the answer is the server's reply to AUTH
        rc, out, _ = run('explain', '--client', '203.0.113.9', '--login', 'bob',
                         '--from', 'bob@localhost', '--to', 'victim@example.net', '--json')
        obj = json.loads(out)
        self.assertEqual((rc, obj['decision'], obj['reply']),
                         (1, 'reject', '503 5.5.1 Error: authentication not enabled'))
        passwd = self.config('')
        conf = self.config('smtpd_sasl_auth_enable = yes\nsmtpd_sasl_path = %s\n' % passwd)
        rc, out, _ = run('explain', '-c', conf, '--client', '203.0.113.9', '--helo',
                         'mail.example.org', '--login', 'a@example.net', '--from',
                         'a@example.net', '--to', 'victim@example.net')
        self.assertEqual(rc, 0, out)
        self.assertIn('client:    203.0.113.9 HELO mail.example.org login a@example.net', out)
        self.assertRegex(out, r'smtpd_relay_restrictions +permit_sasl_authenticated +OK')
        self.assertIn('decided by: permit_sasl_authenticated in smtpd_relay_restrictions', out)
        # a login that does not own the sender is refused at MAIL: the relay
        # list is never reached, so no step of it is shown
        rc, out, _ = run('explain', '-c', conf, '--client', '203.0.113.9', '--login', 'bob',
                         '--from', 'a@example.net', '--to', 'victim@example.net', '--json')
        obj = json.loads(out)
        self.assertEqual((rc, obj['stage'], obj['steps']), (1, 'MAIL', []), obj)
        self.assertEqual(obj['reply'], '553 5.7.1 <a@example.net>: Sender address rejected: '
                                       'not owned by user bob')


class ExplainAgreesWithServe(unittest.TestCase):
    """explain's reply is the one the running server gives to the same envelope.
    Address literals: the server takes every listener's address as ours (the
    submission port's too), so postmaster@[that address] is local mail."""

    def test_address_literals_of_every_listener(self):
        sub = harness.free_port('127.0.0.2')
        with harness.Server(overrides={'submission_listen': '127.0.0.2:%d' % sub}) as srv:
            for rcpt in ('postmaster@[127.0.0.1]', 'postmaster@[127.0.0.2]',
                         'relaytest@[127.0.0.3]'):
                with self.subTest(rcpt), harness.Conn(srv.port) as c:
                    c.cmd('EHLO client.example.org')
                    self.assertEqual(c.cmd('MAIL FROM:<a@example.net>')[0], 250)
                    code, text = c.cmd('RCPT TO:<%s>' % rcpt)
                    rc, out, _ = run('explain', '-c', srv.config_path, '--client',
                                     harness.UNTRUSTED, '--from', 'a@example.net',
                                     '--to', rcpt, '--json')
                    self.assertEqual(json.loads(out)['reply'], '%d %s' % (code, text))
                    self.assertEqual(rc, 0 if code == 250 else 1)

    def test_login_where_auth_needs_tls_and_there_is_none(self):
        # AUTH is on, but only under TLS, and this port offers no TLS: no
        # client ever logs in here, so explain assumes no login either
        with tempfile.NamedTemporaryFile('w', suffix='.passwd') as passwd:
            with harness.Server(overrides={'smtpd_sasl_auth_enable': 'yes',
                                           'smtpd_sasl_path': passwd.name,
                                           'smtpd_tls_security_level': 'none'}) as srv:
                with harness.Conn(srv.port) as c:
                    c.cmd('EHLO client.example.org')
                    code, text = c.cmd('AUTH PLAIN AGJvYgBzZWNyZXQ=')
                rc, out, _ = run('explain', '-c', srv.config_path, '--client', harness.UNTRUSTED,
                                 '--login', 'bob@localhost', '--from', 'bob@localhost',
                                 '--to', 'victim@example.net', '--json')
                obj = json.loads(out)
                self.assertEqual((code, text), (538, '5.7.11 Encryption required for requested '
                                                     'authentication mechanism'))
                self.assertEqual((rc, obj['decision'], obj['reply']),
                                 (1, 'reject', '%d %s' % (code, text)))
                # the submission port (TLS required there) takes the login
                rc, out, _ = run('explain', '-c', srv.config_path, '--client', harness.UNTRUSTED,
                                 '--port', 'submission', '--login', 'bob@localhost', '--from',
                                 'bob@localhost', '--to', 'victim@example.net')
                self.assertEqual(rc, 0, out)

    def test_submission_trace_is_the_sessions(self):
        # a logged-in user names a sender the login does not own: the session
        # refuses at MAIL in the sender list; the trace shows the client list's
        # permit_sasl_authenticated as OK (it was), then that refusal, nothing more
        tmp = tempfile.mkdtemp(prefix='relayguard-explain-')
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        os.chmod(tmp, 0o755)
        passwd = os.path.join(tmp, 'users')
        p = subprocess.run([binary(), 'passwd'], input='alice-secret\n', capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(passwd, 'w') as f:
            f.write('alice@example.org:%s::::::\n' % p.stdout.strip())
        os.chmod(passwd, 0o644)
        auth = base64.b64encode(b'\0alice@example.org\0alice-secret').decode()
        with harness.Server(overrides={'smtpd_sasl_auth_enable': 'yes',
                                       'smtpd_sasl_path': passwd,
                                       'smtpd_sasl_failure_delay': '0'}) as srv:
            for sender in ('ceo@example.org', 'alice@example.org'):
                with self.subTest(sender), harness.Conn(srv.sub_port) as c:
                    c.cmd('EHLO client.example.org')
                    self.assertEqual(c.cmd('STARTTLS')[0], 220)
                    c.starttls()
                    c.cmd('EHLO client.example.org')
                    self.assertEqual(c.cmd('AUTH PLAIN ' + auth)[0], 235)
                    code, text = c.cmd('MAIL FROM:<%s>' % sender)
                    if code == 250:
                        code, text = c.cmd('RCPT TO:<friend@example.net>')
                    rc, out, _ = run('explain', '-c', srv.config_path, '--client',
                                     harness.UNTRUSTED, '--login', 'alice@example.org',
                                     '--port', 'submission', '--from', sender,
                                     '--to', 'friend@example.net', '--json')
                    obj = json.loads(out)
                    self.assertEqual(obj['reply'], '%d %s' % (code, text))
                    self.assertEqual(rc, 0 if code == 250 else 1)
                    steps = [(s['list'], s['restriction'], s['result']) for s in obj['steps']]
                    self.assertEqual(steps[0], ('submission_client_restrictions',
                                                'permit_sasl_authenticated', 'OK'), steps)
                    if code != 250:
                        self.assertEqual(obj['stage'], 'MAIL')
                        self.assertEqual(steps[1:], [('submission_sender_restrictions',
                                                      'reject_sender_login_mismatch',
                                                      'REJECT')])
                        self.assertEqual((obj['restriction'], obj['list']),
                                         ('reject_sender_login_mismatch',
                                          'submission_sender_restrictions'))
                    else:
                        self.assertEqual(steps[-1], ('smtpd_relay_restrictions',
                                                     'permit_sasl_authenticated', 'OK'), steps)


if __name__ == '__main__':
    unittest.main()
