"""test_spf_suite.py - the openspf RFC 7208 (and RFC 4408) conformance suites
against relayguard's SPF evaluator.

Each YAML test becomes one test here: its scenario's zone data and the test's
client IP, MAIL FROM and HELO go to build/tools[-asan]/spftest, which runs the
evaluator with the zone served by an in-process stub resolver. A test passes
when the result is one the suite allows (some allow several) and, where the
suite names an explanation, the explanation is that text.

Zone conventions of the suite's drivers (pyspf's testspf.py): type SPF records
are served as TXT when the name has no TXT records of its own ("TXT: NONE"
means: none, and do not copy); TIMEOUT makes every question for the name about
a type it has no records of time out; a name not listed is NXDOMAIN.

The suites live in ../shared/testdata/spf (see its README); without them the
tests report themselves skipped (or, under CI=true, fail).
"""
import os
import subprocess
import unittest

import harness

try:
    import yaml
except ImportError:  # reported by require() below
    yaml = None

DATA = os.path.join(os.path.dirname(harness.REPO), 'shared', 'testdata', 'spf')
SUITES = {'rfc7208': 'rfc7208-tests.yml', 'rfc4408': 'rfc4408-tests.yml'}

# Results where relayguard knowingly differs from what a suite allows, with
# the result it gives instead (checked: a change is noticed). README lists them.
KNOWN = {
}

# Tests whose result is right but whose explanation differs only in letter
# case: %{i} of an IPv6 address is written in lower-case nibbles, as in RFC
# 7208 7.4's own example; the suite (pyspf) expects upper case. DNS does not care.
KNOWN_EXPLANATION_CASE = {('rfc7208', 'v-macro-ip6'), ('rfc4408', 'v-macro-ip6')}


def driver():
    b = harness.binary()
    sub = 'tools-asan' if os.path.basename(b).endswith('-asan') else 'tools'
    return os.path.join(os.path.dirname(b), sub, 'spftest')


def hexs(s):
    return s.encode('utf-8').hex() or '-'


def zone_lines(zonedata):
    """The scenario's zone in spftest's line format."""
    lines = []
    for name, records in zonedata.items():
        has_txt = any(isinstance(r, dict) and 'TXT' in r for r in records)
        for r in records:
            if r == 'TIMEOUT':
                lines.append('TIMEOUT %s' % hexs(name))
                continue
            (rtype, value), = r.items()
            if rtype == 'SPF':
                if has_txt:
                    lines.append('EXISTS %s' % hexs(name))
                    continue
                rtype = 'TXT'
            if value == 'NONE':
                lines.append('EXISTS %s' % hexs(name))
            elif rtype == 'TXT':
                text = ''.join(value) if isinstance(value, list) else value
                lines.append('TXT %s %s' % (hexs(name), hexs(text)))
            elif rtype == 'MX':
                lines.append('MX %s %d %s' % (hexs(name), value[0], value[1] or '.'))
            else:
                lines.append('%s %s %s' % (rtype, hexs(name), value))
    return lines


def check_line(test, helo_identity=False):
    return 'CHECK %s %s %s%s' % (test['host'], hexs(test.get('mailfrom', '')),
                                 hexs(test.get('helo', '')), ' helo' if helo_identity else '')


def run_scenario(scenario):
    """Every test of a scenario in one run of the driver: (process, {name: fields})."""
    names = list(scenario['tests'])
    lines = zone_lines(scenario['zonedata']) + [check_line(scenario['tests'][n]) for n in names]
    out = subprocess.run([driver()], input='\n'.join(lines) + '\n', capture_output=True,
                         text=True, errors='replace', timeout=120)
    results, cur = [], {}
    for line in out.stdout.splitlines():
        if line == 'end':
            results.append(cur)
            cur = {}
            continue
        k, _, v = line.partition('=')
        cur[k] = v
    return out, dict(zip(names, results))


def run_check(zonedata, test):
    """One test alone (for debugging): (process, fields)."""
    out, res = run_scenario({'zonedata': zonedata, 'tests': {'t': test}})
    return out, res.get('t', {})


_cache = {}


def scenario_result(scenario, name):
    if id(scenario) not in _cache:
        _cache[id(scenario)] = run_scenario(scenario)
    out, res = _cache[id(scenario)]
    return out, res.get(name, {})


def make_test(suite, scenario, name, test):
    def t(self):
        self.assertTrue(os.access(driver(), os.X_OK), 'driver %s not built (make tools)' % driver())
        out, res = scenario_result(scenario, name)
        self.assertEqual(harness.sanitizer_report(out.stderr), [], out.stderr[-3000:])
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        allowed = test['result'] if isinstance(test['result'], list) else [test['result']]
        allowed = ['permerror' if a == 'unknown' else 'temperror' if a == 'error' else a
                   for a in allowed]  # RFC 4408 names
        got = res.get('result')
        why = '%s/%s: %s (allowed %s): %s' % (suite, name, got, allowed, res.get('problem'))
        if (suite, name) in KNOWN:
            self.assertEqual(got, KNOWN[(suite, name)][0], why)
            return
        self.assertIn(got, allowed, why)
        if 'explanation' in test and got == 'fail':
            want = test['explanation']
            if want == 'DEFAULT':  # the receiver's own text: we give none
                want = ''
            have = res.get('explanation')
            if (suite, name) in KNOWN_EXPLANATION_CASE:
                want, have = want.lower(), have.lower()
            self.assertEqual(have, want, why)
        # the header never carries a line break a client could have put there
        self.assertTrue(res.get('header', '').startswith('Received-SPF: ' + got), res)
    return t


def load(suite):
    path = os.path.join(DATA, SUITES[suite])
    if yaml is None or not os.path.exists(path):
        return []
    with open(path, 'rb') as f:
        return list(yaml.safe_load_all(f.read().decode('utf-8')))


class SuiteCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require(yaml is not None, 'python3-yaml', 'reading the SPF test suites')
        harness.require(os.path.isdir(DATA), '../shared/testdata beside the checkout',
                        'the SPF conformance suites (%s)' % DATA)


def build(suite, cls_name):
    attrs = {}
    for scenario in load(suite):
        for name, test in scenario['tests'].items():
            attrs['test_' + name.replace('-', '_')] = make_test(suite, scenario, name, test)
    if not attrs:
        attrs['test_suite_present'] = lambda self: self.fail('no %s suite loaded' % suite)
    return type(cls_name, (SuiteCase,), attrs)


RFC7208 = build('rfc7208', 'RFC7208')
RFC4408 = build('rfc4408', 'RFC4408')


if __name__ == '__main__':
    unittest.main()
