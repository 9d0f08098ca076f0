"""dnslab.py - a real DNS server (dnsmasq) on loopback serving test zones.

For tests of anything that looks up MX/A/AAAA records: point the code under
test's `dns_servers` at `lab.servers` and describe the zone in Python.

    from dnslab import DnsLab, SilentDns, ServfailDns, require_dnsmasq

    class T(unittest.TestCase):
        @classmethod
        def setUpClass(cls):
            require_dnsmasq()      # skip, or under CI=true fail naming the package
            cls.dns = DnsLab(
                mx={'two.test': [(10, 'mxa.two.test'), (20, 'mxb.two.test')]},
                hosts={'mxa.two.test': ['127.0.0.11'], 'mxb.two.test': ['127.0.0.12', '::1']},
                cnames={'alias.test': 'mxa.two.test'},   # chains: 'a.test': 'b.test' ...
                null_mx=['null.test'],                   # RFC 7505 "MX 0 ."
                servfail=['broken.test'],                # any name under it: SERVFAIL
                silent=['slow.test'],                    # any name under it: no answer
                txt={'two.test': ['v=spf1 mx -all'],     # one TXT record per string
                     'sel._domainkey.two.test': ['v=DKIM1; p=...']},
                ptr={'11.0.0.127.in-addr.arpa': ['mxa.two.test']},
                ttl=60)                                  # TTL of every record served
            cls.dns.start()
        ... Server(overrides={'dns_servers': cls.dns.servers}) ...
        @classmethod
        def tearDownClass(cls):
            cls.dns.cleanup()

DnsLab(mx=None, hosts=None, cnames=None, null_mx=(), servfail=(), silent=(),
       ttl=60, local=LOCAL_ZONES, extra=(), txt=None, ptr=None)
  mx       {domain: [(preference, host), ...]}
  hosts    {name: [address, ...]}: A for IPv4, AAAA for IPv6 addresses
  cnames   {alias: target}: a target must itself be in hosts or cnames
           (dnsmasq serves CNAMEs only to names it holds itself)
  null_mx  domains with the single record "MX 0 ."
  txt      {name: [record, ...]}: each record a str (split into strings of 255
           bytes, as a zone file must for a long DKIM key) or a list of strings;
           no '"', ',' or '\\' in them (dnsmasq's command line cannot carry them)
  servfail domains forwarded to a ServfailDns: every question gets SERVFAIL
  silent   domains forwarded to a SilentDns: questions are read and dropped,
           so the resolver times out (dnsmasq itself answers nothing either)
  ptr      {name: [target, ...]}: PTR records (name as 4.3.2.1.in-addr.arpa)
  ttl      dnsmasq's --local-ttl: the TTL of everything served locally
  local    zones answered from this data only: any other name under them is
           NXDOMAIN (names outside every zone get REFUSED)
  extra    more dnsmasq arguments
Methods and attributes:
  start()             start dnsmasq on 127.0.0.1:<free port>; waits until it answers
  stop()              stop it (and the helper servers); safe to call twice
  restart()           stop and start again on the same port (e.g. after a cache test)
  servers             "127.0.0.1:PORT", a dns_servers value
  port                the UDP port
  log()               dnsmasq's query log (every question asked, as text)
  servfail_server, silent_server   the helper servers behind servfail/silent
                      (their `questions` count what reached them), or None
  cleanup()           stop, and remove the temporary directory
  query(name, qtype)  (rcode, answer count) from the lab, e.g. query('two.test', 'MX')
It is also a context manager (start on enter, stop on exit).

SilentDns() / ServfailDns(): standalone UDP servers on 127.0.0.1 (attribute
`servers`, method `close()`, context managers) for pointing dns_servers at a
server that never answers or that answers SERVFAIL to everything.

query(servers, name, qtype, timeout=2) -> (rcode, ancount), or None on timeout.
require_dnsmasq(): skip the test (harness.require) when dnsmasq is missing, except under
CI=true, where the test fails naming the Debian package (dnsmasq-base).
"""
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import harness

DNSMASQ = shutil.which('dnsmasq') or '/usr/sbin/dnsmasq'
PACKAGE = 'dnsmasq-base'
LOCAL_ZONES = ('test', 'example', 'invalid', 'example.com', 'example.net', 'example.org')
QTYPES = {'A': 1, 'CNAME': 5, 'SOA': 6, 'PTR': 12, 'MX': 15, 'TXT': 16, 'AAAA': 28}


def require_dnsmasq():
    harness.require(os.path.exists(DNSMASQ), PACKAGE, 'a DNS server on loopback (dnsmasq)')


