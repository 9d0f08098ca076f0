#!/usr/bin/env python3
"""inbound_lab.py - inbound throughput side by side, in one run (bench/run.sh
runs this; see "Throughput" in bench/README.md).  It only reports.

Every row gets the same load, smtp-source -d -s 20 -m 2000 -l 4096, on
loopback, and its own fresh server and directories under --tmpdir (so every
Maildir and queue is on the same filesystem):

  sink      Postfix's smtp-sink: no disk at all, the ceiling of this machine
            with this load generator
  direct    relayguard, direct_local_delivery = yes: the Maildir copy is
            written and synced before the 250, no queue file
  queue     relayguard, direct_local_delivery = no: queue file synced before
            the 250, then delivered to the Maildir
  postfix   the peer lab's Postfix (tests/peers/lab.py: unshare'd mount
            namespace, 127.0.0.1 only, stopped by PID), delivering with
            virtual(8) into a Maildir

The rows are interleaved round by round (sink, direct, queue, postfix, then
again), so the noise of a shared machine falls on all of them alike.

Per row: accept msg/s = messages / smtp-source's wall time; end-to-end msg/s
= messages in the Maildir's new/ / (newest st_ctime_ns among them - the start
of smtp-source), the same method for every server (benchutil.wait_landed).

usage: inbound_lab.py --tmpdir DIR [--rounds 2] [--messages 2000]
         [--sessions 20] [--size 4096] [--gen smtp-source|python] [--per-message-connect]
         [--logdir build/bench-logs] [--only sink,direct,queue,postfix]
Exit 0 when every row that could run delivered every message; 1 otherwise.
"""
import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import benchutil  # noqa: E402
import outbound_lab as ol  # noqa: E402  (Relayguard, tree_cpu, session_pids, lab)

lab = ol.lab
KINDS = ('sink', 'direct', 'queue', 'postfix')
LABEL = {
    'sink': 'smtp-sink (no disk)',
    'direct': 'relayguard direct_local_delivery=yes',
    'queue': 'relayguard direct_local_delivery=no',
    'postfix': 'Postfix 3.7 virtual(8) Maildir',
}
RCPT = 'postmaster@localhost'


def say(msg):
    print('bench: %s' % msg, file=sys.stderr, flush=True)


def gen_cmd(opts, port):
    """The load generator's command line, the same for every row."""
    args = [] if opts.per_message_connect else ['-d']
    args += ['-s', str(opts.sessions), '-m', str(opts.messages), '-l', str(opts.size),
            '-M', 'localhost', '-f', 'bench@localhost', '-t', RCPT, '127.0.0.1:%d' % port]
    if opts.gen == 'python':
        return [sys.executable, os.path.join(HERE, 'loadgen.py')] + args
    return [ol.SMTP_SOURCE] + args


def run_gen(opts, port):
    """(rc, output tail, t0_ns, t1_ns) of one load-generator run."""
    t0 = time.time_ns()
    p = subprocess.run(gen_cmd(opts, port), env=ol.TOOLS_ENV, capture_output=True, text=True,
                       errors='replace', timeout=900)
    t1 = time.time_ns()
    return p.returncode, (p.stdout + p.stderr).strip()[-300:], t0, t1


# -- the servers ---------------------------------------------------------------

