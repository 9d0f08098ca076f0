"""test_dkim_interop.py - DKIM both ways with independent implementations.

The keys are published by a real DNS server (dnsmasq on loopback, dnslab.py).
Messages signed by `relayguard dkim sign` (RSA-2048 and Ed25519, alone and
dual) must verify in python3-dkim (dkimpy, its DNS pointed at the lab) and in
OpenDKIM (opendkim-testmsg, which asks /etc/resolv.conf: it runs in a private
network and mount namespace where the lab's zone is served on 127.0.0.1:53).
Messages signed by dkimpy (several canonicalisations, RSA and Ed25519) must
verify in `relayguard dkim verify`, and so must those the OpenDKIM milter signs
(driven by miltertest); opendkim-testmsg signs only rsa-sha1, which must be a
permerror (RFC 8301); tampering, a revoked key, a
missing key and a failing DNS server must give fail, permerror, temperror.
Also `relayguard dkim keygen` (mode 0600, never overwrites, the TXT record in
strings of at most 255 bytes) and `relayguard dkim check` against the lab.
"""
import base64
import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

import dnslab
import harness

DEB_PYTHON = '/usr/bin/python3'  # Debian's, where python3-dkim lives
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'dkimpy_tool.py')
TESTMSG = shutil.which('opendkim-testmsg') or '/usr/sbin/opendkim-testmsg'
OPENDKIM = shutil.which('opendkim') or '/usr/sbin/opendkim'
MILTERTEST = shutil.which('miltertest') or '/usr/bin/miltertest'
SIGN_LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'opendkim_sign.lua')

MESSAGE = (b'From: Joe SixPack <joe@example.com>\r\n'
           b'To: Suzie Q <suzie@shopping.example.net>\r\n'
           b'Subject: Is dinner ready?\r\n'
           b'Date: Fri, 11 Jul 2003 21:00:37 -0700\r\n'
           b'Message-ID: <20030712040037.46341.5F8J@example.com>\r\n'
           b'\r\n'
           b'Hi.\r\n\r\nWe lost  the game. \t\r\nAre you hungry yet?\r\n\r\n\r\n')


def have_dkimpy():
    return os.path.exists(DEB_PYTHON) and subprocess.run(
        [DEB_PYTHON, '-c', 'import dkim, dns.resolver, nacl'], capture_output=True).returncode == 0


def can_unshare():
    return shutil.which('unshare') is not None and subprocess.run(
        ['unshare', '--net', '--mount', 'true'], capture_output=True).returncode == 0


def record_of(keygen_stdout):
    """The TXT value printed by keygen: its strings, and them joined."""
    strings = re.findall(r'"([^"]*)"', keygen_stdout)
    return strings, ''.join(strings)


