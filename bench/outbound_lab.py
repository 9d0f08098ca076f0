#!/usr/bin/env python3
"""outbound_lab.py - outbound delivery figures: relayguard against Postfix,
both relaying to the same smtp-sink (bench/outbound.sh runs this; see the
"Outbound delivery" section of bench/README.md).

It only reports: no timing assertion.  Everything runs on loopback:

  smtp-source ─▶ relayguard 127.0.0.1:P ─▶ smtp-sink 127.0.0.5:S
                 (bench.test MX 10 mx.bench.test, A 127.0.0.5, from a
                  dnsmasq on 127.0.0.1; smtp_tcp_port = S)
  smtp-source ─▶ relayguard 127.0.0.1:P ─▶ smtp-sink      (transport_maps
                  inline:{bench.test=smtp:[127.0.0.5]:S}, no MX lookup)
  smtp-source ─▶ Postfix 127.0.0.1:P    ─▶ smtp-sink      (relayhost
                  [127.0.0.5]:S; the peer lab's Postfix, tests/peers/lab.py)

The runs are interleaved round by round (relayguard MX, Postfix, relayguard
transport_maps, then again), each with a fresh server, queue and sink, so
the noise of a shared machine falls on all of them alike.

Then the deferred-queue figures: N queue files written straight into
relayguard's deferred/ (not due: mtime a day ahead), and relayguard started
on them: time to "listening", time to a 250 for a new message, VmHWM after
5 s and after an idle period; then the same N files all due, delivered to a
sink, with the memory and the delivery rate over time: once with the
defaults (qmgr_message_active_limit 20000, queue_run_delay 300s), once
("due-small") with 5000 and 5s.

usage: python3 bench/outbound_lab.py [--rounds 2] [--messages 2000]
        [--sessions 20] [--size 4096] [--deferred 100000] [--due-timeout 120]
        [--only rg-mx,postfix,rg-tmaps,deferred,due,due-small]
Tools: smtp-source and smtp-sink from the Postfix .deb unpacked under
build/bench-tools (bench/outbound.sh fetches it).  Needs root (the peer lab).
"""
import argparse
import os
import pwd
import re
import resource
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'peers'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))
import lab  # noqa: E402
from dnslab import DnsLab  # noqa: E402

BIN = os.environ.get('BENCH_BIN', os.path.join(REPO, 'build', 'relayguard'))
TOOLS = os.environ.get('BENCH_TOOLS', os.path.join(REPO, 'build', 'bench-tools'))
SMTP_SOURCE = os.path.join(TOOLS, 'usr/sbin/smtp-source')
SMTP_SINK = os.path.join(TOOLS, 'usr/sbin/smtp-sink')
TOOLS_ENV = dict(os.environ, LD_LIBRARY_PATH=os.path.join(TOOLS, 'usr/lib/postfix'))
SINK_IP = '127.0.0.5'
DOMAIN = 'bench.test'
MX_HOST = 'mx.bench.test'
SINK_NAME = 'sink.bench.test'  # not our own name: no "mail loops back to myself"
HZ = os.sysconf('SC_CLK_TCK')


def say(msg):
    print('bench-outbound: %s' % msg, file=sys.stderr, flush=True)


