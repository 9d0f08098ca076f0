"""test_msgauth_vectors.py - the shared DMARC and Authentication-Results
conformance data (../shared/testdata/{dmarc,authres}) against relayguard's
own parsers (src/msgauth/), through the driver build/tools[-asan]/msgauth_check.

Each vector either passes or is listed in KNOWN_DEVIATIONS below (and in the
README's DMARC section) with the reason. Without ../shared/testdata (a fresh
clone) the tests report themselves skipped, as testdata/README.md says.
"""
import email
import email.policy
import json
import os
import subprocess
import unittest

import harness

TESTDATA = os.path.join(os.path.dirname(harness.REPO), 'shared', 'testdata')
OUR_ID = 'mx.relayguard.test'

# vector id -> why we differ (each is also in README.md, "DMARC")
KNOWN_DEVIATIONS = {
    'opendmarc-record-5': 'p=n: OpenDMARC prefix-matches; RFC 7489 allows only none/quarantine/reject',
    'opendmarc-align-5': '".mac.com.": OpenDMARC strips leading dots; a leading dot is not a DNS name',
    'opendmarc-align-6': '"....mac.com....": as above, with repeated dots',
    'dkim_verifier-Unknown results for DKIM-0': 'dkim=Pass: result keywords are case-insensitive ABNF'
                                                ' (dkim_verifier accepts mixed case only for spf)',
    'go-msgauth-9': 'empty value: go-msgauth returns an empty id; strict RFC 8601 needs one (relaxed parses)',
    'go-msgauth-12': 'trailing ";": go-msgauth tolerates it; strict RFC 8601 does not (relaxed parses)',
    'python-authres-19': 'unknown ptype without a dot: python-authres drops the properties, strict fails'
                         ' (relaxed parses)',
    'python-authres-21': 'same, in a multi-result field (relaxed parses)',
}


def driver():
    """build/tools/msgauth_check beside build/relayguard, tools-asan beside -asan."""
    b = harness.binary()
    sub = 'tools-asan' if os.path.basename(b).endswith('-asan') else 'tools'
    return os.path.join(os.path.dirname(b), sub, 'msgauth_check')


def hexarg(s):
    b = s.encode() if isinstance(s, str) else s
    return b.hex() or '_'


def utf8(s):
    """The driver's JSON escapes every byte >= 0x80 as \\u00XX: the bytes back as UTF-8."""
    return s if s is None else s.encode('latin-1').decode('utf-8', 'replace')


def field_value(header):
    """The field body when a vector includes the 'Authentication-Results:' name."""
    if header.lower().startswith('authentication-results:'):
        return header.split(':', 1)[1]
    return header