def free_udp_port():
    """A port free on 127.0.0.1 for UDP and for TCP (dnsmasq binds both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            try:
                t.bind(('127.0.0.1', port))
                return port
            except OSError:
                continue  # taken for TCP (a connection's own port, say): another


def _encode_name(name):
    out = b''
    for label in name.rstrip('.').split('.'):
        if label:
            out += bytes([len(label)]) + label.encode('ascii')
    return out + b'\0'


def query(servers, name, qtype='A', timeout=2.0):
    """One question to servers ("ip:port"): (rcode, answer count), or None on timeout."""
    host, port = servers.rsplit(':', 1)
    qid = random.randrange(65536)
    packet = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0) + _encode_name(name) + \
        struct.pack('>HH', QTYPES[qtype], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (host, int(port)))
        try:
            while True:
                data, _ = s.recvfrom(4096)
                if len(data) >= 12 and struct.unpack('>H', data[:2])[0] == qid:
                    return data[3] & 0x0f, struct.unpack('>H', data[6:8])[0]
        except socket.timeout:
            return None


def txt_args(txt):
    """dnsmasq --txt-record options for {name: [record, ...]}."""
    args = []
    for name, records in txt.items():
        for rec in records:
            strings = [rec[i:i + 255] for i in range(0, len(rec), 255)] or [''] \
                if isinstance(rec, str) else list(rec)
            # on the command line dnsmasq takes quotes literally and a comma
            # starts the next string of the record
            if any(c in part for part in strings for c in '",\\'):
                raise ValueError('dnslab TXT text with a quote, comma or backslash: %r'
                                 % (rec,))
            args.append('--txt-record=%s,%s' % (name, ','.join(strings)))
    return args


class _UdpServer:
    """A UDP socket on 127.0.0.1 served by a thread; respond() says what to send back."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.servers = '127.0.0.1:%d' % self.port
        self.questions = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def respond(self, data):
        return None

    def _run(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.questions += 1
            reply = self.respond(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SilentDns(_UdpServer):
    """Reads every question and never answers."""


class ServfailDns(_UdpServer):
    """Answers every question with SERVFAIL (the question echoed, no records)."""

    def respond(self, data):
        if len(data) < 12 or data[2] & 0x80:
            return None
        qdcount = struct.unpack('>H', data[4:6])[0]
        flags = 0x8000 | (data[2] & 0x01) << 8 | 0x0080 | 2  # QR, RD copied, RA, SERVFAIL
        return data[:2] + struct.pack('>HHHHH', flags, qdcount, 0, 0, 0) + data[12:]


class DnsLab:
    def __init__(self, mx=None, hosts=None, cnames=None, null_mx=(), servfail=(), silent=(),
                 ttl=60, local=LOCAL_ZONES, extra=(), txt=None, ptr=None):
        self.ptr = dict(ptr or {})
        self.mx = dict(mx or {})
        self.txt = dict(txt or {})
        self.hosts = dict(hosts or {})
        self.cnames = dict(cnames or {})
        self.null_mx = list(null_mx)
        self.servfail = list(servfail)
        self.silent = list(silent)
        self.ttl = ttl
        self.local = list(local)
        self.extra = list(extra)
        self.port = free_udp_port()
        self.servers = '127.0.0.1:%d' % self.port
        self.tmp = tempfile.mkdtemp(prefix='relayguard-dnslab-')
        self.proc = None
        self._helpers = []
        self.servfail_server = self.silent_server = None

    def _args(self):
        args = [DNSMASQ, '--keep-in-foreground', '--port=%d' % self.port,
                '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts',
                '--local-ttl=%d' % self.ttl, '--log-queries', '--user=root',
                '--pid-file=' + os.path.join(self.tmp, 'pid'),
                '--log-facility=' + os.path.join(self.tmp, 'log')]
        args += ['--local=/%s/' % z for z in self.local]
        for domain, records in self.mx.items():
            args += ['--mx-host=%s,%s,%d' % (domain, host, pref) for pref, host in records]
        for name, addrs in self.hosts.items():
            args += ['--host-record=%s,%s' % (name, a) for a in addrs]
        for name, targets in self.ptr.items():
            args += ['--ptr-record=%s,%s' % (name, t) for t in targets]
        for alias, target in self.cnames.items():
            args.append('--cname=%s,%s' % (alias, target))
        args += txt_args(self.txt)
        # type 15 (MX), data: preference 0, then the root name (one zero byte)
        args += ['--dns-rr=%s,15,000000' % d for d in self.null_mx]
        for domains, cls in ((self.servfail, ServfailDns), (self.silent, SilentDns)):
            if domains:
                helper = cls()
                self._helpers.append(helper)
                if cls is ServfailDns:
                    self.servfail_server = helper
                else:
                    self.silent_server = helper
                args += ['--server=/%s/127.0.0.1#%d' % (d, helper.port) for d in domains]
        return args + self.extra

    def start(self, timeout=5, tries=3):
        require_dnsmasq()
        self.proc = subprocess.Popen(self._args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                why = self.proc.stderr.read().decode('utf-8', 'replace')
                if 'Address already in use' in why and tries > 1:
                    # the port was free when chosen; something took it since
                    self.port = free_udp_port()
                    self.servers = '127.0.0.1:%d' % self.port
                    return self.start(timeout, tries - 1)
                raise RuntimeError('dnsmasq did not start: %s' % why)
            if query(self.servers, 'ready.invalid', 'A', timeout=0.2) is not None:
                return self
        self.stop()
        raise RuntimeError('dnsmasq on %s did not answer within %ss' % (self.servers, timeout))

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc.stderr.close()
            self.proc = None
        for h in self._helpers:
            h.close()
        self._helpers = []

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        try:
            with open(os.path.join(self.tmp, 'log'), encoding='utf-8', errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def query(self, name, qtype='A', timeout=2.0):
        return query(self.servers, name, qtype, timeout)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
