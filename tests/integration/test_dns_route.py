"""test_dns_route.py - where outbound mail goes (src/dns/route.c), asked of a real dnsmasq.

Runs lookups through the driver build/tools[-asan]/dns_route_check (the one
matching RELAYGUARD_BIN) against dnsmasq serving *.test zones (dnslab.py),
and against servers that answer SERVFAIL or nothing at all. What delivery
will see is the status: ok (hosts by preference, each with addresses),
nxdomain and null-mx (bounce), no-address (bounce unless a lookup was
temporary), temp (defer: never a bounce for a DNS fault).
"""
import json
import os
import subprocess
import time
import unittest

import dnslab
import harness

MANY = [(p, 'm%d.many.test' % p) for p in range(15)]
ZONE = dict(
    mx={
        'two.test': [(10, 'mxa.two.test'), (10, 'mxb.two.test'), (20, 'backup.two.test')],
        'noaddr.test': [(10, 'nowhere.noaddr.test')],
        'halfaddr.test': [(10, 'nowhere.halfaddr.test'), (20, 'mx.halfaddr.test')],
        'cname.test': [(10, 'alias.cname.test')],
        'sfhost.test': [(10, 'mx.broken.test')],
        'sfmixed.test': [(10, 'mx.broken.test'), (20, 'backup.two.test')],
        'slowhost.test': [(10, 'mx.slow.test')],
        'ipmx.test': [(10, '127.0.0.9'), (20, 'mxa.two.test')],
        'many.test': MANY,
    },
    hosts={
        'mxa.two.test': ['127.0.0.11'], 'mxb.two.test': ['127.0.0.12'],
        'backup.two.test': ['127.0.0.13'], 'amx.test': ['127.0.0.14'],
        'real.cname.test': ['127.0.0.15'], 'mx.halfaddr.test': ['127.0.0.17'],
        'v6.test': ['::1'], 'both.test': ['127.0.0.16', '::1'],
        'big.test': ['127.0.1.%d' % i for i in range(1, 13)],
        **{name: ['127.0.2.%d' % p] for p, name in MANY},
    },
    # a chain: alias -> alias2 -> real; and a domain that is an alias of two.test
    cnames={'alias.cname.test': 'alias2.cname.test', 'alias2.cname.test': 'real.cname.test',
            'dalias.test': 'two.test'},
    null_mx=['null.test'],
    servfail=['broken.test'],
    silent=['slow.test'],
    # MX records cut short: preference only; a name running past the record
    extra=['--dns-rr=garbled.test,15,0001', '--dns-rr=garbled2.test,15,000a03616263'],
)


def driver():
    """build/tools/dns_route_check beside build/relayguard, tools-asan beside -asan."""
    b = harness.binary()
    sub = 'tools-asan' if os.path.basename(b).endswith('-asan') else 'tools'
    return os.path.join(os.path.dirname(b), sub, 'dns_route_check')


def run_driver(testcase, servers, names, args=(), timeout=60):
    """Run the driver; assert exit 0 and no sanitizer report; (results, stderr)."""
    if not os.access(driver(), os.X_OK):
        testcase.fail('driver %s not built (make tools)' % driver())
    cmd = [driver(), '-t', '300'] + list(args) + [servers] + list(names)
    out = subprocess.run(cmd, capture_output=True, timeout=timeout)
    err = out.stderr.decode('utf-8', 'replace')
    testcase.assertEqual(harness.sanitizer_report(err), [], err[-3000:])
    testcase.assertEqual(out.returncode, 0, 'driver exit status; stderr:\n' + err[-3000:])
    return [json.loads(line) for line in out.stdout.decode().splitlines()], err


def addrs(result):
    return {h['name']: h['addrs'] for h in result['hosts']}