class Driver:
    def __init__(self):
        self.p = subprocess.Popen([driver()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)

    def ask(self, *args):
        self.p.stdin.write((' '.join(args) + '\n').encode())
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError('driver died: ' + self.p.stderr.read().decode(errors='replace'))
        return json.loads(line)

    def ar_parse(self, value, relaxed=False):
        return self.ask('ar-parse', '1' if relaxed else '0', hexarg(value))

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait(timeout=10)
        err = self.p.stderr.read().decode(errors='replace')
        return rc, err


class VectorTest(unittest.TestCase):
    counted = {'passed': 0, 'deviation': 0}

    @classmethod
    def setUpClass(cls):
        harness.require(os.path.isdir(TESTDATA), '../shared/testdata beside the checkout',
                        'the conformance data (%s; see testdata/README.md)' % TESTDATA)
        if not os.access(driver(), os.X_OK):
            raise AssertionError('driver %s not built (make tools)' % driver())
        cls.d = Driver()

    @classmethod
    def tearDownClass(cls):
        rc, err = cls.d.close()
        if rc != 0 or harness.sanitizer_report(err):
            raise AssertionError('driver exit %d: %s' % (rc, err[-2000:]))

    def check(self, vid, ok, detail):
        """One vector: it passes, or it is a known deviation (which must still deviate)."""
        with self.subTest(vector=vid):
            if vid in KNOWN_DEVIATIONS:
                self.assertFalse(ok, '%s now agrees: remove it from KNOWN_DEVIATIONS' % vid)
            else:
                self.assertTrue(ok, '%s: %s' % (vid, detail))

    def load(self, *path):
        with open(os.path.join(TESTDATA, *path), encoding='utf-8') as f:
            return json.load(f)


class DmarcVectors(VectorTest):
    def test_opendmarc_record_table(self):
        # OpenDMARC outcome -> what our parse must show
        t = self.load('dmarc', 'opendmarc', 'opendmarc-tables.json')
        self.assertEqual(len(t['record_parse_cases']), 19)
        for c in t['record_parse_cases']:
            r = self.d.ask('dmarc-record', hexarg(c['record']))
            want = c['opendmarc_outcome']
            if want == 'DMARC_PARSE_OKAY':
                ok = r['status'] == 'ok' and r['bad'] & ~(0x40 | 0x80) == 0  # rua/ruf schemes tolerated
            elif want in ('DMARC_PARSE_ERROR_EMPTY', 'DMARC_PARSE_ERROR_BAD_VERSION'):
                ok = r['status'] == 'not-dmarc'
            elif want == 'DMARC_PARSE_ERROR_NO_REQUIRED_P':
                ok = r['status'] == 'no-policy' and r['bad'] & 1 == 0
            else:  # BAD_VALUE: a known tag with an invalid value was flagged
                ok = r['bad'] != 0
            self.check('opendmarc-record-%d' % c['n'], ok, '%r -> %r, OpenDMARC %s' % (c['record'], r, want))

    def test_record_semantics(self):
        """What the flags above mean for the policy (RFC 7489 6.3, 6.6.3)."""
        r = self.d.ask('dmarc-record', hexarg('v=DMARC1; p=none; pct=500; adkim=s'))
        self.assertEqual((r['status'], r['pct'], r['adkim']), ('ok', 100, 's'))  # bad pct -> default
        r = self.d.ask('dmarc-record', hexarg('v=DMARC1; p=bob; rua=mailto:d@example.com'))
        self.assertEqual((r['status'], r['p']), ('ok', 'none'))  # invalid p + valid rua -> p=none
        r = self.d.ask('dmarc-record', hexarg('v=DMARC1; p=bob;'))
        self.assertEqual(r['status'], 'no-policy')
        r = self.d.ask('dmarc-record', hexarg(' v=DMARC1; p=reject'))
        self.assertEqual(r['status'], 'not-dmarc')  # v= must be first, at the very start

    def test_opendmarc_alignment_table(self):
        t = self.load('dmarc', 'opendmarc', 'opendmarc-tables.json')
        self.assertEqual(len(t['alignment_cases']), 10)
        for c in t['alignment_cases']:
            r = self.d.ask('dmarc-aligned', 's' if c['mode'] == 'strict' else 'r',
                           hexarg(c['domain_a']), hexarg(c['domain_b']))
            self.check('opendmarc-align-%d' % c['n'], r['aligned'] == c['opendmarc_aligned'],
                       '%r' % c)

    def test_psl_organizational_domain(self):
        t = self.load('dmarc', 'psl', 'test_psl.json')
        n = 0
        for i, c in enumerate(t['cases']):
            if c['input'] is None:
                continue  # checkPublicSuffix(null): no string to pass
            r = self.d.ask('org', hexarg(c['input']))
            self.check('psl-%d' % i, utf8(r['org']) == c['registrable_domain'], '%r -> %r' % (c, r))
            n += 1
        self.assertGreaterEqual(n, 70)


class AuthresVectors(VectorTest):
    def props(self, r):
        return {('%s.%s' % (p[0], p[1]) if p[0] else p[1]): p[2] for p in r['props']}

    def test_go_msgauth(self):
        s = self.load('authres', 'ar-vectors.json')['sets']['go-msgauth']
        for i, c in enumerate(s['cases']):
            want = c['expect']
            for relaxed in (False, True):
                r = self.d.ar_parse(c['header_value'], relaxed)
                got = [{k: v for k, v in dict(self.props(x), method=x['method'], result=x['result'],
                                             reason=x['reason']).items() if v}
                       for x in r['results']]
                # go-msgauth lists only the properties it recognises
                keep = lambda d, w: {k: v for k, v in d.items() if k in w}
                ok = r['ok'] and r['authserv_id'] == want['authserv_id'] and \
                    len(got) == len(want['results']) and \
                    all(keep(g, w) == w for g, w in zip(got, want['results']))
                if relaxed:
                    self.check('go-msgauth-%d-relaxed' % i, ok, '%r -> %r' % (c, r))
                else:
                    self.check('go-msgauth-%d' % i, ok, '%r -> %r' % (c, r))

    def test_mail_authenticationresults_real_world(self):
        s = self.load('authres', 'ar-vectors.json')['sets']['Mail-AuthenticationResults']
        for i, c in enumerate(s['real_world_headers']):
            value = field_value(c['header'])
            r = self.d.ar_parse(value, relaxed=True)
            self.check('mail-ar-%d' % i, r['ok'] and r['authserv_id'] == c['expect']['authserv_id'],
                       '%s -> %r' % (c['file'], r))
            # the removal decision: theirs is claimed, ours is not
            self.assertTrue(self.d.ask('ar-claims', hexarg(c['expect']['authserv_id']),
                                       hexarg(value))['claims'], c['file'])
            self.assertFalse(self.d.ask('ar-claims', hexarg(OUR_ID), hexarg(value))['claims'], c['file'])

    def test_mail_authenticationresults_comment_heavy_and_bogus(self):
        s = self.load('authres', 'ar-vectors.json')['sets']['Mail-AuthenticationResults']
        r = self.d.ar_parse(field_value(s['comment_heavy']['header']))
        self.assertTrue(r['ok'], r)
        self.assertEqual((r['authserv_id'], r['version']), ('foo.example.net', 1))
        self.assertEqual([(x['method'], x['version'], x['result'], x['props']) for x in r['results']],
                         [('dkim', 1, 'fail', [['policy', 'expired', '1362471462']])])
        for i, v in enumerate(s['parser_bogus']['must_reject_in_mail_ar']):
            self.check('mail-ar-bogus-reject-%d' % i, not self.d.ar_parse(v)['ok'], v)
        for i, v in enumerate(s['parser_bogus']['must_parse']):
            self.check('mail-ar-bogus-parse-%d' % i, self.d.ar_parse(v, relaxed=True)['ok'], v)

    def test_python_authres(self):
        s = self.load('authres', 'ar-vectors.json')['sets']['python-authres']
        for i, c in enumerate(s['cases']):
            value = field_value(c['header'])
            want = c['authres_parse']
            r = self.d.ar_parse(value)
            if 'error' in want:
                self.check('python-authres-%d' % i, not r['ok'], '%s: %r' % (c['label'], r))
                continue
            self.check('python-authres-%d' % i, r['ok'], '%s: %r' % (c['label'], r))
            if not r['ok']:
                r = self.d.ar_parse(value, relaxed=True)
                self.assertTrue(r['ok'], r)
            self.assertEqual(r['authserv_id'], want['authserv_id'])
            self.assertEqual([(x['method'], x['result']) for x in r['results']],
                             [(x['method'], x['result']) for x in want['results']], c['label'])
            for got, w in zip(r['results'], want['results']):
                if w['reason']:
                    self.assertEqual(got['reason'], w['reason'])
                ours = {(p[0], p[1].lower(), p[2]) for p in got['props']}
                for p in w['properties']:
                    self.assertIn((p['type'], p['name'], p['value']), ours, c['label'])
        for i, c in enumerate(s['format_outputs']):
            r = self.d.ar_parse(field_value(c['expected_output']))
            self.check('python-authres-format-%d' % i, r['ok'], '%s: %r' % (c['label'], r))

    def expectation(self, r, path):
        """dkim_verifier's expectation paths, evaluated on our parse."""
        if path == 'authserv_id':
            return json.dumps(r['authserv_id'])
        if path == 'authres_version':
            return str(r['version'])
        if path == 'resinfo.length':
            return str(len(r['results']))
        idx = int(path[len('resinfo['):path.index(']')])
        rest = path[path.index('.') + 1:]
        if idx >= len(r['results']):
            return None
        x = r['results'][idx]
        if rest in ('method', 'result', 'reason'):
            return json.dumps(x[rest])
        if rest == 'method_version':
            return str(x['version'])
        if rest.startswith('properties.'):
            ptype, prop = rest[len('properties.'):].split('.', 1)
            for p in x['props']:
                if p[0] == ptype and p[1] == prop:
                    return json.dumps(p[2])
        return None

    def test_dkim_verifier(self):
        s = self.load('authres', 'ar-vectors.json')['sets']['dkim_verifier-arhParser']
        calls = 0
        for c in s['cases']:
            parsed = []
            for k, call in enumerate(c['calls']):
                opts = (call['options'] or '').replace(' ', '').split(',')
                relaxed = opts[0] == 'true'
                r = self.d.ar_parse(field_value(call['header']), relaxed)
                calls += 1
                self.check('dkim_verifier-%s-%d' % (c['name'], k), r['ok'] != call['expect_throw'],
                           '%r relaxed=%s -> %r' % (call['header'], relaxed, r))
                if r['ok']:
                    parsed.append(r)
            # the expectations are one group per parsed call, each opening with authserv_id
            groups = []
            for e in c['expect']:
                if e['path'] == 'authserv_id' or not groups:
                    groups.append([])
                groups[-1].append(e)
            if c['name'] == 'A-label in authserv-id':
                groups = [[e] for e in c['expect']]
            for r, group in zip(parsed, groups):
                for e in group:
                    with self.subTest(case=c['name'], path=e['path']):
                        self.assertEqual(self.expectation(r, e['path']), e['value'])
        self.assertEqual(calls, 58)

    def test_eml_samples(self):
        """The dkim_verifier messages: every A-R field is read (relaxed) and
        the removal decision follows its authserv-id."""
        top = os.path.join(TESTDATA, 'authres', 'dkim_verifier-arh-eml')
        names = sorted(os.listdir(top))
        self.assertEqual(len(names), 21)
        for name in names:
            with open(os.path.join(top, name), 'rb') as f:
                msg = email.message_from_binary_file(f, policy=email.policy.compat32)
            fields = msg.get_all('Authentication-Results') or []
            self.assertTrue(fields, name)
            for v in fields:
                r = self.d.ar_parse(v, relaxed=True)
                with self.subTest(eml=name, field=v):
                    self.assertTrue(r['ok'], r)
                    if r['authserv_id']:
                        self.assertTrue(self.d.ask('ar-claims', hexarg(r['authserv_id']),
                                                   hexarg(v))['claims'])
                    self.assertFalse(self.d.ask('ar-claims', hexarg(OUR_ID), hexarg(v))['claims'])
        # the one with several authserv-ids: only example.net's are ours to drop
        with open(os.path.join(top, 'multiple_arh-same_and_different_authserv.eml'), 'rb') as f:
            msg = email.message_from_binary_file(f, policy=email.policy.compat32)
        claims = [self.d.ask('ar-claims', hexarg('example.net'), hexarg(v))['claims']
                  for v in msg.get_all('Authentication-Results')]
        self.assertEqual(claims, [True, True, True, False, False, False, True])

    def test_our_field_is_safe(self):
        """Hostile values (CR LF, ';', quotes, a fake field) stay inside quotes:
        an independent reader sees exactly our five results, one field."""
        out = self.d.ask('ar-format')
        self.assertTrue(out['ok'])
        raw = out['field'].encode()
        self.assertTrue(raw.endswith(b'\r\n'))
        lines = raw[:-2].split(b'\r\n')
        self.assertTrue(all(l[:1] in (b'\t', b' ') for l in lines[1:]), lines)
        self.assertTrue(all(len(l) <= 998 for l in lines))
        msg = email.message_from_bytes(raw + b'\r\nbody\r\n', policy=email.policy.compat32)
        self.assertEqual(len(msg.get_all('Authentication-Results')), 1)
        value = msg['Authentication-Results']
        r = self.d.ar_parse(value)
        self.assertTrue(r['ok'], r)
        self.assertEqual(r['authserv_id'], OUR_ID)
        self.assertEqual([(x['method'], x['result']) for x in r['results']],
                         [('auth', 'pass'), ('spf', 'fail'), ('dkim', 'pass'), ('dkim', 'fail'),
                          ('dmarc', 'fail')])
        dkim2 = r['results'][3]
        self.assertIn(['header', 'd', 'evil.example; dmarc=pass'], dkim2['props'])
        self.assertTrue(self.d.ask('ar-claims', hexarg(OUR_ID), hexarg(value))['claims'])


if __name__ == '__main__':
    unittest.main()
