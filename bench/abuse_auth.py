#!/usr/bin/env python3
"""abuse_auth.py - failed AUTH attempts per second that two relayguard
instances sustain, with their failures counted in one Redis, and without.

usage: python3 bench/abuse_auth.py [SECONDS] [THREADS]   (from the repo root,
                                                         as root; make build/relayguard,
                                                         redis-server installed)

Starts a redis-server and two relayguard instances on loopback (the
integration harness), then THREADS (8) clients, each from its own 127.0.0.x,
half on each instance, send wrong passwords (AUTH PLAIN over implicit TLS,
10 per connection) for SECONDS (10). smtpd_sasl_failure_limit is at its
maximum and smtpd_sasl_failure_delay 0, so nothing is locked out or slowed:
the figure is what the servers (password hash, TLS, Redis) sustain. Then the
same without shared_state. Checks that Redis counted every attempt (the sum
of rg:authfail:*). Reports only; asserts nothing else.
"""
import os
import shutil
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))
import harness  # noqa: E402
from harness import Conn, Server  # noqa: E402
from test_abuse import Redis, redis_cmd  # noqa: E402
from test_msa import make_passwd, msa_overrides, plain  # noqa: E402

USERS = {'alice@example.com': ('SHA512-CRYPT', 'alice-secret')}


def hammer(srv, source, stop, counts, i):
    while not stop.is_set():
        try:
            with Conn(srv.subs_port, source=source, tls=True, timeout=10) as c:
                c.cmd('EHLO bench.example.org')
                for _ in range(10):
                    code, _ = c.cmd('AUTH PLAIN ' + plain('alice@example.com', 'wrong'))
                    if code != 535:
                        break
                    counts[i] += 1
                    if stop.is_set():
                        break
        except (OSError, AssertionError):
            time.sleep(0.01)


def run(seconds, threads, shared):
    tmp = tempfile.mkdtemp(prefix='relayguard-authbench-')
    os.chmod(tmp, 0o755)
    passwd = os.path.join(tmp, 'passwd')
    make_passwd(passwd, USERS)
    o = msa_overrides(passwd, smtpd_sasl_failure_limit='1000000',
                      smtpd_sasl_failure_window='1h', shared_state=shared or '')
    servers = [Server(overrides=o), Server(overrides=o)]
    try:
        if shared:
            for srv in servers:
                srv.wait_log(r'shared-state-caught-up ', timeout=30)
        stop = threading.Event()
        counts = [0] * threads
        ts = [threading.Thread(target=hammer, args=(servers[i % 2], '127.0.0.%d' % (20 + i),
                                                    stop, counts, i)) for i in range(threads)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in ts:
            t.join()
        elapsed = time.monotonic() - t0
        return sum(counts), elapsed
    finally:
        for srv in servers:
            srv.stop(check=False)
            srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def authfail_total(port):
    keys = redis_cmd(port, 'KEYS', 'rg:authfail:*').split(b'\r\n')
    total = 0
    for k in keys:
        if k.startswith(b'rg:authfail:'):
            v = redis_cmd(port, 'GET', k.decode()).split(b'\r\n')
            total += int(v[1]) if len(v) > 1 and v[1].isdigit() else 0
    return total


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    if shutil.which('redis-server') is None:
        print('abuse_auth: redis-server not installed (sh scripts/deps.sh test)')
        return 1
    redis = Redis()
    try:
        n, t = run(seconds, threads, 'redis://127.0.0.1:%d/0' % redis.port)
        counted = authfail_total(redis.port)
        print('two instances, one Redis: %d failed AUTH in %.1f s: %.0f/s '
              '(Redis counted %d)' % (n, t, n / t, counted))
    finally:
        redis.cleanup()
    n, t = run(seconds, threads, None)
    print('two instances, no shared_state: %d failed AUTH in %.1f s: %.0f/s' % (n, t, n / t))
    return 0


if __name__ == '__main__':
    sys.exit(main())