class Routing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab = dnslab.DnsLab(**ZONE)
        cls.lab.start()

    @classmethod
    def tearDownClass(cls):
        cls.lab.cleanup()

    def route(self, name, args=()):
        results, err = run_driver(self, self.lab.servers, [name], args)
        self.assertEqual(len(results), 1)
        return results[0], err

    def test_mx_by_preference_equal_ones_in_both_orders(self):
        results, _ = run_driver(self, self.lab.servers, ['two.test'], ['-n', '40'])
        firsts = set()
        for r in results:
            self.assertEqual(r['status'], 'ok')
            self.assertFalse(r['implicit_mx'])
            self.assertEqual([h['pref'] for h in r['hosts']], [10, 10, 20])
            self.assertEqual(r['hosts'][2]['name'], 'backup.two.test')
            self.assertEqual(addrs(r), {'mxa.two.test': ['127.0.0.11'],
                                        'mxb.two.test': ['127.0.0.12'],
                                        'backup.two.test': ['127.0.0.13']})
            firsts.add(r['hosts'][0]['name'])
        # 40 fair coin flips all alike: about 1 in 5e11
        self.assertEqual(firsts, {'mxa.two.test', 'mxb.two.test'})

    def test_no_mx_falls_back_to_the_domain_itself(self):
        r, _ = self.route('amx.test')
        self.assertEqual(r['status'], 'ok')
        self.assertTrue(r['implicit_mx'])
        self.assertEqual(addrs(r), {'amx.test': ['127.0.0.14']})

    def test_null_mx_is_permanent(self):
        r, _ = self.route('null.test')
        self.assertEqual(r['status'], 'null-mx')
        self.assertIn('does not accept mail (nullMX)', r['error'])
        self.assertEqual(r['hosts'], [])

    def test_nxdomain_is_permanent(self):
        r, _ = self.route('nothere.test')
        self.assertEqual(r['status'], 'nxdomain')
        self.assertIn('Host or domain name not found', r['error'])
        self.assertIn('name=nothere.test type=MX', r['error'])

    def test_mx_to_a_name_without_address(self):
        r, _ = self.route('noaddr.test')
        self.assertEqual(r['status'], 'no-address')
        self.assertEqual(r['hosts'], [{'name': 'nowhere.noaddr.test', 'pref': 10,
                                       'temp_failed': False, 'addrs': []}])
        r, _ = self.route('halfaddr.test')  # the next MX host still has one
        self.assertEqual(r['status'], 'ok')
        self.assertEqual(addrs(r), {'nowhere.halfaddr.test': [],
                                    'mx.halfaddr.test': ['127.0.0.17']})

    def test_servfail_for_the_domain_is_temporary(self):
        r, _ = self.route('x.broken.test')
        self.assertEqual(r['status'], 'temp')
        self.assertIn('name=x.broken.test type=MX', r['error'])
        self.assertIn('SERVFAIL', r['error'])

    def test_servfail_for_the_mx_host_is_temporary_not_no_address(self):
        r, _ = self.route('sfhost.test')
        self.assertEqual(r['status'], 'temp')
        self.assertTrue(r['hosts'][0]['temp_failed'])
        self.assertIn('name=mx.broken.test', r['error'])

    def test_one_failing_host_does_not_hide_the_good_one(self):
        r, _ = self.route('sfmixed.test')
        self.assertEqual(r['status'], 'ok')
        self.assertEqual(r['hosts'][0]['name'], 'mx.broken.test')
        self.assertTrue(r['hosts'][0]['temp_failed'])
        self.assertEqual(r['hosts'][1]['addrs'], ['127.0.0.13'])

    def test_garbled_mx_answer_is_temporary_not_a_missing_mx(self):
        for name in ('garbled.test', 'garbled2.test'):
            r, _ = self.route(name)
            self.assertEqual((r['status'], r['implicit_mx']), ('temp', False), name)
            self.assertIn('Misformatted DNS reply', r['error'])

    def test_timeout_is_temporary_and_bounded(self):
        for name in ('x.slow.test', 'slowhost.test'):  # the domain; the MX host
            r, _ = self.route(name)
            self.assertEqual(r['status'], 'temp', name)
            self.assertIn('timeout', r['error'])
            self.assertLess(r['ms'], 5000)  # -t 300: two tries, 300 + 600 ms

    def test_cname_chain(self):
        r, err = self.route('cname.test')
        self.assertEqual(r['status'], 'ok')
        self.assertEqual(addrs(r), {'alias.cname.test': ['127.0.0.15']})
        self.assertIn('MX host is an alias (CNAME)', err)  # RFC 5321 5.1: lenient, logged
        r, _ = self.route('dalias.test')  # the domain itself is an alias
        self.assertEqual(r['status'], 'ok')
        self.assertEqual(sorted(addrs(r)), ['backup.two.test', 'mxa.two.test', 'mxb.two.test'])

    def test_ipv6_and_address_preference(self):
        r, _ = self.route('v6.test')
        self.assertEqual(addrs(r), {'v6.test': ['::1']})
        r, _ = self.route('v6.test', ['-f', 'ipv4'])  # inet_protocols = ipv4
        self.assertEqual(r['status'], 'no-address')
        r, _ = self.route('both.test', ['-p', 'ipv6'])
        self.assertEqual(r['hosts'][0]['addrs'], ['::1', '127.0.0.16'])
        r, _ = self.route('both.test', ['-p', 'ipv4'])
        self.assertEqual(r['hosts'][0]['addrs'], ['127.0.0.16', '::1'])
        r, _ = self.route('both.test', ['-f', 'ipv6'])
        self.assertEqual(r['hosts'][0]['addrs'], ['::1'])

    def test_bounds_on_hosts_and_addresses(self):
        r, _ = self.route('many.test')  # 15 MX records: the best 10
        self.assertEqual([h['pref'] for h in r['hosts']], list(range(10)))
        r, _ = self.route('big.test')   # 12 A records: 8 of them
        got = r['hosts'][0]['addrs']
        self.assertEqual(len(got), 8)
        self.assertTrue(set(got) <= {'127.0.1.%d' % i for i in range(1, 13)})
        self.assertEqual(len(set(got)), 8)

    def test_numeric_mx_is_skipped_with_a_warning(self):
        r, err = self.route('ipmx.test')
        self.assertEqual(r['status'], 'ok')
        self.assertEqual([h['name'] for h in r['hosts']], ['mxa.two.test'])
        self.assertIn('numeric domain name in MX record', err)

    def test_malformed_domain(self):
        r, _ = self.route('bad..name.test')
        self.assertEqual(r['status'], 'nxdomain')
        self.assertIn('malformed', r['error'])

    def test_direct_host(self):
        r, _ = self.route('mxa.two.test', ['-H'])
        self.assertEqual((r['status'], r['implicit_mx']), ('ok', False))
        self.assertEqual(addrs(r), {'mxa.two.test': ['127.0.0.11']})
        r, _ = self.route('[mxa.two.test]', ['-H'])  # a nexthop's brackets are forgiven
        self.assertEqual(addrs(r), {'mxa.two.test': ['127.0.0.11']})
        r, _ = self.route('[mxa.two.test', ['-H'])
        self.assertEqual(r['status'], 'nxdomain')
        r, _ = self.route('two.test', ['-H'])  # no MX lookup: two.test has no address
        self.assertEqual(r['status'], 'no-address')
        r, _ = self.route('nothere.test', ['-H'])
        self.assertEqual(r['status'], 'nxdomain')
        r, _ = self.route('mx.broken.test', ['-H'])
        self.assertEqual(r['status'], 'temp')

    def test_cancelled_lookups_never_call_back(self):
        results, _ = run_driver(self, self.lab.servers, ['x.slow.test', 'two.test', '[::1]'],
                                ['-c'])
        self.assertEqual([r.get('cancelled') for r in results], [True, True, True])

    def test_resolver_freed_with_lookups_in_flight(self):
        results, _ = run_driver(self, self.lab.servers,
                                ['x.slow.test', 'sfhost.test', 'two.test'], ['-F'])
        self.assertEqual(len(results), 3)


