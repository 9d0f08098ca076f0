"""test_audit_peers.py - relayguard audit (offline) agrees with relayguard probe
(against the same configuration running in real Postfix).

For each mode of the peer lab's Postfix (tests/peers/lab.py: open, secure,
sender-hole) the lab writes main.cf and master.cf and starts Postfix; then

    relayguard audit --postfix DIR --json          (reads the files, sends nothing)
    relayguard probe --confirm-data ... 127.0.0.1:PORT   (real SMTP, tokens in sinks)

must give the same verdict for the one smtpd service, and the audit must name
exactly the tests the probe saw relayed, except for the address forms where
relayguard's resolver is stricter than Postfix's (listed in docs/audit.md and
pinned here, so a change on either side shows).  Also: the audit of relayguard's
own configurations agrees with the probe against relayguard serve.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import types
import unittest

import harness

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'peers'))
import lab  # noqa: E402
import test_probe_peers  # noqa: E402

# Postfix relays these for a trusted client; relayguard's address parser refuses
# them as syntax errors (a trailing '@'; an address literal inside a source
# route, which RFC 5321's At-domain does not allow), so the audit, which parses
# with relayguard's parser, does not list them.  The verdict is the same (open).
STRICTER_SYNTAX = {'trailing-at', 'route-ip', 'route-multihop'}
# Postfix refuses a bare numeric domain (relaytest@192.0.2.1); relayguard's
# parser takes it as a host name, so the audit lists it for an open Postfix.
AUDIT_ONLY = {'numeric-domain'}


def run_audit(args):
    p = subprocess.run([harness.binary(), 'audit', '--json'] + args, capture_output=True,
                       text=True, timeout=60, errors='replace')
    if harness.sanitizer_report(p.stderr):
        raise AssertionError('sanitizer report in audit output:\n' + p.stderr[-3000:])
    return p.returncode, json.loads(p.stdout)


class AuditPostfix(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        ok, why = lab.available('postfix')
        harness.require(ok, lab.PACKAGES['postfix'], why)

    def check_mode(self, mode, main_cf=None):
        p = lab.Peer('postfix', mode, main_cf=main_cf)
        self.addCleanup(p.close)
        arc, audit = run_audit(['--postfix', os.path.join(p.dir, 'conf')])
        prc, probe = test_probe_peers.run_probe(p)
        services = [s for s in audit['services'] if s['name'].startswith('master.cf 127.0.0.1:')]
        self.assertEqual(len(services), 1, [s['name'] for s in audit['services']])
        svc = services[0]
        # the one question both answer: does a stranger relay here?
        self.assertEqual(svc['verdict'], probe['verdict'], (svc, probe['relayed']))
        self.assertEqual(arc, prc)
        relayed = set(svc['classes']['stranger']['relayed'])
        self.assertEqual(relayed - AUDIT_ONLY, set(probe['relayed']) - STRICTER_SYNTAX)
        # each relayed test says what let it through, and how to fix it
        for t in svc['tests']:
            if t['class'] == 'stranger' and t['outcome'] == 'relayed':
                self.assertTrue(t['restriction'] and t['fix'], t)
        return svc, audit

    def test_open(self):
        svc, audit = self.check_mode('open')
        self.assertIn('mynetworks-covers-internet', [f['id'] for f in audit['findings']])
        by = {(t['id'], t['class']): t for t in svc['tests']}
        self.assertEqual(by[('plain', 'stranger')]['restriction'], 'permit_mynetworks')

    def test_secure(self):
        svc, audit = self.check_mode('secure')
        by = {(t['id'], t['class']): t for t in svc['tests']}
        # defer_unauth_destination: 454, as the probe saw it (denied-temporary)
        self.assertEqual(by[('plain', 'stranger')]['reply'],
                         '454 4.7.1 <relaytest@example.net>: Relay access denied')
        self.assertEqual(by[('plain', 'stranger')]['outcome'], 'deferred')
        # inside mynetworks (127.0.0.1/32) the same test relays
        self.assertEqual(by[('plain', 'mynetworks')]['outcome'], 'relayed')
        self.assertEqual(audit['findings'], [])

    def test_sender_hole(self):
        svc, _ = self.check_mode('sender-hole')
        by = {(t['id'], t['class']): t for t in svc['tests']}
        self.assertTrue(by[('sender-domain', 'stranger')]['restriction']
                        .startswith('check_sender_access inline:'))


    # more configurations from tests/audit/postfix/, run in the lab's Postfix
    def test_recipient_list_decides(self):
        # recipient-override: the relay list emptied, a forgeable sender let through
        svc, audit = self.check_mode('secure', {
            'smtpd_relay_restrictions': '',
            'smtpd_recipient_restrictions': 'permit_mynetworks, check_sender_access'
                                            ' inline:{ lab.test=OK }, reject_unauth_destination'})
        self.assertEqual(svc['verdict'], 'open')
        self.assertIn('recipient-restrictions-override', [f['id'] for f in audit['findings']])

    def test_compatibility_level_0(self):
        # compat0-recipient-list: no relay list at all, the recipient list refuses
        svc, _ = self.check_mode('secure', {
            'compatibility_level': '0', 'smtpd_relay_restrictions': '',
            'smtpd_recipient_restrictions': 'permit_mynetworks, reject_unauth_destination'})
        self.assertEqual(svc['verdict'], 'closed')

    def test_bare_permit_means_no_service(self):
        # permit-first: Postfix's smtpd refuses to run (no banner at all); the
        # audit says closed and names the mistake, not "open"
        relay = 'permit_mynetworks, permit, reject_unauth_destination'
        with self.assertRaises(lab.PeerError) as cm:
            lab.Peer('postfix', 'secure', main_cf={'smtpd_relay_restrictions': relay},
                     start_timeout=8)
        self.assertIn('specify at least one working instance', str(cm.exception))
        fixture = os.path.join(harness.REPO, 'tests', 'audit', 'postfix', 'permit-first')
        with open(os.path.join(fixture, 'main.cf')) as f:
            self.assertIn('smtpd_relay_restrictions = ' + relay, f.read())
        rc, audit = run_audit(['--postfix', fixture])
        self.assertEqual((rc, audit['verdict']), (0, 'closed'))
        self.assertEqual([(f['id'], f['severity']) for f in audit['findings']],
                         [('permit-before-reject_unauth_destination', 'info')])


# -- the configurations of tests/audit/postfix/, run in the lab's Postfix --------

FIXTURES = os.path.join(harness.REPO, 'tests', 'audit', 'postfix')
# main.cf parameters the lab owns: its paths, its one loopback interface, its
# routes into the sinks, TLS (the lab has no certificate), the banner
LAB_OWNS = {'inet_interfaces', 'inet_protocols', 'relayhost', 'readme_directory',
            'alias_database', 'mailbox_size_limit', 'append_dot_mydomain', 'myorigin',
            'smtpd_banner', 'smtpd_milters', 'non_smtpd_milters', 'milter_default_action',
            'smtpd_sasl_type', 'smtpd_sasl_path'}
LAB_OWNS_PREFIX = ('smtpd_tls_', 'smtp_tls_', 'postscreen_')
# -o options of master.cf the lab cannot honour the same way (no certificate)
LAB_OWNS_OPTION = {'syslog_name', 'smtpd_tls_security_level', 'smtpd_tls_wrappermode',
                   'tls_preempt_cipherlist'}


def read_main_cf(path):
    """A main.cf's name = value pairs, in order, continuation lines joined."""
    pairs, cur = [], None
    with open(path) as f:
        for line in f:
            if line.strip() == '' or line.lstrip().startswith('#'):
                continue
            if line[0].isspace() and cur is not None:
                cur[1] += ' ' + line.strip()
                continue
            name, _, value = line.partition('=')
            cur = [name.strip(), value.strip()]
            pairs.append(cur)
    return pairs


