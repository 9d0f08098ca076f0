#!/usr/bin/env python3
"""msgauth_lab.py - acceptance throughput with SPF + DKIM verify + DMARC on
(smtpd_message_authentication = yes) against off, on the same load: 8 client
processes x 150 DKIM-signed messages (RSA-2048, ~3.7 KiB) for a local Maildir,
sent from the SPF-listed address 127.0.0.50 so every check passes; a dnsmasq
lab on loopback serves SPF, DKIM and DMARC records with a TTL of 60 s, so after
the first message relayguard answers them from its DNS cache and reuses the
decoded DKIM key (a warm cache, as on a server that sees the same senders all
day). Two rounds, interleaved; it only reports: messages per second, and the
server's CPU time per message (user + system, from /proc), which varies less
than throughput when other work shares the machine.

usage: python3 bench/msgauth_lab.py   (after make build/relayguard)
"""
import os, subprocess, sys, time, tempfile, multiprocessing as mp
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'integration'))
import harness, dnslab
from harness import Conn, Server
from test_dkim_interop import record_of
from test_msgauth import message, stuffed

N_PROC, PER = 8, 150

def worker(port, msg, n, q):
    with Conn(port, source='127.0.0.50', timeout=30) as c:
        c.cmd('EHLO mail.paypal.example')
        for i in range(n):
            c.send(b'MAIL FROM:<ceo@paypal.example>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n')
            r = c.replies(3)
            c.send(stuffed(msg))
            r = c.reply()
            assert r[0] == 250, r
    q.put(n)

def cpu_s(pid):
    """The server's CPU time so far (user + system, every thread), in seconds."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')

def run(srv, msg):
    """(messages per second, server CPU milliseconds per message)."""
    q = mp.Queue()
    t0, c0 = time.time(), cpu_s(srv.proc.pid)
    ps = [mp.Process(target=worker, args=(srv.port, msg, PER, q)) for _ in range(N_PROC)]
    for p in ps: p.start()
    for p in ps: p.join()
    return N_PROC * PER / (time.time() - t0), 1000 * (cpu_s(srv.proc.pid) - c0) / (N_PROC * PER)

tmp = tempfile.mkdtemp(prefix='rg-bench-')
out = subprocess.run([harness.binary(), 'dkim', 'keygen', '--domain', 'paypal.example', '--selector', 'pp',
                      '--out', tmp], capture_output=True, text=True, check=True)
txt = {'paypal.example': ['v=spf1 ip4:127.0.0.50 -all'], '_dmarc.paypal.example': ['v=DMARC1; p=reject'],
       'pp._domainkey.paypal.example': [record_of(out.stdout)[0]]}
dns = dnslab.DnsLab(txt=txt); dns.start()
msg = subprocess.run([harness.binary(), 'dkim', 'sign', '--domain', 'paypal.example', '--selector', 'pp',
                      '--key', os.path.join(tmp, 'paypal.example.pp.pem')],
                     input=message(body=b'x' * 70 + b'\r\n' * 1 + (b'y' * 70 + b'\r\n') * 50),
                     capture_output=True, check=True).stdout
res, cpu = {}, {}
for rnd in range(2):
    for mode in ('yes', 'no'):
        srv = Server(overrides={'myhostname': 'mx.relayguard.test', 'dns_servers': dns.servers,
                                'mydestination': 'example.net', 'local_recipient_maps': '',
                                'smtpd_peername_lookup': 'no', 'smtpd_message_authentication': mode})
        try:
            r, ms = run(srv, msg)
            res.setdefault(mode, []).append(r)
            cpu.setdefault(mode, []).append(ms)
            print('round', rnd, 'checks', mode, '%.0f msg/s, server CPU %.3f ms/msg' % (r, ms),
                  flush=True)
            if mode == 'yes':  # the checks really ran and passed
                assert srv.log().count('result=pass') >= N_PROC * PER, 'checks did not pass'
        finally:
            srv.stop(); srv.cleanup()
dns.cleanup()
print({k: ['%.0f' % x for x in v] for k, v in res.items()})
y, n = max(res['yes']), max(res['no'])
print('on/off: %.0f / %.0f msg/s: %.1f%% slower' % (y, n, 100 * (1 - y / n)))
# on a shared machine the CPU the server spends per message is the steadier figure
cy, cn = min(cpu['yes']), min(cpu['no'])
print('server CPU on/off: %.3f / %.3f ms/msg: %.1f%% more' % (cy, cn, 100 * (cy / cn - 1)))