class NoLookupNeeded(unittest.TestCase):
    def test_ip_literals_answer_without_dns(self):
        # the only DNS server never answers: any lookup would take 900 ms and fail
        with dnslab.SilentDns() as silent:
            names = ['[127.0.0.5]', '127.0.0.5', '[IPv6:::1]', '[::1]']
            results, _ = run_driver(self, silent.servers, names, ['-H'])
            mx, _ = run_driver(self, silent.servers, ['[127.0.0.5]'])
            self.assertEqual(silent.questions, 0)
        want = [['127.0.0.5'], ['127.0.0.5'], ['::1'], ['::1']]
        self.assertEqual([r['hosts'][0]['addrs'] for r in results], want)
        self.assertEqual([r['status'] for r in results + mx], ['ok'] * 5)
        self.assertEqual(mx[0]['hosts'][0]['addrs'], ['127.0.0.5'])
        results, _ = run_driver(self, '127.0.0.1:9', ['[::1]'], ['-H', '-f', 'ipv4'])
        self.assertEqual(results[0]['status'], 'no-address')


class BrokenServers(unittest.TestCase):
    def test_server_answering_servfail(self):
        with dnslab.ServfailDns() as sf:
            results, _ = run_driver(self, sf.servers, ['two.test'])
            self.assertGreater(sf.questions, 0)
        self.assertEqual(results[0]['status'], 'temp')

    def test_server_never_answering(self):
        with dnslab.SilentDns() as silent:
            results, _ = run_driver(self, silent.servers, ['two.test', 'mx.two.test'],
                                    ['-P'])
            self.assertGreater(silent.questions, 0)
        for r in results:
            self.assertEqual(r['status'], 'temp')
            self.assertIn('timeout', r['error'])


