"""danelab.py - a validating DNS resolver on loopback with signed test zones.

    lab = DaneLab(signed={'dane.test': [records]}, unsigned={'plain.test': [records]})
    lab.start()            # lab.servers: for dns_servers
    ...
    lab.cleanup()

Each zone is a list of master-file lines relative to the zone ("@ MX 10 mx",
"mx A 127.0.0.51", "_25._tcp.mx TLSA 3 1 1 <hex>"). Signed zones are signed
with ldns-signzone (ldnsutils) under a fresh key pair, and the resolver, Debian's
unbound, holds their DS records as trust anchors; it serves every zone from an
auth-zone (for-upstream: answers go through the validator as if they came from
the zone's servers), so its answers carry the AD bit for the signed zones and not
for the others. bogus=[name] changes the rdata of that name's records after
signing: a validating resolver answers SERVFAIL for it.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time

from dnslab import free_udp_port, query
from harness import require

UNBOUND = '/usr/sbin/unbound'


def require_dane_tools():
    require(os.path.exists(UNBOUND), 'unbound', 'a validating DNS resolver for DANE tests')
    require(shutil.which('ldns-signzone') is not None, 'ldnsutils', 'ldns-signzone signs the zones')


def spki_sha256(cert):
    """The hex SHA-256 of a certificate's SubjectPublicKeyInfo (TLSA selector 1, type 1)."""
    pub = subprocess.run(['openssl', 'x509', '-in', cert, '-noout', '-pubkey'], check=True,
                         capture_output=True).stdout
    der = subprocess.run(['openssl', 'pkey', '-pubin', '-outform', 'DER'], input=pub,
                         check=True, capture_output=True).stdout
    import hashlib
    return hashlib.sha256(der).hexdigest()


def cert_sha256(cert):
    """The hex SHA-256 of a whole certificate (TLSA selector 0, type 1)."""
    der = subprocess.run(['openssl', 'x509', '-in', cert, '-outform', 'DER'], check=True,
                         capture_output=True).stdout
    import hashlib
    return hashlib.sha256(der).hexdigest()


class DaneLab:
    def __init__(self, signed=None, unsigned=None, bogus=()):
        self.signed = dict(signed or {})
        self.unsigned = dict(unsigned or {})
        self.bogus = list(bogus)
        self.port = free_udp_port()
        self.servers = '127.0.0.1:%d' % self.port
        self.tmp = tempfile.mkdtemp(prefix='relayguard-danelab-')
        self.proc = None

    def _zone_file(self, zone, lines):
        path = os.path.join(self.tmp, zone + '.zone')
        with open(path, 'w') as f:
            f.write('$ORIGIN %s.\n$TTL 300\n' % zone)
            f.write('@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n' % (zone, zone))
            f.write('@ NS ns.%s.\nns A 127.0.0.1\n' % zone)
            for line in lines:
                f.write(line + '\n')
        return path

    def _sign(self, zone, path):
        def keygen(*flags):
            return subprocess.run(['ldns-keygen', '-a', 'ECDSAP256SHA256'] + list(flags) + [zone],
                                  cwd=self.tmp, check=True, capture_output=True,
                                  text=True).stdout.strip()
        ksk, zsk = keygen('-k'), keygen()
        subprocess.run(['ldns-signzone', '-n', '-f', path + '.signed', path, ksk, zsk],
                       cwd=self.tmp, check=True, capture_output=True)
        with open(os.path.join(self.tmp, ksk + '.ds')) as f:
            ds = f.read()
        self._make_bogus(path + '.signed')
        return path + '.signed', ds

    def _make_bogus(self, signed):
        """Flip the data of the records named in bogus: their signatures no longer fit."""
        with open(signed) as f:
            lines = f.read().split('\n')
        for i, line in enumerate(lines):
            fields = line.split()
            if len(fields) > 4 and fields[0].rstrip('.') in self.bogus and fields[3] != 'RRSIG' \
                    and fields[3] not in ('NSEC', 'NSEC3'):
                last = fields[-1]
                fields[-1] = ('0' if last[0] != '0' else '1') + last[1:]
                lines[i] = '\t'.join(fields)
        with open(signed, 'w') as f:
            f.write('\n'.join(lines))

    def _config(self, zones, anchors):
        conf = os.path.join(self.tmp, 'unbound.conf')
        with open(os.path.join(self.tmp, 'anchors.ds'), 'w') as f:
            f.write(''.join(anchors))
        with open(conf, 'w') as f:
            f.write('server:\n')
            for line in ('interface: 127.0.0.1', 'port: %d' % self.port, 'do-ip6: no',
                         'do-daemonize: no', 'username: ""', 'chroot: ""',
                         'directory: "%s"' % self.tmp, 'pidfile: "%s/unbound.pid"' % self.tmp,
                         'use-syslog: no', 'logfile: "%s/unbound.log"' % self.tmp,
                         'verbosity: 1', 'val-log-level: 2', 'access-control: 127.0.0.0/8 allow',
                         'trust-anchor-file: "%s/anchors.ds"' % self.tmp,
                         'module-config: "validator iterator"', 'do-not-query-localhost: no',
                         'local-zone: "test." nodefault', 'root-hints: ""'):
                f.write('    %s\n' % line)
            for zone in self.unsigned:
                f.write('    domain-insecure: "%s"\n' % zone)
            for zone, path in zones:
                f.write('auth-zone:\n    name: "%s"\n    zonefile: "%s"\n'
                        '    for-upstream: yes\n    for-downstream: no\n'
                        '    fallback-enabled: no\n' % (zone, path))
        return conf

    def start(self, timeout=10):
        require_dane_tools()
        zones, anchors = [], []
        for zone, lines in self.signed.items():
            path, ds = self._sign(zone, self._zone_file(zone, lines))
            zones.append((zone, path))
            anchors.append(ds)
        for zone, lines in self.unsigned.items():
            zones.append((zone, self._zone_file(zone, lines)))
        for attempt in range(3):
            conf = self._config(zones, anchors)
            self.proc = subprocess.Popen([UNBOUND, '-d', '-c', conf],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_started(timeout) or attempt == 2:
                break
            # the port was free when chosen, then taken (an outgoing connection's
            # own port, say) before unbound bound it: another port
            self.port = free_udp_port()
            self.servers = '127.0.0.1:%d' % self.port
        return self._wait_answer(timeout)

    def _wait_started(self, timeout):
        """False when unbound exited because its port was taken; raises on other exits."""
        deadline = time.time() + min(timeout, 1)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode('utf-8', 'replace')
                if 'Address already in use' in err:
                    return False
                raise RuntimeError('unbound did not start: %s\n%s' % (err, self.log()))
            time.sleep(0.05)
        return True

    def _wait_answer(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('unbound did not start: %s\n%s' % (
                    self.proc.stderr.read().decode('utf-8', 'replace'), self.log()))
            if query(self.servers, 'ns.%s' % (list(self.signed) + list(self.unsigned))[0],
                     'A', timeout=0.2) is not None:
                return self
        self.stop()
        raise RuntimeError('unbound on %s did not answer within %ss' % (self.servers, timeout))

    def log(self):
        try:
            with open(os.path.join(self.tmp, 'unbound.log')) as f:
                return f.read()
        except OSError:
            return ''

    def stop(self):
        if self.proc is not None:
            proc, self.proc = self.proc, None
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.stderr.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
