#!/usr/bin/env python3
"""probe_lab.py - nmap's smtp-open-relay against `relayguard probe`, on the
real peers of tests/peers/lab.py (bench/probe.sh runs this; see bench/README.md).

For each peer kind in modes open and secure, then for 50 targets (one peer
listening on 127.0.1.1-50), it times each tool and prints a table of wall
time, verdict and number of relay tests run.  It only reports: no timing
assertion.  Every address is loopback; both tools connect from 127.0.0.9, an
outsider to the peers (whose trusted network is 127.0.0.1/32).

nmap is run as
    nmap -n -Pn -sT -S 127.0.0.9 -e lo -p PORT --script +smtp-open-relay
         --script-args smtp-open-relay.domain=example.net TARGET...
'+' forces the script onto a port that is not 25/465/587.  The script's
"domain" is where its test recipients live (relaytest@DOMAIN), so it must be
a foreign domain: with the peer's own lab.test it would count local delivery
as relaying.  Its "ip" defaults to the target's address, which is right.

usage: python3 bench/probe_lab.py [--kinds postfix,exim,opensmtpd]
                                  [--many KIND:MODE] [--no-many]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'peers'))
import lab  # noqa: E402

SOURCE = '127.0.0.9'
RELAYGUARD = os.environ.get('BENCH_BIN', os.path.join(REPO, 'build', 'relayguard'))
NMAP_TESTS = 16  # the fixed list of MAIL FROM/RCPT TO pairs in smtp-open-relay.nse
PROBE_VERDICTS = {0: 'closed', 1: 'open', 2: 'inconclusive', 3: 'suspicious'}
MANY = 50


def say(msg):
    print('bench-probe: %s' % msg, file=sys.stderr, flush=True)


# -- nmap ----------------------------------------------------------------------

def nmap_cmd(port, targets):
    return ['nmap', '-n', '-Pn', '-sT', '-S', SOURCE, '-e', 'lo', '-p', str(port),
            '--script', '+smtp-open-relay',
            '--script-args', 'smtp-open-relay.domain=example.net'] + list(targets)


def run_nmap(port, targets, timeout=900):
    """(seconds, {target: (verdict, accepted)}, raw output)."""
    t0 = time.time()
    p = subprocess.run(nmap_cmd(port, targets), capture_output=True, text=True,
                       timeout=timeout, errors='replace')
    secs = time.time() - t0
    out = p.stdout + p.stderr
    per = {}
    for block in re.split(r'\nNmap scan report for ', '\n' + p.stdout)[1:]:
        host = block.split()[0]
        m = re.search(r'smtp-open-relay: (.*)', block)
        line = m.group(1).strip() if m else ''
        m2 = re.search(r'open relay \((\d+)/16 tests\)', line)
        if m2:
            per[host] = ('open', int(m2.group(1)))
        elif "doesn't seem to be an open relay" in line:
            per[host] = ('closed', 0)
        else:
            # e.g. "SMTP RSET: failed to receive data: failed to receive data"
            parts = []
            for part in (line or 'no output').split(': '):
                if not parts or parts[-1] != part:
                    parts.append(part)
            per[host] = ('inconclusive (script: %s)' % ': '.join(parts)[:60], None)
    return secs, per, out


# -- relayguard probe ------------------------------------------------------------

def probe_available():
    if not os.access(RELAYGUARD, os.X_OK):
        return False
    try:
        p = subprocess.run([RELAYGUARD, 'probe', '--help'], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return p.returncode == 0


def count_tests(obj):
    """Best effort: the number of tests in the probe's --json output."""
    if isinstance(obj, dict):
        for key in ('tests_run', 'tests', 'attempts', 'results'):
            v = obj.get(key)
            if isinstance(v, int):
                return v
            if isinstance(v, list):
                return len(v)
        for v in obj.values():
            n = count_tests(v)
            if n is not None:
                return n
    if isinstance(obj, list) and obj:
        counts = [count_tests(x) for x in obj]
        if all(c is not None for c in counts):
            return sum(counts)
    return None


def run_probe(targets, extra=(), timeout=900):
    """(seconds, verdict, tests) for one run over all targets."""
    with tempfile.NamedTemporaryFile('w', suffix='.targets', delete=False) as f:
        f.write('\n'.join(targets) + '\n')
        listfile = f.name
    try:
        args = [RELAYGUARD, 'probe', '--source', SOURCE, '--json'] + list(extra)
        args += ['-f', listfile] if len(targets) > 1 else targets
        t0 = time.time()
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                           errors='replace')
        secs = time.time() - t0
    finally:
        os.unlink(listfile)
    verdict = PROBE_VERDICTS.get(p.returncode, 'exit %d' % p.returncode)
    objs = []
    for line in p.stdout.splitlines():
        try:
            objs.append(json.loads(line))
        except ValueError:
            pass
    if objs and all(isinstance(o, dict) and isinstance(o.get('tests'), list) for o in objs):
        # tests actually run: not the ones skipped (submission-only, --auth)
        ran = sum(1 for o in objs for t in o['tests'] if t.get('verdict') != 'skipped')
        if len(objs) == 1:
            relayed = len(objs[0].get('relayed', []))
            verdict += ' (%d relayed)' % relayed if relayed else ''
        return secs, verdict, ran
    tests = None
    try:
        tests = count_tests(json.loads(p.stdout))
    except ValueError:
        # one JSON object per line, perhaps
        objs = []
        for line in p.stdout.splitlines():
            try:
                objs.append(json.loads(line))
            except ValueError:
                pass
        tests = count_tests(objs) if objs else None
    return secs, verdict, tests