class Interactive:
    """The driver in -i mode: one lookup per call, on one resolver (one cache)."""

    def __init__(self, testcase, servers, args=()):
        self.tc = testcase
        self.proc = subprocess.Popen([driver(), '-t', '300', '-i'] + list(args) + [servers],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def route(self, name):
        self.proc.stdin.write(name + '\n')
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(10)
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.tc.assertEqual(harness.sanitizer_report(err), [], err[-3000:])
        self.tc.assertEqual(rc, 0, err[-3000:])


class Cache(unittest.TestCase):
    def setUp(self):
        if not os.access(driver(), os.X_OK):
            self.fail('driver %s not built (make tools)' % driver())

    def test_answers_outlive_the_dns_server_within_ttl(self):
        with dnslab.DnsLab(**ZONE) as lab:
            d = Interactive(self, lab.servers)
            try:
                first = d.route('two.test')
                self.assertEqual(first['status'], 'ok')
                self.assertEqual(d.route('nothere.test')['status'], 'nxdomain')
                self.assertEqual(d.route('null.test')['status'], 'null-mx')
                lab.stop()
                again = d.route('two.test')
                self.assertEqual(again['status'], 'ok')
                self.assertEqual(addrs(again), addrs(first))
                self.assertEqual(d.route('nothere.test')['status'], 'nxdomain')
                self.assertEqual(d.route('null.test')['status'], 'null-mx')
                self.assertEqual(d.route('amx.test')['status'], 'temp')  # never asked before
            finally:
                d.close()

    def test_expired_answers_are_asked_again(self):
        with dnslab.DnsLab(hosts={'amx.test': ['127.0.0.14']}, ttl=3) as lab:
            d = Interactive(self, lab.servers)
            try:
                self.assertEqual(d.route('amx.test')['status'], 'ok')
                lab.stop()
                self.assertEqual(d.route('amx.test')['status'], 'ok')
                time.sleep(4.2)
                self.assertEqual(d.route('amx.test')['status'], 'temp')
            finally:
                d.close()

    def test_temporary_failures_are_not_cached(self):
        with dnslab.DnsLab(servfail=['broken.test']) as lab:
            d = Interactive(self, lab.servers)
            try:
                self.assertEqual(d.route('x.broken.test')['status'], 'temp')
                asked = lab.servfail_server.questions
                self.assertGreater(asked, 0)
                self.assertEqual(d.route('x.broken.test')['status'], 'temp')
                self.assertGreater(lab.servfail_server.questions, asked)
            finally:
                d.close()


if __name__ == '__main__':
    unittest.main()