def free_port(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# -- /proc ---------------------------------------------------------------------

def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (field 3 is [0])."""
    with open('/proc/%d/stat' % pid) as f:
        return f.read().rsplit(')', 1)[1].split()


def status_kib(pid, field):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    try:
        with open('/proc/%d/smaps_rollup' % pid) as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def session_pids(sid):
    """Every process whose session id is sid (a Postfix master started with
    start_new_session is its session leader, and every daemon is its child)."""
    out = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            if int(stat_fields(int(name))[3]) == sid:
                out.append(int(name))
        except (OSError, IndexError, ValueError):
            pass
    return out


def tree_cpu(pids, leader):
    """CPU seconds (user, system) used so far by the processes pids, plus
    what the leader's reaped children used (cutime/cstime): Postfix daemons
    come and go during a run, and master reaps them."""
    u = s = 0
    for pid in pids:
        try:
            f = stat_fields(pid)
        except OSError:
            continue
        u += int(f[11])
        s += int(f[12])
        if pid == leader:
            u += int(f[13])
            s += int(f[14])
    return u / HZ, s / HZ


class MemSampler:
    """Samples, every interval, the sum of VmRSS and of Pss over a set of
    processes (a callable returns the pids); keeps the peaks."""

    def __init__(self, pids_fn, interval=0.2):
        self.pids_fn, self.interval = pids_fn, interval
        self.peak_rss = self.peak_pss = self.peak_procs = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            rss = pss = n = 0
            for pid in self.pids_fn():
                try:
                    rss += status_kib(pid, 'VmRSS')
                except OSError:
                    continue
                pss += pss_kib(pid)
                n += 1
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, n)
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._t.join()


# -- smtp-sink -------------------------------------------------------------------

class Sink:
    """Postfix's smtp-sink on SINK_IP:port, counting messages (-c prints
    "sess=N quit=N mesg=N" at each end of DATA); the time of each new count
    is noted as the line arrives."""

    def __init__(self):
        self.port = free_port(SINK_IP)
        self.count = 0
        self.first = self.last = None
        self.times = []  # (time, count) at each change
        self.proc = subprocess.Popen(
            [SMTP_SINK, '-c', '-h', SINK_NAME, '-u', 'nobody', '%s:%d' % (SINK_IP, self.port),
             '1024'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=TOOLS_ENV)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection((SINK_IP, self.port), timeout=2) as s:
                    if s.recv(64).startswith(b'220'):
                        s.sendall(b'QUIT\r\n')
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError('smtp-sink did not start: %s' % self.proc.stderr.read())

    def _read(self):
        buf = b''
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            now = time.time()
            if not chunk:
                return
            buf += chunk
            *parts, buf = buf.split(b'\r')
            for p in parts:
                m = re.search(rb'mesg=(\d+)', p)
                if m and int(m.group(1)) != self.count:
                    self.count = int(m.group(1))
                    self.first = self.first or now
                    self.last = now
                    self.times.append((now, self.count))

    def wait(self, n, timeout):
        deadline = time.time() + timeout
        while self.count < n and time.time() < deadline and self.proc.poll() is None:
            time.sleep(0.01)
        return self.count

    def count_at(self, t):
        c = 0
        for when, n in self.times:
            if when > t:
                break
            c = n
        return c

    def close(self):
        stop_proc(self.proc)
        self._t.join(5)


def stop_proc(proc, timeout=10):
    """SIGTERM to this PID, SIGKILL if it has not exited within timeout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- relayguard ------------------------------------------------------------------

def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else max(hard, 4096)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        pass


