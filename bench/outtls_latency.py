#!/usr/bin/env python3
"""outtls_latency.py - extra latency per outbound delivery for DANE and MTA-STS
(issue 14), cached and uncached, on loopback.

    python3 bench/outtls_latency.py [--binary build/relayguard] [-n 8]

For each case one relayguard delivers -n messages, one at a time, to a scripted
receiver with STARTTLS; a message's latency is the time from its "queued" log
line to its "delivered" line (the log's milliseconds). Between two messages the
sender waits for its cached connection to close (2 s), so every delivery makes
its own DNS lookups, TCP connection and TLS handshake. "first" is the first
delivery (relayguard's caches empty), "later" the median of the others.
Cases: MX over dnsmasq, MTA-STS off (baseline); MTA-STS enforce (first: TXT, the
policy host's address, the HTTPS fetch; later: cached policy, TXT re-checked
every delivery with smtp_mta_sts_recheck_time = 0, or not at all with 60s);
DANE (unbound validating a signed zone: MX, A and TLSA with the AD bit).
"""
import argparse
import os
import re
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'integration'))

import fakesmtp  # noqa: E402
from danelab import DaneLab, spki_sha256  # noqa: E402
from dnslab import DnsLab  # noqa: E402
from harness import Server  # noqa: E402
from test_outbound import send, free_port_on  # noqa: E402
from test_outbound_tls import PolicyServer, Receiver, sts_policy  # noqa: E402
from tlslab import TestCA  # noqa: E402

TS = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z')


def stamp(line):
    m = TS.match(line)
    t = time.strptime(m.group(1)[:19], '%Y-%m-%dT%H:%M:%S')
    return time.mktime(t) + int(m.group(1)[20:]) / 1000.0


def latencies(snd, domain, n):
    out = []
    for i in range(n):
        qid = send(snd, ['u%d@%s' % (i, domain)], 'Subject: bench %d\n\nhi' % i)
        line = snd.wait_log(r'delivered queue=%s .*status=sent' % qid, timeout=30)
        if line is None:
            raise SystemExit('not delivered:\n' + snd.tail(30))
        text = snd.log()
        q = re.search(r'^.* queued .*queue=%s .*$' % qid, text, re.M).group(0)
        d = re.search(r'^.* delivered queue=%s .*$' % qid, text, re.M).group(0)
        out.append((stamp(d) - stamp(q)) * 1000)
        time.sleep(2.3)  # the cached connection closes: the next delivery starts afresh
    return out


def sender(dns_servers, port, **more):
    o = {'default_transport': 'smtp', 'dns_servers': dns_servers, 'smtpd_peername_lookup': 'no',
         'smtp_tcp_port': str(port), 'smtp_tls_memory_lifetime': '0'}
    o.update(more)
    return Server(overrides=o)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--binary', default=os.path.join(HERE, '..', 'build', 'relayguard'))
    ap.add_argument('-n', type=int, default=8)
    args = ap.parse_args()
    os.environ['RELAYGUARD_BIN'] = os.path.abspath(args.binary)
    tmp = tempfile.mkdtemp(prefix='relayguard-bench-tls-')
    os.chmod(tmp, 0o755)
    ca = TestCA(tmp)
    ip_mx, ip_web, ip_dane = '127.0.0.71', '127.0.0.72', '127.0.0.73'
    port = free_port_on(ip_mx, ip_dane)
    certs = ca.issue('mx.bench.test', 'mx.dane.test')
    rcv = [fakesmtp.FakeSMTP(Receiver(), certs=certs, host=ip, port=port) for ip in (ip_mx, ip_dane)]
    web_port = free_port_on(ip_web)
    web = PolicyServer(ip_web, web_port, ca.issue('mta-sts.bench.test'))
    web.policy = sts_policy('enforce', ['mx.bench.test'])
    dns = DnsLab(mx={'bench.test': [(10, 'mx.bench.test')], 'plain.test': [(10, 'mx.bench.test')]},
                 hosts={'mx.bench.test': [ip_mx], 'mta-sts.bench.test': [ip_web]},
                 extra=['--txt-record=_mta-sts.bench.test,v=STSv1; id=1;'])
    dns.start()
    lab = DaneLab(signed={'dane.test': ['@ MX 10 mx', 'mx A ' + ip_dane, '_%d._tcp.mx TLSA 3 1 1 %s'
                                        % (port, spki_sha256(certs[0]))]})
    lab.start()
    rows = []
    try:
        cases = [
            ('baseline: MX, STARTTLS, MTA-STS off', dns.servers, 'plain.test',
             {'smtp_mta_sts': 'no', 'smtp_tls_CAfile': ca.cert}),
            ('MTA-STS on, domain without a policy (one TXT lookup)', dns.servers, 'plain.test',
             {'smtp_tls_CAfile': ca.cert}),
            ('MTA-STS enforce, TXT re-checked every delivery', dns.servers, 'bench.test',
             {'smtp_mta_sts_CAfile': ca.cert, 'smtp_tls_CAfile': ca.cert,
              'smtp_mta_sts_https_port': str(web_port), 'smtp_mta_sts_recheck_time': '0'}),
            ('MTA-STS enforce, TXT re-checked every 60 s (default)', dns.servers, 'bench.test',
             {'smtp_mta_sts_CAfile': ca.cert, 'smtp_tls_CAfile': ca.cert,
              'smtp_mta_sts_https_port': str(web_port)}),
            ('baseline via unbound: MX, STARTTLS, level may', lab.servers, 'dane.test',
             {'smtp_mta_sts': 'no', 'smtp_tls_CAfile': ca.cert}),
            ('DANE (dnssec, TLSA 3 1 1)', lab.servers, 'dane.test',
             {'smtp_mta_sts': 'no', 'smtp_dns_support_level': 'dnssec'}),
        ]
        for name, servers, domain, more in cases:
            snd = sender(servers, port, **more)
            try:
                ms = latencies(snd, domain, args.n)
            finally:
                snd.stop()
                snd.cleanup()
            rows.append((name, ms[0], statistics.median(ms[1:]) if len(ms) > 1 else ms[0]))
    finally:
        lab.cleanup()
        dns.cleanup()
        web.stop()
        for r in rcv:
            r.stop()
    print('%-58s %10s %10s' % ('case (queued -> delivered, ms)', 'first', 'later'))
    for name, first, later in rows:
        print('%-58s %10.1f %10.1f' % (name, first, later))


if __name__ == '__main__':
    main()