def read_smtpd_services(path):
    """The smtpd services of a master.cf, [(name, [(option, value)])]: an inet
    smtpd, or postscreen's pass smtpd (in the lab it listens itself)."""
    services, cur = [], None
    with open(path) as f:
        for line in f:
            if line.strip() == '' or line.lstrip().startswith('#'):
                continue
            if line[0].isspace():
                words = line.split()
                if cur is not None and words[0] == '-o':
                    name, _, value = words[1].partition('=')
                    cur[1].append((name, value))
                continue
            w = line.split()
            cur = None
            if w[7] == 'smtpd' and w[1] in ('inet', 'pass'):
                cur = (w[0], [])
                services.append(cur)
    return services


def lab_value(name, value):
    """A fixture's value as the lab runs it: hash tables read from their source
    (texthash:), MySQL tables empty (the lab has no MySQL: a Mailcow without
    domains), and 127.0.0.0/8 in mynetworks narrowed to 127.0.0.1/32, because
    the probe's stranger is 127.0.0.9 (the audit's stranger is an Internet
    address, outside 127.0.0.0/8 either way)."""
    value = re.sub(r'\b(hash|btree|lmdb|cdb):', 'texthash:', value)
    value = re.sub(r'proxy:mysql:\S*?/(\w+)\.cf', r'texthash:$config_directory/\1', value)
    if name == 'mynetworks':
        value = value.replace('127.0.0.0/8', '127.0.0.1/32')
        value = ' '.join(value.replace('[::ffff:127.0.0.0]/104', '').split())
    return value


