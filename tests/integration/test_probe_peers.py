"""test_probe_peers.py - relayguard probe against real Postfix, Exim and OpenSMTPD.

The peers come from the lab of tests/peers/lab.py: each one listens on
127.0.0.1, its own domain is lab.test, and it delivers lab.test mail into a
"local" sink and everything else into a "relay" sink (both Python SMTP servers
on 127.0.0.1 writing one file per message).  The probe connects from
127.0.0.9, outside every peer's trusted network, and runs with

    --confirm-data --canary-dir RELAY_SINK --local-dir LOCAL_SINK

so each acceptance is followed by one message with a token, and the probe
looks for it in the sinks: a relay is confirmed end to end, an ambiguous form
that the peer delivered to its own users ends `delivered-locally`.

What each real server does is pinned here (Debian 12: Postfix 3.7, Exim 4.96,
OpenSMTPD 6.8), as the test ids the probe reports as relayed.  A kind that
cannot run here (not root, packages missing: sh scripts/deps.sh test) is
skipped.
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

SOURCE = harness.UNTRUSTED  # 127.0.0.9: outside every peer's mynetworks
# OpenSMTPD's queue waits about 5 s before a second route to 127.0.0.1: the
# probe stops looking as soon as every token is found, so this is a ceiling.
CANARY_WAIT = '20'

# the ambiguous forms OpenSMTPD accepts at its own names and delivers to its own
# users (nmap counts three of them as relaying: its false positive)
OPENSMTPD_LOCAL = {'percent-host', 'percent-domain', 'bang-bare', 'bang-host', 'bang-domain'}

RELAYED = {
    # mynetworks = 0.0.0.0/0: Postfix strips %, !, quotes and routes and relays it all
    ('postfix', 'open'): {
        'plain', 'null-sender', 'sender-host', 'sender-ip', 'sender-domain',
        'sender-localhost', 'sender-unqualified', 'helo-localhost', 'helo-self', 'helo-ip',
        'mixed-case', 'trailing-dot', 'trailing-at', 'ipv4-literal', 'ipv6-literal',
        'percent-ip', 'percent-host', 'percent-domain', 'quoted-unqualified',
        'quoted-percent', 'multi-at-ip', 'quoted-at-ip', 'multi-at-host', 'quoted-at-domain',
        'route-ip', 'route-host', 'route-domain', 'route-multihop',
        'bang-bare', 'bang-ip', 'bang-host', 'bang-domain'},
    # Debian's ACL still refuses domain literals and @%! in local parts
    ('exim', 'open'): {
        'plain', 'null-sender', 'sender-host', 'sender-domain', 'sender-localhost',
        'helo-localhost', 'helo-self', 'helo-ip', 'mixed-case', 'numeric-domain',
        'route-host', 'route-domain'},
    ('opensmtpd', 'open'): {
        'plain', 'null-sender', 'sender-host', 'sender-ip', 'sender-domain',
        'sender-localhost', 'sender-unqualified', 'helo-localhost', 'helo-self', 'helo-ip',
        'mixed-case', 'ipv4-literal', 'ipv6-literal', 'numeric-domain', 'percent-ip',
        'route-ip', 'route-host', 'route-domain', 'route-multihop', 'bang-ip'},
    # check_sender_access inline:{ lab.test=OK }: Postfix matches subdomains
    # (mx.lab.test) too, and qualifies the bare "relayprobe" with @lab.test
    ('postfix', 'sender-hole'): {'sender-host', 'sender-domain', 'sender-unqualified'},
    ('exim', 'sender-hole'): {'sender-domain'},
    # match from any mail-from "@lab.test" for any action "relay"
    ('opensmtpd', 'sender-hole'): {'sender-domain'},
}


# SMTP smuggling (--smuggle): the fake end-of-data sequences that end DATA on
# Debian 12's Postfix 3.7.11 as the lab runs it (smtpd_forbid_bare_newline and
# smtpd_forbid_unauth_pipelining are there, backported, but off by default)
SMUGGLE_IDS = ('smuggle-lf-lf', 'smuggle-crlf-lf', 'smuggle-lf-crlf', 'smuggle-cr-crlf',
               'smuggle-crlf-cr', 'smuggle-lf-cr', 'smuggle-cr-lf', 'smuggle-cr-cr',
               'smuggle-nul', 'smuggle-crlf-crcrlf', 'smuggle-crcrlf')
POSTFIX_SMUGGLED = {'smuggle-lf-lf', 'smuggle-crlf-lf', 'smuggle-lf-crlf',
                    'smuggle-crlf-crcrlf', 'smuggle-crcrlf'}
# OpenSMTPD 6.8 ends DATA at a line ending in a bare LF, then refuses what
# follows ("500 5.5.1 Invalid command: Pipelining not supported") and hangs up
OPENSMTPD_REFUSED = {'smuggle-lf-lf', 'smuggle-crlf-lf', 'smuggle-lf-crlf'}


def run_probe(peer, *extra, confirm=True):
    """relayguard probe --json against the peer; (exit status, target object)."""
    args = [harness.binary(), 'probe', '--json', '--source', SOURCE, '--domain', lab.DOMAIN,
            '--retry-after', '1']
    if confirm:
        args += ['--confirm-data', '--canary-dir', peer.relay_sink_dir,
                 '--local-dir', peer.local_sink_dir, '--canary-wait', CANARY_WAIT]
    args += list(extra) + ['%s:%d' % (peer.host, peer.port)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=180, errors='replace')
    if harness.sanitizer_report(p.stderr):
        raise AssertionError('sanitizer report in probe output:\n' + p.stderr[-3000:])
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    if len(lines) != 1:
        raise AssertionError('expected one JSON line, got %r (stderr %r)' % (p.stdout, p.stderr))
    return p.returncode, json.loads(lines[0])


def verdicts(obj):
    return {t['id']: t['verdict'] for t in obj['tests']}


def ids_with(obj, *wanted):
    return {t['id'] for t in obj['tests'] if t['verdict'] in wanted}


def replies(test):
    return [x['s'] for x in test['transcript'] if 's' in x]


class PeerCase(unittest.TestCase):
    kind = None

    @classmethod
    def setUpClass(cls):
        ok, why = lab.available(cls.kind)
        harness.require(ok, lab.PACKAGES[cls.kind], why)

    def peer(self, mode, **kw):
        p = lab.Peer(self.kind, mode, **kw)
        self.addCleanup(p.close)
        return p

    def tokens_in(self, sink):
        return b'\n'.join(m['data'] for m in sink.messages())

    def check_open(self, mode):
        """The peer is reported open with exactly the pinned tests, each one
        confirmed by its token in the relay sink."""
        p = self.peer(mode)
        rc, obj = run_probe(p)
        want = RELAYED[(self.kind, mode)]
        self.assertEqual(rc, 1, verdicts(obj))
        self.assertEqual(obj['verdict'], 'open')
        self.assertEqual(set(obj['relayed']), want)
        self.assertEqual(ids_with(obj, 'relay-confirmed'), want)
        self.assertEqual(ids_with(obj, 'relay-accepted', 'accepted-ambiguous'), set())
        relayed = self.tokens_in(p.relay_sink)
        by = {t['id']: t for t in obj['tests']}
        for tid in want:
            self.assertIn(by[tid]['token'].encode(), relayed, tid)
        # the relayed copy really went to the victim, off the peer's domain
        tid = 'plain' if 'plain' in want else 'sender-domain'
        msg = [m for m in p.relay_sink.messages() if by[tid]['token'].encode() in m['data']]
        self.assertEqual(len(msg), 1)
        self.assertEqual(msg[0]['rcpts'], ['relaytest@example.net'])
        return p, obj

    def smuggle(self, p, *extra):
        """Every smuggle-* test against p; (exit status, target, verdicts)."""
        rc, obj = run_probe(p, '--smuggle', '--only', ','.join(SMUGGLE_IDS), *extra)
        return rc, obj, verdicts(obj)

    def smuggled_apart(self, p, obj):
        """The tests whose smuggled message arrived in the local sink as a message of
        its own (its token, not the carrier's)."""
        found = set()
        for t in obj['tests']:
            if 'smuggled_token' not in t:  # never sent
                continue
            for m in p.local_sink.messages():
                if t['smuggled_token'].encode() in m['data'] and \
                        (t['token'] + '\r').encode() not in m['data']:
                    self.assertEqual(m['rcpts'], ['postmaster@lab.test'])
                    found.add(t['id'])
        return found

    def check_not_smuggled(self, p, rc, obj, v, refused=frozenset()):
        self.assertEqual(rc, 0, obj)
        self.assertEqual(obj['verdict'], 'closed')
        self.assertEqual({k for k, x in v.items() if x == 'denied'}, set(refused))
        self.assertEqual({k for k, x in v.items() if x == 'not-smuggled'},
                         set(SMUGGLE_IDS) - set(refused))
        self.assertEqual(self.smuggled_apart(p, obj), set())
        self.assertEqual(p.relay_sink.messages(), [])

    def check_closed(self, p, obj, rc):
        self.assertEqual(rc, 0, verdicts(obj))
        self.assertEqual(obj['verdict'], 'closed')
        self.assertEqual(obj['relayed'], [])
        self.assertEqual(p.relay_sink.messages(), [])
        # every test got an answer
        self.assertEqual(ids_with(obj, 'error', 'timeout', 'inconclusive', 'pending'), set())


class Postfix(PeerCase):
    kind = 'postfix'

    def test_open_relay_confirmed(self):
        self.check_open('open')

    def test_secure_defers_relaying_and_is_closed(self):
        # Debian's default: defer_unauth_destination answers 454 4.7.1, which the
        # probe asks twice and reads as a refusal, not as "try later"
        p = self.peer('secure')
        rc, obj = run_probe(p)
        self.check_closed(p, obj, rc)
        by = {t['id']: t for t in obj['tests']}
        self.assertEqual(by['plain']['verdict'], 'denied-temporary')
        self.assertEqual([r for r in replies(by['plain']) if r.startswith('454')],
                         ['454 4.7.1 <relaytest@example.net>: Relay access denied'] * 2)
        self.assertEqual(ids_with(obj, 'denied-temporary'), RELAYED[('postfix', 'open')])
        self.assertEqual(p.local_sink.messages(), [])

    def test_sender_hole(self):
        self.check_open('sender-hole')

    def test_smuggling_with_debian_defaults(self):
        # the lab's Postfix runs Debian 12's defaults: bare <LF> ends a line, so
        # <LF>.<LF> ends DATA and the smuggled transaction is a second message
        p = self.peer('secure')
        rc, obj, v = self.smuggle(p)
        self.assertEqual(rc, 4, v)
        self.assertEqual(obj['verdict'], 'vulnerable')
        self.assertEqual({k for k, x in v.items() if x == 'smuggling-accepted'}, POSTFIX_SMUGGLED)
        self.assertEqual({k for k, x in v.items() if x == 'not-smuggled'},
                         set(SMUGGLE_IDS) - POSTFIX_SMUGGLED)
        by = {t['id']: t for t in obj['tests']}
        self.assertEqual([r[:3] for r in replies(by['smuggle-lf-lf'])[4:]],
                         ['354', '250', '250', '250', '354', '250'])
        # each smuggled message was delivered to postmaster as a message of its own
        self.assertEqual(self.smuggled_apart(p, obj), POSTFIX_SMUGGLED)
        self.assertEqual(p.relay_sink.messages(), [])
        self.assertTrue(any('smtpd_forbid_bare_newline' in a for a in obj['advice']))

    def test_smuggling_refused_with_forbid_bare_newline(self):
        p = self.peer('secure', main_cf={'smtpd_forbid_bare_newline': 'normalize'})
        rc, obj, v = self.smuggle(p)
        self.check_not_smuggled(p, rc, obj, v)

    def test_smuggling_split_but_refused_with_reject_unauth_pipelining(self):
        # the short-term fix: the message still ends at <LF>.<LF>, but the smuggled
        # DATA came ahead of time and is refused (503), then Postfix hangs up
        p = self.peer('secure', main_cf={'smtpd_data_restrictions': 'reject_unauth_pipelining'})
        rc, obj, v = self.smuggle(p, '--canary-wait', '3')
        self.assertEqual(rc, 0, v)
        self.assertEqual({k for k, x in v.items() if x == 'warning'}, POSTFIX_SMUGGLED)
        by = {t['id']: t for t in obj['tests']}
        self.assertEqual([r[:9] for r in replies(by['smuggle-lf-lf'])[5:]],
                         ['250 2.0.0', '250 2.1.0', '250 2.1.5', '503 5.5.0', '221 2.7.0',
                          '(connecti'])
        self.assertIn('cut short', by['smuggle-lf-lf']['note'])
        self.assertEqual(self.smuggled_apart(p, obj), set())


class Exim(PeerCase):
    kind = 'exim'

    def test_open_relay_confirmed(self):
        p, obj = self.check_open('open')
        by = {t['id']: t for t in obj['tests']}
        # route-host's sender <relayprobe@[127.0.0.1]> is refused (domain
        # literal); the route form was still tried, with a plain sender
        self.assertIn('RCPT tried with <relayprobe@example.net>', by['route-host']['note'])

    def test_secure_gets_a_verdict(self):
        # nmap's script ends in an error here: Exim drops the session after
        # three refused senders.  The probe reconnects and judges every test.
        p = self.peer('secure')
        rc, obj = run_probe(p)
        self.check_closed(p, obj, rc)
        by = {t['id']: t for t in obj['tests']}
        self.assertEqual(replies(by['plain'])[-2], '550 relay not permitted')
        self.assertIn('501 <relayprobe@[127.0.0.1]>: domain literals not allowed',
                      replies(by['sender-ip']))
        self.assertEqual(by['sender-ip']['verdict'], 'denied')
        self.assertEqual({v for k, v in verdicts(obj).items()},
                         {'denied', 'warning', 'skipped'})

    def test_smuggling_not_split(self):
        # Debian 12's Exim 4.96 ends DATA only at <CR><LF>.<CR><LF> for every variant
        p = self.peer('secure')
        rc, obj, v = self.smuggle(p)
        self.check_not_smuggled(p, rc, obj, v)

    def test_sender_hole(self):
        self.check_open('sender-hole')


class OpenSMTPD(PeerCase):
    kind = 'opensmtpd'

    def test_open_relay_confirmed(self):
        p, obj = self.check_open('open')
        by = {t['id']: t for t in obj['tests']}
        # OpenSMTPD refuses a second EHLO (503): the HELO tests ran on their own
        # connection instead of being reported as refused
        self.assertIn('a second EHLO was refused (503)', by['helo-localhost']['note'])
        self.assertEqual(ids_with(obj, 'delivered-locally'), OPENSMTPD_LOCAL)

    def test_secure_ambiguous_forms_are_delivered_locally(self):
        p = self.peer('secure')
        # by reply codes alone: suspicious (nmap says "open" here)
        rc, obj = run_probe(p, confirm=False)
        self.assertEqual(rc, 3)
        self.assertEqual(obj['verdict'], 'suspicious')
        self.assertEqual(ids_with(obj, 'accepted-ambiguous'), OPENSMTPD_LOCAL)
        # with the tokens: every one landed in the local sink, nothing relayed
        rc, obj = run_probe(p)
        self.check_closed(p, obj, rc)
        self.assertEqual(ids_with(obj, 'delivered-locally'), OPENSMTPD_LOCAL)
        local = self.tokens_in(p.local_sink)
        for t in obj['tests']:
            if t['id'] in OPENSMTPD_LOCAL:
                self.assertIn(t['token'].encode(), local, t['id'])

    def test_smuggling_refused(self):
        p = self.peer('secure')
        rc, obj, v = self.smuggle(p)
        self.check_not_smuggled(p, rc, obj, v, refused=OPENSMTPD_REFUSED)
        by = {t['id']: t for t in obj['tests']}
        for tid in OPENSMTPD_REFUSED:
            self.assertEqual(replies(by[tid])[5], '500 5.5.1 Invalid command: Pipelining not '
                                                  'supported', tid)

    def test_sender_hole_is_found(self):
        p, obj = self.check_open('sender-hole')
        self.assertEqual(ids_with(obj, 'delivered-locally'), OPENSMTPD_LOCAL)
        by = {t['id']: t for t in obj['tests']}
        self.assertEqual(by['sender-domain']['mail_from'], 'relayprobe@lab.test')


if __name__ == '__main__':
    unittest.main()