class Relayguard:
    """relayguard serve on 127.0.0.1:port with its queue under dir."""

    def __init__(self, dirpath, extra, start_timeout=30):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)
        os.chmod(dirpath, 0o755)
        self.port = free_port('127.0.0.1')
        self.queue = os.path.join(dirpath, 'queue')
        self.cf = os.path.join(dirpath, 'relayguard.cf')
        self.log_path = os.path.join(dirpath, 'relayguard.log')
        conf = {
            'smtpd_listen': '127.0.0.1:%d' % self.port,
            # no fixed ports (2587, 2465 by default): other servers may hold them
            'submission_listen': '',
            'submissions_listen': '',
            'queue_directory': self.queue,
            'virtual_mailbox_base': os.path.join(dirpath, 'mail'),
            'mynetworks': '127.0.0.0/8',
            'mydestination': 'localhost',
            'local_recipient_maps': 'inline:{postmaster}',
            'message_size_limit': '52428800',
            'smtpd_client_connection_count_limit': '1000',
            'smtpd_peername_lookup': 'no',
            'default_transport': 'smtp',
            'data_directory': os.path.join(dirpath, 'data'),
            # smtp-sink offers no STARTTLS, smtp-source does not use it, and the
            # lab's Postfix has TLS off both ways: the same here
            'smtp_tls_security_level': 'none',
            'smtpd_tls_security_level': 'none',
        }
        conf.update(extra)
        with open(self.cf, 'w') as f:
            f.write('# relayguard outbound bench, generated by bench/outbound_lab.py\n')
            f.write(''.join('%s = %s\n' % kv for kv in conf.items()))
        os.chmod(self.cf, 0o644)
        self.t_spawn = time.time()
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen([BIN, 'serve', '-c', self.cf], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, preexec_fn=raise_nofile)
        self.pid = self.proc.pid
        self.t_listening = self._wait_log('listening', start_timeout)
        if self.t_listening is None:
            self.stop()
            raise RuntimeError('relayguard did not report listening:\n%s' % self.tail(20))

    def _wait_log(self, word, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            if word in self.text():
                return time.time()
            time.sleep(0.005)
        return None

    def text(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def tail(self, n):
        return ''.join(self.text().splitlines(True)[-n:])

    def problems(self):
        """Log lines that are not info/debug, counted by their text."""
        counts = {}
        for line in self.text().splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 2 and parts[1] not in ('info', 'debug'):
                key = re.sub(r'\b[0-9A-F]{16}\b', 'ID', parts[2] if len(parts) > 2 else '')[:150]
                counts[key] = counts.get(key, 0) + 1
        return counts

    def queue_files(self):
        n = 0
        for sub in ('active', 'deferred', 'tmp'):
            try:
                n += len(os.listdir(os.path.join(self.queue, sub)))
            except FileNotFoundError:
                pass
        return n

    def pids(self):
        return [self.pid] if self.proc.poll() is None else []

    def cpu(self):
        return tree_cpu(self.pids(), self.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                say('relayguard %d did not stop after SIGTERM; SIGKILL' % self.pid)
                self.proc.kill()
                self.proc.wait()


# -- Postfix (the peer lab's, relaying to the sink) ---------------------------------

class BenchPostfix(lab.Peer):
    """The lab's Postfix in mode secure (127.0.0.1 is its trusted network),
    with relayhost = [SINK_IP]:sink_port: every non-local domain goes there."""

    def __init__(self, sink_port, **kw):
        self.sink_port = sink_port
        super().__init__('postfix', 'secure', **kw)

    def _setup_postfix(self):
        argv, env = super()._setup_postfix()
        path = os.path.join(self.dir, 'conf', 'main.cf')
        with open(path) as f:
            lines = [ln for ln in f if not ln.startswith('relayhost ')]
        lines.append('relayhost = [%s]:%d\n' % (SINK_IP, self.sink_port))
        with open(path, 'w') as f:
            f.writelines(lines)
        return argv, env

    def pids(self):
        return session_pids(self.proc.pid) if self.alive() else []

    def cpu(self):
        return tree_cpu(self.pids(), self.proc.pid)

    def queue_files(self):
        n = 0
        for sub in ('incoming', 'active', 'deferred', 'maildrop'):
            for _root, _dirs, files in os.walk(os.path.join(self.dir, 'queue', sub)):
                n += len(files)
        return n

    def problems(self):
        counts = {}
        try:
            with open(os.path.join(self.dir, 'log', 'maillog'), errors='replace') as f:
                for line in f:
                    m = re.search(r'(warning|error|fatal|panic): (.*)', line)
                    if m:
                        key = m.group(0)[:150]
                        counts[key] = counts.get(key, 0) + 1
        except FileNotFoundError:
            pass
        return counts


# -- one throughput run ----------------------------------------------------------

def smtp_source_cmd(opts, port, extra=()):
    # -d: keep each session's connection for its next message; -M: HELO name
    # and default address domain; without -A, a non-2xx/3xx reply aborts it.
    return [SMTP_SOURCE, '-d', '-s', str(opts.sessions), '-m', str(opts.messages),
            '-l', str(opts.size), '-M', 'client.example', '-f', 'bench@example.org',
            '-t', 'user@%s' % DOMAIN] + list(extra) + ['127.0.0.1:%d' % port]


def throughput_run(kind, opts, work, dns):
    """One run: fresh sink, fresh server; returns a dict of figures."""
    sink = Sink()
    server = None
    res = {'kind': kind}
    try:
        t_start = time.time()
        if kind == 'postfix':
            server = BenchPostfix(sink.port)
        else:
            extra = {'dns_servers': dns.servers, 'smtp_tcp_port': str(sink.port)}
            if kind == 'rg-tmaps':
                extra['transport_maps'] = 'inline:{%s=smtp:[%s]:%d}' % (DOMAIN, SINK_IP, sink.port)
            server = Relayguard(tempfile.mkdtemp(prefix=kind + '-', dir=work), extra)
        res['startup_s'] = time.time() - t_start
        sampler = MemSampler(server.pids)
        cpu0 = server.cpu()
        t0 = time.time()
        gen = subprocess.run(smtp_source_cmd(opts, server.port), env=TOOLS_ENV,
                             capture_output=True, text=True, errors='replace', timeout=600)
        t1 = time.time()
        got = sink.wait(opts.messages, opts.timeout)
        # settled: the queue is empty again (or the wait gives up)
        deadline = time.time() + 30
        while server.queue_files() and time.time() < deadline:
            time.sleep(0.02)
        cpu1 = server.cpu()
        sampler.stop()
        res.update(
            gen_rc=gen.returncode, gen_err=(gen.stdout + gen.stderr).strip()[-300:],
            accept_s=t1 - t0, e2e_s=(sink.last or time.time()) - t0, delivered=got,
            first_delivery_s=(sink.first - t0) if sink.first else None,
            at_accept_end=sink.count_at(t1),
            cpu_user=cpu1[0] - cpu0[0], cpu_sys=cpu1[1] - cpu0[1],
            peak_rss_kib=sampler.peak_rss, peak_pss_kib=sampler.peak_pss,
            peak_procs=sampler.peak_procs, left=server.queue_files(),
            problems=server.problems())
        if kind != 'postfix':
            res['hwm_kib'] = status_kib(server.pid, 'VmHWM')
        return res
    finally:
        if server is not None:
            if kind == 'postfix':
                server.close()
            else:
                server.stop()
        sink.close()


# -- the deferred queue ----------------------------------------------------------

def body_text(i, size):
    head = ('Received: from client.example (localhost [127.0.0.1])\r\n'
            '\tby bench.example with ESMTP id %d; Fri, 04 Dec 2026 12:00:00 +0000\r\n'
            'From: bench@example.org\r\nTo: user@%s\r\nSubject: deferred %d\r\n'
            'Message-Id: <%d@bench.example>\r\n\r\n' % (i, DOMAIN, i, i))
    line = 'x' * 76 + '\r\n'
    fill = line * max(0, (size - len(head)) // len(line))
    return (head + fill).encode()


def write_queue(queue, n, size, mtime, owner):
    """n queue files (format 2 of src/queue/queue.c, one remote recipient
    user@bench.test each) in queue/deferred/, mtime = their next try, owned
    by owner (as mail_owner's queue would be: else the server's start-up
    chown walk over the tree would be measured too)."""
    uid, gid = owner
    for sub in ('tmp', 'active', 'deferred', 'corrupt', 'hold'):
        os.makedirs(os.path.join(queue, sub), mode=0o700, exist_ok=True)
        os.chown(os.path.join(queue, sub), uid, gid)
    os.chown(queue, uid, gid)
    base = int(time.time() * 1e6) - n - 10
    arrival = int(time.time()) - 3600
    dfd = os.open(os.path.join(queue, 'deferred'), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(n):
            qid = '%016X' % (base + i)
            body = body_text(i, size)
            head = ('RGQ2\nid %s\narrival %d\nclient 127.0.0.1 localhost\nhelo client.example\n'
                    'sender bench@example.org\nrcpt P R user %s user@%s\nsize %d\n\n'
                    % (qid, arrival, DOMAIN, DOMAIN, len(body)))
            fd = os.open(qid, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dfd)
            os.write(fd, head.encode() + body)
            os.fchown(fd, uid, gid)
            os.utime(fd, (mtime, mtime))
            os.close(fd)
    finally:
        os.close(dfd)


def one_message(port):
    """Seconds until a new message gets its 250 (from connect)."""
    t = time.time()
    with smtplib.SMTP('127.0.0.1', port, timeout=60) as s:
        s.sendmail('bench@example.org', ['user@%s' % DOMAIN],
                   'Subject: new\r\n\r\nnew message during the deferred bench\r\n')
    return time.time() - t


def deferred_run(opts, work, dns, owner):
    """relayguard started on opts.deferred files that are not due."""
    d = tempfile.mkdtemp(prefix='deferred-', dir=work)
    sink = Sink()
    res = {}
    try:
        t = time.time()
        write_queue(os.path.join(d, 'queue'), opts.deferred, opts.size,
                    time.time() + 86400, owner)
        res['write_s'] = time.time() - t
        t0 = time.time()
        rg = Relayguard(d, {'dns_servers': dns.servers, 'smtp_tcp_port': str(sink.port)})
        try:
            res['listening_s'] = rg.t_listening - rg.t_spawn
            res['first_250_s'] = time.time() - rg.t_spawn + one_message(rg.port)
            res['hwm_start_kib'] = status_kib(rg.pid, 'VmHWM')
            time.sleep(max(0, 5 - (time.time() - t0)))
            res['hwm_5s_kib'] = status_kib(rg.pid, 'VmHWM')
            res['rss_5s_kib'] = status_kib(rg.pid, 'VmRSS')
            time.sleep(opts.idle)
            res['hwm_idle_kib'] = status_kib(rg.pid, 'VmHWM')
            res['rss_idle_kib'] = status_kib(rg.pid, 'VmRSS')
            res['idle_s'] = time.time() - t0
            res['cpu'] = rg.cpu()
            res['sink'] = sink.count
            res['problems'] = rg.problems()
            shutil.copy(rg.log_path, os.path.join(opts.logdir, 'deferred.log'))
        finally:
            rg.stop()
    finally:
        sink.close()
        shutil.rmtree(d, ignore_errors=True)
    return res


def due_run(opts, work, dns, owner, settings):
    """relayguard started on opts.deferred files that are all due, with
    settings (qmgr_message_active_limit, queue_run_delay...), delivering to a sink."""
    d = tempfile.mkdtemp(prefix='due-', dir=work)
    sink = Sink()
    res = {}
    try:
        write_queue(os.path.join(d, 'queue'), opts.deferred, opts.size, time.time() - 60, owner)
        extra = {'dns_servers': dns.servers, 'smtp_tcp_port': str(sink.port)}
        extra.update(settings)
        rg = Relayguard(d, extra)
        sampler = MemSampler(rg.pids, 0.5)
        try:
            res['listening_s'] = rg.t_listening - rg.t_spawn
            t0 = rg.t_spawn
            res['first_250_s'] = time.time() - t0 + one_message(rg.port)
            want = opts.deferred + 1
            marks = []  # (seconds since exec, sink count, VmHWM, VmRSS)
            for mark in (2, 5, 10, 20, 30, 60, 90, 120, 180, 240, 300, 420, 600):
                if mark > opts.due_timeout:
                    break
                while time.time() - t0 < mark and sink.count < want:
                    time.sleep(0.1)
                marks.append((time.time() - t0, sink.count, status_kib(rg.pid, 'VmHWM'),
                              status_kib(rg.pid, 'VmRSS')))
                if sink.count >= want:
                    break
            # the files of the last deliveries are still being settled (unlinked)
            deadline = time.time() + 60
            while sink.count >= want and rg.queue_files() and time.time() < deadline:
                time.sleep(0.1)
            res['empty_s'] = time.time() - t0 if not rg.queue_files() else None
            res['marks'] = marks
            res['delivered'] = sink.count
            res['last_s'] = (sink.last - t0) if sink.last else None
            res['first_s'] = (sink.first - t0) if sink.first else None
            res['hwm_kib'] = status_kib(rg.pid, 'VmHWM')
            res['cpu'] = rg.cpu()
            res['left'] = rg.queue_files()
            res['problems'] = rg.problems()
            shutil.copy(rg.log_path, os.path.join(
                opts.logdir, 'due-%s.log' % settings.get('qmgr_message_active_limit', 'default')))
        finally:
            sampler.stop()
            rg.stop()
        res['peak_rss_sampled_kib'] = sampler.peak_rss
    finally:
        sink.close()
        shutil.rmtree(d, ignore_errors=True)
    return res


# -- report --------------------------------------------------------------------------

LABEL = {'rg-mx': 'relayguard (MX via dnsmasq)', 'rg-tmaps': 'relayguard (transport_maps)',
         'postfix': 'Postfix 3.7 (relayhost)'}


def mib(kib):
    return '%.1f' % (kib / 1024.0) if kib else '-'


def print_throughput(runs, opts):
    print('\n## end to end: smtp-source -> server -> smtp-sink, %d msgs x %d B, %d sessions'
          % (opts.messages, opts.size, opts.sessions))
    head = ('run', 'server', 'accept msg/s', 'e2e msg/s', 'e2e s', 'sink got', 'at src end',
            'CPU user+sys s',
            'peak RSS MiB', 'peak PSS MiB', 'procs', 'left', 'start s')
    rows = []
    for i, r in enumerate(runs, 1):
        if 'error' in r:
            rows.append((str(i), LABEL[r['kind']], 'FAILED: ' + r['error'][:60]) + ('',) * 10)
            continue
        peak = r.get('hwm_kib') or r['peak_rss_kib']
        rows.append((str(i), LABEL[r['kind']], '%.0f' % (opts.messages / r['accept_s']),
                     '%.0f' % (r['delivered'] / r['e2e_s']), '%.2f' % r['e2e_s'],
                     str(r['delivered']), str(r['at_accept_end']),
                     '%.2f+%.2f' % (r['cpu_user'], r['cpu_sys']),
                     mib(peak), mib(r['peak_pss_kib']), str(r['peak_procs']), str(r['left']),
                     '%.2f' % r['startup_s']))
    widths = [max(len(x[k]) for x in rows + [head]) for k in range(len(head))]
    fmt = ' | '.join('%%-%ds' % w for w in widths)
    print(fmt % head)
    print(fmt % tuple('-' * w for w in widths))
    for row in rows:
        print(fmt % row)
    print('\nmedians:')
    med = {}
    for kind in ('rg-mx', 'rg-tmaps', 'postfix'):
        ok = [r for r in runs if r['kind'] == kind and 'error' not in r]
        if not ok:
            continue
        m = {
            'accept': statistics.median(opts.messages / r['accept_s'] for r in ok),
            'e2e': statistics.median(r['delivered'] / r['e2e_s'] for r in ok),
            'cpu': statistics.median(r['cpu_user'] + r['cpu_sys'] for r in ok),
            'rss': statistics.median((r.get('hwm_kib') or r['peak_rss_kib']) for r in ok),
            'pss': statistics.median(r['peak_pss_kib'] for r in ok),
        }
        med[kind] = m
        print('  %-28s accept %5.0f msg/s  end-to-end %5.0f msg/s  CPU %5.2f s (%.0f us/msg)'
              '  peak RSS %s MiB  peak PSS %s MiB  (%d runs)'
              % (LABEL[kind], m['accept'], m['e2e'], m['cpu'], m['cpu'] * 1e6 / opts.messages,
                 mib(m['rss']), mib(m['pss']), len(ok)))
    if 'postfix' in med:
        for kind in ('rg-mx', 'rg-tmaps'):
            if kind in med:
                print('  %s / Postfix end-to-end: %.2fx (target >= 3x); peak RSS %s MiB'
                      ' (target < 64 MiB)' % (LABEL[kind], med[kind]['e2e'] / med['postfix']['e2e'],
                                              mib(med[kind]['rss'])))
    for r in runs:
        if r.get('gen_rc'):
            print('  run %s: smtp-source exit %d: %s' % (LABEL[r['kind']], r['gen_rc'], r['gen_err']))
        for text, n in sorted(r.get('problems', {}).items(), key=lambda kv: -kv[1])[:3]:
            print('  run %s log: %dx %s' % (LABEL[r['kind']], n, text))


def print_deferred(res, opts):
    print('\n## relayguard started on %d deferred messages (not due; %d B each)'
          % (opts.deferred, opts.size))
    print('  queue files written in %.1f s' % res['write_s'])
    print('  "listening" logged %.3f s after exec; a new message got 250 %.3f s after exec'
          % (res['listening_s'], res['first_250_s']))
    print('  VmHWM %s MiB at the 250, %s MiB after 5 s (VmRSS %s), %s MiB after %.0f s idle'
          ' (VmRSS %s); CPU %.2f+%.2f s; sink got %d (the new message)'
          % (mib(res['hwm_start_kib']), mib(res['hwm_5s_kib']), mib(res['rss_5s_kib']),
             mib(res['hwm_idle_kib']), res['idle_s'], mib(res['rss_idle_kib']),
             res['cpu'][0], res['cpu'][1], res['sink']))
    for text, n in sorted(res['problems'].items(), key=lambda kv: -kv[1])[:3]:
        print('  log: %dx %s' % (n, text))


def print_due(res, opts, settings):
    print('\n## relayguard started on %d deferred messages, all due, delivering to smtp-sink (%s)'
          % (opts.deferred, ', '.join('%s = %s' % kv for kv in settings.items())
             or 'qmgr_message_active_limit 20000, queue_run_delay 300s: the defaults'))
    print('  "listening" after %.3f s; a new message got 250 %.3f s after exec'
          % (res['listening_s'], res['first_250_s']))
    for secs, count, hwm, rss in res['marks']:
        print('  t=%6.1fs: sink got %6d  VmHWM %6s MiB  VmRSS %6s MiB'
              % (secs, count, mib(hwm), mib(rss)))
    if res['first_s'] is not None:
        span = (res['last_s'] - res['first_s']) or 1
        print('  first delivery at %.2f s, last at %.2f s: %d delivered, %.0f msg/s between;'
              ' %d queue files left%s; CPU %.2f+%.2f s; VmHWM %s MiB'
              % (res['first_s'], res['last_s'], res['delivered'], res['delivered'] / span,
                 res['left'], ' (queue empty at %.1f s)' % res['empty_s'] if res['empty_s'] else '',
                 res['cpu'][0], res['cpu'][1], mib(res['hwm_kib'])))
    for text, n in sorted(res['problems'].items(), key=lambda kv: -kv[1])[:3]:
        print('  log: %dx %s' % (n, text))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rounds', type=int, default=int(os.environ.get('BENCH_ROUNDS', 2)))
    ap.add_argument('--messages', type=int, default=int(os.environ.get('BENCH_MESSAGES', 2000)))
    ap.add_argument('--sessions', type=int, default=int(os.environ.get('BENCH_SESSIONS', 20)))
    ap.add_argument('--size', type=int, default=int(os.environ.get('BENCH_SIZE', 4096)))
    ap.add_argument('--deferred', type=int, default=int(os.environ.get('BENCH_DEFERRED', 100000)))
    ap.add_argument('--idle', type=float, default=20, help='idle seconds in the deferred run')
    ap.add_argument('--due-timeout', type=float, default=120)
    ap.add_argument('--timeout', type=float, default=180, help='per run, for the sink')
    ap.add_argument('--only', default='rg-mx,postfix,rg-tmaps,deferred,due,due-small')
    ap.add_argument('--tmpdir', default=os.environ.get('BENCH_TMPDIR', '/tmp'))
    ap.add_argument('--logdir', default=os.path.join(REPO, 'build', 'bench-logs'))
    opts = ap.parse_args()
    only = opts.only.split(',')
    if os.geteuid() != 0:
        say('needs root (the peer lab starts Postfix as root)')
        return 1
    for tool in (SMTP_SOURCE, SMTP_SINK, BIN):
        if not os.access(tool, os.X_OK):
            say('%s missing (bench/outbound.sh fetches the tools; make builds relayguard)' % tool)
            return 1
    if 'postfix' in only:
        ok, why = lab.available('postfix')
        if not ok:
            say('Postfix cannot run: %s' % why)
            return 1
    try:
        pw = pwd.getpwnam('relayguard')
        owner = (pw.pw_uid, pw.pw_gid)
    except KeyError:
        say('no relayguard user (mail_owner): run sh scripts/deps.sh')
        return 1
    os.makedirs(opts.logdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix='relayguard-outbound.', dir=opts.tmpdir)
    os.chmod(work, 0o755)
    tempfile.tempdir = work  # the peer lab's Postfix directories go there too
    dns = DnsLab(mx={DOMAIN: [(10, MX_HOST)]}, hosts={MX_HOST: [SINK_IP]})
    dns.start()
    rc = 0
    try:
        fs = subprocess.run(['df', '-PT', work], capture_output=True, text=True).stdout.split('\n')
        print('relayguard outbound bench (%s, %s, %d cores, %s, queues on %s; shared machine:'
              ' figures are noisy)' % (time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime()),
                                       socket.gethostname(), os.cpu_count(), os.uname().release,
                                       fs[1].split()[1] if len(fs) > 1 else '?'))
        print('load: smtp-source -d -s %d -m %d -l %d (Postfix %s tools); sink: smtp-sink -c on %s'
              % (opts.sessions, opts.messages, opts.size, postfix_version(), SINK_IP))
        runs = []
        kinds = [k for k in ('rg-mx', 'postfix', 'rg-tmaps') if k in only]
        for rnd in range(1, opts.rounds + 1):
            for kind in kinds:
                say('round %d: %s' % (rnd, LABEL[kind]))
                try:
                    r = throughput_run(kind, opts, work, dns)
                except Exception as e:  # noqa: BLE001 - reported in the table
                    r = {'kind': kind, 'error': str(e)}
                    rc = 1
                say('  %s' % {k: v for k, v in r.items() if k != 'problems'})
                if r.get('delivered', 0) < opts.messages:
                    rc = 1
                runs.append(r)
        if runs:
            print_throughput(runs, opts)
        if 'deferred' in only:
            say('deferred: writing %d queue files' % opts.deferred)
            print_deferred(deferred_run(opts, work, dns, owner), opts)
        for name, settings in (('due', {}),
                               ('due-small', {'qmgr_message_active_limit': '5000',
                                              'queue_run_delay': '5s'})):
            if name in only:
                say('%s: writing %d queue files, all due' % (name, opts.deferred))
                print_due(due_run(opts, work, dns, owner, settings), opts, settings)
    finally:
        dns.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    if rc:
        print('run INCOMPLETE: see the lines above')
    return rc


def postfix_version():
    m = re.search(r'postfix_([^_]+)_', ' '.join(os.listdir(TOOLS)))
    return m.group(1) if m else '?'


if __name__ == '__main__':
    sys.exit(main())
