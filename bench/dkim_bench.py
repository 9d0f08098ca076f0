"""dkim_bench.py - python3-dkim (dkimpy) verifying the messages dkim_bench wrote.

    /usr/bin/python3 bench/dkim_bench.py DIR

Same messages, same two signatures each, keys from DIR/zone.txt in memory
(no DNS for either side). Prints dkimpy's time and the ratio to relayguard's
(DIR/verify_seconds).
"""
import glob
import os
import sys
import time

import dkim


def main(d):
    zone = {}
    with open(os.path.join(d, 'zone.txt')) as f:
        for line in f:
            name, rec = line.rstrip('\n').split('\t', 1)
            zone[name.encode()] = rec.encode()

    def dnsfunc(name, timeout=5):
        return zone.get(name.rstrip(b'.'))

    msgs = [open(p, 'rb').read() for p in sorted(glob.glob(os.path.join(d, 'msg-*.eml')))]
    t0 = time.monotonic()
    bad = 0
    for m in msgs:
        v = dkim.DKIM(m)
        bad += not (v.verify(idx=0, dnsfunc=dnsfunc) and v.verify(idx=1, dnsfunc=dnsfunc))
    t = time.monotonic() - t0
    ours = float(open(os.path.join(d, 'verify_seconds')).read())
    print('dkimpy verify (both signatures): %.3f ms per message, %d messages in %.3f s, %d failed'
          % (1000 * t / len(msgs), len(msgs), t, bad))
    print('relayguard is %.1f times as fast as dkimpy' % (t / ours))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