class FixturePeer(lab.Peer):
    """The lab's Postfix running one configuration of tests/audit/postfix/:
    its main.cf over the lab's (but for what LAB_OWNS), each of its smtpd
    services on a loopback port of its own, with its -o overrides."""

    def __init__(self, fixture):
        self.fixture = os.path.join(FIXTURES, fixture)
        master = os.path.join(self.fixture, 'master.cf')
        self.services = read_smtpd_services(master)
        self.ports = [lab.free_port() for _ in self.services]
        main = {}
        for name, value in read_main_cf(os.path.join(self.fixture, 'main.cf')):
            if name not in LAB_OWNS and not name.startswith(LAB_OWNS_PREFIX):
                main[name] = lab_value(name, value)
        super().__init__('postfix', 'secure', port=self.ports[0], main_cf=main)

    def _setup_postfix(self):
        argv, env = super()._setup_postfix()
        conf = os.path.join(self.dir, 'conf')
        for name in os.listdir(self.fixture):
            if name not in ('main.cf', 'master.cf'):
                shutil.copy(os.path.join(self.fixture, name), conf)
        with open(os.path.join(conf, 'main.cf')) as f:
            for table in re.findall(r'texthash:\$config_directory/(\w+)', f.read()):
                open(os.path.join(conf, table), 'a').close()
        with open(os.path.join(conf, 'master.cf')) as f:
            lab_services = [l for l in f if ' smtpd' not in l]
        lines = []
        for port, (_, options) in zip(self.ports, self.services):
            lines.append('127.0.0.1:%d inet n - n - - smtpd\n' % port)
            lines += ['  -o %s=%s\n' % (k, v) for k, v in options
                      if k not in LAB_OWNS_OPTION]
        self._write('conf/master.cf', ''.join(lines + lab_services))
        return argv, env

    def target(self, port):
        """What run_probe needs to probe one of the services."""
        return types.SimpleNamespace(host=self.host, port=port, relay_sink_dir=self.relay_sink_dir,
                                     local_sink_dir=self.local_sink_dir)


# Where the audit and the probe of the same running Postfix differ by design:
# the reason, as docs/audit.md words it ("Where the audit and a probe of
# Postfix differ, and why"), so a new disagreement has to be documented there.
DIFFERS = {
    'bare-permit': 'A bare `permit`',
    'nat': 'NAT, Docker and VPN ranges',
    'public-suffix': 'A `relay_domains` entry the probe does not try',
    'overlap': 'A domain both relayed and delivered here',
    'forward': 'Forwards by `virtual_alias_maps`',
}
# fixture, probe options, per smtpd service (audit verdict, probe verdict), and
# when the two differ, why (a key of DIFFERS).  The probe's "inconclusive" is
# the audit's "undecided" (both exit 2).  Each classic mistake issue 10 names
# has its configuration here, as have Debian's default and a Mailcow-style one.
FIXTURE_ROWS = (
    ('debian-default', (), [('closed', 'closed')], None),
    ('open-mynetworks', (), [('open', 'open')], None),
    ('recipient-override', (), [('open', 'open')], None),
    ('sender-hole', (), [('open', 'open')], None),
    # a forgeable permit: the probe finds it once it is told the value
    ('partner-sender', ('--domain', 'partner.example'), [('open', 'open')], None),
    ('partner-helo', ('--helo', 'mail.partner.example'), [('open', 'open')], None),
    ('policy-service', (), [('undecided', 'undecided')], None),
    # aimed at the relay domain, the probe's routed forms are forwarded
    ('untrusted-routing', ('--domain', 'example.org'), [('open', 'open')], None),
    ('untrusted-routing-catchall', ('--domain', 'example.org'), [('open', 'open')], None),
    # in the lab the submission service listens on a port of its own, without
    # the name the audit knows a submission service by: see docs/audit.md
    ('submission-nosasl', (), [('closed', 'closed')] * 2, None),
    ('submission-permit', (), [('closed', 'closed'), ('closed', 'unreachable')],
     'bare-permit'),
    ('docker-mynetworks', (), [('suspicious', 'closed')], 'nat'),
    ('mailcow', (), [('suspicious', 'closed')] * 4, 'nat'),
    ('relay-public-suffix', (), [('open', 'closed')], 'public-suffix'),
    ('relay-overlap', (), [('suspicious', 'closed')], 'overlap'),
    ('alias-forward', (), [('suspicious', 'closed')], 'forward'),
    ('catchall-forward', (), [('suspicious', 'closed')], 'forward'),
)


