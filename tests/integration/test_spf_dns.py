"""test_spf_dns.py - SPF end to end through a real DNS server on loopback.

`relayguard spf check` evaluates through c-ares (src/dns/lookup.c and the SPF
resolver adapter) against dnsmasq serving TXT, A, MX and PTR records
(dnslab.py), plus a server that answers SERVFAIL and one that never answers.
Each case checks the result a receiving server would act on and the
Received-SPF line it would add.
"""
import subprocess
import unittest

import harness
from dnslab import DnsLab, require_dnsmasq

GOOD = '127.0.0.9'   # the address the test domains list
OTHER = '127.0.0.10'

ZONE = dict(
    txt={
        'pass.test': ['v=spf1 ip4:127.0.0.9 -all'],
        'soft.test': ['v=spf1 ip4:127.0.0.9 ~all'],
        'neutral.test': ['v=spf1 ?all'],
        'bad.test': ['v=spf1 ip4:127.0.0.9 frobnicate -all'],
        'two.test': ['v=spf1 -all', 'v=spf1 +all'],
        'inc.test': ['v=spf1 include:pass.test -all'],
        'incnone.test': ['v=spf1 include:nospf.test -all'],
        'redir.test': ['v=spf1 redirect=pass.test'],
        'mx.test': ['v=spf1 mx -all'],
        'a.test': ['v=spf1 a:host.a.test/24 -all'],
        'ptr.test': ['v=spf1 ptr -all'],
        'void.test': ['v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test +all'],
        'void2.test': ['v=spf1 a:nx1.void.test a:nx2.void.test +all'],
        'exp.test': ['v=spf1 ip4:127.0.0.9 -all exp=why.exp.test'],
        'why.exp.test': ['%{i} is not a mail server of %{d}; ask postmaster@%{o}'],
        'tempinc.test': ['v=spf1 include:x.broken.test -all'],
        'macro.test': ['v=spf1 exists:%{ir}.%{l1r-}.allow.macro.test -all'],
        'long.test': ['v=spf1 ' + ' '.join('ip4:192.0.2.%d' % i for i in range(60)) +
                      ' ip4:127.0.0.9 -all'],
        'nospf.test': ['not an spf record'],
        # the SPF record after forty others (a reply too large for UDP: c-ares asks over TCP)
        'many.test': ['site-verification=%040d' % i for i in range(40)] +
                     ['v=spf1 ip4:127.0.0.9 -all'],
    },
    mx={'mx.test': [(10, 'mx1.mx.test'), (20, 'mx2.mx.test')]},
    hosts={'mx1.mx.test': ['127.0.0.50'], 'mx2.mx.test': ['127.0.0.9'],
           'host.a.test': ['127.0.0.200'], 'mail.ptr.test': ['127.0.0.9'],
           '9.0.0.127.alice.allow.macro.test': ['127.0.0.2'],
           'noaddr.test': ['127.0.0.77']},
    ptr={'9.0.0.127.in-addr.arpa': ['mail.ptr.test'],
         '10.0.0.127.in-addr.arpa': ['fake.ptr.test']},
    servfail=['broken.test'],
    silent=['slow.test'],
)