class SmtpSink:
    """smtp-sink on 127.0.0.1:port; -c writes "mesg=N" at each end of DATA
    into a file (read once at the end: no reader competes for the CPU)."""

    def __init__(self, work):
        self.port = ol.free_port('127.0.0.1')
        self.out = os.path.join(work, 'smtp-sink.out')
        argv = [ol.SMTP_SINK, '-c', '-h', 'sink.bench.test']
        if os.geteuid() == 0:
            argv += ['-u', 'nobody']  # required as root: it drops to that user
        argv += ['127.0.0.1:%d' % self.port, '1024']
        with open(self.out, 'wb') as f:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f,
                                         stderr=subprocess.STDOUT, env=ol.TOOLS_ENV)
        deadline = time.time() + 10
        while time.time() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=2) as s:
                    if s.recv(64).startswith(b'220'):
                        s.sendall(b'QUIT\r\n')
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError('smtp-sink did not start: %s' % open(self.out, errors='replace').read())

    def count(self):
        with open(self.out, 'rb') as f:
            hits = re.findall(rb'mesg=(\d+)', f.read())
        return int(hits[-1]) if hits else 0

    def cpu(self):
        return ol.tree_cpu([self.proc.pid] if self.proc.poll() is None else [], self.proc.pid)

    def stop(self):
        ol.stop_proc(self.proc)


def mailbox_owner():
    """uid, gid for Postfix's virtual(8) Maildir: relayguard's own user if it
    exists (the owner of relayguard's Maildirs too), else nobody."""
    for name in ('relayguard', 'nobody'):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    raise RuntimeError('neither user relayguard nor nobody exists')


class MaildirPostfix(lab.Peer):
    """The lab's Postfix in mode secure (127.0.0.1 is its trusted network),
    with localhost a virtual mailbox domain: postmaster@localhost goes by
    virtual(8) into DIR/mail/localhost/postmaster/ (a Maildir: the trailing /)."""

    def __init__(self, **kw):
        super().__init__('postfix', 'secure', **kw)

    def _setup_postfix(self):
        argv, env = super()._setup_postfix()
        uid, gid = mailbox_owner()
        base = os.path.join(self.dir, 'mail')
        os.makedirs(base, mode=0o755)
        os.chown(base, uid, gid)
        conf = os.path.join(self.dir, 'conf')
        with open(os.path.join(conf, 'main.cf'), 'a') as f:
            f.write('virtual_mailbox_domains = localhost\n'
                    'virtual_mailbox_base = %s\n'
                    'virtual_mailbox_maps = inline:{ %s=localhost/postmaster/ }\n'
                    'virtual_uid_maps = static:%d\n'
                    'virtual_gid_maps = static:%d\n'
                    'virtual_minimum_uid = 1\n' % (base, RCPT, uid, gid))
        with open(os.path.join(conf, 'master.cf'), 'a') as f:
            f.write('virtual   unix  - n n - - virtual\n')
        return argv, env

    def maildir_new(self):
        return os.path.join(self.dir, 'mail', 'localhost', 'postmaster', 'new')

    def pids(self):
        return ol.session_pids(self.proc.pid) if self.alive() else []

    def cpu(self):
        return ol.tree_cpu(self.pids(), self.proc.pid)

    def queue_files(self):
        return ol.BenchPostfix.queue_files(self)

    def problems(self):
        return ol.BenchPostfix.problems(self)

    def maillog(self):
        return os.path.join(self.dir, 'log', 'maillog')


def start(kind, work):
    if kind == 'sink':
        return SmtpSink(work)
    if kind == 'postfix':
        return MaildirPostfix()
    d = tempfile.mkdtemp(prefix=kind + '-', dir=work)
    return ol.Relayguard(d, {'direct_local_delivery': 'yes' if kind == 'direct' else 'no',
                             'default_transport': 'smtp'})


def stop(kind, server):
    if kind == 'postfix':
        server.close()
    else:
        server.stop()


# -- one row ---------------------------------------------------------------------