class AuditFixturesInPostfix(unittest.TestCase):
    """Debian's default, a Mailcow-style pair and one configuration per mistake,
    each run in real Postfix: per service, the audit of the files Postfix runs
    and relayguard probe --confirm-data against it give the same verdict, or the
    documented one pair of verdicts with its documented reason."""

    @classmethod
    def setUpClass(cls):
        ok, why = lab.available('postfix')
        harness.require(ok, lab.PACKAGES['postfix'], why)

    def check_fixture(self, fixture, probe_args, want, reason):
        p = FixturePeer(fixture)
        self.addCleanup(p.close)
        arc, audit = run_audit(['--postfix', os.path.join(p.dir, 'conf')])
        self.assertEqual(len(audit['services']), len(p.ports))
        got = []
        for port, svc in zip(p.ports, audit['services']):
            self.assertTrue(svc['name'].startswith('master.cf 127.0.0.1:%d ' % port), svc['name'])
            prc, probe = test_probe_peers.run_probe(p.target(port), '--domain', 'example.com',
                                                    *probe_args)
            verdict = {'inconclusive': 'undecided'}.get(probe['verdict'], probe['verdict'])
            got.append((svc['verdict'], verdict))
            # (told a forgeable permit's value, the probe relays tests the
            # audit only names the finding for)
            if svc['verdict'] == verdict == 'open' and not probe_args:
                relayed = set(svc['classes']['stranger']['relayed'])
                self.assertEqual(relayed - AUDIT_ONLY, set(probe['relayed']) - STRICTER_SYNTAX)
            if len(p.ports) == 1 and reason is None:
                self.assertEqual(arc, prc)
        self.assertEqual(got, want)
        if reason is not None:
            with open(os.path.join(harness.REPO, 'docs', 'audit.md')) as f:
                self.assertTrue('* **' + DIFFERS[reason] in f.read(),
                                'docs/audit.md does not give the reason: ' + DIFFERS[reason])

    def test_fixtures(self):
        for fixture, probe_args, want, reason in FIXTURE_ROWS:
            with self.subTest(fixture):
                self.check_fixture(fixture, probe_args, want, reason)

    def test_lab_runs_the_fixture(self):
        # the files the lab wrote hold the fixture's restrictions and overrides
        p = FixturePeer('mailcow')
        self.addCleanup(p.close)
        with open(os.path.join(p.dir, 'conf', 'master.cf')) as f:
            master = f.read()
        self.assertIn('-o smtpd_client_restrictions=permit_mynetworks,reject', master)
        with open(os.path.join(p.dir, 'conf', 'main.cf')) as f:
            main = f.read()
        self.assertIn('mynetworks = 127.0.0.1/32 [::1]/128 [fe80::]/10 172.22.1.0/24', main)
        self.assertIn('relay_domains = texthash:$config_directory/mysql_virtual_relay_domain_maps',
                      main)


class AuditRelayguard(harness.ServerPerClass):
    """The audit of the configuration a running relayguard uses agrees with the
    probe against it: closed, and open once mynetworks covers the prober."""

    def probe_verdict(self, server):
        p = subprocess.run([harness.binary(), 'probe', '--json', '--source', harness.UNTRUSTED,
                            '--retry-after', '1', '127.0.0.1:%d' % server.port],
                           capture_output=True, text=True, timeout=120)
        return p.returncode, json.loads(p.stdout.splitlines()[0])['verdict']

    def audit_of(self, server):
        return run_audit(['-c', server.config_path])

    def test_default_is_closed_both_ways(self):
        arc, audit = self.audit_of(self.server)
        rc, verdict = self.probe_verdict(self.server)
        mta = [s for s in audit['services'] if s['name'].startswith('smtpd_listen')][0]
        self.assertEqual((mta['verdict'], arc), (verdict, rc))
        self.assertEqual(verdict, 'closed')


if __name__ == '__main__':
    unittest.main()