class SpfThroughDns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_dnsmasq()
        cls.dns = DnsLab(**ZONE)
        cls.dns.start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.cleanup()

    def check(self, ip, sender, helo='client.example.net', extra=()):
        out = harness.run_cli(['spf', 'check', '--ip', ip, '--sender', sender, '--helo', helo,
                               '--dns', self.dns.servers, '--receiver', 'mx.receiver.test'] +
                              list(extra), timeout=30)
        self.assertEqual(harness.sanitizer_report(out.stderr), [], out.stderr[-3000:])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        fields = {}
        text = out.stdout.replace('\n\t', ' ')  # the header field unfolded (CRLF read as LF)
        for line in text.splitlines():
            k, _, v = line.partition(': ')
            fields.setdefault(k, v)
        fields['_out'] = text
        return fields

    def assertResult(self, f, result):
        self.assertEqual(f.get('result'), result, f['_out'])
        self.assertTrue(f.get('Received-SPF', '').startswith(result + ' '), f['_out'])

    def test_pass_and_fail(self):
        f = self.check(GOOD, 'alice@pass.test')
        self.assertResult(f, 'pass')
        self.assertIn('client-ip=127.0.0.9;', f['_out'])
        self.assertIn('envelope-from="alice@pass.test";', f['_out'])  # as in RFC 7208 9.1
        self.assertIn('receiver=mx.receiver.test;', f['_out'])
        self.assertIn('identity=mailfrom', f['_out'])
        self.assertResult(self.check(OTHER, 'alice@pass.test'), 'fail')

    def test_softfail_neutral_none(self):
        self.assertResult(self.check(OTHER, 'a@soft.test'), 'softfail')
        self.assertResult(self.check(OTHER, 'a@neutral.test'), 'neutral')
        self.assertResult(self.check(GOOD, 'a@nospf.test'), 'none')
        self.assertResult(self.check(GOOD, 'a@nxdomain.test'), 'none')

    def test_permerror(self):
        f = self.check(GOOD, 'a@bad.test')
        self.assertResult(f, 'permerror')
        self.assertIn('frobnicate', f.get('problem', ''))
        self.assertResult(self.check(GOOD, 'a@two.test'), 'permerror')
        self.assertResult(self.check(GOOD, 'a@incnone.test'), 'permerror')

    def test_temperror_servfail_and_timeout(self):
        self.assertResult(self.check(GOOD, 'a@x.broken.test'), 'temperror')
        self.assertResult(self.check(GOOD, 'a@tempinc.test'), 'temperror')
        f = self.check(GOOD, 'a@x.slow.test')
        self.assertResult(f, 'temperror')
        self.assertIn('timeout', f.get('problem', ''))

    def test_include_redirect(self):
        self.assertResult(self.check(GOOD, 'a@inc.test'), 'pass')
        self.assertResult(self.check(OTHER, 'a@inc.test'), 'fail')
        self.assertResult(self.check(GOOD, 'a@redir.test'), 'pass')
        self.assertResult(self.check(OTHER, 'a@redir.test'), 'fail')

    def test_mx_a_ptr(self):
        self.assertResult(self.check(GOOD, 'a@mx.test'), 'pass')      # the second MX host
        self.assertResult(self.check(OTHER, 'a@mx.test'), 'fail')
        self.assertResult(self.check('127.0.0.7', 'a@a.test'), 'pass')  # within the /24
        self.assertResult(self.check(GOOD, 'a@ptr.test'), 'pass')      # PTR, then A back
        # 127.0.0.10's PTR name does not lead back to it: not validated
        self.assertResult(self.check(OTHER, 'a@ptr.test'), 'fail')

    def test_void_lookup_limit(self):
        f = self.check(GOOD, 'a@void.test')
        self.assertResult(f, 'permerror')
        self.assertIn('void', f.get('problem', ''))
        self.assertResult(self.check(GOOD, 'a@void2.test'), 'pass')   # two are allowed

    def test_macros_and_explanation(self):
        self.assertResult(self.check(GOOD, 'alice@macro.test'), 'pass')
        self.assertResult(self.check(GOOD, 'bob@macro.test'), 'fail')
        f = self.check(OTHER, 'carol@exp.test')
        self.assertResult(f, 'fail')
        self.assertEqual(f.get('explanation'),
                         '127.0.0.10 is not a mail server of exp.test; ask postmaster@exp.test')

    def test_long_record_and_many_records(self):
        self.assertResult(self.check(GOOD, 'a@long.test'), 'pass')
        self.assertResult(self.check(GOOD, 'a@many.test'), 'pass')
        self.assertResult(self.check(OTHER, 'a@many.test'), 'fail')

    def test_helo_identity(self):
        f = self.check(GOOD, '', helo='pass.test')
        self.assertResult(f, 'pass')
        self.assertIn('identity=helo', f['_out'])
        self.assertIn('envelope-from="";', f['_out'])
        f = self.check(OTHER, 'a@pass.test', helo='pass.test', extra=['--identity', 'helo'])
        self.assertResult(f, 'fail')
        self.assertIn('identity=helo', f['_out'])

    def test_hostile_helo_cannot_add_a_field(self):
        f = self.check(GOOD, 'a@pass.test', helo='evil"\r\nX-Injected: yes\\')
        self.assertResult(f, 'pass')
        raw = subprocess.run([harness.binary(), 'spf', 'check', '--ip', GOOD, '--sender',
                              'a@pass.test', '--helo', 'evil"\r\nX-Injected: yes\\', '--dns',
                              self.dns.servers], capture_output=True, timeout=30).stdout
        raw = raw.decode('ascii')  # bytes: no newline translation
        header = raw[raw.index('Received-SPF:'):]
        # the only line breaks are folds (CRLF then TAB), none of them the client's
        self.assertEqual(header.count('\n'), header.count('\r\n\t') + 1, header)
        self.assertNotIn('\nX-Injected', header)
        self.assertIn('helo="evil\\"??X-Injected: yes\\\\";', header)


if __name__ == '__main__':
    unittest.main()