class DkimInterop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        dnslab.require_dnsmasq()
        harness.require(have_dkimpy(), 'python3-dkim', 'dkimpy as an independent DKIM implementation')
        harness.require(os.path.exists(TESTMSG), 'opendkim-tools', 'OpenDKIM (opendkim-testmsg)')
        cls.tmp = tempfile.mkdtemp(prefix='relayguard-dkim-')
        zone = {'revoked._domainkey.example.com': ['v=DKIM1; p=']}
        cls.records = {}
        for domain, sel, typ in (('example.com', 'rg-rsa', 'rsa'), ('example.com', 'rg-ed', 'ed25519'),
                                 ('example.org', 'py-rsa', 'rsa'), ('example.net', 'od', 'rsa'),
                                 ('broken.test', 'rg-rsa', 'rsa')):
            out = cls.keygen(domain, sel, typ)
            cls.records[(domain, sel)] = record_of(out.stdout)
            if domain != 'broken.test':  # served by the ServfailDns: temperror
                zone['%s._domainkey.%s' % (sel, domain)] = [cls.records[(domain, sel)][0]]
        cls.py_seed = os.path.join(cls.tmp, 'py-ed.seed')
        with open(cls.py_seed, 'w') as f:
            f.write(base64.b64encode(os.urandom(32)).decode())
        p = subprocess.run([DEB_PYTHON, TOOL, 'edkey', cls.py_seed], capture_output=True,
                           text=True, check=True).stdout.strip()
        zone['py-ed._domainkey.example.org'] = ['v=DKIM1; k=ed25519; p=' + p]
        cls.zone = zone
        cls.dns = dnslab.DnsLab(txt=zone, servfail=['broken.test'])
        cls.dns.start()
        cls.milter = None

    @classmethod
    def tearDownClass(cls):
        if cls.milter is not None:
            cls.milter.terminate()
            cls.milter.wait(10)
        cls.dns.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def start_milter(cls):
        """The OpenDKIM milter on loopback, signing rsa-sha256 as example.net/od."""
        harness.require(os.path.exists(OPENDKIM), 'opendkim', 'the OpenDKIM milter as a signer')
        harness.require(os.path.exists(MILTERTEST), 'miltertest', 'a milter client for OpenDKIM')
        if cls.milter is not None:
            return
        cls.milter_port = harness.free_port()
        # the configuration comes on stdin: opendkim refuses one in a world-writable /tmp
        conf = ('Syslog no\nMode s\nDomain example.net\nSelector od\nKeyFile %s\n'
                'RequireSafeKeys no\nSocket inet:%d@127.0.0.1\nSignatureAlgorithm rsa-sha256\n'
                'Canonicalization relaxed/simple\n'
                % (cls.key_path('example.net', 'od'), cls.milter_port))
        cls.milter = subprocess.Popen([OPENDKIM, '-f', '-x', '/dev/stdin'], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.milter.stdin.write(conf.encode())
        cls.milter.stdin.close()

    @classmethod
    def keygen(cls, domain, sel, typ='rsa', check=True):
        return subprocess.run([harness.binary(), 'dkim', 'keygen', '--domain', domain, '--selector', sel,
                               '--type', typ, '--out', cls.tmp], capture_output=True, text=True,
                              check=check)

    @classmethod
    def key_path(cls, domain, sel):
        return os.path.join(cls.tmp, '%s.%s.pem' % (domain, sel))

    def key(self, domain, sel):
        return self.key_path(domain, sel)

    # -- the three implementations --

    def rg_sign(self, msg, domain='example.com', sel='rg-rsa'):
        r = subprocess.run([harness.binary(), 'dkim', 'sign', '--domain', domain, '--selector', sel,
                            '--key', self.key(domain, sel)], input=msg, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def rg_verify(self, msg):
        r = subprocess.run([harness.binary(), 'dkim', 'verify', '--dns', self.dns.servers],
                           input=msg, capture_output=True, text=False)
        return r.returncode, r.stdout.decode()

    def py_sign(self, msg, sel, keyfile, alg, canon):
        return subprocess.run([DEB_PYTHON, TOOL, 'sign', sel, 'example.org', keyfile, alg, canon],
                              input=msg, capture_output=True, check=True).stdout

    def py_verify(self, msg):
        return subprocess.run([DEB_PYTHON, TOOL, 'verify', str(self.dns.port)], input=msg,
                              capture_output=True, text=False, check=True).stdout.decode().strip()

    def od_verify(self, msg):
        """opendkim-testmsg in a namespace of its own, the zone on 127.0.0.1:53 there."""
        harness.require(can_unshare(), 'util-linux (unshare, as root)',
                        'a private network namespace for OpenDKIM\'s resolver')
        ns = os.path.join(self.tmp, 'ns')
        os.makedirs(ns, exist_ok=True)
        with open(os.path.join(ns, 'resolv.conf'), 'w') as f:
            f.write('nameserver 127.0.0.1\n')
        with open(os.path.join(ns, 'msg'), 'wb') as f:
            f.write(msg)
        pid = os.path.join(ns, 'dnsmasq.pid')
        if os.path.exists(pid):
            os.unlink(pid)
        script = ('ip link set lo up && mount --bind "$NS/resolv.conf" /etc/resolv.conf || exit 99\n'
                  '"$@" & dm=$!\n'
                  'for i in $(seq 50); do [ -s "$NS/dnsmasq.pid" ] && break; sleep 0.1; done\n'
                  '"$TESTMSG" < "$NS/msg" 2>&1; rc=$?\n'
                  'kill $dm; wait $dm; exit $rc\n')
        args = [dnslab.DNSMASQ, '--keep-in-foreground', '--port=53', '--listen-address=127.0.0.1',
                '--bind-interfaces', '--no-resolv', '--no-hosts', '--user=root',
                '--pid-file=' + pid] + ['--local=/%s/' % z for z in dnslab.LOCAL_ZONES]
        args += dnslab.txt_args(self.zone)
        r = subprocess.run(['unshare', '--net', '--mount', 'sh', '-c', script, 'sh'] + args,
                           env=dict(os.environ, NS=ns, TESTMSG=TESTMSG), capture_output=True,
                           text=True, timeout=60)
        self.assertNotEqual(r.returncode, 99, r.stdout + r.stderr)
        return r.returncode, r.stdout + r.stderr

    def od_sign(self, msg):
        r = subprocess.run([TESTMSG, '-C', '-d', 'example.net', '-s', 'od', '-k',
                            self.key('example.net', 'od')], input=msg, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b'DKIM-Signature:', r.stdout)
        return r.stdout

    def od_milter_sign(self, msg):
        """msg signed by the OpenDKIM milter (through miltertest), CRLF throughout."""
        self.start_milter()
        path = os.path.join(self.tmp, 'milter-msg')
        with open(path, 'wb') as f:
            f.write(msg)
        r = subprocess.run([MILTERTEST, '-s', SIGN_LUA], capture_output=True, timeout=60,
                           env=dict(os.environ, MILTER='inet:%d@127.0.0.1' % self.milter_port,
                                    MSGFILE=path))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        value = r.stdout.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
        return b'DKIM-Signature:' + value + b'\r\n' + msg

    # -- keygen, check --

    def test_keygen_writes_0600_and_never_overwrites(self):
        path = self.key('example.com', 'rg-rsa')
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        before = open(path, 'rb').read()
        r = self.keygen('example.com', 'rg-rsa', check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('not replaced', r.stderr)
        self.assertEqual(open(path, 'rb').read(), before)

    def test_keygen_record_strings_fit_txt(self):
        strings, joined = self.records[('example.com', 'rg-rsa')]
        self.assertGreater(len(strings), 1, 'an RSA-2048 record needs several strings')
        self.assertTrue(all(len(s) <= 255 for s in strings))
        self.assertTrue(joined.startswith('v=DKIM1; k=rsa; p=MIIB'))
        self.assertTrue(self.records[('example.com', 'rg-ed')][1].startswith('v=DKIM1; k=ed25519; p='))

    def test_check_matches_the_local_key(self):
        def check(sel, key):
            return subprocess.run([harness.binary(), 'dkim', 'check', 'example.com', sel, '--key', key,
                                   '--dns', self.dns.servers], capture_output=True, text=True)
        r = check('rg-rsa', self.key('example.com', 'rg-rsa'))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('MATCHES', r.stdout)
        r = check('rg-ed', self.key('example.com', 'rg-rsa'))
        self.assertEqual(r.returncode, 1)
        self.assertIn('DOES NOT MATCH', r.stdout)
        r = check('nosuch', self.key('example.com', 'rg-rsa'))
        self.assertEqual(r.returncode, 1)
        self.assertIn('no TXT record', r.stdout)
        r = check('revoked', self.key('example.com', 'rg-rsa'))
        self.assertEqual(r.returncode, 1)
        self.assertIn('revoked', r.stdout)

    # -- relayguard signs --

    def test_relayguard_signed_verifies_in_dkimpy(self):
        self.assertEqual(self.py_verify(self.rg_sign(MESSAGE)), 'pass')
        self.assertEqual(self.py_verify(self.rg_sign(MESSAGE, sel='rg-ed')), 'pass')
        dual = self.rg_sign(self.rg_sign(MESSAGE), sel='rg-ed')
        self.assertEqual(self.py_verify(dual), 'pass,pass')
        self.assertTrue(self.py_verify(dual.replace(b'hungry', b'angry')).startswith('fail'))

    def test_relayguard_signed_verifies_in_opendkim(self):
        rc, out = self.od_verify(self.rg_sign(MESSAGE))
        self.assertEqual(rc, 0, out)
        rc, out = self.od_verify(self.rg_sign(MESSAGE).replace(b'hungry', b'angry'))
        self.assertNotEqual(rc, 0, 'a tampered body must not verify in OpenDKIM')
        self.assertIn('Bad signature', out)

    def test_relayguard_ed25519_in_opendkim(self):
        rc, out = self.od_verify(self.rg_sign(MESSAGE, sel='rg-ed'))
        self.assertEqual(rc, 0, out)  # OpenDKIM 2.11 (Debian 12) knows ed25519-sha256
        rc, out = self.od_verify(self.rg_sign(MESSAGE, sel='rg-ed').replace(b'hungry', b'angry'))
        self.assertNotEqual(rc, 0, out)

    # -- others sign, relayguard verifies --

    def test_dkimpy_signed_verifies_in_relayguard(self):
        rsa = self.key('example.org', 'py-rsa')
        for sel, key, alg, canon in (('py-rsa', rsa, 'rsa-sha256', 'simple/simple'),
                                     ('py-rsa', rsa, 'rsa-sha256', 'relaxed/simple'),
                                     ('py-rsa', rsa, 'rsa-sha256', 'relaxed/relaxed'),
                                     ('py-ed', self.py_seed, 'ed25519-sha256', 'relaxed/relaxed')):
            with self.subTest(alg=alg, canon=canon):
                signed = self.py_sign(MESSAGE, sel, key, alg, canon)
                rc, out = self.rg_verify(signed)
                self.assertEqual(rc, 0, out)
                self.assertIn('dkim=pass header.d=example.org header.s=%s' % sel, out)
                rc, out = self.rg_verify(signed.replace(b'hungry', b'angry'))
                self.assertEqual(rc, 1)
                self.assertIn('dkim=fail', out)

    def test_opendkim_signed_verifies_in_relayguard(self):
        # the milter signs for the domain of From: (its Domain list)
        signed = self.od_milter_sign(MESSAGE.replace(b'joe@example.com', b'joe@example.net'))
        self.assertIn(b'a=rsa-sha256', signed)
        rc, out = self.rg_verify(signed)
        self.assertEqual(rc, 0, out)
        self.assertIn('dkim=pass header.d=example.net header.s=od', out)
        rc, out = self.rg_verify(signed.replace(b'Subject: Is', b'Subject: Was'))
        self.assertEqual(rc, 1)
        self.assertIn('dkim=fail', out)

    def test_opendkim_testmsg_signs_rsa_sha1_and_is_refused(self):
        # opendkim-testmsg can only sign rsa-sha1 (no option to choose), which
        # RFC 8301 forbids verifiers to accept: relayguard must say permerror.
        signed = self.od_sign(MESSAGE)
        self.assertIn(b'a=rsa-sha1', signed)
        rc, out = self.rg_verify(signed)
        self.assertEqual(rc, 1, out)
        self.assertIn('dkim=permerror header.d=example.net header.s=od', out)
        self.assertIn('RFC 8301', out)

    # -- failures, end to end --

    def test_failures_have_the_right_result(self):
        signed = self.rg_sign(MESSAGE)
        cases = (
            (signed.replace(b'hungry', b'angry'), 'dkim=fail', 'body hash did not verify'),
            (signed.replace(b'Subject: Is', b'Subject: Was'), 'dkim=fail', 'signature did not verify'),
            (signed.replace(b's=rg-rsa;', b's=revoked;'), 'dkim=permerror', 'revoked'),
            (signed.replace(b's=rg-rsa;', b's=nosuch;'), 'dkim=permerror', 'no key'),
            (signed.replace(b'a=rsa-sha256', b'a=rsa-sha1'), 'dkim=permerror', 'RFC 8301'),
            (self.rg_sign(MESSAGE, domain='broken.test'), 'dkim=temperror', 'temporarily'),
            (MESSAGE, 'dkim=none', ''),
        )
        for msg, result, reason in cases:
            with self.subTest(result=result, reason=reason):
                rc, out = self.rg_verify(msg)
                self.assertEqual(rc, 1, out)
                self.assertIn(result, out)
                self.assertIn(reason, out)

    # -- differential: hostile edits judged the same way as dkimpy --

    def test_tricky_edits_agree_with_dkimpy(self):
        """A dkimpy-signed message, edited as a relay or a forger might: relayguard
        and dkimpy must agree on pass or not for every edit and canonicalisation."""
        rsa = self.key('example.org', 'py-rsa')
        edits = (
            ('unchanged', lambda m: m),
            ('trailing empty lines', lambda m: m + b'\r\n\r\n'),
            ('blank at line end', lambda m: m.replace(b'yet?\r\n', b'yet? \t\r\n')),
            ('inner blanks', lambda m: m.replace(b'We lost  the', b'We lost the')),
            ('header refolded', lambda m: m.replace(b'Subject: Is dinner', b'Subject: Is\r\n\tdinner')),
            ('header name case', lambda m: m.replace(b'Subject:', b'SUBJECT:')),
            ('bare CR in body', lambda m: m.replace(b'We lost', b'We\rlost')),
            ('8-bit byte in body', lambda m: m.replace(b'hungry', b'h\xc3\xbcngry')),
            ('unsigned field added', lambda m: b'X-Added: yes\r\n' + m),
            ('content appended', lambda m: m + b'P.S. send money\r\n'),
            ('second From above', lambda m: b'From: ceo@paypal.example\r\n' + m),
        )
        for canon in ('simple/simple', 'relaxed/relaxed'):
            signed = self.py_sign(MESSAGE, 'py-rsa', rsa, 'rsa-sha256', canon)
            for name, edit in edits:
                with self.subTest(canon=canon, edit=name):
                    msg = edit(signed)
                    py = self.py_verify(msg)
                    rc, out = self.rg_verify(msg)
                    rg = 'pass' if 'dkim=pass' in out else 'fail'
                    if name == 'second From above':
                        # dkimpy signs From over-signed, so both must refuse it
                        self.assertEqual(rg, 'fail', out)
                    self.assertEqual(rg, 'pass' if py == 'pass' else 'fail',
                                     'dkimpy %s, relayguard: %s' % (py, out))


if __name__ == '__main__':
    unittest.main()