def one_run(kind, opts, work):
    """A fresh server of kind, one load-generator run into it; a dict of figures."""
    t = time.time()
    server = start(kind, work)
    res = {'kind': kind, 'startup_s': time.time() - t}
    try:
        cpu0 = server.cpu()
        rc, out, t0, t1 = run_gen(opts, server.port)
        res.update(gen_rc=rc, gen_err=out, accept_s=(t1 - t0) / 1e9)
        if kind == 'sink':
            res.update(delivered=server.count(), e2e_s=res['accept_s'], at_src_end=server.count())
        else:
            new = (server.maildir_new() if kind == 'postfix'
                   else os.path.join(server.dir, 'mail', 'localhost', 'postmaster', 'new'))
            res['at_src_end'] = benchutil.count_entries(new)
            # a generator that gave up leaves fewer: no point waiting long for them
            n, newest = benchutil.wait_landed(new, opts.messages, opts.timeout if rc == 0 else 10)
            res.update(delivered=n, e2e_s=(newest - t0) / 1e9 if newest else None)
            deadline = time.time() + 30  # settled: nothing left in the queue
            while server.queue_files() and time.time() < deadline:
                time.sleep(0.02)
            res['left'] = server.queue_files()
            res['problems'] = server.problems()
        cpu1 = server.cpu()
        res['cpu'] = (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
        if kind in ('direct', 'queue'):
            res['hwm_kib'] = ol.status_kib(server.pid, 'VmHWM')
            shutil.copy(server.log_path, os.path.join(opts.logdir, 'throughput-%s.log' % kind))
        elif kind == 'postfix' and os.path.exists(server.maillog()):
            shutil.copy(server.maillog(), os.path.join(opts.logdir, 'throughput-postfix.maillog'))
        return res
    finally:
        stop(kind, server)


# -- report ------------------------------------------------------------------------

def rate(n, secs):
    return n / secs if secs else 0.0


def print_table(runs, opts):
    head = ('round', 'row', 'accept msg/s', 'e2e msg/s', 'e2e s', 'delivered', 'at src end',
            'left', 'CPU user+sys s', 'VmHWM MiB')
    rows = []
    for r in runs:
        if 'error' in r:
            rows.append((str(r['round']), LABEL[r['kind']], 'FAILED: ' + r['error'][:70])
                        + ('',) * 7)
            continue
        rows.append((str(r['round']), LABEL[r['kind']],
                     '%.0f' % rate(opts.messages, r['accept_s']),
                     '%.0f' % rate(r['delivered'], r['e2e_s']) if r['e2e_s'] else '-',
                     '%.3f' % r['e2e_s'] if r['e2e_s'] else '-',
                     str(r['delivered']), str(r['at_src_end']), str(r.get('left', '-')),
                     '%.2f+%.2f' % r['cpu'],
                     '%.1f' % (r['hwm_kib'] / 1024) if r.get('hwm_kib') else '-'))
    widths = [max(len(x[k]) for x in rows + [head]) for k in range(len(head))]
    fmt = ' | '.join('%%-%ds' % w for w in widths)
    print(fmt % head)
    for row in rows:
        print(fmt % row)


def medians(runs, opts):
    med = {}
    for kind in KINDS:
        ok = [r for r in runs if r['kind'] == kind and 'error' not in r and r['e2e_s']]
        if ok:
            med[kind] = {
                'accept': statistics.median(rate(opts.messages, r['accept_s']) for r in ok),
                'e2e': statistics.median(rate(r['delivered'], r['e2e_s']) for r in ok),
                'cpu': statistics.median(sum(r['cpu']) for r in ok),
                'n': len(ok)}
    return med


def print_summary(runs, opts, skipped):
    med = medians(runs, opts)
    print('medians (%d rounds):' % opts.rounds)
    for kind in KINDS:
        if kind in skipped:
            print('  %-38s NOT RUN: %s' % (LABEL[kind], skipped[kind]))
        elif kind in med:
            m = med[kind]
            what = 'msg/s ceiling' if kind == 'sink' else 'end to end'
            print('  %-38s accept %5.0f msg/s  %s %5.0f msg/s  server CPU %.0f us/msg'
                  % (LABEL[kind], m['accept'], what, m['e2e'], m['cpu'] * 1e6 / opts.messages))
    for kind in ('direct', 'queue'):
        if kind not in med:
            continue
        parts = []
        if 'sink' in med:
            per = round_ratios(runs, kind, 'sink')
            parts.append('/ smtp-sink %.2f (target >= 0.6; by round %s)'
                         % (med[kind]['e2e'] / med['sink']['e2e'], per))
        if 'postfix' in med:
            per = round_ratios(runs, kind, 'postfix')
            parts.append('/ Postfix %.2fx (by round %s)' % (med[kind]['e2e'] / med['postfix']['e2e'], per))
        if parts:
            print('ratio %s end to end %s' % (LABEL[kind], '; '.join(parts)))
    for r in runs:
        if r.get('gen_rc'):
            print('  round %d %s: load generator exit %d: %s'
                  % (r['round'], LABEL[r['kind']], r['gen_rc'], r['gen_err']))
        for text, n in sorted(r.get('problems', {}).items(), key=lambda kv: -kv[1])[:3]:
            print('  round %d %s log: %dx %s' % (r['round'], LABEL[r['kind']], n, text))


def round_ratios(runs, kind, base):
    """e2e(kind) / e2e(base) within each round, as "0.61, 0.58"."""
    out = []
    for rnd in sorted({r['round'] for r in runs}):
        a = [r for r in runs if r['round'] == rnd and r['kind'] == kind and r.get('e2e_s')]
        b = [r for r in runs if r['round'] == rnd and r['kind'] == base and r.get('e2e_s')]
        if a and b:
            out.append('%.2f' % (rate(a[0]['delivered'], a[0]['e2e_s'])
                                 / rate(b[0]['delivered'], b[0]['e2e_s'])))
    return ', '.join(out) or '-'


# -- main --------------------------------------------------------------------------

def available(opts):
    """{kind: reason} for the rows that cannot run here."""
    skipped = {}
    if opts.gen == 'python' or not os.access(ol.SMTP_SINK, os.X_OK):
        skipped['sink'] = 'no smtp-sink (Postfix tools not obtained)'
    ok, why = lab.available('postfix')
    if not ok:
        skipped['postfix'] = why
    return skipped


def on_term(_sig, _frame):
    raise SystemExit(143)  # so that every finally stops its server


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tmpdir', required=True)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--messages', type=int, default=2000)
    ap.add_argument('--sessions', type=int, default=20)
    ap.add_argument('--size', type=int, default=4096)
    ap.add_argument('--gen', choices=('smtp-source', 'python'), default='smtp-source')
    ap.add_argument('--per-message-connect', action='store_true',
                    help='one connection per message (the generator without -d)')
    ap.add_argument('--timeout', type=float, default=180, help='per row, for the Maildir')
    ap.add_argument('--only', default=','.join(KINDS))
    ap.add_argument('--logdir', default=os.path.join(REPO, 'build', 'bench-logs'))
    opts = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    os.makedirs(opts.logdir, exist_ok=True)
    work = os.path.abspath(opts.tmpdir)
    tempfile.tempdir = work  # the peer lab's Postfix directory goes there too
    skipped = available(opts)
    kinds = [k for k in KINDS if k in opts.only.split(',') and k not in skipped]
    for k, why in skipped.items():
        say('%s: not run: %s' % (LABEL[k], why))
    runs, rc = [], 0
    for rnd in range(1, opts.rounds + 1):
        for kind in kinds:
            say('round %d: %s' % (rnd, LABEL[kind]))
            try:
                r = one_run(kind, opts, work)
            except (OSError, RuntimeError, lab.PeerError, subprocess.SubprocessError) as e:
                r = {'kind': kind, 'error': str(e).replace('\n', ' ')}
            r['round'] = rnd
            if 'error' in r or r['gen_rc'] or r['delivered'] < opts.messages:
                rc = 1
            say('  %s' % {k: v for k, v in r.items() if k not in ('problems', 'gen_err')})
            runs.append(r)
    print_table(runs, opts)
    print_summary(runs, opts, skipped)
    return rc


if __name__ == '__main__':
    sys.exit(main())