# -- the table -----------------------------------------------------------------

ROWS = []


def row(target, peer, tool, secs, verdict, tests):
    ROWS.append((target, peer, tool, '%.2f' % secs if secs is not None else '-',
                 verdict, '-' if tests is None else str(tests)))


def print_table():
    head = ('target', 'peer', 'tool', 'wall s', 'verdict', 'tests')
    widths = [max(len(r[i]) for r in ROWS + [head]) for i in range(len(head))]
    fmt = '  '.join('%%-%ds' % w for w in widths)
    print(fmt % head)
    print(fmt % tuple('-' * w for w in widths))
    for r in ROWS:
        print(fmt % r)


def one_host(kind, mode, have_probe):
    t0 = time.time()
    with lab.Peer(kind, mode) as p:
        started = time.time() - t0
        name = '%s/%s' % (kind, mode)
        target = '127.0.0.1:%d' % p.port
        say('%s started in %.2fs on %s' % (name, started, target))
        secs, per, out = run_nmap(p.port, ['127.0.0.1'])
        verdict, accepted = per.get('127.0.0.1', ('inconclusive: no report', None))
        if accepted:
            verdict += ' (%d/16 accepted)' % accepted
        # a script error ends the list early; nmap does not say where
        row(target, name, 'nmap', secs, verdict,
            NMAP_TESTS if accepted is not None else '<=%d' % NMAP_TESTS)
        if have_probe:
            secs, verdict, tests = run_probe([target])
            row(target, name, 'relayguard probe', secs, verdict, tests)
        else:
            row(target, name, 'relayguard probe', None, 'relayguard probe not built', None)
        if not p.alive():
            say('%s died during the run:\n%s' % (name, p.log()[-2000:]))


def many_hosts(kind, mode, have_probe):
    addrs = ['127.0.1.%d' % i for i in range(1, MANY + 1)]
    t0 = time.time()
    with lab.Peer(kind, mode, extra_addrs=addrs) as p:
        name = '%s/%s' % (kind, mode)
        say('%s started in %.2fs on %s-%s port %d'
            % (name, time.time() - t0, addrs[0], addrs[-1], p.port))
        label = '%d x 127.0.1.1-%d:%d' % (MANY, MANY, p.port)
        secs, per, out = run_nmap(p.port, ['127.0.1.1-%d' % MANY])
        verdicts = {}
        for v, _n in per.values():
            verdicts[v] = verdicts.get(v, 0) + 1
        missing = MANY - len(per)
        if missing:
            verdicts['no report'] = missing
        summary = ', '.join('%d %s' % (n, v) for v, n in sorted(verdicts.items()))
        row(label, name, 'nmap', secs, summary, NMAP_TESTS * len(per))
        if have_probe:
            targets = ['%s:%d' % (a, p.port) for a in addrs]
            secs, verdict, tests = run_probe(targets)
            row(label, name, 'relayguard probe', secs, 'worst: ' + verdict, tests)
            # nmap runs the script on all hosts at once; the probe's default is 10
            secs, verdict, tests = run_probe(targets, ['--concurrency', str(MANY)])
            row(label, name, 'probe --concurrency %d' % MANY, secs, 'worst: ' + verdict, tests)
        else:
            row(label, name, 'relayguard probe', None, 'relayguard probe not built', None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--kinds', default=','.join(lab.KINDS))
    ap.add_argument('--many', default=os.environ.get('BENCH_PROBE_MANY', 'postfix:secure'),
                    help='KIND:MODE of the peer serving the 50 targets')
    ap.add_argument('--no-many', action='store_true')
    opts = ap.parse_args()
    try:
        subprocess.run(['nmap', '--version'], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        say('nmap not found: run sh scripts/deps.sh test (as root)')
        return 1
    have_probe = probe_available()
    if not have_probe:
        say('relayguard probe not built (%s): measuring nmap only' % RELAYGUARD)
    ran = 0
    for kind in opts.kinds.split(','):
        ok, why = lab.available(kind)
        if not ok:
            say('%s skipped: %s' % (kind, why))
            continue
        for mode in ('open', 'secure'):
            one_host(kind, mode, have_probe)
            ran += 1
    if not opts.no_many:
        kind, _, mode = opts.many.partition(':')
        ok, why = lab.available(kind)
        if ok:
            many_hosts(kind, mode or 'secure', have_probe)
            ran += 1
        else:
            say('50-target run skipped: %s' % why)
    if not ran:
        say('no peer could be started')
        return 1
    print_table()
    return 0


if __name__ == '__main__':
    sys.exit(main())
