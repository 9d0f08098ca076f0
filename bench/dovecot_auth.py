#!/usr/bin/env python3
"""dovecot_auth.py - how long one SMTP AUTH check through a real Dovecot takes.

usage: python3 bench/dovecot_auth.py [N]     (from the repo root, as root;
                                              needs make tools and dovecot-core)

Starts the test lab's Dovecot (tests/integration/dovecot_lab.py) and runs N
(1000) verifications through src/auth/dovecot.c with the driver
build/tools/dovecot_auth_check, per password scheme: one after another (the
latency one SMTP client sees) and all at once on one connection (throughput).
Reports only; asserts nothing.
"""
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))
import dovecot_lab  # noqa: E402

DRIVER = os.path.join(REPO, 'build', 'tools', 'dovecot_auth_check')
USERS = {
    'sha512@example.com': ('bench-pw', 'SHA512-CRYPT'),
    'blf@example.com': ('bench-pw', 'BLF-CRYPT'),
    'plain@example.com': ('bench-pw', 'PLAIN'),
}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    reason = dovecot_lab.skip_reason()
    if reason or not os.access(DRIVER, os.X_OK):
        print('dovecot bench: cannot run: %s' % (reason or DRIVER + ' not built (make tools)'))
        return 1
    with dovecot_lab.Dovecot(users=USERS) as dv:
        for user, (password, scheme) in USERS.items():
            for path in (dv.socket_path, dv.inet):
                kind = 'unix' if path == dv.socket_path else 'inet'
                out = subprocess.run([DRIVER, '-S', '-n', str(n), path, user, password],
                                     capture_output=True, text=True, timeout=600)
                ok = out.stdout.count('OK user=')
                figure = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else '?'
                print('dovecot %-12s %-4s sequential: %s (%d/%d OK)' % (scheme, kind, figure, ok, n))
            t0 = time.monotonic()
            out = subprocess.run([DRIVER, '-t', '60', '-n', str(n), dv.socket_path, user, password],
                                 capture_output=True, text=True, timeout=600)
            dt = time.monotonic() - t0
            ok = out.stdout.count('OK user=')
            print('dovecot %-12s unix concurrent: %d requests in %.3f s, %.0f/s (%d OK; '
                  'includes process start)' % (scheme, n, dt, n / dt, ok))
    return 0


if __name__ == '__main__':
    sys.exit(main())
