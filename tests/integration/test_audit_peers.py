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
import subprocess
import sys
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
